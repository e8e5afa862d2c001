"""The ONE connection factory for the journal. Every connection is WAL, synchronous=FULL, with foreign
keys and a busy timeout, and each setting is read back and checked: a connection that did not accept
them is refused (JournalPragmaMismatch), never used.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from kiosk.errors import JournalError, JournalPragmaMismatch

BUSY_TIMEOUT_MS = 5000

# pragma → value read back after setting it
REQUIRED_PRAGMAS: dict[str, object] = {
    "journal_mode": "wal",
    "synchronous": 2,  # FULL: a committed transaction survives power loss
    "foreign_keys": 1,
    "busy_timeout": BUSY_TIMEOUT_MS,
}


def read_pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in REQUIRED_PRAGMAS}


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """Open the journal. ``readonly`` connections (sync uploader, kioskctl) never write."""
    p = Path(path)
    try:
        if readonly:
            if not p.exists():
                raise JournalError(f"journal {p} does not exist yet; start the kiosk once to create it")
            conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        found = read_pragmas(conn)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {p}: {exc}; check the disk and its permissions") from exc
    wrong = {k: v for k, v in found.items() if v != REQUIRED_PRAGMAS[k]}
    if wrong:
        conn.close()
        detail = ", ".join(f"{k}={v!r} (wanted {REQUIRED_PRAGMAS[k]!r})" for k, v in wrong.items())
        raise JournalPragmaMismatch(f"journal {p} refused its durability settings: {detail}")
    return conn
