"""The kiosk journal: append-only hash-chained events plus the current state of each transaction,
written together in one SQLite transaction (BEGIN IMMEDIATE … COMMIT), so a crash at any instant
leaves either both or neither.

What it stores is ids, certificate types, counts, amounts, outcomes and document hashes. It has no
column for names, addresses, birth dates, PINs or the individual number, and ``append`` refuses event
bodies with keys that would carry them.

It also implements kiosk.ports.MoneyLedger: payment drivers report each coin, note, capture, payout
and refund the moment it happens, and the transaction's money columns move in the same commit.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from kiosk.errors import JournalCorrupt, JournalError
from kiosk.journal.chain import GENESIS_HASH, ChainBroken, Event, canonical_json, event_hash, verify_chain
from kiosk.journal.db import connect

SCHEMA_VERSION = 1

#: Body keys that would carry personal data; refused whatever the value.
FORBIDDEN_BODY_KEYS = frozenset({"pin", "name", "kana", "address", "birth_date", "birthdate", "sex",
                                 "individual_number", "my_number", "mynumber", "kojin_bango", "phone"})

#: Money columns of a transaction, and the ledger reasons that move them.
MONEY_OUT_REASONS = {"change": "change_paid", "refund": "refunded", "cancel_return": "refunded"}


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class TransactionRow:
    txn_id: str
    state: str
    language: str
    created_at: str
    updated_at: str
    method: str | None
    payment_key: str | None
    amount_due: int
    order_json: str
    docs_expected: int
    docs_printed: int
    fees_printed: int
    money_in: int
    change_paid: int
    refunded: int
    voucher: int
    outcome: str | None

    @property
    def closed(self) -> bool:
        return self.outcome is not None

    @property
    def unmatched_yen(self) -> int:
        """Money in that no printed certificate, change, refund or voucher accounts for (0 when balanced)."""
        return self.money_in - self.fees_printed - self.change_paid - self.refunded - self.voucher


@dataclass(frozen=True)
class DocumentRow:
    txn_id: str
    document_id: str
    issuance_number: str
    cert_type: str
    fee_yen: int
    sha256: str
    job_name: str
    printed: int  # 0 not yet, 1 printed, -1 failed


@dataclass(frozen=True)
class JournalStats:
    path: str
    size_bytes: int
    last_seq: int
    last_event_at: str | None
    acked_seq: int
    unsynced: int
    oldest_unsynced_at: str | None
    open_transactions: int


def _create_schema(conn: sqlite3.Connection) -> None:
    import sqlite_utils  # schema work only: readers (uploader, kioskctl) never pay for the import

    db = sqlite_utils.Database(conn)
    with db.atomic():
        db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db["events"].create(
            {"seq": int, "device_id": str, "txn_id": str, "kind": str, "at": str, "body": str,
             "prev_hash": str, "hash": str},
            pk="seq", not_null={"device_id", "kind", "at", "body", "prev_hash", "hash"}, if_not_exists=True)
        db["transactions"].create(
            {"txn_id": str, "state": str, "language": str, "created_at": str, "updated_at": str,
             "method": str, "payment_key": str, "amount_due": int, "order_json": str,
             "docs_expected": int, "docs_printed": int, "fees_printed": int, "money_in": int,
             "change_paid": int, "refunded": int, "voucher": int, "outcome": str},
            pk="txn_id", not_null={"state", "language", "created_at", "updated_at"},
            defaults={"amount_due": 0, "order_json": "[]", "docs_expected": 0, "docs_printed": 0,
                      "fees_printed": 0, "money_in": 0, "change_paid": 0, "refunded": 0, "voucher": 0},
            if_not_exists=True)
        db["documents"].create(
            {"document_id": str, "txn_id": str, "issuance_number": str, "cert_type": str, "fee_yen": int,
             "sha256": str, "job_name": str, "printed": int},
            pk="document_id", foreign_keys=[("txn_id", "transactions", "txn_id")],
            defaults={"printed": 0}, if_not_exists=True)
        db["money_refs"].create({"ref": str, "seq": int}, pk="ref", if_not_exists=True)
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS transactions_payment_key ON transactions(payment_key)")
        conn.execute("CREATE INDEX IF NOT EXISTS transactions_open ON transactions(outcome) WHERE outcome IS NULL")
        conn.execute("CREATE INDEX IF NOT EXISTS events_txn ON events(txn_id)")
        for op in ("UPDATE", "DELETE"):
            conn.execute(f"""CREATE TRIGGER IF NOT EXISTS events_append_only_{op.lower()}
                             BEFORE {op} ON events BEGIN
                             SELECT RAISE(ABORT, 'the journal is append-only'); END""")
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('acked_seq', '0')")
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('txn_counter', '0')")


class Journal:
    """The kiosk's journal. Thread-safe: writes are serialised by a lock on one connection."""

    def __init__(self, path: str | Path, device_id: str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.device_id = device_id
        self.readonly = readonly
        self._lock = threading.RLock()
        self._conn = connect(self.path, readonly=readonly)
        if not readonly:
            try:
                _create_schema(self._conn)
            except sqlite3.Error as exc:
                raise JournalError(f"cannot prepare journal {self.path}: {exc}") from exc
            stored = self._meta("device_id")
            if stored is None:
                self._conn.execute("INSERT INTO meta(key, value) VALUES ('device_id', ?)", (device_id,))
            elif stored != device_id:
                raise JournalError(f"journal {self.path} belongs to device {stored!r}, not {device_id!r}; "
                                   "a journal is never shared between kiosks")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- low level ------------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction; any SQLite error becomes JournalError (the kiosk goes out of service)."""
        if self.readonly:
            raise JournalError("this journal connection is read-only")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path} cannot start a write: {exc}") from exc
            try:
                yield self._conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise JournalError(f"journal {self.path} write failed: {exc}; the kiosk stops serving "
                                       "until a technician checks the storage") from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                # Never retry a failed commit blindly (fsyncgate): roll back and stop serving.
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise JournalError(f"journal {self.path} commit failed: {exc}; the kiosk stops serving") from exc

    def _append(self, conn: sqlite3.Connection, kind: str, body: Mapping[str, Any], txn_id: str | None) -> Event:
        bad = FORBIDDEN_BODY_KEYS.intersection(k.lower() for k in body)
        if bad:
            raise ValueError(f"journal event {kind!r} carries forbidden personal fields: {sorted(bad)}")
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (row[0] + 1, row[1]) if row else (1, GENESIS_HASH)
        fields = {"device_id": self.device_id, "seq": seq, "txn_id": txn_id, "kind": kind, "at": utc_now(),
                  "body": json.loads(canonical_json(dict(body))), "prev_hash": prev_hash}
        digest = event_hash(fields)
        conn.execute("INSERT INTO events(seq, device_id, txn_id, kind, at, body, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (seq, self.device_id, txn_id, kind, fields["at"], canonical_json(fields["body"]).decode(),
                      prev_hash, digest))
        return Event(**fields, hash=digest)

    def _update_txn(self, conn: sqlite3.Connection, txn_id: str, set_: Mapping[str, Any],
                    add: Mapping[str, int]) -> None:
        cols = dict(set_)
        assignments = [f"{c} = ?" for c in cols] + [f"{c} = {c} + ?" for c in add] + ["updated_at = ?"]
        params = list(cols.values()) + list(add.values()) + [utc_now(), txn_id]
        cur = conn.execute(f"UPDATE transactions SET {', '.join(assignments)} WHERE txn_id = ?", params)
        if cur.rowcount != 1:
            raise JournalError(f"transaction {txn_id} is not in the journal")

    # --- writing --------------------------------------------------------------------------------------

    def append(self, kind: str, body: Mapping[str, Any] | None = None, txn_id: str | None = None) -> Event:
        with self._write() as conn:
            return self._append(conn, kind, body or {}, txn_id)

    def record(self, txn_id: str, kind: str, body: Mapping[str, Any] | None = None, *,
               set: Mapping[str, Any] | None = None, add: Mapping[str, int] | None = None) -> Event:
        """Change a transaction's row and journal the event describing it, in one commit."""
        with self._write() as conn:
            self._update_txn(conn, txn_id, set or {}, add or {})
            return self._append(conn, kind, body or {}, txn_id)

    def begin_transaction(self, language: str, state: str) -> str:
        """Create a transaction with a human-readable id (printed on the receipt)."""
        with self._write() as conn:
            counter = int(conn.execute("SELECT value FROM meta WHERE key = 'txn_counter'").fetchone()[0]) + 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'txn_counter'", (str(counter),))
            txn_id = f"{self.device_id}-{counter:06d}"
            now = utc_now()
            conn.execute("INSERT INTO transactions(txn_id, state, language, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (txn_id, state, language, now, now))
            self._append(conn, "txn.started", {"state": state, "language": language}, txn_id)
            return txn_id

    def add_documents(self, txn_id: str, documents: list[DocumentRow], body: Mapping[str, Any]) -> Event:
        with self._write() as conn:
            for d in documents:
                conn.execute("INSERT OR IGNORE INTO documents(document_id, txn_id, issuance_number, cert_type, "
                             "fee_yen, sha256, job_name, printed) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                             (d.document_id, txn_id, d.issuance_number, d.cert_type, d.fee_yen, d.sha256,
                              d.job_name))
            self._update_txn(conn, txn_id, {"docs_expected": len(documents)}, {})
            return self._append(conn, "issue.outcome", body, txn_id)

    def mark_document(self, txn_id: str, document_id: str, printed: bool, body: Mapping[str, Any]) -> Event:
        """Record a document's print outcome; a printed document's fee counts as delivered."""
        with self._write() as conn:
            row = conn.execute("SELECT fee_yen, printed FROM documents WHERE document_id = ? AND txn_id = ?",
                               (document_id, txn_id)).fetchone()
            if row is None:
                raise JournalError(f"document {document_id} of {txn_id} is not in the journal")
            if row[1] == 1:
                raise JournalError(f"document {document_id} is already recorded as printed")
            conn.execute("UPDATE documents SET printed = ? WHERE document_id = ?", (1 if printed else -1, document_id))
            add = {"docs_printed": 1, "fees_printed": row[0]} if printed else {}
            self._update_txn(conn, txn_id, {}, add)
            return self._append(conn, "print.outcome", {"document_id": document_id, "printed": printed, **body},
                                txn_id)

    def close_transaction(self, txn_id: str, outcome: str, state: str, body: Mapping[str, Any] | None = None) -> Event:
        return self.record(txn_id, "txn.closed", {"outcome": outcome, **(body or {})},
                           set={"outcome": outcome, "state": state})

    # --- MoneyLedger ----------------------------------------------------------------------------------

    def _txn_for_key(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT txn_id FROM transactions WHERE payment_key = ?", (key,)).fetchone()
        return row[0] if row else None

    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None:
        self._money(key, amount, "money.in", {"source": source}, "money_in", ref)

    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None:
        column = MONEY_OUT_REASONS.get(reason)
        if column is None:
            raise ValueError(f"unknown money-out reason {reason!r}; one of {sorted(MONEY_OUT_REASONS)}")
        self._money(key, amount, "money.out", {"reason": reason}, column, ref)

    def record_voucher(self, txn_id: str, amount: int, code: str, expires_at: dt.datetime) -> Event:
        """A 返金引換券: ``code`` is its signed code (sync/voucher.py), which city hall's counter verifies."""
        return self.record(txn_id, "voucher.issued",
                           {"amount": amount, "voucher_code": code, "expires_at": expires_at.isoformat()},
                           add={"voucher": amount})

    def _money(self, key: str, amount: int, kind: str, body: dict[str, Any], column: str, ref: str) -> None:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ValueError(f"money amounts are non-negative integer yen, got {amount!r}")
        if amount == 0:
            return
        with self._write() as conn:
            if ref and conn.execute("SELECT 1 FROM money_refs WHERE ref = ?", (ref,)).fetchone():
                return  # already recorded: a driver's replay after a crash or a retried refund
            txn_id = self._txn_for_key(conn, key)
            if txn_id is not None:
                self._update_txn(conn, txn_id, {}, {column: amount})
            event = self._append(conn, kind, {"payment_key": key, "amount": amount, "ref": ref, **body}, txn_id)
            if ref:
                conn.execute("INSERT INTO money_refs(ref, seq) VALUES (?, ?)", (ref, event.seq))

    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None:
        with self._write() as conn:
            self._append(conn, "alarm", {"payment_key": key, "code": code, "detail": detail,
                                         "amount_at_risk": amount_at_risk}, self._txn_for_key(conn, key))

    # --- reading --------------------------------------------------------------------------------------

    def _row(self, cur: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
        return {d[0]: v for d, v in zip(cur.description, row)}

    def transaction(self, txn_id: str) -> TransactionRow:
        with self._lock:
            cur = self._conn.execute("SELECT * FROM transactions WHERE txn_id = ?", (txn_id,))
            row = cur.fetchone()
            if row is None:
                raise KeyError(txn_id)
            return TransactionRow(**self._row(cur, row))

    def transactions(self, *, open_only: bool = False) -> list[TransactionRow]:
        with self._lock:
            where = "WHERE outcome IS NULL" if open_only else ""
            cur = self._conn.execute(f"SELECT * FROM transactions {where} ORDER BY created_at, txn_id")
            return [TransactionRow(**self._row(cur, r)) for r in cur.fetchall()]

    def documents(self, txn_id: str) -> list[DocumentRow]:
        with self._lock:
            cur = self._conn.execute("SELECT * FROM documents WHERE txn_id = ? ORDER BY job_name", (txn_id,))
            return [DocumentRow(**self._row(cur, r)) for r in cur.fetchall()]

    def transaction_in_progress(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM transactions WHERE outcome IS NULL LIMIT 1").fetchone() is not None

    def events(self, after_seq: int = 0, limit: int | None = None, txn_id: str | None = None) -> list[Event]:
        sql = "SELECT device_id, seq, txn_id, kind, at, body, prev_hash, hash FROM events WHERE seq > ?"
        params: list[Any] = [after_seq]
        if txn_id is not None:
            sql += " AND txn_id = ?"
            params.append(txn_id)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [Event(device_id=r[0], seq=r[1], txn_id=r[2], kind=r[3], at=r[4], body=json.loads(r[5]),
                      prev_hash=r[6], hash=r[7]) for r in rows]

    def event_at(self, seq: int) -> Event | None:
        found = self.events(after_seq=seq - 1, limit=1)
        return found[0] if found and found[0].seq == seq else None

    def last_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return row[0] or 0

    def acked_seq(self) -> int:
        with self._lock:
            value = self._meta("acked_seq")
        return int(value or 0)

    def set_acked_seq(self, seq: int) -> None:
        """What city hall says it holds. Kept in meta, not as an event: acks are not journal history."""
        with self._write() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'acked_seq'", (str(seq),))
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('acked_at', ?)", (utc_now(),))

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        if key in ("schema_version", "device_id", "txn_counter"):
            raise ValueError(f"meta key {key!r} is managed by the journal itself")
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- checks ---------------------------------------------------------------------------------------

    def integrity_check(self) -> str:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def verify_chain(self) -> str:
        """Re-hash every event; return the head hash or raise JournalCorrupt."""
        try:
            return verify_chain(self.events())
        except ChainBroken as exc:
            raise JournalCorrupt(f"journal {self.path}: {exc}; keep the file for forensics") from exc

    def check_at_start(self) -> None:
        """quick_check + chain; on failure the kiosk goes out of service and keeps the file as it is."""
        with self._lock:
            result = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise JournalCorrupt(f"journal {self.path} failed PRAGMA quick_check: {result}")
        self.verify_chain()

    def stats(self) -> JournalStats:
        acked = self.acked_seq()
        with self._lock:
            last = self._conn.execute("SELECT MAX(seq), MAX(at) FROM events").fetchone()
            unsynced = self._conn.execute("SELECT COUNT(*), MIN(at) FROM events WHERE seq > ?", (acked,)).fetchone()
            open_count = self._conn.execute("SELECT COUNT(*) FROM transactions WHERE outcome IS NULL").fetchone()[0]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return JournalStats(str(self.path), size, last[0] or 0, last[1], acked, unsynced[0], unsynced[1], open_count)
