"""City hall's document key file and the pure signature codecs (QR payload, file signature line)."""
from __future__ import annotations

import os
import stat

import pytest

from cityhall.documents import DocumentSigner, key_id_for, load_public_keys, public_keys_from_pems
from cityhall.documents.signing import (
    append_file_signature,
    b64url,
    b64url_decode_canonical,
    make_qr_payload,
    parse_qr_payload,
    split_file_signature,
    verify_qr_claim,
)

CONTENT_HASH = "ab" * 32


def test_key_is_created_once_with_mode_0600_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "document.pem"
    first = DocumentSigner.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = DocumentSigner.load_or_create(path)
    assert again.key_id == first.key_id == key_id_for(first.public_key)
    assert again.public_key_pem() == first.public_key_pem()
    public = tmp_path / "document.pub.pem"
    public.write_bytes(first.public_key_pem())
    assert set(load_public_keys([public])) == {first.key_id}


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "document.pem"
    DocumentSigner.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        DocumentSigner.load_or_create(path)


def test_chosen_key_id_is_carried_and_validated():
    signer = DocumentSigner(DocumentSigner.generate()._private_key, "cityhall-2026")
    assert parse_qr_payload(make_qr_payload(signer, "131-1", "kazei", CONTENT_HASH)).key_id == "cityhall-2026"
    with pytest.raises(ValueError):
        DocumentSigner(DocumentSigner.generate()._private_key, "bad id|with pipe")


def test_qr_payload_round_trip_and_shape():
    signer = DocumentSigner.generate()
    payload = make_qr_payload(signer, "131-2026-00000123", "juminhyo", CONTENT_HASH)
    assert payload.startswith(f"MDG1|{signer.key_id}|131-2026-00000123|juminhyo|")
    assert len(payload) < 200 and payload.isascii()
    claim = parse_qr_payload(payload)
    assert claim is not None and claim.content_sha256 == CONTENT_HASH
    assert verify_qr_claim(claim, signer.public_keys()) is None
    assert verify_qr_claim(claim, DocumentSigner.generate().public_keys()) == "qr_unknown_key"


@pytest.mark.parametrize("field, replacement", [(2, "131-2026-00000124"), (3, "kazei"), (4, b64url(b"\x00" * 32))])
def test_qr_signature_covers_every_field(field, replacement):
    signer = DocumentSigner.generate()
    parts = make_qr_payload(signer, "131-2026-00000123", "juminhyo", CONTENT_HASH).split("|")
    parts[field] = replacement
    claim = parse_qr_payload("|".join(parts))
    assert claim is not None
    assert verify_qr_claim(claim, signer.public_keys()) == "qr_bad_signature"


@pytest.mark.parametrize("payload", ["", "MDG1", "MDG2|k|1|kazei|x|y", "MDG1|k|1|kazei|x|y|z",
                                     "MDG1|K Y|1|kazei|" + "A" * 43 + "|" + "A" * 86])
def test_malformed_qr_payloads_are_not_claims(payload):
    assert parse_qr_payload(payload) is None


def test_base64_must_be_the_canonical_spelling():
    signature = bytes(range(64))
    text = b64url(signature)
    assert b64url_decode_canonical(text, 64) == signature
    # The last character of a 64-byte value carries 4 unused bits: a sibling spelling decodes the same.
    sibling = text[:-1] + ("B" if text[-1] == "A" else "A")
    assert b64url_decode_canonical(sibling, 64) is None or b64url_decode_canonical(sibling, 64) != signature
    assert b64url_decode_canonical(text + "=", 64) is None
    assert b64url_decode_canonical(text[:-2], 64) is None


def test_file_signature_line_splits_and_verifies():
    signer = DocumentSigner.generate()
    pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
    signed = append_file_signature(pdf, signer)
    assert signed.startswith(pdf) and signed.endswith(b"\n")
    parts = split_file_signature(signed)
    assert parts is not None and parts.body == pdf and parts.key_id == signer.key_id
    assert parts.valid(signer.public_key)
    assert split_file_signature(pdf) is None
    assert split_file_signature(signed + b"\n") is None                 # nothing may follow the line
    with pytest.raises(ValueError):
        append_file_signature(b"%PDF-1.4\nnot finished", signer)


def test_public_keys_from_pems_rejects_other_key_types():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="Ed25519"):
        public_keys_from_pems([pem])
