"""Fixtures for the certificate documents tests: one city hall key, the three sample certificates
rendered once per session, and helpers around poppler-utils (pdftotext, pdftoppm)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cityhall.documents import DocumentSigner, render_certificate
from cityhall.documents.samples import SAMPLE_REQUESTS
from tests.support.services import require_binary


@pytest.fixture(scope="session")
def signer() -> DocumentSigner:
    return DocumentSigner.generate()


@pytest.fixture(scope="session")
def public_keys(signer):
    return signer.public_keys()


@pytest.fixture(scope="session")
def samples(signer):
    """cert type → RenderedDocument of the fictional demo resident."""
    return {cert_type: render_certificate(request, signer)
            for cert_type, request in SAMPLE_REQUESTS.items()}


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory, samples) -> Path:
    directory = tmp_path_factory.mktemp("certificates")
    for cert_type, document in samples.items():
        (directory / f"{cert_type}.pdf").write_bytes(document.pdf)
    return directory


def pdf_text(pdf_path: Path, page: int | None = None) -> str:
    """The text layer (every page, or just ``page``, 1-based)."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    result = subprocess.run([require_binary("pdftotext"), "-layout", "-enc", "UTF-8", *pages, str(pdf_path), "-"],
                            capture_output=True, timeout=60, check=True)
    return result.stdout.decode("utf-8")


def pdf_png(pdf_path: Path, stem: Path, dpi: int = 100) -> Path:
    subprocess.run([require_binary("pdftoppm"), "-png", "-r", str(dpi), "-f", "1", "-l", "1",
                    "-singlefile", str(pdf_path), str(stem)], capture_output=True, timeout=60, check=True)
    return stem.with_suffix(".png")


def page_count(pdf_path: Path) -> int:
    result = subprocess.run([require_binary("pdfinfo"), str(pdf_path)], capture_output=True, timeout=60,
                            check=True)
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    raise AssertionError("pdfinfo printed no page count")
