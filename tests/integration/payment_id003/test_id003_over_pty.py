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
