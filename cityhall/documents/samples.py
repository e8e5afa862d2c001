"""A fictional demo resident and the sample certificates under docs/certificates/.

    python -m cityhall.documents.samples docs/certificates

renders one PDF per type with a throw-away key and converts each first page to PNG with pdftoppm
(poppler-utils). Everyone here is invented; the street names of 和光市 are fictional.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from cityhall.documents.model import CertificateRequest
from cityhall.documents.render import render_certificate
from cityhall.documents.signing import DocumentSigner

DEMO_RESIDENT: dict = {
    "resident_id": "R9001", "status": "active",
    "name": "見本 太郎", "kana": "みほん たろう", "birth_date": "1980-04-01", "sex": "男",
    "address": "埼玉県和光市みほん台三丁目4番5号", "moved_in": "2010-04-01",
    "household_head": "見本 太郎", "relationship": "世帯主",
    "honseki": "埼玉県和光市みほん台三丁目4番地", "honseki_head": "見本 太郎",
    "household": [
        {"name": "見本 花子", "kana": "みほん はなこ", "birth_date": "1982-06-15", "sex": "女",
         "relationship": "妻", "moved_in": "2010-04-01"},
        {"name": "見本 一郎", "kana": "みほん いちろう", "birth_date": "2012-11-03", "sex": "男",
         "relationship": "子", "moved_in": "2012-11-03"},
    ],
    "tax": {
        "2025": {"income": 4200000, "taxable_income": 2800000, "municipal_tax": 168000,
                 "prefectural_tax": 112000},
        "2024": {"income": 0, "taxable_income": 0, "municipal_tax": 0, "prefectural_tax": 0},
    },
}
DEMO_ISSUED_AT = datetime(2026, 1, 5, 1, 30, tzinfo=timezone.utc)   # 10:30 in Japan

SAMPLE_REQUESTS: dict[str, CertificateRequest] = {
    "juminhyo": CertificateRequest(
        cert_type="juminhyo", issuance_number="131-2026-00000001", issued_at=DEMO_ISSUED_AT,
        city_name="和光市", mayor_name="和光市長 見本 光子", resident=DEMO_RESIDENT,
        options=("with_household", "with_honseki", "with_relationship"),
        place_of_issue="和光市役所 1階 証明書自動交付機 (見本)"),
    "kazei": CertificateRequest(
        cert_type="kazei", issuance_number="131-2026-00000002", issued_at=DEMO_ISSUED_AT,
        city_name="和光市", mayor_name="和光市長 見本 光子", resident=DEMO_RESIDENT, tax_year=2025,
        place_of_issue="和光市役所 1階 証明書自動交付機 (見本)"),
    "hikazei": CertificateRequest(
        cert_type="hikazei", issuance_number="131-2026-00000003", issued_at=DEMO_ISSUED_AT,
        city_name="和光市", mayor_name="和光市長 見本 光子", resident=DEMO_RESIDENT, tax_year=2024,
        place_of_issue="和光市役所 1階 証明書自動交付機 (見本)"),
}


def pdf_to_png(pdf: Path, png_stem: Path, dpi: int = 100, timeout: float = 60.0) -> Path:
    """First page of ``pdf`` as ``<png_stem>.png`` via pdftoppm."""
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(png_stem)], check=True, timeout=timeout, capture_output=True)
    return png_stem.with_suffix(".png")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/certificates")
    out.mkdir(parents=True, exist_ok=True)
    signer = DocumentSigner.generate()
    with tempfile.TemporaryDirectory() as tmp:
        for cert_type, request in SAMPLE_REQUESTS.items():
            pdf = Path(tmp) / f"{cert_type}.pdf"
            pdf.write_bytes(render_certificate(request, signer).pdf)
            print(pdf_to_png(pdf, out / cert_type))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
