"""ccTalk device emulators (coin acceptor, note validator, hoppers) on a pseudo-terminal.

    kiosk-sim cash --link /tmp/cctalk --control /tmp/cctalk.ctl

prints the pty path and control socket; script it with ``CashSimClient`` (control.py).
"""
from __future__ import annotations

import time
from typing import Callable

from drivers.payment.cctalk.codec import ChecksumMode

from .bus import PtyBus, SimBus
from .control import CashSimClient, CashSimController, ControlServer
from .devices import SimCoinAcceptor, SimHopper, SimNoteValidator

DEFAULT_HOPPERS = ((3, 100, 50), (4, 10, 100))  # address, coin yen, coins loaded


def build_bus(*, echo: bool = True, crc: bool = False, notes: bool = True,
              hoppers: tuple[tuple[int, int, int], ...] = DEFAULT_HOPPERS, seconds_per_coin: float = 0.0,
              escrow_timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> SimBus:
    mode = ChecksumMode.CRC16 if crc else ChecksumMode.SIMPLE
    devices: list = [SimCoinAcceptor(2, clock=clock, mode=mode)]
    if notes:
        devices.append(SimNoteValidator(40, escrow_timeout=escrow_timeout, clock=clock, mode=mode))
    for address, coin_yen, coins in hoppers:
        devices.append(SimHopper(address, coin_yen, coins, seconds_per_coin=seconds_per_coin, clock=clock, mode=mode))
    return SimBus(devices, echo=echo, clock=clock)


__all__ = ["build_bus", "SimBus", "PtyBus", "CashSimClient", "CashSimController", "ControlServer",
           "SimCoinAcceptor", "SimNoteValidator", "SimHopper", "DEFAULT_HOPPERS"]
