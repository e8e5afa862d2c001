"""Journal ingest: each kiosk's hash-chained journal events arrive in signed batches (sync.wire) and are
stored exactly once, in order, per device.

    POST /v1/journal/batches    a batch; answers {"last_seq", "head_hash"}: the highest sequence held
    POST /v1/journal/heartbeat  the uploader's status (backlog, version); answers the same head

Checks, in order: body size (413), the signed request (401, the shared ``authenticated_device``),
the batch's shape (422), its manifest signature (401), the chain inside it (422), then — in one
database transaction with the device's head row locked — the sequence against what is held:

- events at or below the held head must be byte-for-byte what is stored (an identical re-send is a
  no-op and gets the same answer); a different hash there is a fork (409 ``fork`` + security alert);
- the first new event must be exactly head + 1 (else 409 ``sequence_gap`` with ``expected_seq``) and
  chain onto the held head hash (else 409 ``fork``).

The primary key (device_id, seq) makes the dedupe permanent: it never expires, whatever the outage.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Iterable, Mapping

from fastapi import Depends, FastAPI, Request

from cityhall.config import CounterSection
from cityhall.counter import alarms as counter_alarms
from cityhall.counter.projection import apply_events
from cityhall.requestauth import AuthenticatedRequest, authenticated_device, limited_body, set_body_limit
from cityhall.devices import Device
from cityhall.service import ApiError
from cityhall.storage import Database, Transaction, to_db_time
from kiosk.journal.chain import GENESIS_HASH, ChainBroken, Event, canonical_json, verify_chain
from sync.schemas import HEARTBEAT_SCHEMA, SchemaViolation, strict_loads
from sync.wire import STATUS_FIELDS, Batch, BatchRejected, decode_batch, verify_batch

log = logging.getLogger("cityhall.ingest")

BATCH_PATH = "/v1/journal/batches"
HEARTBEAT_PATH = "/v1/journal/heartbeat"
#: Largest batch body accepted (the uploader's default cap is 512 KiB; a 413 tells it the limit).
MAX_BATCH_BODY_BYTES = 2 * 1024 * 1024
MAX_HEARTBEAT_BODY_BYTES = 8 * 1024
#: Rows per INSERT statement (well under SQLite's and PostgreSQL's bound-parameter limits).
INSERT_CHUNK = 200
#: An identical alert (device, kind, seq) is not raised again within this window.
ALERT_QUIET = timedelta(hours=1)

#: BatchRejected reason → HTTP status; the reasons in ALERTING also raise a security alert.
REASON_STATUS = {"malformed_batch": 422, "malformed_event": 422, "too_many_events": 413,
                 "device_mismatch": 403, "unknown_key": 401, "bad_signature": 401, "manifest_mismatch": 422,
                 "chain_broken": 422, "sequence_order": 422}
ALERTING = {"device_mismatch", "unknown_key", "bad_signature", "manifest_mismatch", "chain_broken"}
#: 401 reasons of the request signature that are worth an alert on this endpoint.
AUTH_ALERTS = {"unknown_device", "device_revoked", "bad_signature", "body_mismatch", "nonce_reused"}


@dataclass(frozen=True)
class Head:
    last_seq: int
    head_hash: str

    def ack(self) -> dict[str, Any]:
        return {"last_seq": self.last_seq, "head_hash": self.head_hash}


def _status_columns(status: Mapping[str, Any]) -> tuple[int, str | None, str]:
    backlog = status.get("backlog")
    oldest = status.get("oldest_unsent_at")
    version = status.get("software_version")
    return (backlog if isinstance(backlog, int) and not isinstance(backlog, bool) and backlog >= 0 else 0,
            oldest if isinstance(oldest, str) and len(oldest) <= 40 else None,
            version[:64] if isinstance(version, str) else "")


class JournalStore:
    """Ingested journals on city hall's database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database, counter: CounterSection | None = None) -> None:
        self.db = db
        self.counter = counter or CounterSection()

    # --- ingest ---------------------------------------------------------------------------------------

    def _lock_head(self, tx: Transaction, device_id: str, now: str) -> Head:
        tx.execute("INSERT INTO journal_heads (device_id, last_seq, head_hash, updated_at, last_seen_at) "
                   "VALUES (?, 0, ?, ?, ?) ON CONFLICT DO NOTHING", (device_id, GENESIS_HASH, now, now))
        row = tx.one("SELECT last_seq, head_hash FROM journal_heads WHERE device_id = ?"
                     + (" FOR UPDATE" if self.db.postgres else ""), (device_id,))
        assert row is not None
        return Head(int(row["last_seq"]), row["head_hash"])

    def ingest(self, device: Device, body: bytes, now: datetime) -> dict[str, Any]:
        try:
            batch = decode_batch(body)
            verify_batch(batch, device.device_id, device.key())
        except BatchRejected as exc:
            if exc.reason in ALERTING:
                self.alert(device.device_id, exc.reason, exc.detail, exc.seq, now)
            raise ApiError(REASON_STATUS[exc.reason], exc.reason, exc.detail,
                           **({"seq": exc.seq} if exc.seq is not None else {}),
                           **({"field": exc.field} if exc.field is not None else {})) from None
        stamp = to_db_time(now)
        backlog, oldest, version = _status_columns(batch.status)
        refusal: ApiError | None = None
        with self.db.transaction() as tx:
            head = self._lock_head(tx, device.device_id, stamp)
            refusal = self._check_against_held(tx, device.device_id, batch, head)
            new = [e for e in batch.events if e.seq > head.last_seq] if refusal is None else []
            if new:
                self._insert(tx, new, stamp)
                head = Head(new[-1].seq, new[-1].hash)
                # The counter's projection and alarms move with the events, in this same transaction.
                drafts = apply_events(tx, device.device_id, new, self.db.postgres)
                counter_alarms.store(tx, device.device_id, drafts, now, self.counter.webhook_enabled)
            if refusal is None:
                counter_alarms.clock_drift(tx, device.device_id, batch.status.get("sent_at"), now,
                                           self.counter.clock_drift_seconds, self.counter.webhook_enabled)
            if new:
                tx.execute("UPDATE journal_heads SET last_seq = ?, head_hash = ?, updated_at = ? WHERE device_id = ?",
                           (head.last_seq, head.head_hash, stamp, device.device_id))
            tx.execute("UPDATE journal_heads SET last_seen_at = ?, backlog = ?, oldest_unsent_at = ?, "
                       "software_version = ? WHERE device_id = ?", (stamp, backlog, oldest, version, device.device_id))
        if refusal is not None:
            if refusal.error == "fork":
                self.alert(device.device_id, "fork", refusal.detail, refusal.extra.get("seq"), now)
            elif refusal.error == "sequence_gap":
                self.alert(device.device_id, "gap", refusal.detail, refusal.extra.get("expected_seq"), now)
            raise refusal
        if new:
            log.info("journal of %s: stored seq %d-%d (%d events)", device.device_id, new[0].seq, new[-1].seq,
                     len(new))
        return head.ack()

    def _check_against_held(self, tx: Transaction, device_id: str, batch: Batch, head: Head) -> ApiError | None:
        m = batch.manifest
        if m.first_seq > head.last_seq + 1:
            return ApiError(409, "sequence_gap", f"city hall holds up to seq {head.last_seq}; this batch starts at "
                                                 f"{m.first_seq}; send from {head.last_seq + 1}",
                            expected_seq=head.last_seq + 1, **head.ack())
        if m.first_seq <= head.last_seq:
            upto = min(m.last_seq, head.last_seq)
            stored = {int(r["seq"]): r["hash"] for r in tx.execute(
                "SELECT seq, hash FROM journal_events WHERE device_id = ? AND seq >= ? AND seq <= ?",
                (device_id, m.first_seq, upto))}
            for event in batch.events:
                if event.seq > upto:
                    break
                if stored.get(event.seq) != event.hash:
                    return ApiError(409, "fork", f"seq {event.seq} differs from the event city hall already holds "
                                                 "(restored or altered journal?); the batch was not stored",
                                    seq=event.seq, **head.ack())
            return None
        if m.prev_hash != head.head_hash:
            return ApiError(409, "fork", f"seq {m.first_seq} does not chain onto the event city hall holds at seq "
                                         f"{head.last_seq}; the batch was not stored", seq=m.first_seq, **head.ack())
        return None

    def _insert(self, tx: Transaction, events: list[Event], stamp: str) -> None:
        for start in range(0, len(events), INSERT_CHUNK):
            chunk = events[start:start + INSERT_CHUNK]
            params: list[Any] = []
            for e in chunk:
                params += [e.device_id, e.seq, e.txn_id, e.kind, e.at, canonical_json(dict(e.body)).decode("utf-8"),
                           e.prev_hash, e.hash, stamp]
            tx.execute("INSERT INTO journal_events (device_id, seq, txn_id, kind, at, body, prev_hash, hash, "
                       "received_at) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)), params)

    # --- heartbeat and reading ------------------------------------------------------------------------

    def heartbeat(self, device: Device, body: bytes, now: datetime) -> dict[str, Any]:
        try:
            raw = strict_loads(body or b"{}")
            HEARTBEAT_SCHEMA.check(raw, "")
        except SchemaViolation as exc:
            raise ApiError(422, "invalid_request", f"{exc.detail} (a heartbeat is {{\"status\": {{...}}}} with at "
                                                   f"most the fields {list(STATUS_FIELDS)})", field=exc.field) from None
        status = raw.get("status", {})
        backlog, oldest, version = _status_columns(status)
        stamp = to_db_time(now)
        with self.db.transaction() as tx:
            head = self._lock_head(tx, device.device_id, stamp)
            tx.execute("UPDATE journal_heads SET last_seen_at = ?, backlog = ?, oldest_unsent_at = ?, "
                       "software_version = ? WHERE device_id = ?", (stamp, backlog, oldest, version, device.device_id))
        return head.ack()

    def head(self, device_id: str) -> Head:
        with self.db.transaction() as tx:
            row = tx.one("SELECT last_seq, head_hash FROM journal_heads WHERE device_id = ?", (device_id,))
        return Head(int(row["last_seq"]), row["head_hash"]) if row else Head(0, GENESIS_HASH)

    def events(self, device_id: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        sql = ("SELECT device_id, seq, txn_id, kind, at, body, prev_hash, hash FROM journal_events "
               "WHERE device_id = ? AND seq > ? ORDER BY seq")
        params: list[Any] = [device_id, after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self.db.transaction() as tx:
            rows = tx.execute(sql, params)
        return [_event(r) for r in rows]

    def verify_device_chain(self, device_id: str, page: int = 5000) -> int:
        """Re-hash a device's whole stored journal from seq 1; returns the number of events. Raises ChainBroken."""
        prev_hash, prev_seq, count = GENESIS_HASH, 0, 0
        while True:
            chunk = self.events(device_id, prev_seq, page)
            if not chunk:
                return count
            prev_hash = verify_chain(chunk, prev_hash, prev_seq)
            prev_seq, count = chunk[-1].seq, count + len(chunk)

    # --- alerts ---------------------------------------------------------------------------------------

    def alert(self, device_id: str, kind: str, detail: str, seq: int | None, now: datetime) -> None:
        log.warning("SECURITY ALERT %s for device %s%s: %s", kind, device_id,
                    f" at seq {seq}" if seq is not None else "", detail)
        with self.db.transaction() as tx:
            recent = tx.one("SELECT alert_id FROM security_alerts WHERE device_id = ? AND kind = ? "
                            "AND COALESCE(seq, -1) = ? AND created_at > ?",
                            (device_id, kind, -1 if seq is None else seq, to_db_time(now - ALERT_QUIET)))
            if recent is None:
                tx.execute("INSERT INTO security_alerts (alert_id, device_id, kind, seq, detail, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (secrets.token_hex(8), device_id[:64], kind, seq, detail[:500], to_db_time(now)))

    def alerts(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            return tx.execute("SELECT * FROM security_alerts ORDER BY created_at DESC LIMIT ?", (limit,))


def _event(row: Mapping[str, Any]) -> Event:
    return Event(device_id=row["device_id"], seq=int(row["seq"]), txn_id=row["txn_id"], kind=row["kind"],
                 at=row["at"], body=json.loads(row["body"]), prev_hash=row["prev_hash"], hash=row["hash"])


def rows_to_events(rows: Iterable[Mapping[str, Any]]) -> list[Event]:
    return [_event(r) for r in rows]


def install(app: FastAPI) -> JournalStore:
    """Add the ingest routes to city hall's app (called by cityhall.app.create_app)."""
    service = app.state.service
    store = JournalStore(service.db, service.config.counter)
    app.state.journal_store = store
    set_body_limit(app, BATCH_PATH, MAX_BATCH_BODY_BYTES)
    set_body_limit(app, HEARTBEAT_PATH, MAX_HEARTBEAT_BODY_BYTES)

    def journal_device(request: Request, body: Annotated[bytes, Depends(limited_body)]) -> AuthenticatedRequest:
        """The shared device authentication, plus a security alert when it fails on the journal endpoints."""
        try:
            return authenticated_device(request, body)
        except ApiError as exc:
            reason = exc.extra.get("reason")
            if exc.status == 401 and reason in AUTH_ALERTS:
                store.alert(request.headers.get("x-madoguchi-device", "?")[:64], reason, exc.detail, None,
                            datetime.fromtimestamp(service.clock(), timezone.utc))
            raise

    @app.post(BATCH_PATH, tags=["journal"], summary="Store a signed batch of journal events (idempotent per "
                                                     "device and sequence)")
    def ingest_batch(auth: AuthenticatedRequest = Depends(journal_device)) -> dict[str, Any]:
        return store.ingest(auth.device, auth.body, service.now())

    @app.post(HEARTBEAT_PATH, tags=["journal"], summary="The uploader's status; answers the highest sequence held")
    def heartbeat(auth: AuthenticatedRequest = Depends(journal_device)) -> dict[str, Any]:
        return store.heartbeat(auth.device, auth.body, service.now())

    return store


__all__ = ["JournalStore", "Head", "install", "ChainBroken", "BATCH_PATH", "HEARTBEAT_PATH", "MAX_BATCH_BODY_BYTES"]
