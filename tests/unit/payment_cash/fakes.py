"""Test doubles for the cash driver: a recording MoneyLedger and an in-memory serial port on a SimBus."""
from __future__ import annotations

import time
from dataclasses import dataclass

from drivers.sim.cctalk import SimBus
from kiosk.journal.store import MONEY_OUT_REASONS

UNPAID_CODES = (304, 309)  # HopperEmpty, RefundFailed: yen owed to the resident (→ voucher)


@dataclass(frozen=True)
class LedgerRow:
    kind: str  # "in" | "out" | "alarm"
    key: str
    amount: int
    text: str
    code: int = 0


class RecordingLedger:
    """kiosk.ports.MoneyLedger that keeps every record in memory, in order, and refuses what the
    kiosk's journal would refuse (an unknown money-out reason)."""

    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []

    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None:
        assert isinstance(amount, int) and amount > 0, amount
        self.rows.append(LedgerRow("in", key, amount, source))

    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None:
        assert isinstance(amount, int) and amount > 0, amount
        assert reason in MONEY_OUT_REASONS, f"the journal refuses money-out reason {reason!r}"
        self.rows.append(LedgerRow("out", key, amount, reason))

    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None:
        self.rows.append(LedgerRow("alarm", key, amount_at_risk, detail, code))

    def total(self, kind: str, key: str | None = None) -> int:
        return sum(r.amount for r in self.rows if r.kind == kind and (key is None or r.key == key))

    def alarms(self, code: int | None = None) -> list[LedgerRow]:
        return [r for r in self.rows if r.kind == "alarm" and (code is None or r.code == code)]

    def unpaid(self) -> int:
        return sum(r.amount for r in self.rows if r.kind == "alarm" and r.code in UNPAID_CODES)


class LoopbackSerial:
    """The part of pyserial the transport uses, wired straight to an emulated bus (no pty, no timing)."""

    def __init__(self, bus: SimBus) -> None:
        self.bus = bus
        self.timeout: float | None = 0.05
        self._rx = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self._rx += self.bus.receive(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        self.bus.tick()
        if not self._rx:
            time.sleep(self.timeout or 0)
            return b""
        out, self._rx = bytes(self._rx[:size]), self._rx[size:]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
