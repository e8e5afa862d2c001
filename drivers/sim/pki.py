"""A test JPKI: an authentication CA shaped like J-LIS's, residents' user-authentication certificates
(no personal attributes, as on real cards: only a 20-character identifier), their RSA-2048 keys, and a
CRL. Used by the virtual card (key + certificate), by city hall's test config (trusted CA + CRL) and
by the demo. Files are cached in a directory so every process of a run sees the same PKI.

Layout of ``directory``::

    auth-ca.pem             the trusted authentication CA certificate
    auth-ca.key.pem         its key (tests only)
    crl.pem                 the current CRL (revoked identifiers listed by serial)
    cards/<card_id>.json    {"cert_der_hex", "key_pem", "serial", "not_after"}
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for user authentication"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Japan Agency for Local Authority Information Systems"),
])
# A separate CA that is NOT trusted by city hall, for "unknown card" tests.
ROGUE_CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Not JPKI"),
])


@dataclass(frozen=True)
class CardCredentials:
    card_id: str  # the certificate's CN: a 20-character identifier, no personal data
    serial: int
    cert_der: bytes
    key_pem: bytes

    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class TestPKI:
    __test__ = False  # not a pytest class

    def __init__(self, directory: str | os.PathLike[str], *, rogue: bool = False) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "cards").mkdir(exist_ok=True)
        self.rogue = rogue
        self._ca_key, self._ca_cert = self._load_or_make_ca()
        if not self.crl_path.exists():
            self.write_crl(())

    @property
    def ca_cert_path(self) -> Path:
        return self.dir / "auth-ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.dir / "crl.pem"

    @property
    def ca_cert(self) -> x509.Certificate:
        return self._ca_cert

    def _load_or_make_ca(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key_path, cert_path = self.dir / "auth-ca.key.pem", self.ca_cert_path
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return key, x509.load_pem_x509_certificate(cert_path.read_bytes())  # type: ignore[return-value]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = ROGUE_CA_NAME if self.rogue else CA_NAME
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=365))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        _write_atomic(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def card(self, card_id: str, *, expired: bool = False) -> CardCredentials:
        """The credentials of card ``card_id`` (made on first use, then read from the cache)."""
        if len(card_id) != 20 or not card_id.isalnum():
            raise ValueError("a JPKI auth certificate CN is a 20-character alphanumeric identifier")
        path = self.dir / "cards" / f"{card_id}{'-expired' if expired else ''}.json"
        if path.exists():
            d = json.loads(path.read_text())
            return CardCredentials(card_id, d["serial"], bytes.fromhex(d["cert_der_hex"]), d["key_pem"].encode())
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.timezone.utc)
        if expired:
            valid = (now - dt.timedelta(days=5 * 365), now - dt.timedelta(days=1))
        else:
            valid = (now - dt.timedelta(days=30), now + dt.timedelta(days=5 * 365))
        serial = x509.random_serial_number() >> 127  # ~32 bits, like the 4-byte serials of real cards
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, card_id),
                                     x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        creds = CardCredentials(card_id, serial, cert.public_bytes(serialization.Encoding.DER),
                                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        _write_atomic(path, json.dumps({"serial": serial, "cert_der_hex": creds.cert_der.hex(),
                                        "key_pem": creds.key_pem.decode()}).encode())
        return creds

    def write_crl(self, revoked_serials: tuple[int, ...] | list[int]) -> Path:
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self._ca_cert.subject)
                   .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(days=1)))
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
        crl = builder.sign(self._ca_key, hashes.SHA256())
        _write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        return self.crl_path
