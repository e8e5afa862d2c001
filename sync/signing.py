"""Request signing shared by the kiosk (signs) and city hall (verifies).

Every kiosk request carries five headers::

    X-Madoguchi-Device     the device id registered at city hall
    X-Madoguchi-Timestamp  seconds since the epoch (integer, UTC)
    X-Madoguchi-Nonce      32 hex characters, never reused by this device
    X-Madoguchi-Body-SHA256  hex SHA-256 of the exact body bytes (of b"" when there is no body)
    X-Madoguchi-Signature  base64 Ed25519 signature over the canonical string below

The canonical string binds the method, the path with its query, the body hash, the timestamp, the nonce
and the device id, one per line after a version tag, so a signature can never be moved to another
request, another endpoint or another device::

    MADOGUCHI-REQUEST-V1\\nPOST\\n/v1/issue\\n<body sha256>\\n<timestamp>\\n<nonce>\\n<device id>

This module is pure (no I/O, no clock): callers pass the time and the nonce, so it is tested on fixed
transcripts.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION_TAG = "MADOGUCHI-REQUEST-V1"
HEADER_DEVICE = "X-Madoguchi-Device"
HEADER_TIMESTAMP = "X-Madoguchi-Timestamp"
HEADER_NONCE = "X-Madoguchi-Nonce"
HEADER_BODY_SHA256 = "X-Madoguchi-Body-SHA256"
HEADER_SIGNATURE = "X-Madoguchi-Signature"
SIGNED_HEADERS = (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_BODY_SHA256, HEADER_SIGNATURE)

DEVICE_ID_PATTERN = r"[a-z0-9][a-z0-9-]{2,40}"
_NONCE_RE = re.compile(r"[0-9a-f]{32}")
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}", re.ASCII)


class SignatureRejected(Exception):
    """A signed request failed verification; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class SignedHeaders:
    device_id: str
    timestamp: int
    nonce: str
    body_sha256: str
    signature: bytes


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def canonical_string(method: str, path: str, body_sha256: str, timestamp: int, nonce: str,
                     device_id: str) -> bytes:
    """``path`` is the request target as sent: path plus ``?query`` when there is one."""
    return "\n".join((VERSION_TAG, method.upper(), path, body_sha256, str(timestamp), nonce,
                      device_id)).encode("utf-8")


def sign_request(key: Ed25519PrivateKey, device_id: str, method: str, path: str, body: bytes,
                 timestamp: int, nonce: str) -> dict[str, str]:
    """The headers to add to a request."""
    digest = body_digest(body)
    signature = key.sign(canonical_string(method, path, digest, timestamp, nonce, device_id))
    return {HEADER_DEVICE: device_id, HEADER_TIMESTAMP: str(timestamp), HEADER_NONCE: nonce,
            HEADER_BODY_SHA256: digest, HEADER_SIGNATURE: base64.b64encode(signature).decode("ascii")}


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Read the signing headers (case-insensitively); raises SignatureRejected('missing_headers'|'malformed_headers')."""
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in SIGNED_HEADERS if h.lower() not in lowered]
    if missing:
        raise SignatureRejected("missing_headers", "request is not signed; missing " + ", ".join(missing))
    device_id = lowered[HEADER_DEVICE.lower()]
    timestamp_text = lowered[HEADER_TIMESTAMP.lower()]
    nonce = lowered[HEADER_NONCE.lower()]
    digest = lowered[HEADER_BODY_SHA256.lower()]
    if not _DEVICE_RE.fullmatch(device_id):
        raise SignatureRejected("malformed_headers", f"{HEADER_DEVICE} is not a device id")
    # str.isdigit() also accepts '²' and other Unicode digits that int() then refuses: ASCII only
    if not _TIMESTAMP_RE.fullmatch(timestamp_text):
        raise SignatureRejected("malformed_headers", f"{HEADER_TIMESTAMP} must be integer seconds since the epoch")
    if not _NONCE_RE.fullmatch(nonce):
        raise SignatureRejected("malformed_headers", f"{HEADER_NONCE} must be 32 lower-case hex characters")
    if not _SHA256_RE.fullmatch(digest):
        raise SignatureRejected("malformed_headers", f"{HEADER_BODY_SHA256} must be 64 lower-case hex characters")
    try:
        signature = base64.b64decode(lowered[HEADER_SIGNATURE.lower()], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected("malformed_headers", f"{HEADER_SIGNATURE} is not base64") from None
    if len(signature) != 64:
        raise SignatureRejected("malformed_headers", f"{HEADER_SIGNATURE} is not an Ed25519 signature")
    return SignedHeaders(device_id, int(timestamp_text), nonce, digest, signature)


def verify_request(public_key: Ed25519PublicKey, signed: SignedHeaders, method: str, path: str, body: bytes,
                   now: float, max_skew_seconds: float) -> None:
    """Check body hash, signature and timestamp. The caller checks the device and the nonce's freshness."""
    if body_digest(body) != signed.body_sha256:
        raise SignatureRejected("body_mismatch", "the body does not match its signed SHA-256")
    try:
        public_key.verify(signed.signature, canonical_string(method, path, signed.body_sha256, signed.timestamp,
                                                             signed.nonce, signed.device_id))
    except InvalidSignature:
        raise SignatureRejected("bad_signature", "the request signature does not verify with this device's key") \
            from None
    if abs(now - signed.timestamp) > max_skew_seconds:
        raise SignatureRejected("stale_timestamp",
                                f"request time {signed.timestamp} is more than {max_skew_seconds:.0f} s from "
                                f"city hall's clock {int(now)}; check the kiosk's time synchronisation")
