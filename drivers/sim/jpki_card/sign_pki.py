"""The signature half of a virtual card: a TEST digital-signature CA and, per card, a signature key and a
certificate carrying the JPKI subjectAltName attributes (name, sex, birth date, address) — invented
test values, present only so the virtual card is faithful and the guard has something to protect.

The kiosk never reads any of this (the card refuses READ BINARY of EF 0001 without the signature
password, and the suite-wide guard fails the run if kiosk code even selects it). Cached next to the
authentication PKI of drivers/sim/pki.py, under ``<pki dir>/sign/``.
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

SIGN_CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "TEST Japan Agency for Local Authority Information Systems"),
])
JPKI_ATTRIBUTE_OID = "1.2.392.200149.8.5.5.{}"  # .1 name .2 name alt .3 sex .4 birth date .5 address .6 address alt
TEST_ATTRIBUTES = ("テスト 太郎", "テスト タロウ", "1", "19800101", "東京都テスト市テスト町1-1", "トウキョウトテストシ")


@dataclass(frozen=True)
class SignCredentials:
    ca_cert_der: bytes
    cert_der: bytes
    key_pem: bytes

    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _utf8_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) >= 128:
        raise ValueError("test attribute too long for a short DER length")
    return bytes((0x0C, len(raw))) + raw


def _sign_ca(directory: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    path = directory / "sign-ca.json"
    if path.exists():
        d = json.loads(path.read_text())
        key = serialization.load_pem_private_key(d["key_pem"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key, x509.load_der_x509_certificate(bytes.fromhex(d["cert_der_hex"]))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(SIGN_CA_NAME).issuer_name(SIGN_CA_NAME)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=365)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    _write_atomic(path, json.dumps({"key_pem": _pem_key(key).decode(),
                                    "cert_der_hex": cert.public_bytes(serialization.Encoding.DER).hex()}).encode())
    return key, cert


def sign_credentials(pki_dir: str | os.PathLike[str], card_id: str) -> SignCredentials:
    """The signature CA, key and certificate of virtual card ``card_id`` (made once, then cached)."""
    directory = Path(pki_dir) / "sign"
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _sign_ca(directory)
    path = directory / f"{card_id}.json"
    ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
    if path.exists():
        d = json.loads(path.read_text())
        return SignCredentials(ca_der, bytes.fromhex(d["cert_der_hex"]), d["key_pem"].encode())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    san = x509.SubjectAlternativeName([
        x509.OtherName(x509.ObjectIdentifier(JPKI_ATTRIBUTE_OID.format(i + 1)), _utf8_string(value))
        for i, value in enumerate(TEST_ATTRIBUTES)
    ])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, f"TEST SIGN {card_id}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number() >> 127)
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=5 * 365))
            .add_extension(san, critical=False)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    creds = SignCredentials(ca_der, cert.public_bytes(serialization.Encoding.DER), _pem_key(key))
    _write_atomic(path, json.dumps({"key_pem": creds.key_pem.decode(), "cert_der_hex": creds.cert_der.hex()}).encode())
    return creds
