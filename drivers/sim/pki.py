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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

ALGORITHMS = ("rsa2048", "p384")  # today's card; the next-generation card (docs/next-generation-card.md)
CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for user authentication"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Japan Agency for Local Authority Information Systems"),
])
# The next-generation CA: its real name is not published yet (UNCONFIRMED); same shape, one more OU.
P384_CA_NAME = x509.Name([*CA_NAME, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "TEST ECDSA P-384")])
# A separate CA that is NOT trusted by city hall, for "unknown card" tests.
ROGUE_CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Not JPKI"),
])

# What a real user-authentication certificate carries (docs/jpki-certificate-profile.md). The URLs and the
# policy OID are TEST values under example hosts / J-LIS's arc: the real ones are given to verifiers only.
POLICY_OID = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")  # UNCONFIRMED: the real policy OID
CRL_URL = "http://crl.jpki.test/auth/crl.der"
OCSP_URL = "http://ocsp.jpki.test/auth"
CA_ISSUERS_URL = "http://repository.jpki.test/auth/ca.der"
CPS_URL = "http://repository.jpki.test/cps/"
REAL_CERT_LENGTH = 1583  # 30 82 06 2B, the header of a real one (jpki-card.md §2.3)
SIGNATURE_HASH = {"rsa2048": hashes.SHA256, "p384": hashes.SHA384}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(algorithm: str) -> PrivateKey:
    if algorithm == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"unknown card algorithm {algorithm!r}; one of {', '.join(ALGORITHMS)}")


def pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class CardCredentials:
    card_id: str  # the certificate's CN: a 20-character identifier, no personal data
    serial: int
    cert_der: bytes
    key_pem: bytes
    algorithm: str = "rsa2048"

    def private_key(self) -> PrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        return key


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


NOTICE = "TEST 利用者証明用電子証明書 (Madoguchi virtual card)"


def user_auth_extensions(builder: x509.CertificateBuilder, ca_cert: x509.Certificate, public_key,
                         notices: list[str]) -> x509.CertificateBuilder:
    """The extensions of a user-authentication certificate (docs/jpki-certificate-profile.md)."""
    return (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_OID, [
                CPS_URL, *(x509.UserNotice(None, text) for text in notices)])]), critical=False)
            .add_extension(x509.IssuerAlternativeName([x509.DirectoryName(x509.Name([
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "公的個人認証サービス")]))]), critical=False)
            .add_extension(x509.CRLDistributionPoints([
                x509.DistributionPoint([x509.DirectoryName(x509.Name([*ca_cert.subject,
                                        x509.NameAttribute(NameOID.COMMON_NAME, "CRL Distribution Point")]))],
                                       None, None, None),
                x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]),
                critical=False)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL)),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(CA_ISSUERS_URL))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


class TestPKI:
    __test__ = False  # not a pytest class

    def __init__(self, directory: str | os.PathLike[str], *, rogue: bool = False) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "cards").mkdir(exist_ok=True)
        self.rogue = rogue
        self._cas = {algorithm: self._load_or_make_ca(algorithm) for algorithm in ALGORITHMS}
        self._ca_key, self._ca_cert = self._cas["rsa2048"]
        bundle = b"".join(cert.public_bytes(serialization.Encoding.PEM) for _, cert in self._cas.values())
        if not self.ca_cert_path.exists() or self.ca_cert_path.read_bytes() != bundle:
            _write_atomic(self.ca_cert_path, bundle)
        if not self.crl_path.exists():
            self.write_crl(())

    @property
    def ca_cert_path(self) -> Path:
        """Both generations' CA certificates, PEM, today's first (city hall trusts the file)."""
        return self.dir / "auth-ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.dir / "crl.pem"

    @property
    def ca_cert(self) -> x509.Certificate:
        return self._ca_cert

    def ca_for(self, algorithm: str) -> tuple[PrivateKey, x509.Certificate]:
        return self._cas[algorithm]

    def _load_or_make_ca(self, algorithm: str) -> tuple[PrivateKey, x509.Certificate]:
        stem = "auth-ca" if algorithm == "rsa2048" else f"auth-ca-{algorithm}"
        key_path, cert_path = self.dir / f"{stem}.key.pem", self.dir / f"{stem}.cert.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return key, x509.load_pem_x509_certificate(cert_path.read_bytes())  # type: ignore[return-value]
        key = new_key(algorithm)
        name = ROGUE_CA_NAME if self.rogue else (CA_NAME if algorithm == "rsa2048" else P384_CA_NAME)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, SIGNATURE_HASH[algorithm]())
        )
        _write_atomic(key_path, pem_key(key))
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def card(self, card_id: str, *, expired: bool = False, algorithm: str = "rsa2048") -> CardCredentials:
        """The credentials of card ``card_id`` (made on first use, then read from the cache)."""
        if len(card_id) != 20 or not card_id.isalnum():
            raise ValueError("a JPKI auth certificate CN is a 20-character alphanumeric identifier")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown card algorithm {algorithm!r}; one of {', '.join(ALGORITHMS)}")
        suffix = ("-expired" if expired else "") + ("" if algorithm == "rsa2048" else f"-{algorithm}")
        path = self.dir / "cards" / f"{card_id}{suffix}.json"
        if path.exists():
            d = json.loads(path.read_text())
            return CardCredentials(card_id, d["serial"], bytes.fromhex(d["cert_der_hex"]), d["key_pem"].encode(),
                                   d.get("algorithm", "rsa2048"))
        ca_key, ca_cert = self._cas[algorithm]
        key = new_key(algorithm)
        now = dt.datetime.now(dt.timezone.utc)
        if expired:
            valid = (now - dt.timedelta(days=5 * 365), now - dt.timedelta(days=1))
        else:
            # today's certificate: to the 5th birthday; the next-generation one is announced for 10 years
            valid = (now - dt.timedelta(days=30), now + dt.timedelta(days=(5 if algorithm == "rsa2048" else 10) * 365))
        serial = x509.random_serial_number() >> 127  # ~32 bits, like the 4-byte serials of real cards
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, card_id),
                                            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP")]))
                   .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(valid[0]).not_valid_after(valid[1]))

        def build(padding: int) -> bytes:
            notices = [NOTICE] + ["x" * min(200, padding - i) for i in range(0, padding, 200)]
            cert = user_auth_extensions(builder, ca_cert, key.public_key(), notices).sign(
                ca_key, SIGNATURE_HASH[algorithm]())
            return cert.public_bytes(serialization.Encoding.DER)

        # Padding in the user notices makes the certificate as long as a real one (an ECDSA signature
        # varies by a byte or two and DER lengths grow in steps, so fit a few times).
        padding = 0
        der = build(padding)
        for _ in range(6):
            if len(der) == REAL_CERT_LENGTH:
                break
            padding = max(0, padding + REAL_CERT_LENGTH - len(der))
            der = build(padding)
        creds = CardCredentials(card_id, serial, der, pem_key(key), algorithm)
        _write_atomic(path, json.dumps({"serial": serial, "cert_der_hex": creds.cert_der.hex(), "algorithm": algorithm,
                                        "key_pem": creds.key_pem.decode()}).encode())
        return creds

    def write_crl(self, revoked_serials: tuple[int, ...] | list[int]) -> Path:
        """One CRL per CA generation, concatenated as PEM (city hall reads every CRL in the file)."""
        now = dt.datetime.now(dt.timezone.utc)
        pems = []
        for algorithm, (ca_key, ca_cert) in self._cas.items():
            builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                       .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(days=1)))
            for serial in revoked_serials:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
            crl = builder.sign(ca_key, SIGNATURE_HASH[algorithm]())
            pems.append(crl.public_bytes(serialization.Encoding.PEM))
        _write_atomic(self.crl_path, b"".join(pems))
        return self.crl_path
