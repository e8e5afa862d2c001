"""Log redaction, the cash book, and the pre-start boot guard."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kiosk.journal import Journal
from kiosk.ops import bootguard, cashbook
from kiosk.ops.redact import redact


@pytest.mark.parametrize("line, leaked", [
    ("verify pin=4739 sent", "4739"),
    ("PIN: 4739", "4739"),
    ("individual number 123456789012 seen", "123456789012"),
    ("number 1234-5678-9012", "1234-5678-9012"),
    ("card 8439WAKO000000000001 placed", "8439WAKO000000000001"),
    ("api_secret = 'hunter2-secret'", "hunter2-secret"),
    ("mail taro@example.jp", "taro@example.jp"),
    ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----", "MC4CAQAwBQYDK2VwBCIEI"),
])
def test_redaction_masks_personal_data_and_secrets(line: str, leaked: str) -> None:
    assert leaked not in redact(line)


def test_redaction_keeps_what_a_technician_needs() -> None:
    line = "2026-05-09T07:35:25+0900 kiosk E401 printer out of paper job TEST-20260509073525 txn demo-kiosk-01-000042"
    assert redact(line) == line


def test_cash_levels_follow_refills_payouts_and_emptying(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3", "test-kiosk-01")
    options = {"hoppers": [{"address": 3, "coin_yen": 100}, {"address": 4, "coin_yen": 10}]}
    try:
        cashbook.record_refill(journal, 100, 50, options)
        cashbook.record_refill(journal, 10, 100, options)
        journal.money_in("k1", 500, "coin 500")
        journal.money_in("k1", 1000, "note 1000")
        journal.money_in("k2", 300, "qr", ref="k2:capture:1")  # not cash
        journal.money_out("k1", 200, "change")  # 2 x 100
        journal.money_out("k1", 30, "change")  # 3 x 10
        journal.money_out("k2", 300, "refund", ref="k2:refund:1")  # QR: not cash
        levels = cashbook.read_levels(journal, options).as_dict()
        assert levels["hoppers"] == [{"coin_yen": 10, "coins": 97, "yen": 970}, {"coin_yen": 100, "coins": 48, "yen": 4800}]
        assert (levels["cashbox_yen"], levels["cashbox_coins_yen"], levels["cashbox_notes_yen"]) == (1500, 500, 1000)
        emptied = cashbook.record_emptied(journal, 1400)
        assert emptied.body == {"counted_yen": 1400, "expected_yen": 1500, "difference_yen": -100}
        assert cashbook.read_levels(journal, options).cashbox_yen == 0
        with pytest.raises(ValueError, match="no hopper pays 500-yen"):
            cashbook.record_refill(journal, 500, 10, options)
        refill = cashbook.record_refills(journal, {100: 20, 10: 30}, options)
        assert refill.body == {"added": {"10": 30, "100": 20}}
        assert cashbook.read_levels(journal, options).hoppers == {100: 68, 10: 127}
        journal.money_in("k3", 1000, "note 1000")
        by_piece = cashbook.record_emptied(journal, counted={1000: 1})
        assert by_piece.body == {"counted_yen": 1000, "expected_yen": 1000, "difference_yen": 0, "counted": {"1000": 1}}
        with pytest.raises(ValueError, match="add up to 1000 yen"):
            cashbook.record_emptied(journal, 900, {1000: 1})
    finally:
        journal.close()


def _release(root: Path, version: str) -> None:
    (root / "releases" / version).mkdir(parents=True)


def test_bootguard_reverts_a_pending_release_after_two_failed_starts(tmp_path: Path) -> None:
    _release(tmp_path, "1.0")
    _release(tmp_path, "2.0")
    bootguard.switch_current(tmp_path, "2.0")
    bootguard.save_state(tmp_path, {**bootguard.empty_state(), "pending": "2.0", "previous": "1.0", "committed": "1.0"})
    assert bootguard.guard(tmp_path, log=lambda _: None) == "trial 1"
    assert bootguard.guard(tmp_path, log=lambda _: None) == "trial 2"
    assert bootguard.guard(tmp_path, log=lambda _: None) == "reverted to 1.0"
    assert os.readlink(tmp_path / "current") == "releases/1.0"
    state = bootguard.load_state(tmp_path)
    assert state["pending"] is None and state["bad"] == ["2.0"] and state["committed"] == "1.0"
    assert bootguard.guard(tmp_path, log=lambda _: None) == "nothing pending"


def test_bootguard_on_failure_reverts_at_once_and_a_damaged_state_never_blocks_a_start(tmp_path: Path) -> None:
    _release(tmp_path, "1.0")
    _release(tmp_path, "2.0")
    bootguard.switch_current(tmp_path, "2.0")
    bootguard.save_state(tmp_path, {**bootguard.empty_state(), "pending": "2.0", "previous": "1.0"})
    assert bootguard.give_up_pending(tmp_path) == "1.0"
    assert bootguard.give_up_pending(tmp_path) is None
    (tmp_path / "update-state.json").write_text("{not json")
    assert bootguard.guard(tmp_path, log=lambda _: None) == "nothing pending"
    assert json.loads(json.dumps(bootguard.load_state(tmp_path)))["committed"] == "1.0"


def test_switching_current_never_leaves_a_moment_without_it(tmp_path: Path) -> None:
    """rename(2) over the old link: `current` exists before, after, and (atomically) throughout."""
    import threading
    _release(tmp_path, "1.0")
    _release(tmp_path, "2.0")
    bootguard.switch_current(tmp_path, "1.0")
    missing = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not os.path.lexists(tmp_path / "current"):
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(300):
        bootguard.switch_current(tmp_path, "2.0" if i % 2 == 0 else "1.0")
    stop.set()
    watcher.join()
    assert missing == []
