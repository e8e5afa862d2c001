from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from kiosk.errors import JournalCorrupt, JournalError, JournalPragmaMismatch
from kiosk.journal import REQUIRED_PRAGMAS, Journal, connect, read_pragmas
from kiosk.journal import db as journal_db
from kiosk.journal.store import FORBIDDEN_BODY_KEYS

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.sqlite3", "k-test-01")


def test_every_connection_has_the_durability_pragmas(tmp_path: Path) -> None:
    conn = connect(tmp_path / "j.sqlite3")
    assert read_pragmas(conn) == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}
    assert read_pragmas(conn) == REQUIRED_PRAGMAS
    reader = connect(tmp_path / "j.sqlite3", readonly=True)
    assert read_pragmas(reader) == REQUIRED_PRAGMAS


def test_a_connection_that_refuses_a_pragma_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = journal_db.read_pragmas
    monkeypatch.setattr(journal_db, "read_pragmas", lambda c: {**real(c), "synchronous": 1})
    with pytest.raises(JournalPragmaMismatch, match="synchronous=1"):
        connect(tmp_path / "j.sqlite3")


def test_journal_is_opened_only_through_the_factory() -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "kiosk", "sync"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    offenders = [f for f in files if f.endswith(".py") and f != "kiosk/journal/db.py"
                 and re.search(r"sqlite3\.connect|sqlite_utils\.Database\(\s*['\"/]", (ROOT / f).read_text())]
    assert offenders == []


def test_state_change_and_its_event_commit_together(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    txn = journal.begin_transaction("ja", "CARD_READING")
    before = (journal.transaction(txn), journal.last_seq())

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("crash between the two writes")

    monkeypatch.setattr(journal, "_append", boom)
    with pytest.raises(RuntimeError):
        journal.record(txn, "txn.state", {"to": "PIN_ENTRY"}, set={"state": "PIN_ENTRY"})
    monkeypatch.undo()
    assert (journal.transaction(txn), journal.last_seq()) == before


def test_events_are_append_only(journal: Journal) -> None:
    journal.append("test", {"n": 1})
    raw = sqlite3.connect(journal.path)
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(sql)


@pytest.mark.parametrize("key", sorted(FORBIDDEN_BODY_KEYS))
def test_personal_fields_are_refused(journal: Journal, key: str) -> None:
    with pytest.raises(ValueError, match="forbidden personal fields"):
        journal.append("test", {key: "x"})


def test_schema_has_no_column_for_personal_data(journal: Journal) -> None:
    raw = sqlite3.connect(journal.path)
    tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = {c[1].lower() for t in tables for c in raw.execute(f"PRAGMA table_info({t})")}
    assert columns & FORBIDDEN_BODY_KEYS == set()
    assert not any(re.search(r"name$|address|birth|pin$|number$", c) and c not in {"issuance_number", "job_name"}
                   for c in columns), columns


def test_hash_chain_detects_tampering(journal: Journal) -> None:
    for n in range(5):
        journal.append("test", {"n": n})
    head = journal.verify_chain()
    assert journal.events()[-1].hash == head
    raw = sqlite3.connect(journal.path)
    raw.execute("DROP TRIGGER events_append_only_update")
    raw.execute("UPDATE events SET body = '{\"n\":99}' WHERE seq = 3")
    raw.commit()
    with pytest.raises(JournalCorrupt, match="seq 3"):
        journal.verify_chain()
    with pytest.raises(JournalCorrupt):
        journal.check_at_start()


def test_money_reports_are_deduplicated_by_ref(journal: Journal) -> None:
    txn = journal.begin_transaction("ja", "PAYING")
    journal.record(txn, "payment.intent", {}, set={"payment_key": "k1"})
    journal.money_in("k1", 500, "coin", ref="k1:1")
    journal.money_in("k1", 500, "coin", ref="k1:1")  # the driver reports again after a crash
    journal.money_out("k1", 200, "change", ref="k1:2")
    row = journal.transaction(txn)
    assert (row.money_in, row.change_paid) == (500, 200)
    with pytest.raises(ValueError):
        journal.money_in("k1", -5, "coin")
    with pytest.raises(ValueError):
        journal.money_out("k1", 5, "tip")


def test_a_journal_belongs_to_one_device(tmp_path: Path) -> None:
    Journal(tmp_path / "j.sqlite3", "k-a").close()
    with pytest.raises(JournalError, match="belongs to device 'k-a'"):
        Journal(tmp_path / "j.sqlite3", "k-b")


def test_readonly_journal_reads_while_the_writer_writes(journal: Journal) -> None:
    journal.append("test", {"n": 1})
    reader = Journal(journal.path, "k-test-01", readonly=True)
    journal.append("test", {"n": 2})
    assert [e.body["n"] for e in reader.events()] == [1, 2]
    with pytest.raises(JournalError, match="read-only"):
        reader.append("test", {})


def test_an_unwritable_journal_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path, "k-test-01")
    j._conn.close()  # as if the storage went away under it
    with pytest.raises(JournalError, match="cannot start a write"):
        j.append("test", {})


def test_stats(journal: Journal) -> None:
    journal.append("a", {})
    journal.append("b", {})
    journal.set_acked_seq(1)
    s = journal.stats()
    assert (s.last_seq, s.acked_seq, s.unsynced, s.open_transactions) == (2, 1, 1, 0)
    assert s.size_bytes > 0
