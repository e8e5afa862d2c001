"""verify_document: genuine certificates pass; altered bytes, forged or foreign QR codes do not."""
from __future__ import annotations

import random
from dataclasses import replace

import pytest
from PIL import Image
from pyzbar import pyzbar

from cityhall.documents import (
    DocumentSigner,
    build_model,
    summary,
    verify_document,
    verify_file,
    verify_qr_payload,
)
from cityhall.documents.render import compose_pdf
from cityhall.documents.samples import SAMPLE_REQUESTS
from cityhall.documents.signing import append_file_signature, make_qr_payload
from tests.unit.cityhall_documents.conftest import pdf_png

CERT_TYPES = ("juminhyo", "kazei", "hikazei")


@pytest.mark.parametrize("cert_type", CERT_TYPES)
def test_genuine_certificates_are_accepted(cert_type, samples, public_keys):
    document = samples[cert_type]
    result = verify_document(document.pdf, public_keys)
    assert result.ok and result.code == "genuine", result.reason
    assert result.issuance_number == SAMPLE_REQUESTS[cert_type].issuance_number
    assert result.cert_type == cert_type
    assert result.content_sha256 == document.content_sha256


def test_genuine_with_retired_and_current_keys_side_by_side(samples, public_keys):
    keys = {**DocumentSigner.generate().public_keys(), **public_keys}
    assert verify_document(samples["kazei"].pdf, keys).ok


@pytest.mark.parametrize("cert_type", CERT_TYPES)
def test_any_one_byte_alteration_is_rejected(cert_type, samples, public_keys):
    pdf = samples[cert_type].pdf
    signature_line = pdf.rfind(b"\n%MADOGUCHI-SIG") + 1
    rng = random.Random(f"alter-{cert_type}")
    positions = {0, 1, 8, len(pdf) // 2, signature_line - 7, signature_line - 2, signature_line - 1}
    positions |= {rng.randrange(len(pdf)) for _ in range(150)}
    positions |= set(range(signature_line, len(pdf)))                # every byte of the signature line
    for position in sorted(positions):
        for mask in (0x01, 0x20):
            altered = bytearray(pdf)
            altered[position] ^= mask
            result = verify_document(bytes(altered), public_keys)
            assert not result.ok, f"byte {position} ^ {mask:#x} of {len(pdf)} went unnoticed"
            assert result.code in {"altered", "no_file_signature", "unknown_key"}, result.code


def test_truncated_extended_and_unsigned_copies_are_rejected(samples, public_keys):
    pdf = samples["juminhyo"].pdf
    body = pdf[:pdf.rfind(b"\n%MADOGUCHI-SIG") + 1]
    assert verify_document(body, public_keys).code == "no_file_signature"       # signature removed
    assert verify_document(pdf + b"\n", public_keys).code == "no_file_signature"
    assert verify_document(pdf[:-1], public_keys).code == "no_file_signature"
    assert verify_document(pdf[1:], public_keys).code == "altered"
    assert verify_document(b"%PDF-1.4\n" + pdf, public_keys).code == "altered"


def test_the_last_signature_character_cannot_be_respelled(samples, public_keys):
    pdf = samples["kazei"].pdf
    last = len(pdf) - 2                                  # the character before the final newline
    for replacement in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        if replacement == pdf[last]:
            continue
        altered = pdf[:last] + bytes([replacement]) + pdf[last + 1:]
        assert not verify_document(altered, public_keys).ok


def test_a_document_signed_by_another_key_is_rejected(public_keys):
    forger = DocumentSigner.generate()
    from cityhall.documents import render_certificate
    forged = render_certificate(SAMPLE_REQUESTS["kazei"], forger)
    result = verify_document(forged.pdf, public_keys)
    assert not result.ok and result.code == "unknown_key" and forger.key_id in result.reason


def _assemble(request, qr_payload: str, file_signer: DocumentSigner) -> bytes:
    """A PDF of ``request`` with a chosen QR payload, file-signed by ``file_signer``."""
    return append_file_signature(compose_pdf(build_model(request), qr_payload), file_signer)


def test_a_qr_signed_by_another_key_is_forged_even_inside_a_signed_file(signer, public_keys):
    request = SAMPLE_REQUESTS["juminhyo"]
    model = build_model(request)
    forger = DocumentSigner.generate()
    payload = make_qr_payload(forger, model.issuance_number, model.cert_type, model.content_sha256())
    result = verify_document(_assemble(request, payload, signer), public_keys)
    assert not result.ok and result.code == "qr_unknown_key"


def test_a_qr_signed_by_an_impostor_using_city_halls_key_id_is_forged(signer, public_keys):
    request = SAMPLE_REQUESTS["juminhyo"]
    model = build_model(request)
    impostor = DocumentSigner(DocumentSigner.generate()._private_key, signer.key_id)
    payload = make_qr_payload(impostor, model.issuance_number, model.cert_type, model.content_sha256())
    result = verify_document(_assemble(request, payload, signer), public_keys)
    assert not result.ok and result.code == "qr_bad_signature"


def test_a_genuine_qr_moved_onto_another_document_does_not_match(signer, public_keys, samples):
    other = replace(SAMPLE_REQUESTS["kazei"], issuance_number="11229-2026-00000777",
                    resident={**SAMPLE_REQUESTS["kazei"].resident, "name": "見本 次郎"})
    result = verify_document(_assemble(other, samples["kazei"].qr_payload, signer), public_keys)
    assert not result.ok and result.code == "qr_mismatch"


def test_a_document_without_a_qr_code_is_rejected(signer, public_keys):
    request = SAMPLE_REQUESTS["hikazei"]
    result = verify_document(_assemble(request, "https://example.invalid/not-a-certificate", signer),
                             public_keys)
    assert not result.ok and result.code == "no_qr"


def test_the_printed_qr_scans_to_the_signed_payload(samples, sample_dir, public_keys):
    """What a phone sees on paper: rasterize the page as a printer would and read the code with zbar."""
    png = pdf_png(sample_dir / "kazei.pdf", sample_dir / "kazei-scan", dpi=200)
    with Image.open(png) as page:
        symbols = pyzbar.decode(page.convert("L"), symbols=[pyzbar.ZBarSymbol.QRCODE])
    assert [s.data.decode("ascii") for s in symbols] == [samples["kazei"].qr_payload]
    result = verify_qr_payload(samples["kazei"].qr_payload, public_keys)
    assert result.ok and result.code == "qr_signature_valid"
    assert result.issuance_number == SAMPLE_REQUESTS["kazei"].issuance_number
    assert verify_qr_payload(samples["kazei"].qr_payload.replace("kazei", "hikazei"), public_keys).code \
        == "qr_bad_signature"
    assert verify_qr_payload("hello", public_keys).code == "qr_malformed"


def test_verify_file_and_its_summary(sample_dir, public_keys, samples, tmp_path):
    result = verify_file(sample_dir / "juminhyo.pdf", public_keys)
    text = summary(result, "juminhyo.pdf")
    assert result.ok and text.startswith("GENUINE: juminhyo.pdf")
    assert "11229-2026-00000001" in text and "住民票の写し" in text

    altered = bytearray(samples["juminhyo"].pdf)
    altered[len(altered) // 3] ^= 0x04
    path = tmp_path / "altered.pdf"
    path.write_bytes(bytes(altered))
    result = verify_file(path, public_keys)
    assert not result.ok and summary(result).startswith("NOT GENUINE") and "altered" in result.reason
    with pytest.raises(OSError):
        verify_file(tmp_path / "missing.pdf", public_keys)
