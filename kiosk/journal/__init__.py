"""The kiosk journal: durable, append-only, hash-chained. See store.py (writing and reading), db.py
(the one connection factory) and chain.py (the canonical encoding shared with sync and city hall)."""
from kiosk.journal.chain import GENESIS_HASH, ChainBroken, Event, canonical_json, event_hash, verify_chain
from kiosk.journal.db import REQUIRED_PRAGMAS, connect, read_pragmas
from kiosk.journal.store import DocumentRow, Journal, JournalStats, TransactionRow, utc_now

__all__ = ["GENESIS_HASH", "ChainBroken", "Event", "canonical_json", "event_hash", "verify_chain",
           "REQUIRED_PRAGMAS", "connect", "read_pragmas", "DocumentRow", "Journal", "JournalStats",
           "TransactionRow", "utc_now"]
