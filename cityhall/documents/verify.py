"""Is this certificate PDF genuine? The checks behind ``cityhall verify FILE.pdf`` and ``/verify``.

In order, stopping at the first failure:

1. the file ends in city hall's signature line, by a key in ``public_keys``, valid over every byte
   before it (any altered byte, added or removed byte fails here);
2. the page carries exactly one Madoguchi QR code, read from the image drawn on the page with zbar;
3. the QR signature is valid under a key in ``public_keys`` (a QR signed by another key is forged);
4. the QR's content hash, issuance number and type match the canonical content embedded in the PDF
   (a genuine QR copied onto another document does not match).

``verify_qr_payload`` checks a QR read from paper (a scan or a phone): signature only; the caller
then compares issuance number and content hash with its stored issuance.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image

from cityhall.documents.model import CERT_TYPES, DocumentModel
from cityhall.documents.render import CONTENT_ATTACHMENT
from cityhall.documents.signing import (
    QR_PREFIX,
    QrClaim,
    parse_qr_payload,
    split_file_signature,
    verify_qr_claim,
)

MAX_PDF_BYTES = 20 * 1024 * 1024

REASONS: dict[str, str] = {
    "genuine": "genuine: city hall's signatures are valid and the QR code matches the document",
    "qr_signature_valid": "the QR code's signature is valid; compare its issuance number and content "
                          "hash with city hall's issuance record",
    "too_large": "the file is larger than any certificate city hall issues",
    "no_file_signature": "the file carries no city hall signature line after %%EOF: it was not issued "
                         "by city hall, or it was altered (re-saved, truncated or appended to)",
    "unknown_key": "the file is signed by a key city hall does not know (key id {key_id})",
    "altered": "the file was altered after city hall signed it (its signature does not match its bytes)",
    "unreadable_pdf": "the signed file is not a readable PDF",
    "no_qr": "no readable Madoguchi QR code was found on the document",
    "several_qr": "the document carries more than one different Madoguchi QR code",
    "qr_malformed": "the QR code is not a well-formed Madoguchi certificate code",
    "qr_unknown_key": "the QR code is signed by a key city hall does not know (key id {key_id}): forged",
    "qr_bad_signature": "the QR code's signature is invalid: forged or damaged",
    "no_content": "the document carries no certified content record",
    "qr_mismatch": "the QR code does not belong to this document (its content hash, issuance number "
                   "or type differ from the document's)",
}


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    reason: str                    # for people: what was found
    issuance_number: str | None
    cert_type: str | None
    code: str = ""                 # stable machine code, a key of REASONS
    key_id: str | None = None
    content_sha256: str | None = None


def _result(code: str, claim: QrClaim | None = None, key_id: str | None = None) -> VerificationResult:
    return VerificationResult(
        ok=code in ("genuine", "qr_signature_valid"),
        reason=REASONS[code].format(key_id=key_id or (claim.key_id if claim else "?")),
        issuance_number=claim.issuance_number if claim else None,
        cert_type=claim.cert_type if claim else None,
        code=code,
        key_id=key_id or (claim.key_id if claim else None),
        content_sha256=claim.content_sha256 if claim else None,
    )


def verify_document(pdf: bytes, public_keys: Mapping[str, Ed25519PublicKey]) -> VerificationResult:
    if len(pdf) > MAX_PDF_BYTES:
        return _result("too_large")
    signed = split_file_signature(pdf)
    if signed is None:
        return _result("no_file_signature")
    key = public_keys.get(signed.key_id)
    if key is None:
        return _result("unknown_key", key_id=signed.key_id)
    if not signed.valid(key):
        return _result("altered", key_id=signed.key_id)

    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
        reader = PdfReader(io.BytesIO(signed.body), strict=False)
        payloads = _qr_payloads(reader)
        embedded = reader.attachments.get(CONTENT_ATTACHMENT, [])
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
        # Only city hall's own signed output gets this far, so this means a renderer bug, not a forger.
        return _result("unreadable_pdf", key_id=signed.key_id)

    madoguchi = sorted({p for p in payloads if p.startswith(QR_PREFIX + "|")})
    if not madoguchi:
        return _result("no_qr", key_id=signed.key_id)
    if len(madoguchi) > 1:
        return _result("several_qr", key_id=signed.key_id)
    claim = parse_qr_payload(madoguchi[0])
    if claim is None or claim.cert_type not in CERT_TYPES:
        return _result("qr_malformed", key_id=signed.key_id)
    problem = verify_qr_claim(claim, public_keys)
    if problem is not None:
        return _result(problem, claim)

    if len(embedded) != 1:
        return _result("no_content", claim)
    content = embedded[0]
    try:
        model = DocumentModel.from_canonical_bytes(content)
    except (ValueError, TypeError, KeyError):
        return _result("no_content", claim)
    if (hashlib.sha256(content).hexdigest() != claim.content_sha256
            or model.issuance_number != claim.issuance_number or model.cert_type != claim.cert_type):
        return _result("qr_mismatch", claim)
    return _result("genuine", claim)


def verify_qr_payload(payload: str, public_keys: Mapping[str, Ed25519PublicKey]) -> VerificationResult:
    """Check a QR payload read from paper: well-formed and signed by a known key."""
    claim = parse_qr_payload(payload.strip())
    if claim is None or claim.cert_type not in CERT_TYPES:
        return _result("qr_malformed")
    problem = verify_qr_claim(claim, public_keys)
    return _result(problem or "qr_signature_valid", claim)


def verify_file(path: Path | str, public_keys: Mapping[str, Ed25519PublicKey]) -> VerificationResult:
    """``verify_document`` on a file. Raises OSError when the file cannot be read."""
    path = Path(path)
    if path.stat().st_size > MAX_PDF_BYTES:
        return _result("too_large")
    return verify_document(path.read_bytes(), public_keys)


def summary(result: VerificationResult, source: str = "") -> str:
    """A few lines for people, as ``cityhall verify`` prints them."""
    head = "GENUINE" if result.code == "genuine" else (
        "SIGNATURE VALID" if result.ok else "NOT GENUINE")
    lines = [f"{head}{': ' + source if source else ''}", f"  {result.reason}"]
    if result.issuance_number:
        lines.append(f"  issuance number: {result.issuance_number}")
    if result.cert_type:
        lines.append(f"  certificate: {CERT_TYPES.get(result.cert_type, result.cert_type)}")
    if result.key_id:
        lines.append(f"  city hall key: {result.key_id}")
    return "\n".join(lines)


def _qr_payloads(reader) -> list[str]:
    """Decode every square image drawn on the pages with zbar; QR codes are drawn as images."""
    decode = _zbar_decoder()
    found: list[str] = []
    for page in reader.pages:
        for image_file in page.images:
            image = image_file.image
            if image is None or image.width != image.height or image.width > 400:
                continue  # QR images are square and one pixel per module; the ground tile is not
            scale = max(1, 400 // image.width)
            enlarged = image.convert("L").resize((image.width * scale, image.height * scale),
                                                 Image.NEAREST)
            for symbol in decode(enlarged):
                try:
                    found.append(symbol.data.decode("ascii"))
                except UnicodeDecodeError:
                    continue
    return found


def _zbar_decoder():
    try:
        from pyzbar import pyzbar
    except ImportError as exc:  # the Python package or libzbar0 is missing
        raise RuntimeError("QR decoding needs the Python package pyzbar and the Debian package libzbar0 "
                           f"({exc}); install them and retry") from exc
    return lambda image: pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])
