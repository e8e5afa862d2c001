"""City hall's document key, the signed QR payload and the whole-file signature. Pure except key files.

Two Ed25519 signatures protect a certificate, each with its own domain tag so one can never stand for
the other:

* **QR payload** (what a paper copy carries)::

      MDG1|<key id>|<issuance number>|<cert type>|<content sha256, base64url>|<signature, base64url>

  The signature covers ``MADOGUCHI-QR-V1\\n`` + everything before the last ``|``. The content hash is
  the SHA-256 of the document model's canonical JSON, which is also embedded in the PDF, so a verifier
  can tie the QR to the document it is printed on (and city hall to its stored issuance).

* **File signature** (what the PDF file carries): one PDF comment line appended after ``%%EOF``::

      %MADOGUCHI-SIG v1 <key id> <signature, base64url>\\n

  over ``MADOGUCHI-PDF-V1\\n`` + every byte before that line. Changing any byte of the file (the body,
  the key id, the signature text, the final newline) makes verification fail: the signature text must
  be the canonical encoding, so no two spellings decode to the same signature. PDF readers ignore a
  comment after ``%%EOF``; printing and text extraction are unaffected.

Key ids are by default the first 16 hex digits of the SHA-256 of the raw public key, so a verifier can
hold the current and retired keys side by side.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

QR_PREFIX = "MDG1"
QR_DOMAIN = b"MADOGUCHI-QR-V1\n"
FILE_DOMAIN = b"MADOGUCHI-PDF-V1\n"
FILE_SIGNATURE_PREFIX = b"%MADOGUCHI-SIG v1 "
_KEY_ID = re.compile(r"[0-9A-Za-z._-]{1,32}")
_FILE_SIGNATURE_LINE = re.compile(rb"%MADOGUCHI-SIG v1 ([0-9A-Za-z._-]{1,32}) ([A-Za-z0-9_-]{86})\n")


def key_id_for(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode_canonical(text: str, length: int) -> bytes | None:
    """Decode unpadded base64url, or None unless ``text`` is THE encoding of ``length`` bytes.

    The last character of a 64-byte value carries 4 unused bits; accepting any of them would let an
    altered character decode to the same signature.
    """
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(data) != length or b64url(data) != text:
        return None
    return data


class DocumentSigner:
    """The Ed25519 key of city hall's issuance service."""

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str | None = None) -> None:
        """``key_id`` defaults to the key's fingerprint (what ``public_keys_from_pems`` derives);
        a chosen id must then be used for this key in every verifier's key map too."""
        key_id = key_id_for(private_key.public_key()) if key_id is None else key_id
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError(f"key id: expected 1-32 of A-Z a-z 0-9 . _ -, found {key_id!r}")
        self._private_key = private_key
        self.key_id = key_id

    @classmethod
    def generate(cls) -> "DocumentSigner":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> "DocumentSigner":
        """Load the PEM key at ``path``, creating it (mode 0600, never overwritten) when missing."""
        path = Path(path)
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another worker created it first: use theirs
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
                    handle.flush()
                    os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(f"{path}: the document signing key must be readable by its owner "
                                  f"only (mode 0600), found {mode:04o}; run chmod 600 {path}")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: expected an Ed25519 private key (PEM), found {type(key).__name__}")
        return cls(key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private_key.public_key()

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {self.key_id: self.public_key}

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)


def public_keys_from_pems(pems: Iterable[bytes]) -> dict[str, Ed25519PublicKey]:
    """Key id → public key, from PEM public keys (current and retired document keys)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for pem in pems:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"expected an Ed25519 public key, found {type(key).__name__}")
        keys[key_id_for(key)] = key
    return keys


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    return public_keys_from_pems(Path(p).read_bytes() for p in paths)


# --- QR payload --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QrClaim:
    key_id: str
    issuance_number: str
    cert_type: str
    content_sha256: str            # hex
    signature: bytes
    signed_text: str

    def signature_valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, QR_DOMAIN + self.signed_text.encode("ascii"))
        except InvalidSignature:
            return False
        return True


def make_qr_payload(signer: DocumentSigner, issuance_number: str, cert_type: str,
                    content_sha256_hex: str) -> str:
    digest = b64url(bytes.fromhex(content_sha256_hex))
    signed_text = "|".join((QR_PREFIX, signer.key_id, issuance_number, cert_type, digest))
    return f"{signed_text}|{b64url(signer.sign(QR_DOMAIN + signed_text.encode('ascii')))}"


def parse_qr_payload(text: str) -> QrClaim | None:
    """The claim a QR payload makes, or None when it is not a well-formed Madoguchi payload."""
    parts = text.split("|")
    if len(parts) != 6 or parts[0] != QR_PREFIX or not _KEY_ID.fullmatch(parts[1]):
        return None
    if not re.fullmatch(r"[0-9A-Za-z-]{1,40}", parts[2]) or not re.fullmatch(r"[a-z]{1,20}", parts[3]):
        return None
    digest = b64url_decode_canonical(parts[4], 32)
    signature = b64url_decode_canonical(parts[5], 64)
    if digest is None or signature is None:
        return None
    return QrClaim(key_id=parts[1], issuance_number=parts[2], cert_type=parts[3],
                   content_sha256=digest.hex(), signature=signature,
                   signed_text="|".join(parts[:5]))


# --- whole-file signature ----------------------------------------------------------------------------
def append_file_signature(pdf: bytes, signer: DocumentSigner) -> bytes:
    if not pdf.rstrip().endswith(b"%%EOF"):
        raise ValueError("expected a complete PDF ending in %%EOF")
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    signature = signer.sign(FILE_DOMAIN + body)
    return body + FILE_SIGNATURE_PREFIX + f"{signer.key_id} {b64url(signature)}\n".encode("ascii")


@dataclass(frozen=True)
class FileSignature:
    body: bytes                    # the signed bytes: the PDF before the signature line
    key_id: str
    signature: bytes

    def valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, FILE_DOMAIN + self.body)
        except InvalidSignature:
            return False
        return True


def split_file_signature(pdf: bytes) -> FileSignature | None:
    """The PDF body and its trailing signature line, or None when the file does not end in one."""
    start = pdf.rfind(b"\n" + FILE_SIGNATURE_PREFIX)
    if start < 0:
        return None
    line = pdf[start + 1:]
    match = _FILE_SIGNATURE_LINE.fullmatch(line)
    if match is None:
        return None
    signature = b64url_decode_canonical(match.group(2).decode("ascii"), 64)
    if signature is None:
        return None
    return FileSignature(body=pdf[:start + 1], key_id=match.group(1).decode("ascii"),
                         signature=signature)


def verify_qr_claim(claim: QrClaim, public_keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """None when the claim's signature is good under a known key, else the reason code."""
    key = public_keys.get(claim.key_id)
    if key is None:
        return "qr_unknown_key"
    if not claim.signature_valid(key):
        return "qr_bad_signature"
    return None
