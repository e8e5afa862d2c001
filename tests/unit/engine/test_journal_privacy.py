"""After a full run of transactions, nothing in the journal file — any table, any column, the WAL —
holds the PIN or a 12-digit number (the individual number), and no personal field names."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from kiosk.engine import events as ev
from kiosk.ports import OrderLine
from tests.fakes import GOOD_PIN
from tests.unit.engine.conftest import make_rig

WRONG_PIN = "9517"


def test_no_pin_and_no_individual_number_anywhere_in_the_journal(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    for method in ("cash", "qr", "cash"):
        rig.place_card()
        rig.pin(WRONG_PIN)
        rig.pin(GOOD_PIN)
        rig.remove_card()
        rig.send(ev.ChooseOrder((OrderLine("juminhyo", 2, 300), OrderLine("kazei", 1, 300, tax_year=2025))))
        rig.send(ev.ChoosePayment(method))
        key = rig.journal.transaction(rig.view.txn_id).payment_key
        if method == "cash":
            rig.cash.insert(key, 1000)
        else:
            rig.qr.approve(key)
        rig.tick()
        assert rig.state == "DONE"
        rig.send(ev.Dismiss())
    rig.journal.close()

    raw = sqlite3.connect(tmp_path / "journal.sqlite3")
    hashes = {"hash", "prev_hash", "sha256"}  # hex digests: random hex, not data
    texts: list[str] = []
    for (table,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        columns = [c[1] for c in raw.execute(f"PRAGMA table_info({table})") if c[1] not in hashes]
        for row in raw.execute(f"SELECT {', '.join(columns)} FROM {table}"):
            texts += [str(v) for v in row if v is not None]
    blob = "\n".join(texts)
    assert len(texts) > 100
    # a PIN is four digits standing alone; the same digits inside a longer number (a timestamp's
    # microseconds, a sequence) are not the PIN, and matching them made this test fail by chance
    for pin in (GOOD_PIN, WRONG_PIN):
        assert not re.search(rf"(?<!\d){pin}(?!\d)", blob), f"{pin} found in the journal"
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", blob)
    # the raw bytes too (WAL checkpointed into the file on close): no PIN as ASCII outside hex digests
    data = (tmp_path / "journal.sqlite3").read_bytes()
    for pin in (GOOD_PIN, WRONG_PIN):
        for match in re.finditer(rb"(?<![0-9])" + pin.encode() + rb"(?![0-9])", data):
            window = data[max(0, match.start() - 64): match.end() + 64]
            assert re.search(rb"[0-9a-f]{40,}", window), f"{pin} found outside a digest"
