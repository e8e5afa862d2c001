"""City hall side of the committed wire vectors: every case gets the verdict the file names, both from
the pure checks (sync.wire) and from cityhall.ingest's store on a real SQLite database."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cityhall.devices import DeviceStore
from cityhall.ingest import REASON_STATUS, JournalStore
from cityhall.service import ApiError
from cityhall.storage import Database
from sync.device_key import parse_public_key
from sync.wire import BatchRejected, decode_batch, encode_batch, verify_batch

VECTORS = json.loads((Path(__file__).with_name("wire_vectors.json")).read_text(encoding="utf-8"))
CASES = VECTORS["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_pure_checks_reach_the_vector_verdict(case: dict) -> None:
    body = encode_batch(case["batch"])
    try:
        batch = decode_batch(body)
        verify_batch(batch, VECTORS["device_id"], parse_public_key(VECTORS["public_key"]))
        verdict = "ok"
    except BatchRejected as exc:
        verdict = exc.reason
    assert verdict == case["verdict"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_ingest_store_reaches_the_vector_verdict(case: dict, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ch.sqlite3'}")
    db.migrate()
    now = datetime.now(timezone.utc)
    device = DeviceStore(db).add(VECTORS["device_id"], VECTORS["public_key"], now)
    store = JournalStore(db)
    batch = case["batch"]
    if case["verdict"] == "ok" and batch["manifest"]["first_seq"] > 1:  # the tail needs its head first
        store.ingest(device, encode_batch(CASES[0]["batch"]), now)
    try:
        ack = store.ingest(device, encode_batch(batch), now)
        verdict = "ok"
        assert ack == {"last_seq": batch["manifest"]["last_seq"], "head_hash": batch["manifest"]["head_hash"]}
        assert store.verify_device_chain(device.device_id) == batch["manifest"]["last_seq"]
    except ApiError as exc:
        verdict = exc.error
        assert exc.status == REASON_STATUS[exc.error]
    assert verdict == case["verdict"]
    db.close()
