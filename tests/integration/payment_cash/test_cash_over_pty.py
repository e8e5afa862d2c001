"""The production cash driver over pyserial and a pty against `kiosk-sim cash` (ccTalk with echo)."""
from __future__ import annotations

import time

import pytest

from kiosk.errors import CashEventsLost, CoinJam, FraudAttempt, HopperEmpty
from kiosk.ports import PaymentState, PaymentStatus

from .conftest import CashRig

pytestmark = pytest.mark.integration


def wait_for(cash, key: str, predicate, timeout: float = 5.0) -> PaymentStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = cash.poll(key)
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.01)


def settled(status: PaymentStatus) -> bool:
    return status.state is not PaymentState.PENDING


def assert_balanced(rig: CashRig, fees_kept: int, lost: int = 0) -> None:
    ledger, physical = rig.ledger, rig.sim.state()
    assert ledger.total("in") == fees_kept + ledger.total("out") + ledger.unpaid()
    assert physical["out_yen"] == ledger.total("out")
    assert physical["in_yen"] == ledger.total("in") + lost


def test_emulator_prints_the_pty_path(rig: CashRig) -> None:
    log = rig.emulator.log_path.read_text()
    assert f"pty: {rig.tty}" in log and "pty-device: /dev/pts/" in log


def test_300_yen_fee_paid_with_500_yen_coin_gives_200_back(rig: CashRig) -> None:
    cash = rig.open_cash()
    assert cash.available() is None
    cash.start("t1", 300, "juminhyo x1")
    assert rig.sim.state()["coin"]["enabled_values"] == [10, 50, 100, 500]
    assert rig.sim.insert_coin(500)
    status = wait_for(cash, "t1", settled)
    assert (status.state, status.amount_in, status.change_paid, status.unpaid_to_resident) == \
        (PaymentState.PAID, 500, 200, 0)
    physical = rig.sim.state()
    assert physical["coin"]["enabled_values"] == [] and not physical["note"]["master_enabled"]
    assert [h["paid_out_yen"] for h in physical["hoppers"]] == [200, 0]
    assert [(r.kind, r.amount) for r in rig.ledger.rows] == [("in", 500), ("out", 100), ("out", 100)] or \
        [(r.kind, r.amount) for r in rig.ledger.rows] == [("in", 500), ("out", 200)]
    assert_balanced(rig, fees_kept=300)


def test_1000_yen_note_for_600_yen_fee_gives_400_back(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t2", 600, "kazei")
    assert rig.sim.insert_note(1000)
    status = wait_for(cash, "t2", settled)
    assert (status.state, status.amount_in, status.change_paid) == (PaymentState.PAID, 1000, 400)
    physical = rig.sim.state()
    assert physical["note"]["stacked_yen"] == 1000 and physical["note"]["notes_returned"] == 0
    assert physical["out_yen"] == 400
    assert_balanced(rig, fees_kept=600)


def test_cancel_with_note_in_escrow_and_coins_inserted_returns_everything(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t3", 1200, "juminhyo x4")
    rig.sim.insert_coin(100)
    rig.sim.insert_coin(50)
    wait_for(cash, "t3", lambda s: s.amount_in == 150)
    rig.sim.insert_note(1000)  # 1150 < 1200: the note waits in escrow
    deadline = time.monotonic() + 3
    while rig.sim.state()["note"]["escrow_yen"] != 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the driver has seen and decided on the escrow event
    assert rig.sim.state()["note"]["escrow_yen"] == 1000
    status = cash.cancel("t3")
    assert (status.state, status.amount_in, status.returned, status.unpaid_to_resident) == \
        (PaymentState.CANCELLED, 150, 150, 0)
    physical = rig.sim.state()
    assert physical["note"]["notes_returned"] == 1 and physical["note"]["stacked_yen"] == 0
    assert physical["note"]["escrow_yen"] == 0
    assert physical["out_yen"] == 150 and physical["coin"]["enabled_values"] == []
    assert_balanced(rig, fees_kept=0)


def test_coin_jam_mid_payment_returns_the_money_and_goes_out_of_service(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t4", 300, "")
    rig.sim.insert_coin(100)
    wait_for(cash, "t4", lambda s: s.amount_in == 100)
    rig.sim.jam()
    status = wait_for(cash, "t4", settled)
    assert status.state is PaymentState.CANCELLED and status.returned == 100
    assert status.detail.startswith("E303")
    assert [a.code for a in rig.ledger.alarms()] == [CoinJam.code]
    unavailable = cash.available()
    assert unavailable is not None and unavailable.state is PaymentState.FAILED
    with pytest.raises(CoinJam):
        cash.start("t5", 300, "")
    assert rig.sim.insert_coin(100) is False  # inhibited while out of service
    assert_balanced(rig, fees_kept=0)


def test_fraud_code_goes_out_of_service(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t6", 300, "")
    rig.sim.fraud(20)
    status = wait_for(cash, "t6", settled)
    assert status.state is PaymentState.CANCELLED
    assert [a.code for a in rig.ledger.alarms()] == [FraudAttempt.code]
    assert cash.available().detail.startswith("E308")


def test_hopper_empties_mid_change_records_the_unpaid_change(rig: CashRig) -> None:
    cash = rig.open_cash()
    rig.sim.hopper_fill(3, 1)  # one 100-yen coin left
    rig.sim.hopper_empty(4)  # no 10-yen coins
    cash.start("t7", 200, "")
    rig.sim.insert_coin(500)  # 300 change due
    status = wait_for(cash, "t7", settled)
    assert (status.state, status.change_paid, status.unpaid_to_resident) == (PaymentState.PAID, 100, 200)
    [alarm] = rig.ledger.alarms(HopperEmpty.code)
    assert alarm.key == "t7" and alarm.amount == 200
    assert_balanced(rig, fees_kept=200)
    after = cash.available()
    assert after is not None and after.exact_amount_only  # shown before the next resident pays
    rig.sim.hopper_fill(3, 50)
    rig.sim.hopper_fill(4, 50)


def test_lost_events_take_cash_out_of_service_with_amount_at_risk(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t8", 1000, "")
    rig.sim.lose_events([100] * 7)  # 7 coins between two polls: 2 fall off the 5-event buffer
    status = wait_for(cash, "t8", settled)
    assert status.state is PaymentState.CANCELLED and status.detail.startswith("E305")
    assert status.amount_in == 500 and status.returned == 500
    [alarm] = rig.ledger.alarms(CashEventsLost.code)
    assert alarm.key == "t8" and alarm.amount >= 200
    assert cash.available().detail.startswith("E305")
    assert_balanced(rig, fees_kept=0, lost=200)


def test_refund_after_a_later_failure_is_paid_once(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t9", 300, "")
    rig.sim.insert_coin(100), rig.sim.insert_coin(100), rig.sim.insert_coin(100)
    assert wait_for(cash, "t9", settled).state is PaymentState.PAID
    first = cash.refund("t9", "t9-refund", 300)
    assert (first.refunded, first.unpaid) == (300, 0)
    assert cash.refund("t9", "t9-refund", 300) == first
    assert rig.sim.state()["out_yen"] == 300
    assert_balanced(rig, fees_kept=0)


def test_lost_dispense_reply_does_not_pay_twice(rig: CashRig) -> None:
    cash = rig.open_cash()
    rig.sim.call("hopper_drop_dispense_reply", address=3)
    cash.start("t10", 300, "")
    rig.sim.insert_coin(500)
    status = wait_for(cash, "t10", settled)
    assert (status.state, status.change_paid) == (PaymentState.PAID, 200)
    assert rig.sim.state()["out_yen"] == 200
    assert_balanced(rig, fees_kept=300)


def test_garbled_and_missing_replies_are_retried(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t11", 100, "")
    rig.sim.call("drop_replies", count=1)  # three bad answers in a row: within the budget of 3 retries
    rig.sim.call("bad_checksum", count=1)
    rig.sim.call("garbage", count=2)
    rig.sim.insert_coin(100)
    status = wait_for(cash, "t11", settled)
    assert status.state is PaymentState.PAID and status.amount_in == 100
    assert cash.available() is None
    assert_balanced(rig, fees_kept=100)


def test_a_stalled_bus_cancels_and_comes_back(rig: CashRig) -> None:
    cash = rig.open_cash()
    cash.start("t12", 300, "")
    rig.sim.insert_coin(100)
    wait_for(cash, "t12", lambda s: s.amount_in == 100)
    rig.sim.stall(1.5)
    status = wait_for(cash, "t12", settled, timeout=10)
    assert status.state is PaymentState.CANCELLED and status.amount_in == 100
    assert status.returned + status.unpaid_to_resident == 100
    deadline = time.monotonic() + 10
    while cash.available() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cash.available() is None  # reconnected by itself
    assert_balanced(rig, fees_kept=0)


@pytest.mark.emulator_args("--no-echo", "--crc")
def test_crc16_without_echo(rig: CashRig) -> None:
    cash = rig.open_cash(echo=False, checksum="crc16")
    cash.start("t13", 150, "")
    rig.sim.insert_coin(100)
    rig.sim.insert_coin(100)
    status = wait_for(cash, "t13", settled)
    assert (status.state, status.change_paid) == (PaymentState.PAID, 50)
    assert_balanced(rig, fees_kept=150)


def wait_available(cash, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while cash.available() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cash.available() is None, cash.available()


def test_cable_pulled_mid_payment_owes_the_money_and_the_bus_comes_back(rig: CashRig) -> None:
    """Issue #16: the owner thread survived no I/O error; the 100 yen in ended neither credited nor owed."""
    cash = rig.open_cash()
    cash.start("u1", 300, "")
    rig.sim.insert_coin(100)
    wait_for(cash, "u1", lambda s: s.amount_in == 100)
    rig.sim.unplug()
    status = wait_for(cash, "u1", settled, timeout=10)
    assert (status.state, status.amount_in, status.unpaid_to_resident) == (PaymentState.CANCELLED, 100, 100)
    assert rig.ledger.unpaid() == 100  # journaled as owed: the engine prints a refund voucher
    time.sleep(0.5)  # a few failed reopen attempts while the cable is out
    assert cash.available() is not None
    rig.sim.replug()
    wait_available(cash)
    cash.start("u2", 300, "")
    rig.sim.insert_coin(500)
    status = wait_for(cash, "u2", settled)
    assert (status.state, status.change_paid) == (PaymentState.PAID, 200)
    assert_balanced(rig, fees_kept=300)


def test_hopper_jam_is_cleared_by_a_technician_reset(rig: CashRig) -> None:
    """ccTalk spec part 2 §3.90: hopper fault flags 'must be cleared with a software reset prior to next
    payout'; before the fix a hopper that had jammed stayed out of use after the technician's reset."""
    cash = rig.open_cash(hopper_reset_settle=0.05)
    rig.sim.call("hopper_jam", address=3)
    cash.start("j1", 300, "")
    rig.sim.insert_coin(500)
    status = wait_for(cash, "j1", settled, timeout=15)
    assert (status.state, status.change_paid) == (PaymentState.PAID, 200)  # paid from the 10-yen hopper
    hoppers = {h["address"]: h for h in rig.sim.state()["hoppers"]}
    assert hoppers[3]["paid_out_yen"] == 0 and hoppers[4]["paid_out_yen"] == 200
    assert "motor_reverse_limit" in hoppers[3]["flags"]
    cash.reset_fault()  # technician reset with the coin still stuck: the hopper flags it again
    assert "opto_blocked_idle" in {h["address"]: h for h in rig.sim.state()["hoppers"]}[3]["flags"]
    cash.start("j2", 400, "")
    rig.sim.insert_coin(500)
    assert wait_for(cash, "j2", settled, timeout=15).change_paid == 100
    assert {h["address"]: h for h in rig.sim.state()["hoppers"]}[3]["paid_out_yen"] == 0
    rig.sim.call("hopper_clear_jam", address=3)  # the technician removes the coin, then resets
    cash.reset_fault()
    wait_available(cash)
    cash.start("j3", 400, "")
    rig.sim.insert_coin(500)
    assert wait_for(cash, "j3", settled, timeout=15).change_paid == 100
    hoppers = {h["address"]: h for h in rig.sim.state()["hoppers"]}
    assert hoppers[3]["paid_out_yen"] == 100 and not set(hoppers[3]["flags"]) - {"payout_disabled"}
    assert_balanced(rig, fees_kept=300 + 400 + 400)
