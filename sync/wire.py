"""The journal-sync wire format, shared by the kiosk's uploader (builds batches) and city hall's ingest
(checks them). Pure: no I/O, no clock.

A batch is one JSON object (canonical encoding, kiosk.journal.chain.canonical_json)::

    {"v": 1,
     "manifest": {"alg": "ed25519", "count": 2, "device_id": "...", "first_seq": 41, "head_hash": "<hex>",
                  "key_id": "<16 hex>", "last_seq": 42, "prev_hash": "<hex of event 40, or 64 × '0'>"},
     "signature": "<base64 Ed25519 over MANIFEST_TAG + '\\n' + canonical_json(manifest)>",
     "events": [<kiosk.journal.chain.Event.to_wire()>, ...],
     "status": {"backlog": 10, "oldest_unsent_at": "...", "software_version": "...", "sent_at": "..."}}

The manifest binds the device, the sequence range, the hash the range chains onto and the hash it ends
in; every event's own hash covers its content and its predecessor's hash (kiosk.journal.chain), so the
one signature over the manifest covers every event of the batch. ``status`` is what the uploader
reports about itself (backlog, version); it is not journal history and is not part of the manifest,
but the HTTP request carrying it is signed with the device key (sync.signing).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.journal.chain import GENESIS_HASH, HASHED_FIELDS, ChainBroken, Event, canonical_json, verify_chain
from sync.schemas import STATUS_SCHEMA, IsoTime, SchemaViolation, check_event_body, strict_loads

WIRE_VERSION = 1
ALGORITHM = "ed25519"
MANIFEST_TAG = b"MADOGUCHI-JOURNAL-BATCH-V1"
#: Hard limits every batch obeys, whatever either end's configuration says.
MAX_BATCH_EVENTS = 10000
MAX_EVENT_BYTES = 16 * 1024
MAX_STATUS_BYTES = 4096
STATUS_FIELDS = ("backlog", "oldest_unsent_at", "software_version", "sent_at", "last_seq")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(\+00:00|Z)")
_TEXT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BatchRejected(ValueError):
    """A batch that must not be stored. ``reason`` is a stable code; ``seq`` the first bad event if any."""

    def __init__(self, reason: str, detail: str, seq: int | None = None, field: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.seq = seq
        self.field = field
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Manifest:
    device_id: str
    first_seq: int
    last_seq: int
    prev_hash: str
    head_hash: str
    count: int
    key_id: str
    alg: str = ALGORITHM

    def as_dict(self) -> dict[str, Any]:
        return {"alg": self.alg, "count": self.count, "device_id": self.device_id, "first_seq": self.first_seq,
                "head_hash": self.head_hash, "key_id": self.key_id, "last_seq": self.last_seq,
                "prev_hash": self.prev_hash}

    def signing_bytes(self) -> bytes:
        return MANIFEST_TAG + b"\n" + canonical_json(self.as_dict())


@dataclass(frozen=True)
class Batch:
    manifest: Manifest
    signature: bytes
    events: tuple[Event, ...]
    status: Mapping[str, Any]


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 over the raw public key: names the key a batch was signed with."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def event_wire_size(event: Event) -> int:
    """Bytes this event adds to an encoded batch (its JSON plus a separating comma)."""
    return len(canonical_json(event.to_wire())) + 1


def manifest_for(events: Sequence[Event], key: Ed25519PrivateKey) -> Manifest:
    if not events:
        raise ValueError("a batch holds at least one event")
    first, last = events[0], events[-1]
    return Manifest(first.device_id, first.seq, last.seq, first.prev_hash, last.hash, len(events), key_id(key))


def build_batch(events: Sequence[Event], key: Ed25519PrivateKey,
                status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object for ``events`` (consecutive, one device), signed with the device key."""
    manifest = manifest_for(events, key)
    return {"v": WIRE_VERSION, "manifest": manifest.as_dict(),
            "signature": base64.b64encode(key.sign(manifest.signing_bytes())).decode("ascii"),
            "events": [e.to_wire() for e in events], "status": dict(status or {})}


def encode_batch(batch: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(batch))


# --- decoding and checking (city hall side; the kiosk's tests use it too) -------------------------------


def _require(condition: bool, reason: str, detail: str, seq: int | None = None, field: str | None = None) -> None:
    if not condition:
        raise BatchRejected(reason, detail, seq, field)


def _schema(check: Any, value: Any, path: str, reason: str, seq: int | None = None) -> None:
    try:
        check(value, path)
    except SchemaViolation as exc:
        raise BatchRejected(reason, f"{exc.field} {exc.detail}", seq, exc.field) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_event(raw: Any, index: int) -> Event:
    _require(isinstance(raw, dict), "malformed_event", f"events[{index}] is not an object")
    fields = set(HASHED_FIELDS) | {"hash"}
    _require(set(raw) == fields, "malformed_event",
             f"events[{index}] must have exactly the fields {sorted(fields)}; has {sorted(raw)}")
    seq = raw["seq"]
    _require(_is_int(seq) and 1 <= seq < 2**62, "malformed_event", f"events[{index}].seq is not a positive integer")
    _require(isinstance(raw["device_id"], str), "malformed_event", f"events[{index}].device_id is not text", seq)
    _require(raw["txn_id"] is None or (isinstance(raw["txn_id"], str) and bool(_TEXT_ID.fullmatch(raw["txn_id"]))),
             "malformed_event", f"events[{index}].txn_id is not an id", seq)
    _require(isinstance(raw["kind"], str) and bool(_KIND.fullmatch(raw["kind"])), "malformed_event",
             f"events[{index}].kind is not an event kind", seq)
    _require(isinstance(raw["at"], str) and bool(_AT.fullmatch(raw["at"])), "malformed_event",
             f"events[{index}].at is not an ISO 8601 UTC time", seq, f"events[{index}].at")
    _schema(IsoTime().check, raw["at"], f"events[{index}].at", "malformed_event", seq)
    _require(isinstance(raw["body"], dict), "malformed_event", f"events[{index}].body is not an object", seq,
             f"events[{index}].body")
    _schema(lambda body, path: check_event_body(raw["kind"], body, path), raw["body"], f"events[{index}].body",
            "malformed_event", seq)
    for name in ("prev_hash", "hash"):
        _require(isinstance(raw[name], str) and bool(_HEX64.fullmatch(raw[name])), "malformed_event",
                 f"events[{index}].{name} is not 64 lower-case hex characters", seq)
    _require(len(canonical_json(raw)) <= MAX_EVENT_BYTES, "malformed_event",
             f"events[{index}] is larger than {MAX_EVENT_BYTES} bytes", seq)
    return Event.from_wire(raw)


def _decode_manifest(raw: Any) -> Manifest:
    _require(isinstance(raw, dict), "malformed_batch", "manifest is not an object")
    expected = {"alg", "count", "device_id", "first_seq", "head_hash", "key_id", "last_seq", "prev_hash"}
    _require(set(raw) == expected, "malformed_batch", f"manifest must have exactly the fields {sorted(expected)}")
    _require(raw["alg"] == ALGORITHM, "malformed_batch", f"manifest.alg must be {ALGORITHM!r}")
    for name in ("count", "first_seq", "last_seq"):
        _require(_is_int(raw[name]) and raw[name] >= 1, "malformed_batch", f"manifest.{name} is not a positive integer")
    for name in ("head_hash", "prev_hash"):
        _require(isinstance(raw[name], str) and bool(_HEX64.fullmatch(raw[name])), "malformed_batch",
                 f"manifest.{name} is not 64 lower-case hex characters")
    _require(isinstance(raw["key_id"], str) and bool(_KEY_ID.fullmatch(raw["key_id"])), "malformed_batch",
             "manifest.key_id is not 16 lower-case hex characters")
    _require(isinstance(raw["device_id"], str), "malformed_batch", "manifest.device_id is not text")
    return Manifest(raw["device_id"], raw["first_seq"], raw["last_seq"], raw["prev_hash"], raw["head_hash"],
                    raw["count"], raw["key_id"], raw["alg"])


def decode_batch(body: bytes, *, max_events: int = MAX_BATCH_EVENTS) -> Batch:
    """Parse and shape-check a batch (no signature or chain check yet). Raises BatchRejected
    ('malformed_batch' | 'malformed_event' | 'too_many_events')."""
    try:
        raw = strict_loads(body)
    except SchemaViolation as exc:
        raise BatchRejected("malformed_batch", exc.detail, None, exc.field) from None
    _require(isinstance(raw, dict), "malformed_batch", "the body is not a JSON object")
    _require(set(raw) <= {"v", "manifest", "signature", "events", "status"} and
             {"v", "manifest", "signature", "events"} <= set(raw), "malformed_batch",
             "a batch has the fields v, manifest, signature, events and optionally status")
    _require(raw["v"] == WIRE_VERSION, "malformed_batch", f"unsupported batch version {raw['v']!r}; "
                                                          f"this city hall speaks {WIRE_VERSION}")
    manifest = _decode_manifest(raw["manifest"])
    try:
        signature = base64.b64decode(raw["signature"], validate=True) if isinstance(raw["signature"], str) else b""
    except (binascii.Error, ValueError):
        signature = b""
    _require(len(signature) == 64, "malformed_batch", "signature is not a base64 Ed25519 signature")
    events_raw = raw["events"]
    _require(isinstance(events_raw, list) and len(events_raw) >= 1, "malformed_batch",
             "events must be a non-empty array")
    _require(len(events_raw) <= max_events, "too_many_events",
             f"a batch holds at most {max_events} events; this one has {len(events_raw)}")
    events = tuple(_decode_event(e, i) for i, e in enumerate(events_raw))
    status = raw.get("status") or {}
    _require(isinstance(status, dict) and set(status) <= set(STATUS_FIELDS) and
             len(canonical_json(status)) <= MAX_STATUS_BYTES, "malformed_batch",
             f"status is an object with at most the fields {list(STATUS_FIELDS)}", None, "status")
    _schema(STATUS_SCHEMA.check, status, "status", "malformed_batch")
    return Batch(manifest, signature, events, status)


def verify_batch(batch: Batch, device_id: str, public_key: Ed25519PublicKey) -> str:
    """Check that the batch is this device's, signed by its key, and one unbroken chain matching the
    manifest. Returns the head hash. Raises BatchRejected ('device_mismatch' | 'unknown_key' |
    'bad_signature' | 'manifest_mismatch' | 'chain_broken')."""
    m = batch.manifest
    _require(m.device_id == device_id, "device_mismatch",
             f"the batch is for device {m.device_id!r} but was sent by {device_id!r}")
    _require(m.key_id == key_id(public_key), "unknown_key",
             f"the batch was signed with key {m.key_id}, not with this device's registered key")
    try:
        public_key.verify(batch.signature, m.signing_bytes())
    except InvalidSignature:
        raise BatchRejected("bad_signature", "the batch signature does not verify with this device's key") from None
    events = batch.events
    stranger = next((e for e in events if e.device_id != device_id), None)
    _require(stranger is None, "device_mismatch", "an event of another device is in this batch",
             stranger.seq if stranger else None)
    _require(m.count == len(events) and m.first_seq == events[0].seq and m.last_seq == events[-1].seq
             and m.prev_hash == events[0].prev_hash, "manifest_mismatch",
             "the signed manifest does not describe the events sent")
    if m.first_seq == 1:
        _require(m.prev_hash == GENESIS_HASH, "chain_broken", "the first event must chain onto the genesis hash", 1)
    try:
        head = verify_chain(events, prev_hash=m.prev_hash, prev_seq=m.first_seq - 1)
    except ChainBroken as exc:
        reason = "sequence_order" if "expected seq" in str(exc) else "chain_broken"
        raise BatchRejected(reason, str(exc), exc.seq) from None
    _require(head == m.head_hash, "manifest_mismatch", "the events do not end in the signed head hash")
    return head
