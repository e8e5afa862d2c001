"""Crash recovery: a crash is simulated by an exception that no handler catches (like SIGKILL, it
stops everything mid-step); a new engine then starts on the same journal and the same outside world.
The real kill -9 harness is tests/unit/engine/test_kill9.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.engine import Engine, EnginePorts
from kiosk.config import TimeoutsSection
from kiosk.recovery import __doc__ as recovery_table
from tests.fakes import (voucher_issuer, FakeCardReader, FakeCash, FakeCityHall, FakeClock, FakeDocumentPrinter, FakeQr,
                         FakeReceiptPrinter)
from tests.unit.engine.conftest import Rig, make_rig


class Crash(BaseException):
    """Not an Exception: nothing in the kiosk catches it, as nothing survives a power cut."""


def crash_when(obj: object, method: str, *, after: bool = False) -> None:
    original = getattr(obj, method)

    def crashing(*args: object, **kwargs: object) -> object:
        if after:
            original(*args, **kwargs)
        raise Crash(method)

    setattr(obj, method, crashing)


def restart(rig: Rig) -> Rig:
    """A new process: new fakes (same world), same journal file, recovery at start."""
    world = rig.world
    clock = FakeClock()
    cash, qr = FakeCash(world, rig.journal), FakeQr(world, rig.journal)
    card, printer = FakeCardReader(world), FakeDocumentPrinter(world)
    engine = Engine(EnginePorts(card, FakeCityHall(world), {"cash": cash, "qr": qr}, printer,
                                FakeReceiptPrinter(world), clock, voucher_issuer()), rig.journal, TimeoutsSection())
    engine.start()
    return Rig(world, rig.journal, clock, card, rig.cityhall, cash, qr, printer, rig.receipts, engine)


def test_the_recovery_table_is_documented() -> None:
    for state in ("PAYING", "ISSUING", "PRINTING", "RECEIPT", "REFUNDING"):
        assert state in recovery_table


def test_crash_while_paying_with_coins_inserted_gives_them_back(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.cash.insert(key, 100)
    crash_when(rig.cash, "poll")
    with pytest.raises(Crash):
        rig.tick()
    after = restart(rig)
    txn = after.journal.transactions()[0]
    assert (txn.outcome, txn.money_in, txn.refunded) == ("refunded", 100, 100)
    assert after.state == "IDLE"
    after.balanced()


def test_crash_after_the_provider_took_the_money_but_before_the_journal_knew(rig: Rig) -> None:
    key = rig.to_paying("qr")
    rig.qr.ledger = type("Lost", (), {"money_in": lambda *a, **k: None, "money_out": lambda *a, **k: None})()
    rig.qr.approve(key)  # money taken at the provider; the report to the journal is lost
    assert rig.journal.transactions()[0].money_in == 0
    crash_when(rig.qr, "poll")
    with pytest.raises(Crash):
        rig.tick()
    after = restart(rig)
    txn = after.journal.transactions()[0]
    assert (txn.money_in, txn.refunded, txn.outcome) == (300, 300, "refunded")
    assert len([k for k in rig.world.data["payments"]]) == 1  # asked again with the same key, never charged twice
    after.balanced()


def test_crash_with_provider_unreachable_stays_open_until_it_answers(rig: Rig) -> None:
    key = rig.to_paying("qr")
    rig.qr.approve(key)
    crash_when(rig.qr, "poll")
    with pytest.raises(Crash):
        rig.tick()
    rig.world.set_fault("provider_unreachable")
    after = restart(rig)
    assert after.state == "OUT_OF_SERVICE" and after.view.out_of_service_reason == "payment_in_doubt"
    assert not after.journal.transactions()[0].closed
    rig.world.set_fault("provider_unreachable", False)
    after.tick(11)
    assert after.state == "IDLE"
    assert after.journal.transactions()[0].outcome == "refunded"
    after.balanced()


def test_crash_while_issuing_refunds(rig: Rig) -> None:
    key = rig.to_paying("cash")
    crash_when(rig.cityhall, "issue")
    with pytest.raises(Crash):
        rig.cash.insert(key, 500)
        rig.tick()
    after = restart(rig)
    txn = after.journal.transactions()[0]
    assert (txn.money_in, txn.change_paid, txn.refunded, txn.outcome) == (500, 200, 300, "refunded")
    after.balanced()


def test_crash_after_a_job_printed_but_before_it_was_journaled(rig: Rig) -> None:
    key = rig.to_paying("cash")
    crash_when(rig.printer, "print_document", after=True)
    with pytest.raises(Crash):
        rig.cash.insert(key, 300)
        rig.tick()
    assert len(rig.world.data["tray"]) == 1
    after = restart(rig)
    txn = after.journal.transactions()[0]
    assert (txn.docs_printed, txn.refunded, txn.outcome) == (1, 0, "completed")
    after.balanced()


def test_crash_before_a_job_reached_the_printer(rig: Rig) -> None:
    key = rig.to_paying("cash")
    crash_when(rig.printer, "print_document")
    with pytest.raises(Crash):
        rig.cash.insert(key, 300)
        rig.tick()
    after = restart(rig)
    txn = after.journal.transactions()[0]
    assert (txn.docs_printed, txn.refunded, txn.outcome) == (0, 300, "refunded")
    after.balanced()


def test_crash_mid_refund_reuses_the_refund_key(rig: Rig) -> None:
    key = rig.to_paying("qr")
    rig.world.set_fault("issue_fails")
    crash_when(rig.qr, "refund", after=True)
    rig.qr.approve(key)
    with pytest.raises(Crash):
        rig.tick()
    assert len(rig.world.data["refunds"]) == 1
    after = restart(rig)
    assert len(rig.world.data["refunds"]) == 1  # the same refund, asked again: not paid twice
    txn = after.journal.transactions()[0]
    assert (txn.refunded, txn.outcome) == (300, "refunded")
    after.balanced()


def test_crash_while_printing_the_receipt_completes(rig: Rig) -> None:
    key = rig.to_paying("cash")
    crash_when(rig.receipts, "print_receipt")
    with pytest.raises(Crash):
        rig.cash.insert(key, 300)
        rig.tick()
    after = restart(rig)
    assert after.journal.transactions()[0].outcome == "completed"
    after.balanced()


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_crash_before_payment_abandons(rig: Rig, steps: int) -> None:
    rig.place_card()
    if steps >= 1:
        rig.pin()
    if steps >= 2:
        rig.remove_card()
    if steps >= 3:
        from kiosk.engine import events as ev
        from kiosk.ports import OrderLine
        rig.send(ev.ChooseOrder((OrderLine("juminhyo", 1, 300),)))
    after = restart(rig)
    assert after.journal.transactions()[0].outcome == "abandoned"


def test_corrupt_journal_at_start_goes_out_of_service(tmp_path: Path) -> None:
    import sqlite3
    rig = make_rig(tmp_path)
    rig.journal.append("x", {})
    raw = sqlite3.connect(rig.journal.path)
    raw.execute("DROP TRIGGER events_append_only_update")
    raw.execute("UPDATE events SET kind = 'y'")
    raw.commit()
    after = restart(rig)
    assert after.state == "OUT_OF_SERVICE" and after.view.out_of_service_reason == "journal"
    assert after.view.error.code == 601


def test_a_refund_without_an_answer_is_asked_again_never_vouchered(rig: Rig) -> None:
    from kiosk import errors
    key = rig.to_paying("qr")
    rig.world.set_fault("issue_fails")
    original = rig.qr.refund
    calls = []

    def silent(*args: object) -> object:
        calls.append(args)
        if len(calls) <= 2:  # no answer in REFUNDING, nor when FAILSAFE asks again
            raise errors.PaymentProviderUnreachable("read timeout")
        return original(*args)  # type: ignore[arg-type]

    rig.qr.refund = silent  # type: ignore[method-assign]
    rig.qr.approve(key)
    rig.tick()
    assert rig.state == "OUT_OF_SERVICE"
    txn = rig.journal.transactions()[0]
    assert not txn.closed and txn.voucher == 0
    rig.tick(11)
    assert rig.state == "IDLE"
    txn = rig.journal.transactions()[0]
    assert (txn.outcome, txn.refunded, txn.voucher) == ("refunded", 300, 0)
    assert len(calls) == 3 and len({c[1] for c in calls}) == 1  # the same refund key every time
    rig.balanced()
