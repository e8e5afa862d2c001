"""Fixtures for journal sync: the real `cityhall serve` process (SQLite and PostgreSQL back ends, each
restartable on its port), kiosks with a real journal, device key and config file, and the real
`kiosk sync` uploader process.

    hall = sync_cityhall                       # session scope, parametrized over both back ends
    kiosk = new_kiosk(hall, url=proxy_url)     # a registered device with an empty journal
    kiosk.fill(1000)                           # journal events written through kiosk.journal.Journal
    proc = kiosk.uploader()                    # `python -m kiosk.cli sync --config ...`, started
"""
from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cityhall.devices import DeviceStore
from cityhall.ingest import JournalStore
from cityhall.storage import Database
from drivers.sim.pki import TestPKI
from kiosk.journal import Event, Journal
from sync.device_key import create_device_key, public_key_text
from sync.signing import new_nonce, sign_request
from sync.wire import build_batch, encode_batch
from tests.support.postgres import PostgresCluster
from tests.support.services import ManagedProcess, free_port, port_open

ROOT = Path(__file__).resolve().parents[3]
_numbers = itertools.count(1)


def cityhall_config(directory: Path, pki: TestPKI, database_url: str, port: int) -> Path:
    path = directory / "cityhall.toml"
    path.write_text(f"""
[service]
host = "127.0.0.1"
port = {port}
data_dir = "{directory / 'data'}"
database_url = "{database_url if database_url.startswith('postgres') else ''}"
max_clock_skew_seconds = 120
log_level = "warning"

[pki]
trusted_auth_ca_files = ["{pki.ca_cert_path}"]
crl_file = "{pki.crl_path}"

[registry]
path = "{ROOT / 'config' / 'demo-registry.json'}"
""", encoding="utf-8")
    return path


@dataclass
class SyncCityHall:
    backend: str
    directory: Path
    port: int
    database_url: str
    config_path: Path
    db: Database
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> JournalStore:
        return JournalStore(self.db)

    def start(self) -> None:
        self.process = ManagedProcess([sys.executable, "-m", "cityhall.cli", "--config", str(self.config_path),
                                       "serve"], name=f"cityhall-sync-{self.backend}", log_dir=self.directory,
                                      cwd=str(ROOT))
        self.process.start(ready=lambda: port_open("127.0.0.1", self.port), timeout=30)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.signal(9)
                assert self.process.proc is not None
                self.process.proc.wait(10)
            self.process.stop()

    def add_device(self, key: Ed25519PrivateKey | None = None, location: str = "和光市役所 1階") -> tuple[str, Ed25519PrivateKey]:
        device_id = f"sync-{next(_numbers)}-{int(time.time() * 1000) % 1000000}"
        key = key or Ed25519PrivateKey.generate()
        DeviceStore(self.db).add(device_id, public_key_text(key), datetime.now(timezone.utc), location=location)
        return device_id, key

    def cli(self, *args: str) -> Any:
        import subprocess

        return subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", str(self.config_path), *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.fixture(scope="session")
def sync_pki() -> Iterator[TestPKI]:
    directory = Path(tempfile.mkdtemp(prefix="syncpki-"))
    yield TestPKI(directory)
    shutil.rmtree(directory, ignore_errors=True)


def start_cityhall(backend: str, pki: TestPKI, request: pytest.FixtureRequest) -> SyncCityHall:
    directory = Path(tempfile.mkdtemp(prefix=f"sy-{backend[:2]}-"))
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        database_url = cluster.create_database(f"sync_{int(time.time() * 1000) % 10**8}")
    else:
        database_url = f"sqlite:///{directory / 'data' / 'cityhall.sqlite3'}"
    port = free_port()
    hall = SyncCityHall(backend, directory, port, database_url, cityhall_config(directory, pki, database_url, port),
                        Database(database_url))
    hall.start()
    return hall


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def sync_cityhall(request: pytest.FixtureRequest, sync_pki: TestPKI) -> Iterator[SyncCityHall]:
    hall = start_cityhall(request.param, sync_pki, request)
    yield hall
    hall.stop()
    hall.db.close()
    shutil.rmtree(hall.directory, ignore_errors=True)


@dataclass
class Kiosk:
    device_id: str
    key: Ed25519PrivateKey
    directory: Path
    hall: SyncCityHall
    url: str
    journal: Journal = field(init=False)
    processes: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.journal = Journal(self.data_dir / "journal.sqlite3", self.device_id)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_path(self) -> Path:
        return self.directory / "kiosk.toml"

    @property
    def status_path(self) -> Path:
        return self.data_dir / "sync-status.json"

    def write_config(self, **sync: Any) -> Path:
        settings = {"batch_max_events": 500, "batch_max_bytes": 524288, "backoff_base": 0.05, "backoff_cap": 0.5,
                    "request_timeout": 2.0, "interval": 0.1, **sync}
        lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
        self.config_path.write_text(f"""
[kiosk]
device_id = "{self.device_id}"
city_name = "和光市"
location = "テスト"
inquiry_phone = "048-424-9100"
data_dir = "{self.data_dir}"

[payment]
methods = ["cash"]

[card]
driver = "pcsc"

[cityhall]
driver = "http"
url = "{self.url}"
key_path = "device-key.pem"
connect_timeout = 1.0

[document_printer]
driver = "cups"
queue = "x"

[receipt_printer]
driver = "escpos"

[cash]
driver = "cctalk"

[sync]
{lines}
""", encoding="utf-8")
        return self.config_path

    def fill(self, count: int, kind: str = "receipt.intent") -> None:
        start = self.journal.last_seq()
        for i in range(count):
            self.journal.append(kind, {"n": start + i, "pad": "x" * (i % 50)})

    def uploader(self, *extra: str, name: str | None = None) -> ManagedProcess:
        if not self.config_path.exists():
            self.write_config()
        proc = ManagedProcess([sys.executable, "-m", "kiosk.compose.sync", "--config", str(self.config_path), *extra],
                              name=name or f"uploader-{len(self.processes)}", log_dir=self.directory, cwd=str(ROOT))
        self.processes.append(proc)
        return proc.start()

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def events(self) -> list[Event]:
        return self.journal.events()

    # --- hand-made requests (the crafted negative tests) ----------------------------------------------

    def post(self, path: str, body: bytes, *, key: Ed25519PrivateKey | None = None, device_id: str | None = None,
             nonce: str | None = None, timestamp: int | None = None) -> requests.Response:
        headers = sign_request(key or self.key, device_id or self.device_id, "POST", path, body,
                               int(time.time()) if timestamp is None else timestamp, nonce or new_nonce())
        headers["Content-Type"] = "application/json"
        return requests.post(self.hall.url + path, data=body, headers=headers, timeout=30)

    def send(self, events: list[Event], *, batch_key: Ed25519PrivateKey | None = None,
             mutate: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> requests.Response:
        batch = build_batch(events, batch_key or self.key)
        if mutate is not None:
            mutate(batch)
        return self.post("/v1/journal/batches", encode_batch(batch), **kwargs)

    def close(self) -> None:
        for proc in self.processes:
            proc.stop()
        self.journal.close()


@pytest.fixture
def new_kiosk(request: pytest.FixtureRequest) -> Iterator[Callable[..., Kiosk]]:
    made: list[Kiosk] = []

    def make(hall: SyncCityHall, url: str | None = None) -> Kiosk:
        device_id, _ = None, None
        directory = Path(tempfile.mkdtemp(prefix="kiosk-"))
        (directory / "data").mkdir()
        key = create_device_key(directory / "data" / "device-key.pem")
        device_id, key = hall.add_device(key)
        kiosk = Kiosk(device_id, key, directory, hall, url or hall.url)
        made.append(kiosk)
        return kiosk

    yield make
    for kiosk in made:
        kiosk.close()
        shutil.rmtree(kiosk.directory, ignore_errors=True)
