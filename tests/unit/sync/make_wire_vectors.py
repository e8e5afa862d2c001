"""Writes wire_vectors.json (run once, then commit the file; tests only READ it):

    .venv/bin/python -m tests.unit.sync.make_wire_vectors

Fixed key seed, fixed events: Ed25519 and SHA-256 are deterministic, so the file pins the exact bytes
both ends must agree on. Each case is a whole batch body plus the verdict city hall must reach.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.journal.chain import GENESIS_HASH, Event, event_hash
from sync.device_key import public_key_text
from sync.wire import build_batch, encode_batch, manifest_for

HERE = Path(__file__).resolve().parent
DEVICE = "vector-kiosk-01"
SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))

INPUTS = [
    {"txn_id": None, "kind": "kiosk.state", "at": "2026-11-29T00:00:00.000000+00:00",
     "body": {"from": "BOOT", "reason": "start", "to": "IDLE"}},
    {"txn_id": "vector-kiosk-01-000001", "kind": "txn.started", "at": "2026-11-29T00:00:01.250000+00:00",
     "body": {"language": "ja", "state": "CARD_READING"}},
    {"txn_id": "vector-kiosk-01-000001", "kind": "money.in", "at": "2026-11-29T00:01:02.000001+00:00",
     "body": {"amount": 300, "payment_key": "pk-1", "ref": "", "source": "coin 100"}},
    {"txn_id": "vector-kiosk-01-000001", "kind": "txn.closed", "at": "2026-11-29T00:02:00.000000+00:00",
     "body": {"note": "住民票の写し", "outcome": "completed"}},
]


def chain(device: str, inputs: list[dict]) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq, item in enumerate(inputs, start=1):
        fields = {"device_id": device, "seq": seq, "prev_hash": prev, **item}
        digest = event_hash(fields)
        events.append(Event(**fields, hash=digest))
        prev = digest
    return events


def main() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    events = chain(DEVICE, INPUTS)
    good = build_batch(events, key)
    cases = [{"name": "genuine", "verdict": "ok", "batch": good},
             {"name": "tail batch chaining onto seq 2", "verdict": "ok", "batch": build_batch(events[2:], key)}]

    tampered = copy.deepcopy(good)
    tampered["events"][2]["body"]["amount"] = 30
    cases.append({"name": "body changed, hash kept", "verdict": "chain_broken", "batch": tampered})

    rehashed = copy.deepcopy(good)
    rehashed["events"][1]["body"]["language"] = "en"
    rehashed["events"][1]["hash"] = event_hash(rehashed["events"][1])
    cases.append({"name": "body changed, hash recomputed", "verdict": "chain_broken", "batch": rehashed})

    reordered = copy.deepcopy(good)
    reordered["events"][1], reordered["events"][2] = reordered["events"][2], reordered["events"][1]
    cases.append({"name": "events reordered", "verdict": "sequence_order", "batch": reordered})

    forged = build_batch(events, other)
    forged["manifest"]["key_id"] = good["manifest"]["key_id"]
    cases.append({"name": "signed by another key", "verdict": "bad_signature", "batch": forged})

    cases.append({"name": "another key's id", "verdict": "unknown_key", "batch": build_batch(events, other)})

    inflated = copy.deepcopy(good)
    inflated["manifest"]["count"] = 5
    cases.append({"name": "manifest changed after signing", "verdict": "bad_signature", "batch": inflated})

    truncated = copy.deepcopy(good)
    truncated["events"] = truncated["events"][:3]
    cases.append({"name": "last event dropped", "verdict": "manifest_mismatch", "batch": truncated})

    stranger = build_batch(chain("vector-kiosk-02", INPUTS), key)
    cases.append({"name": "another device's events", "verdict": "device_mismatch", "batch": stranger})

    malformed = copy.deepcopy(good)
    malformed["events"][0]["seq"] = "1"
    cases.append({"name": "seq as text", "verdict": "malformed_event", "batch": malformed})

    vectors = {
        "about": "Journal-sync wire vectors (sync/wire.py). Written by make_wire_vectors.py; checked by the kiosk "
                 "side (test_sync_wire_vectors.py) and city hall's ingest (test_cityhall_ingest_vectors.py).",
        "device_id": DEVICE,
        "private_key_seed_hex": SEED.hex(),
        "public_key": public_key_text(key),
        "key_id": good["manifest"]["key_id"],
        "inputs": INPUTS,
        "event_hashes": [e.hash for e in events],
        "manifest_signing_bytes": manifest_for(events, key).signing_bytes().decode("utf-8"),
        "signature": good["signature"],
        "encoded_batch_utf8": encode_batch(good).decode("utf-8"),
        "cases": cases,
    }
    (HERE / "wire_vectors.json").write_text(json.dumps(vectors, ensure_ascii=False, indent=1) + "\n",
                                            encoding="utf-8")


if __name__ == "__main__":
    main()
