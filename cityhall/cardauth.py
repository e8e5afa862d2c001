"""Checking a My Number card's user-authentication certificate and its signature over a challenge.

The checks, in order: the certificate parses; it was issued (and signed) by one of the configured
trusted JPKI authentication CAs (RSA or ECDSA, several generations may share a name); its key signed
the challenge (RSA-2048 PKCS#1 v1.5 over SHA-256 for today's card, ECDSA P-384 over SHA-384 for the
next-generation one — chosen by the certificate's key, never by a setting); it is within its validity
dates; its status is good (OCSP, the CRL as fallback: cityhall/revocation.py — fail closed, a
certificate whose status cannot be established is refused as certificate_status_unknown). The
certificate's subject CN (a 20-character identifier, no personal data) is what the registry is keyed by.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from cityhall.revocation import (GOOD, REVOKED, CrlSource, OcspClient, OcspSettings, RevocationChecker,
                                 RevocationUnavailable, StatusUnavailable)

__all__ = ["CardRefusal", "CardVerifier", "RevocationUnavailable", "VerifiedCard", "verify_card_signature"]

REFUSAL_REASONS = ("certificate_revoked", "certificate_expired", "certificate_status_unknown", "unknown_card",
                   "bad_signature", "moved_out", "deceased", "protected")


class CardRefusal(Exception):
    """City hall will not serve this card; ``reason`` is one of REFUSAL_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REFUSAL_REASONS
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)  # RSA PKCS#1 v1.5 or ECDSA, as the CA's key and signature say
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_card_signature(key: object, challenge: bytes, signature: bytes) -> bool:
    """The card's signature over the challenge, in the algorithm of the certificate's own key: RSA-2048
    PKCS#1 v1.5 / SHA-256 (today's card) or ECDSA P-384 / SHA-384 (next generation), the latter as DER or
    raw r||s. Any other key is not a JPKI card's (unknown_card is raised by the caller's CA checks)."""
    try:
        if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
            if len(signature) == 96:  # raw r||s
                signature = encode_dss_signature(int.from_bytes(signature[:48], "big"),
                                                 int.from_bytes(signature[48:], "big"))
            key.verify(signature, challenge, ec.ECDSA(hashes.SHA384()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


@dataclass(frozen=True)
class VerifiedCard:
    card_id: str  # the certificate's CN
    serial: int
    not_after: datetime


class CardVerifier:
    def __init__(self, trusted_ca_files: tuple[Path, ...], crl_file: Path | None, crl_grace: timedelta, *,
                 ocsp: OcspSettings | None = None, crl_fallback: bool = True) -> None:
        self.cas: list[x509.Certificate] = []
        for path in trusted_ca_files:
            try:
                self.cas.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
            except (OSError, ValueError) as exc:
                raise RevocationUnavailable(f"cannot load trusted CA file {path}: {exc}") from None
        crl = CrlSource(Path(crl_file), self.cas, crl_grace) if crl_file else None
        self.revocation = RevocationChecker(crl, OcspClient(ocsp) if ocsp else None, crl_fallback=crl_fallback)

    def check_revocation_source(self, now: datetime) -> None:
        """Raise RevocationUnavailable when no card could be checked right now (the health probe)."""
        problem = self.revocation.readiness_problem(now)
        if problem:
            raise RevocationUnavailable(problem)

    # --- the card --------------------------------------------------------------------------------------

    def verify(self, certificate_der: bytes, challenge: bytes, signature: bytes, now: datetime) -> VerifiedCard:
        try:
            cert = x509.load_der_x509_certificate(certificate_der)
        except ValueError:
            raise CardRefusal("unknown_card", "the certificate is not a DER X.509 certificate") from None
        issuers = [ca for ca in self.cas if ca.subject == cert.issuer]
        if not issuers:
            raise CardRefusal("unknown_card", "the certificate was not issued by a trusted JPKI authentication CA")
        issuer = next((ca for ca in issuers if _issued_by(cert, ca)), None)
        if issuer is None:
            raise CardRefusal("unknown_card", "the certificate's CA signature does not verify")
        if not verify_card_signature(cert.public_key(), challenge, signature):
            raise CardRefusal("bad_signature", "the card's signature over the challenge does not verify")
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CardRefusal("certificate_expired", f"the certificate is valid from {cert.not_valid_before_utc.isoformat()} "
                                         f"to {cert.not_valid_after_utc.isoformat()}")
        try:
            answer = self.revocation.status(cert, issuer, now)
        except StatusUnavailable as exc:  # fail closed: no good status, no certificate
            raise CardRefusal("certificate_status_unknown", f"the certificate's status could not be checked: {exc}") \
                from None
        if answer.status == REVOKED:
            raise CardRefusal("certificate_revoked", f"the certificate is revoked ({answer.source}"
                                                     + (f": {answer.detail}" if answer.detail else "") + ")")
        if answer.status != GOOD:
            raise CardRefusal("certificate_status_unknown", f"{answer.source}: {answer.detail or 'status unknown'}")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1 or not isinstance(names[0].value, str):
            raise CardRefusal("unknown_card", "the certificate has no single subject CN")
        return VerifiedCard(names[0].value, cert.serial_number, cert.not_valid_after_utc)
