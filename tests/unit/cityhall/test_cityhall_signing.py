"""sync.signing on fixed transcripts: what is signed, and every way a signed request is refused."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.signing import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    SignatureRejected,
    body_digest,
    canonical_string,
    parse_headers,
    sign_request,
    verify_request,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NONCE = "0f" * 16
T = 1_790_000_000


def test_canonical_string_transcript():
    assert canonical_string("post", "/v1/issuances?x=1", "ab" * 32, T, NONCE, "kiosk-1") == (
        b"MADOGUCHI-REQUEST-V1\nPOST\n/v1/issuances?x=1\n" + b"ab" * 32 + b"\n1790000000\n" + NONCE.encode()
        + b"\nkiosk-1")
    assert body_digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_signed_headers_verify_and_are_deterministic():
    headers = sign_request(KEY, "kiosk-1", "POST", "/v1/challenges", b"{}", T, NONCE)
    assert headers == sign_request(KEY, "kiosk-1", "POST", "/v1/challenges", b"{}", T, NONCE)
    signed = parse_headers({k.lower(): v for k, v in headers.items()})
    assert (signed.device_id, signed.timestamp, signed.nonce) == ("kiosk-1", T, NONCE)
    verify_request(KEY.public_key(), signed, "POST", "/v1/challenges", b"{}", T + 5, 60)


@pytest.mark.parametrize("method, path, body, reason", [
    ("GET", "/v1/challenges", b"{}", "bad_signature"),
    ("POST", "/v1/sessions", b"{}", "bad_signature"),
    ("POST", "/v1/challenges", b"{ }", "body_mismatch"),
])
def test_signature_does_not_move_to_another_request(method, path, body, reason):
    signed = parse_headers(sign_request(KEY, "kiosk-1", "POST", "/v1/challenges", b"{}", T, NONCE))
    with pytest.raises(SignatureRejected) as rejected:
        verify_request(KEY.public_key(), signed, method, path, body, T, 60)
    assert rejected.value.reason == reason


def test_device_timestamp_and_nonce_are_signed():
    headers = sign_request(KEY, "kiosk-1", "GET", "/v1/ping", b"", T, NONCE)
    for name, value in (("X-Madoguchi-Device", "kiosk-2"), ("X-Madoguchi-Timestamp", str(T + 1)),
                        (HEADER_NONCE, "1f" * 16)):
        signed = parse_headers({**headers, name: value})
        with pytest.raises(SignatureRejected) as rejected:
            verify_request(KEY.public_key(), signed, "GET", "/v1/ping", b"", T, 60)
        assert rejected.value.reason == "bad_signature"
    other = Ed25519PrivateKey.generate()
    with pytest.raises(SignatureRejected, match="bad_signature"):
        verify_request(other.public_key(), parse_headers(headers), "GET", "/v1/ping", b"", T, 60)


def test_stale_timestamps_both_ways():
    signed = parse_headers(sign_request(KEY, "kiosk-1", "GET", "/v1/ping", b"", T, NONCE))
    for now in (T + 61, T - 61):
        with pytest.raises(SignatureRejected) as rejected:
            verify_request(KEY.public_key(), signed, "GET", "/v1/ping", b"", now, 60)
        assert rejected.value.reason == "stale_timestamp"


@pytest.mark.parametrize("change, reason", [
    ({"X-Madoguchi-Signature": None}, "missing_headers"),
    ({"X-Madoguchi-Device": "Kiosk 1"}, "malformed_headers"),
    ({"X-Madoguchi-Timestamp": "-5"}, "malformed_headers"),
    ({HEADER_NONCE: "0F" * 16}, "malformed_headers"),
    ({"X-Madoguchi-Body-SHA256": "zz"}, "malformed_headers"),
    ({HEADER_SIGNATURE: "***"}, "malformed_headers"),
    ({HEADER_SIGNATURE: base64.b64encode(b"short").decode()}, "malformed_headers"),
])
def test_malformed_headers(change, reason):
    headers = sign_request(KEY, "kiosk-1", "GET", "/v1/ping", b"", T, NONCE)
    for name, value in change.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    with pytest.raises(SignatureRejected) as rejected:
        parse_headers(headers)
    assert rejected.value.reason == reason
