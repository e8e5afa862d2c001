"""City hall's certificate status check against a real `openssl ocsp` responder (RFC 6960 over HTTP on
loopback): good, revoked, unknown, a stale response, a response signed with the wrong key, a responder
that hangs, and one that is down with the CRL as the fallback. Fail closed: without a good status the
card is refused with certificate_revoked or certificate_status_unknown (the contract's reason codes).
Facts and sources: docs/revocation.md."""
from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from cityhall.cardauth import CardRefusal, CardVerifier
from cityhall.revocation import OcspSettings
from drivers.sim.pki import TestPKI
from tests.support.ocsp import HungResponder, OcspResponder, closed_port_url, delegated_responder

pytestmark = pytest.mark.integration

if shutil.which("openssl") is None:  # Debian package openssl, in config/debian-packages.txt
    pytest.fail("openssl is not installed: `scripts/bootstrap` installs it")

NONCE = b"challenge from city hall 0123456"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI(tempfile.mkdtemp(prefix="ocsp-pki-"))


@pytest.fixture(scope="module")
def cards(pki: TestPKI) -> dict:
    return {"good": pki.card("8439OCSPTEST00000001"), "revoked": pki.card("8439OCSPTEST00000002"),
            "unknown": pki.card("8439OCSPTEST00000003"),
            "p384": pki.card("8439OCSPTEST00000004", algorithm="p384")}


@pytest.fixture(scope="module")
def responder(pki: TestPKI, cards: dict):
    r = OcspResponder(pki).start(good=[cards["good"]], revoked=[cards["revoked"]])
    yield r
    r.cleanup()


def sign(creds, data: bytes = NONCE) -> bytes:
    key = creds.private_key()
    if creds.algorithm == "p384":
        return key.sign(data, ec.ECDSA(hashes.SHA384()))
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def verifier(pki: TestPKI, url: str, *, crl: Path | None = None, fallback: bool = False, timeout: float = 2.0,
             max_age: timedelta = timedelta(hours=24)) -> CardVerifier:
    return CardVerifier((pki.ca_cert_path,), crl, timedelta(hours=1),
                        ocsp=OcspSettings(url, timeout, max_age, timedelta(minutes=5)), crl_fallback=fallback)


def refusal(v: CardVerifier, creds, now: datetime | None = None) -> CardRefusal:
    with pytest.raises(CardRefusal) as refused:
        v.verify(creds.cert_der, NONCE, sign(creds), now or datetime.now(timezone.utc))
    return refused.value


def test_good_certificate_is_accepted_and_the_answer_cached_until_next_update(pki, cards, responder) -> None:
    v = verifier(pki, responder.url)
    now = datetime.now(timezone.utc)
    assert v.verify(cards["good"].cert_der, NONCE, sign(cards["good"]), now).card_id == "8439OCSPTEST00000001"
    client = v.revocation.ocsp
    assert client.requests_sent == 1
    v.verify(cards["good"].cert_der, NONCE, sign(cards["good"]), now + timedelta(minutes=30))
    assert client.requests_sent == 1  # from the cache: nextUpdate (-nmin 60) not reached
    v.verify(cards["good"].cert_der, NONCE, sign(cards["good"]), now + timedelta(minutes=59))
    assert client.requests_sent == 1
    responder_log = (responder.workdir / "responder.log").read_text()
    assert "ACCEPT" in responder_log


def test_revoked_certificate_is_refused_as_certificate_revoked(pki, cards, responder) -> None:
    refused = refusal(verifier(pki, responder.url), cards["revoked"])
    assert refused.reason == "certificate_revoked" and "ocsp" in refused.detail and "reason: key compromise" in refused.detail


def test_certificate_the_responder_does_not_know_is_certificate_status_unknown(pki, cards, responder) -> None:
    refused = refusal(verifier(pki, responder.url), cards["unknown"])
    assert refused.reason == "certificate_status_unknown" and "does not know" in refused.detail


def test_stale_response_is_not_trusted(pki, cards) -> None:
    """nextUpdate 1 minute after thisUpdate (-nmin 1); city hall's clock 10 minutes later (beyond the
    5-minute skew): the response is stale, the card refused (no fallback configured)."""
    stale = OcspResponder(pki, next_update_minutes=1).start(good=[cards["good"]])
    try:
        later = datetime.now(timezone.utc) + timedelta(minutes=10)
        refused = refusal(verifier(pki, stale.url), cards["good"], later)
        assert refused.reason == "certificate_status_unknown" and "stale" in refused.detail
    finally:
        stale.cleanup()


def test_response_without_next_update_is_used_only_while_young(pki, cards) -> None:
    no_next = OcspResponder(pki, next_update_minutes=None).start(good=[cards["good"]])
    try:
        v = verifier(pki, no_next.url, max_age=timedelta(minutes=1))
        v.verify(cards["good"].cert_der, NONCE, sign(cards["good"]), datetime.now(timezone.utc))
        refused = refusal(v, cards["good"], datetime.now(timezone.utc) + timedelta(minutes=10))
        assert "stale" in refused.detail and "no nextUpdate" in refused.detail
        assert v.revocation.ocsp.requests_sent == 2  # nothing cached without a nextUpdate
    finally:
        no_next.cleanup()


@pytest.mark.parametrize("signer", ["rogue key", "no id-kp-OCSPSigning"])
def test_response_signed_by_a_responder_the_ca_did_not_delegate_is_refused(pki, cards, signer: str) -> None:
    cert_and_key = delegated_responder(pki, rogue=signer == "rogue key", ocsp_signing=signer == "rogue key")
    wrong = OcspResponder(pki, signer=cert_and_key).start(good=[cards["good"]])
    try:
        refused = refusal(verifier(pki, wrong.url), cards["good"])
        assert refused.reason == "certificate_status_unknown" and "delegated" in refused.detail
    finally:
        wrong.cleanup()


def test_hung_responder_times_out_and_the_card_is_refused(pki, cards) -> None:
    hung = HungResponder()
    try:
        started = time.monotonic()
        refused = refusal(verifier(pki, hung.url, timeout=1.0), cards["good"])
        assert time.monotonic() - started < 5
        assert refused.reason == "certificate_status_unknown" and "did not answer within 1.0 s" in refused.detail
    finally:
        hung.close()


def test_responder_down_then_the_crl_decides(pki, cards) -> None:
    pki.write_crl([cards["revoked"].serial])
    v = verifier(pki, closed_port_url(), crl=pki.crl_path, fallback=True)
    now = datetime.now(timezone.utc)
    assert v.verify(cards["good"].cert_der, NONCE, sign(cards["good"]), now).serial == cards["good"].serial
    refused = refusal(v, cards["revoked"])
    assert refused.reason == "certificate_revoked" and "crl" in refused.detail
    # and with the responder down and the CRL stale, nothing can say: fail closed
    refused = refusal(v, cards["good"], now + timedelta(days=3))
    assert refused.reason == "certificate_status_unknown"
    assert "did not answer" in refused.detail and "CRL" in refused.detail
    # without the fallback, a responder that is down refuses the card even with a good CRL
    refused = refusal(verifier(pki, closed_port_url(), crl=pki.crl_path, fallback=False), cards["good"])
    assert refused.reason == "certificate_status_unknown"


def test_next_generation_p384_certificate_through_its_own_responder(pki, cards) -> None:
    p384 = OcspResponder(pki, algorithm="p384").start(good=[cards["p384"]])
    try:
        v = verifier(pki, p384.url)
        assert v.verify(cards["p384"].cert_der, NONCE, sign(cards["p384"]), datetime.now(timezone.utc)).card_id \
            == "8439OCSPTEST00000004"
    finally:
        p384.cleanup()
