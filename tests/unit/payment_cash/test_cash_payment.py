"""CashPayment driven step by step (owner_thread=False) against the emulated bus, no pty."""
from __future__ import annotations

import pytest

from drivers.payment.cash import CashOptions, CashPayment, HopperOptions, build_cash, can_make
from drivers.sim.cctalk import SimBus
from drivers.sim.cctalk.control import CashSimController
from kiosk.config import load_dataclass
from kiosk.errors import CashEventsLost, ConfigError, PaymentError
from kiosk.ports import PaymentProvider, PaymentState
from kiosk.registry import drivers_for

from .conftest import UNIT_OPTIONS
from .fakes import RecordingLedger


def pump(cash: CashPayment, times: int = 3) -> None:
    for _ in range(times):
        cash.pump()


def test_registered_and_implements_the_port(cash_factory) -> None:
    assert "cctalk" in drivers_for("cash")
    assert isinstance(cash_factory(), PaymentProvider)


def test_options_load_from_toml_shape_and_refuse_bad_values() -> None:
    opts = load_dataclass(CashOptions, {"port": "/dev/ttyUSB0", "hoppers": [{"address": 3, "coin_yen": 100}],
                                        "accepted_coins": [10, 100]}, "kiosk.toml", "cash")
    assert opts.hoppers == (HopperOptions(3, 100),) and opts.accepted_coins == (10, 100)
    with pytest.raises(ConfigError, match="cash.accepted_coins"):
        load_dataclass(CashOptions, {"accepted_coins": [20]}, "kiosk.toml", "cash")
    with pytest.raises(ConfigError, match=r"cash.hoppers\[0\].address"):
        load_dataclass(CashOptions, {"hoppers": [{"address": 40, "coin_yen": 100}]}, "kiosk.toml", "cash")


def test_factory_needs_a_ledger() -> None:
    with pytest.raises(PaymentError, match="ledger"):
        build_cash(UNIT_OPTIONS, object())


def test_can_make() -> None:
    assert can_make(370, [100, 10]) and can_make(0, []) and not can_make(10, []) and not can_make(50, [100])


def test_only_accepted_coins_are_enabled_and_all_inhibited_after(bus: SimBus, ledger: RecordingLedger,
                                                                 cash_factory) -> None:
    sim = CashSimController(bus)
    cash = cash_factory()
    assert sim.coin.state()["enabled_values"] == []
    cash.start("k", 300, "juminhyo")
    assert sim.coin.state()["enabled_values"] == [10, 50, 100, 500]
    assert sim.note.master_enabled
    assert sim.coin.insert_coin(1) is False  # 1 yen is inhibited by default
    assert sim.coin.insert_coin(100)
    pump(cash)
    assert cash.poll("k").amount_in == 100
    sim.coin.insert_coin(500)
    pump(cash)
    status = cash.poll("k")
    assert (status.state, status.change_paid, status.amount_in) == (PaymentState.PAID, 300, 600)
    assert sim.coin.state()["enabled_values"] == [] and not sim.note.master_enabled
    assert ledger.total("in") == 600 and ledger.total("out") == 300 == sim.state()["out_yen"]


def test_exact_amount_only_when_hoppers_cannot_change(bus: SimBus, ledger: RecordingLedger) -> None:
    from .conftest import make_cash
    options = CashOptions(**{**UNIT_OPTIONS.__dict__, "hoppers": (HopperOptions(3, 100),)})
    cash = make_cash(bus, ledger, options)
    try:
        status = cash.available()
        assert status is not None and status.exact_amount_only  # 10-yen steps cannot be given back
        sim = CashSimController(bus)
        start = cash.start("k", 350, "")
        assert start.exact_amount_only
        assert sim.coin.state()["enabled_values"] == [10, 50, 100]  # 500 would need 150 back: no 50/10 hopper
        assert not sim.note.master_enabled  # 650 back is impossible: the note is inhibited
        assert sim.note.insert_note(1000) is False
        pump(cash)
        assert sim.note.notes_rejected == 1 and cash.poll("k").amount_in == 0
    finally:
        cash.close()


def test_unknown_key_is_unknown_and_start_is_idempotent(cash_factory) -> None:
    cash = cash_factory()
    assert cash.poll("never").state is PaymentState.UNKNOWN
    first = cash.start("k", 200, "")
    assert cash.start("k", 200, "") == first
    with pytest.raises(PaymentError):
        cash.start("other", 200, "")


def test_refund_is_idempotent(bus: SimBus, ledger: RecordingLedger, cash_factory) -> None:
    sim = CashSimController(bus)
    cash = cash_factory()
    cash.start("k", 300, "")
    sim.coin.insert_coin(100), sim.coin.insert_coin(100), sim.coin.insert_coin(100)
    pump(cash)
    assert cash.poll("k").state is PaymentState.PAID
    first = cash.refund("k", "r1", 300)
    assert (first.refunded, first.unpaid) == (300, 0)
    assert cash.refund("k", "r1", 300) == first
    assert sim.state()["out_yen"] == 300
    with pytest.raises(PaymentError):
        cash.refund("k", "r2", 10)  # nothing kept any more


def test_counter_gap_takes_cash_out_of_service(bus: SimBus, ledger: RecordingLedger, cash_factory) -> None:
    sim = CashSimController(bus)
    cash = cash_factory()
    cash.start("k", 1000, "")
    sim.coin.lose_events([100] * 7)
    pump(cash)
    status = cash.poll("k")
    assert status.state is PaymentState.CANCELLED and status.returned == 500
    [alarm] = ledger.alarms(CashEventsLost.code)
    assert alarm.amount >= 200 and alarm.key == "k"
    assert cash.available().detail.startswith("E305")
    with pytest.raises(CashEventsLost):
        cash.start("k2", 100, "")
    cash.reset_fault()
    assert cash.available() is None
