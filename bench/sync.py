"""Journal-sync benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/sync.py [--events 10000] [--per-event N] [--skip-postgres]

Against a real `cityhall serve` over loopback (SQLite, then PostgreSQL in a private throwaway cluster),
with the production uploader (sync.uploader, default caps: 500 events / 512 KiB per batch):

1. time to drain a backlog of --events journal events, and the ingest rate in events per second;
2. the same drain with one request per event (batch_max_events = 1), measured on the first
   --per-event events (default 1000) and scaled to --events, and the ratio batched : one-per-event.

Targets: a 10,000-event backlog drained in under 10 s; batched at least 20× faster than one per event.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from cityhall.devices import DeviceStore  # noqa: E402
from cityhall.storage import Database  # noqa: E402
from drivers.sim.pki import TestPKI  # noqa: E402
from kiosk.journal import Journal  # noqa: E402
from sync.device_key import public_key_text  # noqa: E402
from sync.uploader import Uploader, UploaderSettings  # noqa: E402
from tests.integration.sync.conftest import cityhall_config  # noqa: E402
from tests.support.postgres import PostgresCluster, postgres_available  # noqa: E402
from tests.support.services import ManagedProcess, free_port, port_open  # noqa: E402


def bench_event(i: int) -> tuple[str, dict]:
    """Bodies shaped like the engine's (sync.schemas checks them): a money event, a state change, a print outcome."""
    kind = ("money.in", "txn.state", "print.outcome")[i % 3]
    if kind == "money.in":
        return kind, {"payment_key": f"pk-{i // 8}", "amount": 100, "source": "coin 100", "ref": f"r{i}"}
    if kind == "txn.state":
        return kind, {"from": "PAYING", "to": "ISSUING"}
    return kind, {"document_id": f"doc-{i}", "printed": True}


def journal_with(directory: Path, device_id: str, count: int) -> Journal:
    journal = Journal(directory / f"{device_id}.sqlite3", device_id)
    for i in range(count):
        journal.append(*bench_event(i), f"{device_id}-{i // 8:06d}")
    return journal


def drain(url: str, db: Database, journal: Journal, batch_max_events: int, limit: int | None = None) -> float:
    key = Ed25519PrivateKey.generate()
    DeviceStore(db).add(journal.device_id, public_key_text(key), datetime.now(timezone.utc))
    reader = Journal(journal.path, journal.device_id, readonly=True)
    uploader = Uploader(reader, key, UploaderSettings(url=url, device_id=journal.device_id,
                                                      batch_max_events=batch_max_events))
    started = time.perf_counter()
    uploader.heartbeat()
    if limit is None:
        uploader.drain()
    else:
        while uploader.acked is not None and uploader.acked < limit:
            uploader.send_batch(uploader.next_batch(uploader.acked))
    elapsed = time.perf_counter() - started
    reader.close()
    return elapsed


def bench_backend(name: str, database_url: str, work: Path, pki: TestPKI, events: int, per_event: int) -> None:
    port = free_port()
    directory = work / name
    directory.mkdir()
    config = cityhall_config(directory, pki, database_url, port)
    server = ManagedProcess([sys.executable, "-m", "cityhall.cli", "--config", str(config), "serve"],
                            name=f"cityhall-{name}", log_dir=directory, cwd=str(ROOT))
    server.start(ready=lambda: port_open("127.0.0.1", port), timeout=30)
    db = Database(database_url)
    url = f"http://127.0.0.1:{port}"
    try:
        batched_journal = journal_with(directory, f"bench-{name}-batched", events)
        batched = drain(url, db, batched_journal, 500)
        single_journal = journal_with(directory, f"bench-{name}-single", per_event)
        single = drain(url, db, single_journal, 1, limit=per_event)
        single_scaled = single * events / per_event
        print(f"{name:10s} batched drain of {events} events: {batched:6.2f} s  ({events / batched:8.0f} events/s ingested)"
              f"  target < 10 s: {'met' if batched < 10 else 'NOT met'}")
        print(f"{name:10s} one request per event: {single:6.2f} s for {per_event} events ({per_event / single:6.0f} "
              f"events/s) → {single_scaled:7.1f} s for {events}")
        ratio = single_scaled / batched
        print(f"{name:10s} batched is {ratio:5.1f}× faster than one request per event"
              f"  target ≥ 20×: {'met' if ratio >= 20 else 'NOT met'}")
    finally:
        server.stop()
        db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--per-event", type=int, default=1000, help="events sent one per request (then scaled)")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    pki = TestPKI(work / "pki")
    try:
        bench_backend("sqlite", f"sqlite:///{work / 'sqlite' / 'data' / 'cityhall.sqlite3'}", work, pki, args.events,
                      args.per_event)
        problem = postgres_available()
        if args.skip_postgres or problem:
            print(f"postgresql skipped: {problem or '--skip-postgres'}")
        else:
            cluster = PostgresCluster.start()
            try:
                bench_backend("postgresql", cluster.create_database("bench_sync"), work, pki, args.events, args.per_event)
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
