"""Fixtures for city hall: a test JPKI with a card per demo resident, a private PostgreSQL cluster, and
the real `cityhall serve` process on each back end (SQLite, PostgreSQL), reached over loopback HTTP.

``cityhall_server`` is parametrized over both back ends (session scope: one server per back end for
the whole run); tests get a fresh device (key + registration) from ``kiosk_device``.
"""
from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cityhall.devices import DeviceStore
from cityhall.storage import Database
from drivers.sim.pki import CardCredentials, TestPKI
from sync.device_key import public_key_text
from sync.issuance_client import HttpCityHallClient
from sync.signing import new_nonce, sign_request
from tests.support.postgres import PostgresCluster
from tests.support.services import ManagedProcess, free_port, port_open

ROOT = Path(__file__).resolve().parents[3]
DEMO_REGISTRY = ROOT / "config" / "demo-registry.json"
REVOKED_CARD = "8439TESTREVOKED00001"
UNREGISTERED_CARD = "8439TESTNOTINREG0001"
MAX_BODY = 16384


def sign_challenge(card: CardCredentials, nonce: bytes) -> bytes:
    """What the JPKI card computes: RSA PKCS#1 v1.5 over SHA-256 of the data."""
    return card.private_key().sign(nonce, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class TestWorld:
    __test__ = False
    directory: Path
    pki: TestPKI
    rogue: TestPKI
    registry_path: Path
    registry: dict[str, Any]

    def card(self, card_id: str, *, expired: bool = False) -> CardCredentials:
        return self.pki.card(card_id, expired=expired)

    def cards_with_status(self, status: str) -> list[str]:
        return sorted(cn for cn, r in self.registry.items() if r["status"] == status and cn.startswith("8439WAKO"))


@pytest.fixture(scope="session")
def world() -> Iterator[TestWorld]:
    directory = Path(tempfile.mkdtemp(prefix="chw-"))
    pki = TestPKI(directory / "pki")
    registry = json.loads(DEMO_REGISTRY.read_text(encoding="utf-8"))
    some_active = next(r for r in registry.values() if r["status"] == "active")
    registry[REVOKED_CARD] = {**some_active, "resident_id": "R9001"}  # a resident whose card was revoked
    registry_path = directory / "registry.json"
    registry_path.write_text(json.dumps(registry, ensure_ascii=False), encoding="utf-8")
    for card_id in registry:
        pki.card(card_id)
    pki.write_crl([pki.card(REVOKED_CARD).serial])
    yield TestWorld(directory, pki, TestPKI(directory / "rogue", rogue=True), registry_path, registry)
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class CityHallServer:
    backend: str
    url: str
    database_url: str
    config_path: Path
    data_dir: Path
    process: ManagedProcess
    db: Database
    world: TestWorld

    def add_device(self, location: str = "和光市役所 1階 証明書自動交付機") -> "KioskDevice":
        device_id = f"kiosk-{next(_device_numbers)}-{int(time.time() * 1000) % 100000}"
        key = Ed25519PrivateKey.generate()
        DeviceStore(self.db).add(device_id, public_key_text(key), datetime.now(timezone.utc), location=location)
        return KioskDevice(device_id, key, self)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", str(self.config_path), *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)


_device_numbers = itertools.count(1)


@dataclass
class KioskDevice:
    device_id: str
    key: Ed25519PrivateKey
    server: CityHallServer

    def client(self, **kwargs: Any) -> HttpCityHallClient:
        return HttpCityHallClient(self.server.url, self.device_id, self.key, retries=0, **kwargs)

    def signed(self, method: str, path: str, body: bytes | None = None, *, timestamp: int | None = None,
               nonce: str | None = None, headers: dict[str, str] | None = None,
               key: Ed25519PrivateKey | None = None, signed_body: bytes | None = None) -> requests.Response:
        """A hand-made signed request (for the 4xx tests); ``signed_body`` signs other bytes than sent."""
        raw = body or b""
        all_headers = sign_request(key or self.key, self.device_id, method, path,
                                   raw if signed_body is None else signed_body,
                                   int(time.time()) if timestamp is None else timestamp, nonce or new_nonce())
        all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        return requests.request(method, self.server.url + path, data=body, headers=all_headers, timeout=30)

    def post_json(self, path: str, payload: Any, **kwargs: Any) -> requests.Response:
        return self.signed("POST", path, json.dumps(payload).encode(), **kwargs)

    def authenticate(self, card: CardCredentials) -> dict[str, Any]:
        challenge = self.post_json("/v1/challenges", {}).json()
        signature = sign_challenge(card, base64.b64decode(challenge["nonce"]))
        answer = self.post_json("/v1/sessions", {"challenge_id": challenge["challenge_id"],
                                                 "certificate": base64.b64encode(card.cert_der).decode(),
                                                 "signature": base64.b64encode(signature).decode()})
        assert answer.status_code == 200, answer.text
        return answer.json()


def _write_config(directory: Path, world: TestWorld, database_url: str) -> Path:
    path = directory / "cityhall.toml"
    path.write_text(f"""
[service]
host = "127.0.0.1"
data_dir = "{directory / 'data'}"
database_url = "{database_url if database_url.startswith('postgres') else ''}"
max_body_bytes = {MAX_BODY}
max_clock_skew_seconds = 60
challenge_ttl_seconds = 30
session_ttl_seconds = 600
log_level = "warning"

[pki]
trusted_auth_ca_files = ["{world.pki.ca_cert_path}"]
crl_file = "{world.pki.crl_path}"

[registry]
path = "{world.registry_path}"

[fees]
juminhyo = 300
kazei = 350
hikazei = 200
""", encoding="utf-8")
    return path


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def cityhall_server(request: pytest.FixtureRequest, world: TestWorld) -> Iterator[CityHallServer]:
    directory = Path(tempfile.mkdtemp(prefix=f"ch-{request.param[:2]}-"))
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        database_url = cluster.create_database(f"cityhall_{int(time.time() * 1000) % 10**8}")
    else:
        database_url = f"sqlite:///{directory / 'data' / 'cityhall.sqlite3'}"
    config_path = _write_config(directory, world, database_url)
    port = free_port()
    process = ManagedProcess([sys.executable, "-m", "cityhall.cli", "--config", str(config_path), "serve",
                              "--port", str(port)], name=f"cityhall-{request.param}", log_dir=directory, cwd=str(ROOT))
    process.start(ready=lambda: port_open("127.0.0.1", port), timeout=30)
    db = Database(database_url)
    server = CityHallServer(request.param, f"http://127.0.0.1:{port}", database_url, config_path,
                            directory / "data", process, db, world)
    yield server
    process.stop()
    db.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kiosk_device(cityhall_server: CityHallServer) -> KioskDevice:
    return cityhall_server.add_device()
