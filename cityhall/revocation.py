"""Is this card's certificate still good? OCSP first (same-day status), the CRL as the configured
fallback, and fail closed: without a good answer from one of them no certificate is issued.

OCSP (RFC 6960) with ``cryptography.x509.ocsp``: one request per authentication, carrying a fresh
nonce that the response must echo; the response must be signed by the certificate's issuing CA itself
or by a delegated responder whose certificate that CA issued with id-kp-OCSPSigning and which is valid
now; thisUpdate may not be in the future and nextUpdate not in the past (beyond a small clock skew), a
response without nextUpdate is used only while younger than ``max_age``; a good or revoked answer is
cached until its nextUpdate. The URL is configured: city hall never follows a URL found in a card's
certificate. Facts about J-LIS's service: docs/revocation.md.

Answers: ``good`` / ``revoked`` / ``unknown`` (the responder does not know the certificate); when no
source can answer, StatusUnavailable, which the caller turns into certificate_status_unknown.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

log = logging.getLogger("cityhall.revocation")

GOOD, REVOKED, UNKNOWN = "good", "revoked", "unknown"
PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)
MAX_RESPONSE_BYTES = 64 * 1024


class RevocationUnavailable(Exception):
    """A CRL is missing, unreadable, badly signed or too old, or a CA file cannot be loaded."""


class StatusUnavailable(Exception):
    """No source could say whether the certificate is good (responder down, bad or stale answer...)."""


@dataclass(frozen=True)
class StatusAnswer:
    status: str  # good | revoked | unknown
    source: str  # ocsp | ocsp-cache | crl
    detail: str = ""


def signature_valid(key: object, signature: bytes, data: bytes, hash_algorithm: hashes.HashAlgorithm | None) -> bool:
    if hash_algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING (RFC 6960 ResponderID byKey / CertID issuerKeyHash)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA1())
    digest.update(_spki_bit_string(spki))
    return digest.finalize()


def _spki_bit_string(spki: bytes) -> bytes:
    """The key bytes inside SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }."""
    def header(data: bytes, at: int) -> tuple[int, int]:  # (content start, content length)
        length = data[at + 1]
        if length < 0x80:
            return at + 2, length
        count = length & 0x7F
        return at + 2 + count, int.from_bytes(data[at + 2:at + 2 + count], "big")

    start, _ = header(spki, 0)  # outer SEQUENCE
    alg_start, alg_len = header(spki, start)
    bit_start, bit_len = header(spki, alg_start + alg_len)
    return spki[bit_start + 1:bit_start + bit_len]  # skip the unused-bits byte


class CrlSource:
    """The CRLs in one file (one DER CRL, or PEM blocks, one per CA generation), re-read when it changes."""

    def __init__(self, path: Path, cas: list[x509.Certificate], grace: timedelta) -> None:
        self.path = path
        self.cas = cas
        self.grace = grace
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._revoked: frozenset[tuple[bytes, int]] = frozenset()
        self._next_update: datetime | None = None

    def _parse(self, data: bytes) -> list[x509.CertificateRevocationList]:
        try:
            if data.lstrip().startswith(b"-----"):
                blocks = PEM_CRL.findall(data)
                if not blocks:
                    raise ValueError("no X509 CRL PEM block")
                return [x509.load_pem_x509_crl(block) for block in blocks]
            return [x509.load_der_x509_crl(data)]
        except ValueError as exc:
            raise RevocationUnavailable(f"CRL {self.path} does not parse: {exc}") from None

    def load(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise RevocationUnavailable(f"CRL {self.path} cannot be read ({exc.strerror}); cards cannot be "
                                        "checked for revocation") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            revoked: set[tuple[bytes, int]] = set()
            next_updates = []
            for crl in self._parse(Path(self.path).read_bytes()):
                issuer = next((ca for ca in self.cas if ca.subject == crl.issuer
                               and crl.is_signature_valid(ca.public_key())), None)  # type: ignore[arg-type]
                if issuer is None:
                    raise RevocationUnavailable(f"CRL {self.path} is not signed by a trusted authentication CA")
                revoked.update((_key_hash(issuer), entry.serial_number) for entry in crl)
                if crl.next_update_utc is not None:
                    next_updates.append(crl.next_update_utc)
            self._revoked = frozenset(revoked)
            self._next_update = min(next_updates) if next_updates else None
            self._stamp = stamp

    def check_fresh(self, now: datetime) -> None:
        self.load()
        if self._next_update is not None and now > self._next_update + self.grace:
            raise RevocationUnavailable(f"CRL {self.path} expired at {self._next_update.isoformat()} "
                                        f"(grace {self.grace}); fetch a current CRL")

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> StatusAnswer:
        self.check_fresh(now)
        if (_key_hash(issuer), cert.serial_number) in self._revoked:
            return StatusAnswer(REVOKED, "crl", "on the authentication CA's revocation list")
        return StatusAnswer(GOOD, "crl")


@dataclass(frozen=True)
class OcspSettings:
    url: str
    timeout: float = 3.0
    max_age: timedelta = timedelta(hours=24)
    clock_skew: timedelta = timedelta(minutes=5)


class OcspClient:
    def __init__(self, settings: OcspSettings) -> None:
        self.settings = settings
        self._cache: dict[tuple[bytes, int], tuple[datetime, StatusAnswer]] = {}
        self._lock = threading.Lock()
        self.requests_sent = 0

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> StatusAnswer:
        key = (_key_hash(issuer), cert.serial_number)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now <= cached[0]:
            return StatusAnswer(cached[1].status, "ocsp-cache", cached[1].detail)
        nonce = secrets.token_bytes(16)
        request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
                   .add_extension(x509.OCSPNonce(nonce), critical=False).build())
        raw = self._post(request.public_bytes(serialization.Encoding.DER))
        answer, valid_until = self._check(raw, cert, issuer, nonce, now)
        if answer.status in (GOOD, REVOKED) and valid_until is not None:
            with self._lock:
                self._cache[key] = (valid_until, answer)
        return answer

    def _post(self, body: bytes) -> bytes:
        self.requests_sent += 1
        request = urllib.request.Request(self.settings.url, data=body, method="POST",
                                         headers={"Content-Type": "application/ocsp-request",
                                                  "Accept": "application/ocsp-response"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as answer:  # noqa: S310 - configured URL
                data = answer.read(MAX_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StatusUnavailable(f"OCSP responder {self.settings.url} did not answer within "
                                    f"{self.settings.timeout:.1f} s or refused the request ({reason})") from None
        if len(data) > MAX_RESPONSE_BYTES:
            raise StatusUnavailable(f"OCSP responder {self.settings.url} sent more than {MAX_RESPONSE_BYTES} bytes")
        return data

    def _responder_key(self, response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> object:
        """The key that may sign this response: the issuing CA's, or a delegated responder's (RFC 6960 §4.2.2.2)."""
        def is_responder(cert: x509.Certificate) -> bool:
            if response.responder_key_hash is not None:
                return response.responder_key_hash == _key_hash(cert)
            return response.responder_name == cert.subject

        if is_responder(issuer):
            return issuer.public_key()
        for delegate in response.certificates:
            if not is_responder(delegate) or delegate.issuer != issuer.subject:
                continue
            try:
                delegate.verify_directly_issued_by(issuer)
                usage = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
                continue
            if not delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc:
                raise StatusUnavailable("the OCSP responder's certificate is outside its validity period")
            return delegate.public_key()
        raise StatusUnavailable("the OCSP response is not signed by the issuing CA or by a responder it "
                                "delegated (id-kp-OCSPSigning)")

    def _check(self, raw: bytes, cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes,
               now: datetime) -> tuple[StatusAnswer, datetime | None]:
        try:
            response = ocsp.load_der_ocsp_response(raw)
        except ValueError:
            raise StatusUnavailable("the OCSP responder's answer is not a DER OCSPResponse") from None
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise StatusUnavailable(f"the OCSP responder answered {response.response_status.name}")
        key = self._responder_key(response, issuer, now)
        if not signature_valid(key, response.signature, response.tbs_response_bytes, response.signature_hash_algorithm):
            raise StatusUnavailable("the OCSP response's signature does not verify")
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            raise StatusUnavailable("the OCSP response does not carry this request's nonce (replayed or cached "
                                    "by a proxy)")
        single = next((r for r in response.responses if r.serial_number == cert.serial_number
                       and r.issuer_key_hash == _hash_with(issuer, r.hash_algorithm)), None)
        if single is None:
            raise StatusUnavailable("the OCSP response does not answer for this certificate")
        skew = self.settings.clock_skew
        if single.this_update_utc > now + skew:
            raise StatusUnavailable(f"the OCSP response's thisUpdate {single.this_update_utc.isoformat()} is in "
                                    "the future: check city hall's clock")
        next_update = single.next_update_utc
        if next_update is not None and now > next_update + skew:
            raise StatusUnavailable(f"the OCSP response is stale (nextUpdate {next_update.isoformat()})")
        if next_update is None and now > single.this_update_utc + self.settings.max_age:
            raise StatusUnavailable(f"the OCSP response is stale (thisUpdate {single.this_update_utc.isoformat()}, "
                                    "no nextUpdate)")
        status = {ocsp.OCSPCertStatus.GOOD: GOOD, ocsp.OCSPCertStatus.REVOKED: REVOKED}.get(
            single.certificate_status, UNKNOWN)
        detail = ""
        if status == REVOKED:
            reason = single.revocation_reason.name.replace("_", " ") if single.revocation_reason else "unspecified"
            detail = f"revoked at {single.revocation_time_utc.isoformat() if single.revocation_time_utc else '?'} (reason: {reason})"
        elif status == UNKNOWN:
            detail = "the responder does not know this certificate"
        return StatusAnswer(status, "ocsp", detail), next_update


def _hash_with(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    if isinstance(algorithm, hashes.SHA1):
        return _key_hash(cert)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(algorithm)
    digest.update(_spki_bit_string(spki))
    return digest.finalize()


class RevocationChecker:
    """OCSP when configured, the CRL when OCSP is off or cannot answer and the CRL is the fallback."""

    def __init__(self, crl: CrlSource | None, ocsp_client: OcspClient | None, *, crl_fallback: bool = True) -> None:
        if crl is None and ocsp_client is None:
            raise ValueError("configure an OCSP responder, a CRL, or both")
        self.crl = crl
        self.ocsp = ocsp_client
        self.crl_fallback = crl_fallback and crl is not None

    def readiness_problem(self, now: datetime) -> str | None:
        """A reason no card can be checked right now (only the CRL can be checked ahead of a card)."""
        if self.ocsp is not None or self.crl is None:
            return None
        try:
            self.crl.check_fresh(now)
        except RevocationUnavailable as exc:
            return str(exc)
        return None

    def status(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> StatusAnswer:
        why = ""
        if self.ocsp is not None:
            try:
                return self.ocsp.status(cert, issuer, now)
            except StatusUnavailable as exc:
                why = str(exc)
                if not self.crl_fallback:
                    raise
                log.warning("OCSP unavailable (%s); falling back to the CRL", why)
        assert self.crl is not None
        try:
            return self.crl.status(cert, issuer, now)
        except RevocationUnavailable as exc:
            raise StatusUnavailable("; ".join(filter(None, (why, str(exc))))) from None
