"""Checking a My Number card's user-authentication certificate and its signature over a challenge.

The checks, in order: the certificate parses; it was issued (and signed) by one of the configured
trusted JPKI authentication CAs; its key signed the challenge (RSA PKCS#1 v1.5 over SHA-256, as the JPKI
card computes it); it is within its validity dates; its serial is not on the CA's current CRL. The
certificate's subject CN (a 20-character identifier, no personal data) is what the registry is keyed by.

The CRL file is re-read when it changes on disk (cron replaces it daily); a CRL past its nextUpdate by
more than the configured grace is not trusted and no card is accepted until it is refreshed.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REFUSAL_REASONS = ("revoked", "expired", "unknown_card", "bad_signature", "moved_out", "deceased", "protected")


class CardRefusal(Exception):
    """City hall will not serve this card; ``reason`` is one of REFUSAL_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REFUSAL_REASONS
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class RevocationUnavailable(Exception):
    """The CRL is missing, unreadable, badly signed or too old: cards cannot be checked right now."""


PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)


def _parse_crls(data: bytes, path: Path) -> list[x509.CertificateRevocationList]:
    """Every CRL in the file: one DER CRL, or one PEM block per CA generation."""
    try:
        if data.lstrip().startswith(b"-----"):
            blocks = PEM_CRL.findall(data)
            if not blocks:
                raise ValueError("no X509 CRL PEM block")
            return [x509.load_pem_x509_crl(block) for block in blocks]
        return [x509.load_der_x509_crl(data)]
    except ValueError as exc:
        raise RevocationUnavailable(f"CRL {path} does not parse: {exc}") from None


@dataclass(frozen=True)
class VerifiedCard:
    card_id: str  # the certificate's CN
    serial: int
    not_after: datetime


class CardVerifier:
    def __init__(self, trusted_ca_files: tuple[Path, ...], crl_file: Path, crl_grace: timedelta) -> None:
        self.cas: list[x509.Certificate] = []
        for path in trusted_ca_files:
            try:
                self.cas.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
            except (OSError, ValueError) as exc:
                raise RevocationUnavailable(f"cannot load trusted CA file {path}: {exc}") from None
        self.crl_file = crl_file
        self.crl_grace = crl_grace
        self._crl_lock = threading.Lock()
        self._crl_stamp: tuple[int, int] | None = None
        self._revoked: frozenset[int] = frozenset()
        self._crl_next_update: datetime | None = None

    # --- CRL -------------------------------------------------------------------------------------------

    def _load_crl(self) -> None:
        try:
            st = os.stat(self.crl_file)
        except OSError as exc:
            raise RevocationUnavailable(f"CRL {self.crl_file} cannot be read ({exc.strerror}); cards cannot be "
                                        "checked for revocation") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._crl_lock:
            if stamp == self._crl_stamp:
                return
            data = Path(self.crl_file).read_bytes()
            revoked: set[int] = set()
            next_updates = []
            for crl in _parse_crls(data, self.crl_file):
                if not any(ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
                           for ca in self.cas):
                    raise RevocationUnavailable(f"CRL {self.crl_file} is not signed by a trusted authentication CA")
                revoked.update(entry.serial_number for entry in crl)
                if crl.next_update_utc is not None:
                    next_updates.append(crl.next_update_utc)
            self._revoked = frozenset(revoked)
            self._crl_next_update = min(next_updates) if next_updates else None
            self._crl_stamp = stamp

    def check_revocation_source(self, now: datetime) -> None:
        """Raise RevocationUnavailable unless a current CRL is loaded (also used by the health probe)."""
        self._load_crl()
        if self._crl_next_update is not None and now > self._crl_next_update + self.crl_grace:
            raise RevocationUnavailable(f"CRL {self.crl_file} expired at {self._crl_next_update.isoformat()} "
                                        f"(grace {self.crl_grace}); fetch a current CRL")

    # --- the card --------------------------------------------------------------------------------------

    def verify(self, certificate_der: bytes, challenge: bytes, signature: bytes, now: datetime) -> VerifiedCard:
        self.check_revocation_source(now)
        try:
            cert = x509.load_der_x509_certificate(certificate_der)
        except ValueError:
            raise CardRefusal("unknown_card", "the certificate is not a DER X.509 certificate") from None
        issuer = next((ca for ca in self.cas if ca.subject == cert.issuer), None)
        if issuer is None:
            raise CardRefusal("unknown_card", "the certificate was not issued by a trusted JPKI authentication CA")
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise CardRefusal("unknown_card", "the certificate's CA signature does not verify") from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CardRefusal("unknown_card", "the certificate does not carry an RSA key")
        try:
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise CardRefusal("bad_signature", "the card's signature over the challenge does not verify") from None
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CardRefusal("expired", f"the certificate is valid from {cert.not_valid_before_utc.isoformat()} "
                                         f"to {cert.not_valid_after_utc.isoformat()}")
        if cert.serial_number in self._revoked:
            raise CardRefusal("revoked", "the certificate is on the authentication CA's revocation list")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(names) != 1 or not isinstance(names[0].value, str):
            raise CardRefusal("unknown_card", "the certificate has no single subject CN")
        return VerifiedCard(names[0].value, cert.serial_number, cert.not_valid_after_utc)
