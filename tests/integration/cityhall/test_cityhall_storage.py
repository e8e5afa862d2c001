"""The storage layer on both back ends: migrations, constraints, the replay guard, number allocation."""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cityhall.devices import DeviceRegistryError, DeviceStore
from cityhall.storage import LATEST_VERSION, MIGRATIONS, Database, StorageError
from sync.device_key import public_key_text

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database(f"st_{int(time.time() * 1e6) % 10**9}")
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='st-')) / 'c.sqlite3'}"
    db = Database(url, timeout_seconds=10)
    yield db
    db.close()


def test_migrations_apply_once_in_order(database):
    assert database.schema_version() == 0
    with pytest.raises(StorageError, match="cityhall migrate"):
        database.require_current_schema()
    assert database.migrate() == [m.version for m in MIGRATIONS]
    assert database.migrate() == []
    assert database.schema_version() == LATEST_VERSION
    database.require_current_schema()


def test_concurrent_migrators_agree(database):
    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(lambda _: database.migrate(), range(4)))
    assert sorted(v for run in applied for v in run) == [m.version for m in MIGRATIONS]


def test_device_registry_and_nonce_replay_guard(database):
    database.migrate()
    store = DeviceStore(database)
    now = datetime.now(timezone.utc)
    key = public_key_text(Ed25519PrivateKey.generate())
    store.add("kiosk-a", key, now, label="lobby")
    with pytest.raises(DeviceRegistryError, match="already registered"):
        store.add("kiosk-a", key, now)
    with pytest.raises(DeviceRegistryError):
        store.add("Kiosk A", key, now)
    with pytest.raises(DeviceRegistryError, match="ed25519"):
        store.add("kiosk-b", "ssh-rsa AAAA", now)
    assert [d.device_id for d in store.list()] == ["kiosk-a"]
    assert store.remember_nonce("kiosk-a", "00" * 16, now, timedelta(minutes=5))
    assert not store.remember_nonce("kiosk-a", "00" * 16, now, timedelta(minutes=5))
    # old nonces are pruned, the recent one stays remembered
    later = now + timedelta(hours=1)
    assert store.remember_nonce("kiosk-a", "00" + "11" * 15, later, timedelta(minutes=5))
    assert store.remember_nonce("kiosk-a", "00" * 16, later + timedelta(seconds=1), timedelta(minutes=5))
    revoked = store.revoke("kiosk-a", now)
    assert revoked.status == "revoked" and not revoked.active
    with pytest.raises(DeviceRegistryError, match="already revoked"):
        store.revoke("kiosk-a", now)
    with pytest.raises(DeviceRegistryError, match="no device"):
        store.revoke("kiosk-zzz", now)


def test_rollback_on_error_leaves_nothing(database):
    database.migrate()
    with pytest.raises(RuntimeError):
        with database.transaction() as tx:
            tx.execute("INSERT INTO issuance_counters (scope, last_value) VALUES (?, ?)", ("x", 1))
            raise RuntimeError("boom")
    with database.transaction() as tx:
        assert tx.one("SELECT COUNT(*) AS n FROM issuance_counters")["n"] == 0


def test_counter_allocation_is_unique_under_concurrency(database):
    database.migrate()

    def allocate(_: int) -> int:
        with database.transaction() as tx:
            tx.execute("INSERT INTO issuance_counters (scope, last_value) VALUES (?, 0) ON CONFLICT DO NOTHING",
                       ("s",))
            return tx.one("UPDATE issuance_counters SET last_value = last_value + 1 WHERE scope = ? "
                          "RETURNING last_value", ("s",))["last_value"]

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(allocate, range(80)))
    assert sorted(values) == list(range(1, 81))
