"""Algorithm agility: the session signs in the algorithm of the card's own certificate — RSA-2048 /
SHA-256 DigestInfo (today) or ECDSA P-384 over a bare SHA-384 hash (next generation; the APDU is an
assumption, docs/next-generation-card.md) — and hands back DER whatever the card's ECDSA format; city
hall's check takes the algorithm from the certificate too."""
from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cityhall.cardauth import CardRefusal, CardVerifier, verify_card_signature
from drivers.card import apdu
from drivers.card.session import JpkiSession
from drivers.sim.jpki_card.card import CardOptions, VirtualJpkiCard
from drivers.sim.pki import TestPKI
from kiosk.errors import MalformedCardResponse
from tests.unit.card.test_jpki_session import InProcessTransport


@pytest.mark.parametrize("der", [False, True], ids=["card answers r||s", "card answers DER"])
def test_p384_card_signs_sha384_and_the_session_returns_der(p384_card_files, der: bool) -> None:
    card = VirtualJpkiCard(p384_card_files, pin="1234", options=CardOptions(ecdsa_der=der))
    transport = InProcessTransport(card)
    session = JpkiSession(transport).open()
    cert = x509.load_der_x509_certificate(session.read_auth_certificate())
    session.verify_pin("1234")
    signature = session.sign(b"city hall challenge")
    cert.public_key().verify(signature, b"city hall challenge", ec.ECDSA(hashes.SHA384()))
    sign_apdu = transport.sent[-1]
    assert sign_apdu[:5] == bytes.fromhex("802A008030")  # today's header, Lc 48
    assert sign_apdu[5:53] == hashlib.sha384(b"city hall challenge").digest() and sign_apdu[53:] == b"\x00"
    raw = card.process(sign_apdu)[:-2]
    assert (raw[0] == 0x30) is der and (len(raw) == 96) is (not der)
    assert len(transport.sent) == 15 == session.apdu_count  # the same 15 APDUs as an RSA card
    assert cert.signature_hash_algorithm.name == "sha384"
    assert isinstance(cert.public_key().curve, ec.SECP384R1)


def test_rsa_card_keeps_digest_info_sha256(card_files) -> None:
    transport = InProcessTransport(VirtualJpkiCard(card_files, pin="1234"))
    session = JpkiSession(transport).open()
    cert = x509.load_der_x509_certificate(session.read_auth_certificate())
    session.verify_pin("1234")
    signature = session.sign(b"x")
    assert transport.sent[-1][5:24] == apdu.SHA256_DIGEST_INFO_PREFIX
    cert.public_key().verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())


def test_ecdsa_formats() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    der = key.sign(b"m", ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    assert apdu.ecdsa_signature_to_der(raw, 48) == der == apdu.ecdsa_signature_to_der(der, 48)
    for junk in (b"\x05" * 95, b"\x30\x03\x02\x01\x01", der + b"\x00", b"\x00" * 96):
        with pytest.raises(MalformedCardResponse):
            apdu.ecdsa_signature_to_der(junk, 48)
    # city hall takes both forms, and only with the curve's hash
    assert verify_card_signature(key.public_key(), b"m", der) and verify_card_signature(key.public_key(), b"m", raw)
    sha256_sig = key.sign(b"m", ec.ECDSA(hashes.SHA256()))
    assert not verify_card_signature(key.public_key(), b"m", sha256_sig)
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert not verify_card_signature(p256.public_key(), b"m", p256.sign(b"m", ec.ECDSA(hashes.SHA384())))


def test_city_hall_checks_a_p384_chain_and_signature() -> None:
    pki = TestPKI(tempfile.mkdtemp(prefix="p384-"))
    rsa_card, ec_card = pki.card("8439UNITTEST00000011"), pki.card("8439UNITTEST00000012", algorithm="p384")
    verifier = CardVerifier((pki.ca_cert_path,), pki.crl_path, timedelta(hours=1))
    now = datetime.now(timezone.utc)
    nonce = b"n" * 32
    ec_signature = ec_card.private_key().sign(nonce, ec.ECDSA(hashes.SHA384()))
    assert verifier.verify(ec_card.cert_der, nonce, ec_signature, now).card_id == ec_card.card_id
    rsa_signature = rsa_card.private_key().sign(nonce, padding.PKCS1v15(), hashes.SHA256())
    assert verifier.verify(rsa_card.cert_der, nonce, rsa_signature, now).card_id == rsa_card.card_id
    with pytest.raises(CardRefusal) as refused:  # an RSA signature for an ECDSA certificate
        verifier.verify(ec_card.cert_der, nonce, rsa_signature, now)
    assert refused.value.reason == "bad_signature"
    pki.write_crl([ec_card.serial])  # the next-generation CA's CRL (PEM block 2) is read too
    with pytest.raises(CardRefusal) as refused:
        verifier.verify(ec_card.cert_der, nonce, ec_signature, now)
    assert "revoked" in refused.value.reason
