"""The journal's canonical event encoding and SHA-256 hash chain.

Pure stdlib, shared by the kiosk journal (which writes the chain), the sync uploader and city hall's
ingest (which re-check it). The encoding is deterministic JSON: sorted keys, no spaces, UTF-8, so the
same event has the same bytes — and the same hash — on every machine.

    hash(n) = SHA-256( canonical({device_id, seq, txn_id, kind, at, body, prev_hash}) )
    prev_hash(1) = 64 × "0"
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("device_id", "seq", "txn_id", "kind", "at", "body", "prev_hash")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class Event:
    device_id: str
    seq: int
    txn_id: str | None
    kind: str
    at: str  # ISO 8601 UTC, e.g. 2026-11-29T10:00:00.123456+00:00
    body: Mapping[str, Any]
    prev_hash: str
    hash: str

    def hashed_part(self) -> dict[str, Any]:
        return {name: (dict(self.body) if name == "body" else getattr(self, name)) for name in HASHED_FIELDS}

    def to_wire(self) -> dict[str, Any]:
        return {**self.hashed_part(), "hash": self.hash}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> "Event":
        return cls(device_id=d["device_id"], seq=d["seq"], txn_id=d["txn_id"], kind=d["kind"], at=d["at"],
                   body=d["body"], prev_hash=d["prev_hash"], hash=d["hash"])


def event_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({name: fields[name] for name in HASHED_FIELDS})).hexdigest()


class ChainBroken(ValueError):
    def __init__(self, seq: int, why: str) -> None:
        self.seq = seq
        super().__init__(f"hash chain broken at seq {seq}: {why}")


def verify_chain(events: Iterable[Event], prev_hash: str = GENESIS_HASH, prev_seq: int = 0) -> str:
    """Check sequence continuity, links and hashes; return the head hash. Raises ChainBroken."""
    for ev in events:
        if ev.seq != prev_seq + 1:
            raise ChainBroken(ev.seq, f"expected seq {prev_seq + 1}")
        if ev.prev_hash != prev_hash:
            raise ChainBroken(ev.seq, "prev_hash does not match the previous event's hash")
        if event_hash(ev.hashed_part()) != ev.hash:
            raise ChainBroken(ev.seq, "content does not match its hash")
        prev_hash, prev_seq = ev.hash, ev.seq
    return prev_hash
