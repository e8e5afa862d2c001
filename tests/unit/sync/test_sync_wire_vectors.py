"""Kiosk side of the committed wire vectors (wire_vectors.json): the same inputs give the same event
hashes, manifest bytes, signature and batch bytes — and the kiosk's own journal hashes the same way."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.journal import Journal
from sync.device_key import public_key_text
from sync.wire import build_batch, encode_batch, key_id, manifest_for
from tests.unit.sync.make_wire_vectors import chain

VECTORS = json.loads((Path(__file__).with_name("wire_vectors.json")).read_text(encoding="utf-8"))


def device_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["private_key_seed_hex"]))


def test_event_hashes_are_sha256_of_sorted_compact_json() -> None:
    prev = "0" * 64
    for seq, (item, expected) in enumerate(zip(VECTORS["inputs"], VECTORS["event_hashes"]), start=1):
        fields = {"device_id": VECTORS["device_id"], "seq": seq, "prev_hash": prev, **item}
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == expected
        prev = expected


def test_batch_bytes_and_signature_match_the_vectors() -> None:
    key = device_key()
    events = chain(VECTORS["device_id"], VECTORS["inputs"])
    assert [e.hash for e in events] == VECTORS["event_hashes"]
    assert public_key_text(key) == VECTORS["public_key"] and key_id(key) == VECTORS["key_id"]
    assert manifest_for(events, key).signing_bytes().decode("utf-8") == VECTORS["manifest_signing_bytes"]
    batch = build_batch(events, key)
    assert batch["signature"] == VECTORS["signature"]
    assert encode_batch(batch).decode("utf-8") == VECTORS["encoded_batch_utf8"]
    assert batch == VECTORS["cases"][0]["batch"]


def test_the_kiosk_journal_writes_events_that_hash_like_the_vectors(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3", VECTORS["device_id"])
    for item in VECTORS["inputs"]:
        journal.append(item["kind"], item["body"], item["txn_id"])
    written = journal.events()
    rebuilt = chain(VECTORS["device_id"], [{**item, "at": ev.at} for item, ev in zip(VECTORS["inputs"], written)])
    assert [e.hash for e in written] == [e.hash for e in rebuilt]
    assert journal.verify_chain() == written[-1].hash
