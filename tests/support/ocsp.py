"""A real OCSP responder for tests: `openssl ocsp -index ... -port 0` over the test PKI's CA, signing as
the CA or as a delegated responder (id-kp-OCSPSigning), with ``-nmin`` for nextUpdate; plus a socket
that accepts and never answers (a hung responder) and a port where nothing listens (a responder down).

openssl's responder takes a port only, so it listens on every interface; the port is its own (0 = the
kernel picks one; it prints ``ACCEPT [::]:PORT``). Stopped by its pid.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drivers.sim.pki import SIGNATURE_HASH, CardCredentials, TestPKI, pem_key


def _openssl_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%y%m%d%H%M%SZ")


def delegated_responder(pki: TestPKI, algorithm: str = "rsa2048", *, ocsp_signing: bool = True,
                        rogue: bool = False) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of an OCSP responder the CA delegated to (or, ``rogue``, a look-alike
    signed by its own key, or without id-kp-OCSPSigning)."""
    ca_key, ca_cert = pki.ca_for(algorithm)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, "TEST JPKI OCSP responder")]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True))
    if ocsp_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    signer = key if rogue else ca_key
    cert = builder.sign(signer, SIGNATURE_HASH[algorithm]() if not rogue else hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key(key)


@dataclass
class OcspResponder:
    pki: TestPKI
    algorithm: str = "rsa2048"
    next_update_minutes: int | None = 60
    signer: tuple[bytes, bytes] | None = None  # (cert PEM, key PEM); None: a delegated responder of the CA
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ocsp-")))
    process: subprocess.Popen | None = None
    port: int = 0
    entries: dict[int, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _write_index(self, good: list[CardCredentials], revoked: list[CardCredentials]) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        lines = []
        for creds, flag in [(c, "V") for c in good] + [(c, "R") for c in revoked]:
            cert = x509.load_der_x509_certificate(creds.cert_der)
            revoked_at = _openssl_time(now - dt.timedelta(hours=1)) + ",keyCompromise" if flag == "R" else ""
            lines.append("\t".join((flag, _openssl_time(cert.not_valid_after_utc), revoked_at,
                                    f"{cert.serial_number:X}".rjust(2, "0"), "unknown",
                                    "/" + cert.subject.rfc4514_string().replace(",", "/"))))
        (self.workdir / "index.txt").write_text("\n".join(lines) + "\n")
        (self.workdir / "index.txt.attr").write_text("unique_subject = no\n")

    def start(self, good: list[CardCredentials], revoked: list[CardCredentials] = ()) -> "OcspResponder":
        self._write_index(list(good), list(revoked))
        _, ca_cert = self.pki.ca_for(self.algorithm)
        (self.workdir / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_pem, key_pem = self.signer or delegated_responder(self.pki, self.algorithm)
        (self.workdir / "rsigner.pem").write_bytes(cert_pem)
        (self.workdir / "rkey.pem").write_bytes(key_pem)
        argv = ["openssl", "ocsp", "-index", "index.txt", "-port", "0", "-CA", "ca.pem",
                "-rsigner", "rsigner.pem", "-rkey", "rkey.pem", "-ignore_err"]
        if self.next_update_minutes is not None:
            argv += ["-nmin", str(self.next_update_minutes)]
        log = open(self.workdir / "responder.log", "wb")
        self.process = subprocess.Popen(argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            match = re.search(rb"ACCEPT \S*:(\d+)", (self.workdir / "responder.log").read_bytes())
            if match:
                self.port = int(match.group(1))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("openssl ocsp did not start: " + (self.workdir / "responder.log").read_text(errors="replace"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class HungResponder:
    """Accepts connections and never answers: the responder that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the responder is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
