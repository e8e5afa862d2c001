"""The production cash driver with an ID-003 note validator and ccTalk coins/hoppers, each on a pty."""
from __future__ import annotations

import time

import pytest

from kiosk.ports import PaymentState, PaymentStatus

from .conftest import MixedRig

pytestmark = pytest.mark.integration


def wait_for(cash, key: str, predicate, timeout: float = 8.0) -> PaymentStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = cash.poll(key)
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.01)


def settled(status: PaymentStatus) -> bool:
    return status.state is not PaymentState.PENDING


def wait_note(rig: MixedRig, predicate, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = rig.notes.state()["note"]
        if predicate(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def assert_balanced(rig: MixedRig, fees_kept: int) -> None:
    ledger = rig.ledger
    assert ledger.total("in") == fees_kept + ledger.total("out") + ledger.unpaid()
    assert rig.physical_out() == ledger.total("out")
    assert rig.physical_in() == ledger.total("in")


@pytest.mark.parametrize("value,series", [(1000, "2004"), (1000, "2024"), (2000, "2000"), (5000, "2004"),
                                          (5000, "2024"), (10000, "2004"), (10000, "2024")])
@pytest.mark.hoppers("5:500:20", "3:100:50", "6:50:20", "4:10:50")
def test_each_note_old_and_new_series_pays_and_gives_change(mixed: MixedRig, value: int, series: str) -> None:
    """2024 series (渋沢/津田/北里, issued 2024-07-03) and the older notes (docs/protocols/id003.md §5)."""
    cash = mixed.open_cash()
    fee = 300 if value > 1000 else 1000
    cash.start("n1", fee, "")
    wait_note(mixed, lambda s: value in s["enabled_values"])
    assert mixed.notes.insert_note(value, series) == "escrow"
    status = wait_for(cash, "n1", settled)
    assert (status.state, status.amount_in, status.change_paid) == (PaymentState.PAID, value, value - fee)
    note = wait_note(mixed, lambda s: s["inhibited"])  # inhibited again once it is idle
    assert note["stacked"] == [[value, series]] and note["inhibited"]
    assert_balanced(mixed, fees_kept=fee)


@pytest.mark.hoppers("5:500:20", "3:100:50", "6:50:20", "4:10:50")
def test_10000_yen_note_for_a_300_yen_fee_with_enough_change(mixed: MixedRig) -> None:
    cash = mixed.open_cash(hopper_float={500: 20, 100: 50, 50: 20, 10: 50})
    cash.start("c1", 300, "")
    wait_note(mixed, lambda s: 10000 in s["enabled_values"])
    mixed.notes.insert_note(10000, "2024")
    status = wait_for(cash, "c1", settled)
    assert (status.state, status.change_paid, status.unpaid_to_resident) == (PaymentState.PAID, 9700, 0)
    paid = {h["coin_yen"]: h["paid_out_yen"] // h["coin_yen"] for h in mixed.coins.state()["hoppers"]}
    assert paid == {500: 19, 100: 2, 50: 0, 10: 0}  # largest coins first: 19 × 500 + 2 × 100
    assert_balanced(mixed, fees_kept=300)


@pytest.mark.hoppers("3:100:7", "4:10:10")
def test_10000_yen_note_with_too_little_change_is_never_taken(mixed: MixedRig) -> None:
    """The change is decided BEFORE a note is taken: 9,700 yen cannot be paid from 800 yen of coins, so
    only the 1,000-yen note is enabled (and 2,000+ are refused at the slot)."""
    cash = mixed.open_cash(hopper_float={100: 7, 10: 10})
    cash.start("c2", 300, "")
    wait_note(mixed, lambda s: s["status"] == "idling")
    assert mixed.notes.state()["note"]["enabled_values"] == [1000]  # only notes whose change can be paid
    status = cash.poll("c2")
    assert status.exact_amount_only
    assert mixed.notes.insert_note(10000, "2004") == "rejected"  # inhibited denomination: never taken in
    wait_note(mixed, lambda s: s["status"] == "idling")
    assert mixed.notes.insert_note(1000, "2024") == "escrow"
    status = wait_for(cash, "c2", settled)
    assert (status.state, status.change_paid) == (PaymentState.PAID, 700)
    assert mixed.notes.state()["note"]["stacked"] == [[1000, "2024"]]
    assert_balanced(mixed, fees_kept=300)


@pytest.mark.hoppers("3:100:5", "4:10:10")
def test_a_note_escrowed_before_the_change_ran_short_goes_back(mixed: MixedRig) -> None:
    """Even when a 5,000-yen note reaches escrow (enabled a moment earlier), it is returned, not stacked,
    when the change cannot be paid — and the payment says why (notes_refused_for_change)."""
    cash = mixed.open_cash(hopper_float={100: 50, 10: 50})  # the book believes there is enough ...
    cash.start("c3", 300, "")
    wait_note(mixed, lambda s: 5000 in s["enabled_values"])
    cash._float.update({100: 5, 10: 10})  # ... until a payout elsewhere found the hoppers nearly empty
    assert mixed.notes.insert_note(5000, "2024") == "escrow"
    note = wait_note(mixed, lambda s: s["notes_returned"] == 1)
    assert note["stacked"] == [] and note["notes_returned"] == 1
    status = cash.poll("c3")
    assert status.state is PaymentState.PENDING and status.amount_in == 0
    assert "おつり" not in status.detail  # detail is for people reading logs; the screen uses the catalog
    assert cash._payments["c3"].notes_refused_for_change == 1
    cash.cancel("c3")
    assert_balanced(mixed, fees_kept=0)


def test_cancel_with_a_note_in_escrow_gives_that_note_back(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("e1", 3000, "")  # more than the note: it waits in escrow while the resident adds money
    wait_note(mixed, lambda s: 1000 in s["enabled_values"])
    mixed.notes.insert_note(1000, "2024")
    wait_note(mixed, lambda s: s["escrow_yen"] == 1000)
    mixed.coins.insert_coin(100)
    wait_for(cash, "e1", lambda s: s.amount_in == 100)
    status = cash.cancel("e1")
    status = wait_for(cash, "e1", settled)
    assert (status.state, status.returned, status.unpaid_to_resident) == (PaymentState.CANCELLED, 100, 0)
    note = wait_note(mixed, lambda s: s["notes_returned"] == 1)
    assert note["stacked"] == [] and note["notes_returned"] == 1  # the very same note came back
    assert_balanced(mixed, fees_kept=0)


def wait_available(cash, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while cash.available() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cash.available() is None, cash.available()


def pay_with_1000(mixed: MixedRig, cash, key: str, fee: int = 600) -> PaymentStatus:
    cash.start(key, fee, "")
    wait_note(mixed, lambda s: 1000 in s["enabled_values"] and s["status"] == "idling")
    assert mixed.notes.insert_note(1000, "2024") == "escrow"
    return wait_for(cash, key, settled)


@pytest.mark.parametrize("fault,code", [("jam", 306), ("cheat", 308), ("stacker_open", 306)])
def test_a_validator_fault_mid_payment_gives_the_money_back_and_takes_cash_out_of_service(
        mixed: MixedRig, fault: str, code: int) -> None:
    cash = mixed.open_cash()
    cash.start("f1", 600, "")
    mixed.coins.insert_coin(100)
    wait_for(cash, "f1", lambda s: s.amount_in == 100)
    mixed.notes.call(fault)
    status = wait_for(cash, "f1", settled)
    assert (status.state, status.returned, status.unpaid_to_resident) == (PaymentState.CANCELLED, 100, 0)
    problem = cash.available()
    assert problem is not None and problem.detail.startswith(f"E{code}")
    assert any(a.code == code for a in mixed.ledger.alarms())
    mixed.notes.call("clear")  # the technician fixes it, then resets the fault
    cash.reset_fault()
    wait_available(cash)
    assert pay_with_1000(mixed, cash, "f2").state is PaymentState.PAID
    assert_balanced(mixed, fees_kept=600)


def test_stacker_full_stops_notes_but_coins_go_on(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    mixed.notes.call("stacker_full")
    cash.start("s1", 300, "")
    time.sleep(0.3)
    assert any("stacker full" in a.text for a in mixed.ledger.alarms())
    assert mixed.notes.insert_note(1000, "2024") == "refused"
    mixed.coins.insert_coin(100)
    mixed.coins.insert_coin(100)
    mixed.coins.insert_coin(100)
    assert wait_for(cash, "s1", settled).state is PaymentState.PAID
    assert_balanced(mixed, fees_kept=300)


def test_a_rejected_note_is_not_credited(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("r1", 600, "")
    wait_note(mixed, lambda s: s["status"] == "idling")
    mixed.notes.call("reject_next", reason=0x71)
    assert mixed.notes.insert_note(1000, "2024") == "rejected"
    time.sleep(0.3)
    assert cash.poll("r1").amount_in == 0 and mixed.notes.state()["note"]["notes_rejected"] == 1
    cash.cancel("r1")
    assert_balanced(mixed, fees_kept=0)


@pytest.mark.id003_args("--no-2024")
def test_firmware_without_the_2024_series_rejects_the_new_notes(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("v1", 600, "")
    wait_note(mixed, lambda s: s["status"] == "idling")
    assert mixed.notes.insert_note(1000, "2024") == "rejected"  # reason 0x76: denomination not recognised
    wait_note(mixed, lambda s: s["status"] == "idling")
    assert mixed.notes.insert_note(1000, "2004") == "escrow"
    assert wait_for(cash, "v1", settled).state is PaymentState.PAID
    assert_balanced(mixed, fees_kept=600)


def test_garbage_and_lost_replies_are_retried(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    mixed.notes.call("garbage", count=3)
    mixed.notes.call("drop_replies", count=2)
    assert pay_with_1000(mixed, cash, "g1").state is PaymentState.PAID
    assert_balanced(mixed, fees_kept=600)


def test_no_reply_closes_the_payment_with_the_money_owed_and_comes_back(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("q1", 600, "")
    mixed.coins.insert_coin(100)
    wait_for(cash, "q1", lambda s: s.amount_in == 100)
    mixed.notes.call("no_reply", seconds=1.5)
    status = wait_for(cash, "q1", settled)
    assert status.state is PaymentState.CANCELLED and status.returned + status.unpaid_to_resident == 100
    wait_available(cash)
    assert pay_with_1000(mixed, cash, "q2").state is PaymentState.PAID
    assert_balanced(mixed, fees_kept=600)


def test_id003_cable_pulled_mid_payment_and_plugged_back(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("p1", 600, "")
    mixed.coins.insert_coin(100)
    wait_for(cash, "p1", lambda s: s.amount_in == 100)
    mixed.notes.call("unplug")
    status = wait_for(cash, "p1", settled, timeout=10)
    assert status.state is PaymentState.CANCELLED and status.returned + status.unpaid_to_resident == 100
    assert mixed.ledger.total("in") - mixed.ledger.total("out") - mixed.ledger.unpaid() == 0  # all owed or back
    mixed.notes.call("replug")
    wait_available(cash)
    assert pay_with_1000(mixed, cash, "p2").state is PaymentState.PAID
    assert_balanced(mixed, fees_kept=600)


def test_power_lost_with_a_note_in_escrow_gives_the_note_back(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("w1", 3000, "")
    wait_note(mixed, lambda s: s["status"] == "idling")
    mixed.notes.insert_note(1000, "2004")
    wait_note(mixed, lambda s: s["escrow_yen"] == 1000)
    mixed.notes.call("power_cycle")
    status = wait_for(cash, "w1", settled)
    assert status.state is PaymentState.CANCELLED and status.amount_in == 0  # the note was never credited
    wait_available(cash)
    note = mixed.notes.state()["note"]
    assert note["stacked"] == [] and note["notes_returned"] == 1  # reset after power-up gave it back
    assert not any(a.amount for a in mixed.ledger.alarms() if "stacker" in a.text)
    assert_balanced(mixed, fees_kept=0)


def test_power_lost_while_stacking_is_journaled_as_money_at_risk(mixed: MixedRig) -> None:
    cash = mixed.open_cash()
    cash.start("w2", 600, "")
    wait_note(mixed, lambda s: s["status"] == "idling")
    mixed.notes.call("drop_replies", count=0)
    mixed.notes.insert_note(1000, "2024")
    wait_note(mixed, lambda s: s["status"] in ("stacking", "vend_valid"), timeout=5)
    mixed.notes.call("power_cycle")
    status = wait_for(cash, "w2", settled)
    wait_available(cash)
    note = mixed.notes.state()["note"]
    if status.amount_in == 0:  # power failed before VEND VALID was read: stacked without a credit
        assert note["stacked"] == [[1000, "2024"]]
        at_risk = [a for a in mixed.ledger.alarms() if "stacker" in a.text]
        assert at_risk and at_risk[0].amount == 10000  # the largest accepted note, for the technician to count
    else:  # the credit was read first: the note is paid for
        assert status.state is PaymentState.CANCELLED or status.state is PaymentState.PAID
