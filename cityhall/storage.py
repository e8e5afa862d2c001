"""City hall's one storage layer, on SQLite (default, one file) or PostgreSQL (psycopg 3).

SQL is written once with ``?`` placeholders and portable types (TEXT, BIGINT, INTEGER); the PostgreSQL
connection rewrites the placeholders. Times are stored as fixed-width UTC ISO-8601 text
(``2026-04-01T03:04:05.123456Z``), which compares correctly as text on both back ends.

Schema changes are numbered migrations applied in order, each in its own transaction and recorded in
``schema_migrations``; ``migrate()`` is safe to run from several processes at once.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from cityhall.counter import schema as counter_schema

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_db_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the database; use timezone-aware UTC")
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def from_db_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


class StorageError(Exception):
    """The database could not be reached or refused an operation."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    #: Statements for one back end only (triggers are written differently on each).
    sqlite_only: tuple[str, ...] = ()
    postgres_only: tuple[str, ...] = ()

    def for_backend(self, postgres: bool) -> tuple[str, ...]:
        return self.statements + (self.postgres_only if postgres else self.sqlite_only)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "devices, challenges, sessions, issuances", (
        """CREATE TABLE devices (
               device_id  TEXT PRIMARY KEY,
               public_key TEXT NOT NULL,
               label      TEXT NOT NULL DEFAULT '',
               location   TEXT NOT NULL DEFAULT '',
               status     TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
               created_at TEXT NOT NULL,
               revoked_at TEXT)""",
        """CREATE TABLE request_nonces (
               device_id TEXT NOT NULL REFERENCES devices (device_id),
               nonce     TEXT NOT NULL,
               seen_at   TEXT NOT NULL,
               PRIMARY KEY (device_id, nonce))""",
        "CREATE INDEX request_nonces_seen_at ON request_nonces (seen_at)",
        """CREATE TABLE challenges (
               challenge_id TEXT PRIMARY KEY,
               device_id    TEXT NOT NULL REFERENCES devices (device_id),
               nonce        TEXT NOT NULL,
               created_at   TEXT NOT NULL,
               expires_at   TEXT NOT NULL,
               used_at      TEXT)""",
        """CREATE TABLE sessions (
               session_hash TEXT PRIMARY KEY,
               device_id    TEXT NOT NULL REFERENCES devices (device_id),
               card_serial  TEXT NOT NULL,
               resident_id  TEXT NOT NULL,
               created_at   TEXT NOT NULL,
               expires_at   TEXT NOT NULL)""",
        """CREATE TABLE issuance_counters (
               scope      TEXT PRIMARY KEY,
               last_value BIGINT NOT NULL)""",
        """CREATE TABLE issuance_requests (
               device_id      TEXT NOT NULL REFERENCES devices (device_id),
               transaction_id TEXT NOT NULL,
               request_hash   TEXT NOT NULL,
               session_hash   TEXT NOT NULL,
               resident_id    TEXT NOT NULL,
               payment_ref    TEXT NOT NULL,
               created_at     TEXT NOT NULL,
               PRIMARY KEY (device_id, transaction_id))""",
        """CREATE TABLE issuances (
               issuance_number TEXT PRIMARY KEY,
               device_id       TEXT NOT NULL,
               transaction_id  TEXT NOT NULL,
               position        INTEGER NOT NULL,
               cert_type       TEXT NOT NULL,
               tax_year        INTEGER,
               options         TEXT NOT NULL,
               copy_number     INTEGER NOT NULL,
               copies          INTEGER NOT NULL,
               fee_yen         INTEGER NOT NULL,
               place_of_issue  TEXT NOT NULL,
               sha256          TEXT,
               content_sha256  TEXT,
               status          TEXT NOT NULL CHECK (status IN ('issued', 'voided')),
               issued_at       TEXT NOT NULL,
               UNIQUE (device_id, transaction_id, position),
               FOREIGN KEY (device_id, transaction_id) REFERENCES issuance_requests (device_id, transaction_id))""",
    )),
    Migration(2, "journal ingest, security alerts, staff accounts", (
        # One row per kiosk journal event, exactly as the kiosk hashed it; (device_id, seq) is the
        # permanent dedupe key (a re-sent event is never stored twice, however late it comes).
        """CREATE TABLE journal_events (
               device_id   TEXT NOT NULL REFERENCES devices (device_id),
               seq         BIGINT NOT NULL,
               txn_id      TEXT,
               kind        TEXT NOT NULL,
               at          TEXT NOT NULL,
               body        TEXT NOT NULL,
               prev_hash   TEXT NOT NULL,
               hash        TEXT NOT NULL,
               received_at TEXT NOT NULL,
               PRIMARY KEY (device_id, seq))""",
        "CREATE INDEX journal_events_txn ON journal_events (txn_id)",
        "CREATE INDEX journal_events_at ON journal_events (device_id, at)",
        """CREATE TABLE journal_heads (
               device_id        TEXT PRIMARY KEY REFERENCES devices (device_id),
               last_seq         BIGINT NOT NULL,
               head_hash        TEXT NOT NULL,
               updated_at       TEXT NOT NULL,
               last_seen_at     TEXT NOT NULL,
               backlog          BIGINT NOT NULL DEFAULT 0,
               oldest_unsent_at TEXT,
               software_version TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE security_alerts (
               alert_id   TEXT PRIMARY KEY,
               device_id  TEXT NOT NULL,
               kind       TEXT NOT NULL,
               seq        BIGINT,
               detail     TEXT NOT NULL,
               created_at TEXT NOT NULL)""",
        "CREATE INDEX security_alerts_created ON security_alerts (created_at)",
        """CREATE TABLE staff_users (
               username      TEXT PRIMARY KEY,
               password_hash TEXT NOT NULL,
               display_name  TEXT NOT NULL DEFAULT '',
               created_at    TEXT NOT NULL,
               disabled_at   TEXT)""",
        """CREATE TABLE staff_sessions (
               token_hash TEXT PRIMARY KEY,
               username   TEXT NOT NULL REFERENCES staff_users (username),
               csrf_token TEXT NOT NULL,
               created_at TEXT NOT NULL,
               expires_at TEXT NOT NULL)""",
    )),
)

MIGRATIONS = MIGRATIONS + (Migration(counter_schema.VERSION, counter_schema.NAME, counter_schema.STATEMENTS,
                                     counter_schema.SQLITE_ONLY, counter_schema.POSTGRES_ONLY),)
LATEST_VERSION = MIGRATIONS[-1].version


class Transaction:
    """One open transaction; ``execute`` returns rows as dicts."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self._conn = conn
        self._postgres = postgres
        self.rowcount = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self._postgres:
            sql = sql.replace("%", "%%").replace("?", "%s")
        cur = self._conn.execute(sql, tuple(params))
        self.rowcount = cur.rowcount
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None


class Database:
    """A small pool of connections to one database; ``transaction()`` is the only way in."""

    def __init__(self, url: str, *, timeout_seconds: float = 10.0, pool_size: int = 16) -> None:
        self.url = url
        self.timeout = timeout_seconds
        if url.startswith("sqlite:///"):
            self.backend = "sqlite"
            self._path = Path(url.removeprefix("sqlite:///"))
            self._path.parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("postgresql://", "postgres://")):
            self.backend = "postgresql"
        else:
            raise StorageError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._closed = False

    @property
    def postgres(self) -> bool:
        return self.backend == "postgresql"

    def describe(self) -> str:
        if self.postgres:
            return "PostgreSQL " + self.url.split("@")[-1]
        return f"SQLite {self._path}"

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg  # only needed when configured

            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.timeout)),
                                       options=f"-c statement_timeout={int(self.timeout * 1000)} "
                                               f"-c lock_timeout={int(self.timeout * 1000)}")
            except psycopg.Error as exc:
                raise StorageError(f"cannot connect to {self.describe()}: {exc}") from None
        conn = sqlite3.connect(self._path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if mode.lower() != "wal" or conn.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            conn.close()
            raise StorageError(f"{self._path}: SQLite refused WAL mode or foreign keys")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A read-write transaction. On SQLite it takes the write lock at once (BEGIN IMMEDIATE), so two
        writers never deadlock on an upgrade; on PostgreSQL it runs at READ COMMITTED and relies on
        unique constraints and row locks."""
        if self._closed:
            raise StorageError("the database is closed")
        if not self._slots.acquire(timeout=self.timeout):
            raise StorageError(f"no free database connection after {self.timeout:.0f} s")
        conn = None
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            tx = Transaction(conn, self.postgres)
            try:
                if self.postgres:
                    with conn.transaction():
                        yield tx
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield tx
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            except Exception as exc:
                if self._is_connection_error(exc):
                    self._discard(conn)
                    conn = None
                    raise StorageError(f"{self.describe()}: {exc}") from exc
                raise
            if conn is not None:
                self._pool.put(conn)
                conn = None
        finally:
            if conn is not None:
                self._discard(conn)
            self._slots.release()

    def _is_connection_error(self, exc: Exception) -> bool:
        if self.postgres:
            import psycopg

            return isinstance(exc, psycopg.OperationalError)
        return isinstance(exc, sqlite3.OperationalError)

    @staticmethod
    def _discard(conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            pass

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._discard(self._pool.get_nowait())
            except queue.Empty:
                return

    # --- migrations ----------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.transaction() as tx:
            self._ensure_migration_table(tx)
            row = tx.one("SELECT MAX(version) AS v FROM schema_migrations")
        return int(row["v"] or 0) if row else 0

    def _ensure_migration_table(self, tx: Transaction) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "applied_at TEXT NOT NULL)")

    def migrate(self) -> list[int]:
        """Apply the missing migrations; returns the versions applied now."""
        applied: list[int] = []
        for migration in MIGRATIONS:
            with self.transaction() as tx:
                if self.postgres:
                    tx.execute("SELECT pg_advisory_xact_lock(7314001)")  # serialise concurrent migrators
                self._ensure_migration_table(tx)
                if tx.one("SELECT version FROM schema_migrations WHERE version = ?", (migration.version,)):
                    continue
                for statement in migration.for_backend(self.postgres):
                    tx.execute(statement)
                tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                           (migration.version, migration.name, to_db_time(datetime.now(timezone.utc))))
                applied.append(migration.version)
        return applied

    def require_current_schema(self) -> None:
        version = self.schema_version()
        if version != LATEST_VERSION:
            raise StorageError(f"{self.describe()} has schema version {version}, this program needs "
                               f"{LATEST_VERSION}; run `cityhall migrate`")
