"""Peer check: OpenSC (an independent JPKI client written against real cards) accepts the virtual card.

OpenSC is not kiosk code and, binding its PKCS#15 emulation, it asks the signature password's tries
(SELECT EF 001B); so this card runs on vpcd's second slot with an APDU log of its own, outside the
suite-wide guard's directory.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from drivers.sim.pki import TestPKI
from tests.support.pcsc import start_virtual_card
from tests.support.services import wait_until

pytestmark = pytest.mark.integration

PEER_CARD = "OPENSCPEER0000000001"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(argv)} failed: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def peer(pcsc, pki_dir):
    card = start_virtual_card(pcsc, pki_dir, log_dir=tempfile.mkdtemp(prefix="opensc-apdu-"), slot=1,
                              name="opensc-peer-card")
    found: list[str] = []

    def listed() -> bool:
        listing = run("opensc-tool", "--list-readers").stdout
        found[:] = re.findall(r"^(\d+)\s+Yes\s+.*Virtual PCD 00 01\s*$", listing, re.M)
        return bool(found)

    try:
        card.control.place(PEER_CARD, pin="4321")
        wait_until(listed, 10, "OpenSC to see the virtual card on 'Virtual PCD 00 01'")
        yield found[0]
    finally:
        card.stop()


def test_opensc_identifies_a_jpki_card(peer) -> None:
    assert run("opensc-tool", "--reader", peer, "--name").stdout.strip() == "jpki"


def test_pkcs15_tool_lists_and_reads_the_authentication_certificate(peer, pki_dir) -> None:
    listing = run("pkcs15-tool", "--reader", peer, "--list-certificates").stdout
    assert "User Authentication Certificate" in listing
    pem = run("pkcs15-tool", "--reader", peer, "--read-certificate", "01").stdout
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.public_bytes(serialization.Encoding.DER) == TestPKI(pki_dir).card(PEER_CARD).cert_der


def test_pkcs15_crypt_signs_with_the_authentication_key_after_the_pin(peer, pki_dir, tmp_path: Path) -> None:
    challenge = b"peer check challenge"
    (tmp_path / "hash").write_bytes(hashlib.sha256(challenge).digest())
    run("pkcs15-crypt", "--reader", peer, "--sign", "--key", "01", "--pkcs1", "--sha-256", "--pin", "4321",
        "--input", str(tmp_path / "hash"), "--output", str(tmp_path / "sig"))
    signature = (tmp_path / "sig").read_bytes()
    assert len(signature) == 256
    cert = x509.load_der_x509_certificate(TestPKI(pki_dir).card(PEER_CARD).cert_der)
    cert.public_key().verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
