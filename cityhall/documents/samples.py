"""The sample certificates under docs/certificates/, from the demo registry's invented residents.

    python -m cityhall.documents.samples docs/certificates

renders one PDF per type with a throw-away key and converts each first page to PNG with pdftoppm
(poppler-utils). Everyone here is invented; the street names of 和光市 are fictional.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from cityhall.documents.model import CertificateRequest
from cityhall.documents.render import render_certificate
from cityhall.documents.signing import DocumentSigner

REGISTRY_FILE = Path(__file__).resolve().parents[2] / "config" / "demo-registry.json"


def sample_registry() -> dict[str, dict]:
    """The demo registry (the registry adapter's sample data), keyed by card CN."""
    return json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))


_REGISTRY = sample_registry()
DEMO_RESIDENT: dict = _REGISTRY["8439WAKO0001DEMOCARD"]      # 3-person household, taxed
SINGLE_RESIDENT: dict = _REGISTRY["8439WAKO0010DEMOCARD"]    # 1-person household
LARGE_RESIDENT: dict = _REGISTRY["8439WAKO0027DEMOCARD"]     # 6-person household: two sheets
UNTAXED_RESIDENT: dict = _REGISTRY["8439WAKO0012DEMOCARD"]   # no income: 非課税
DEMO_ISSUED_AT = datetime(2026, 1, 5, 1, 30, tzinfo=timezone.utc)   # 10:30 in Japan
CITY = dict(city_name="和光市", mayor_name="和光市長 見本 光子",
            place_of_issue="和光市役所 1階 証明書自動交付機 (見本)")
HOUSEHOLD_OPTIONS = ("with_household", "with_honseki", "with_relationship")


def _request(number: int, cert_type: str, resident: dict, **kw) -> CertificateRequest:
    return CertificateRequest(cert_type=cert_type, issuance_number=f"11229-2026-{number:08d}",
                              issued_at=DEMO_ISSUED_AT, resident=resident, **CITY, **kw)


#: name → request; each is rendered to docs/certificates/<name>.png
SAMPLE_REQUESTS: dict[str, CertificateRequest] = {
    "juminhyo": _request(1, "juminhyo", DEMO_RESIDENT, options=HOUSEHOLD_OPTIONS),
    "juminhyo-household-1": _request(4, "juminhyo", SINGLE_RESIDENT, options=HOUSEHOLD_OPTIONS),
    "juminhyo-household-6": _request(5, "juminhyo", LARGE_RESIDENT, options=HOUSEHOLD_OPTIONS),
    "juminhyo-household-part": _request(6, "juminhyo", LARGE_RESIDENT, options=("with_household",),
                                        members=(0, 1)),
    "juminhyo-kojinhyo": _request(7, "juminhyo", DEMO_RESIDENT, options=("with_relationship",)),
    "kazei": _request(2, "kazei", LARGE_RESIDENT, tax_year=2025),
    "hikazei": _request(3, "hikazei", UNTAXED_RESIDENT, tax_year=2025),
}


def pdf_to_png(pdf: Path, png_stem: Path, dpi: int = 100, timeout: float = 60.0) -> Path:
    """First page of ``pdf`` as ``<png_stem>.png`` via pdftoppm."""
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(png_stem)], check=True, timeout=timeout, capture_output=True)
    return png_stem.with_suffix(".png")


def pdf_to_pngs(pdf: Path, png_stem: Path, dpi: int = 100, timeout: float = 60.0) -> list[Path]:
    """Every page: ``<stem>.png`` for a one-page PDF, ``<stem>-1.png``, ``<stem>-2.png``… otherwise."""
    pages = int(next(line.split()[-1] for line in subprocess.run(
        ["pdfinfo", str(pdf)], check=True, capture_output=True, text=True, timeout=timeout).stdout.splitlines()
        if line.startswith("Pages:")))
    if pages == 1:
        return [pdf_to_png(pdf, png_stem, dpi, timeout)]
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(png_stem)], check=True, timeout=timeout,
                   capture_output=True)
    return sorted(png_stem.parent.glob(png_stem.name + "-*.png"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/certificates")
    out.mkdir(parents=True, exist_ok=True)
    signer = DocumentSigner.generate()
    with tempfile.TemporaryDirectory() as tmp:
        for name, request in SAMPLE_REQUESTS.items():
            pdf = Path(tmp) / f"{name}.pdf"
            pdf.write_bytes(render_certificate(request, signer).pdf)
            for page in pdf_to_pngs(pdf, out / name):
                print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
