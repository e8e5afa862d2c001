from __future__ import annotations

from typing import Callable

import pytest

from drivers.payment.cash import CashOptions, CashPayment, HopperOptions
from drivers.sim.cctalk import SimBus, build_bus

from .fakes import LoopbackSerial, RecordingLedger

UNIT_OPTIONS = CashOptions(port="loopback", poll_interval=0.01, reply_timeout=0.01, retries=3,
                           seconds_per_coin=0.2, command_timeout=5.0, reconnect_interval=0.1,
                           hoppers=(HopperOptions(address=3, coin_yen=100), HopperOptions(address=4, coin_yen=10)))


def make_cash(bus: SimBus, ledger: RecordingLedger, options: CashOptions = UNIT_OPTIONS) -> CashPayment:
    cash = CashPayment(options, ledger, open_port=lambda: LoopbackSerial(bus), owner_thread=False,
                       sleep=lambda s: None)
    assert cash.wait_ready(2), cash.available()
    return cash


@pytest.fixture
def bus() -> SimBus:
    return build_bus()


@pytest.fixture
def ledger() -> RecordingLedger:
    return RecordingLedger()


@pytest.fixture
def cash_factory(bus: SimBus, ledger: RecordingLedger) -> Callable[..., CashPayment]:
    made: list[CashPayment] = []

    def factory(options: CashOptions = UNIT_OPTIONS) -> CashPayment:
        cash = make_cash(bus, ledger, options)
        made.append(cash)
        return cash

    yield factory
    for cash in made:
        cash.close()
