"""What the engine reacts to: intents from the screen, events from devices, and timer ticks.

All are immutable; they arrive through one queue (Engine.submit) and are handled one at a time on
the engine's own thread.
"""
from __future__ import annotations

from dataclasses import dataclass

from kiosk.ports import OrderLine


@dataclass(frozen=True)
class Intent:
    """Something the resident (or technician) asked for on screen."""


@dataclass(frozen=True)
class SetLanguage(Intent):
    language: str


@dataclass(frozen=True)
class Touch(Intent):
    """Any touch: the resident is still there (resets the step's inactivity timer)."""


@dataclass(frozen=True)
class ConfirmLastTry(Intent):
    """The resident confirmed they want to use the last PIN try (shown before they type it)."""


@dataclass(frozen=True)
class EnterPin(Intent):
    """A complete PIN entry. ``entry_id`` is the view state's ``pin_entry_id``: one VERIFY per entry."""

    pin: str
    entry_id: int

    def __repr__(self) -> str:  # the PIN never reaches a log, even through repr()
        return f"EnterPin(pin='****', entry_id={self.entry_id})"


@dataclass(frozen=True)
class ChooseOrder(Intent):
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True)
class ChoosePayment(Intent):
    """Fee confirmed; pay with ``method`` ("cash" | "qr")."""

    method: str


@dataclass(frozen=True)
class Back(Intent):
    pass


@dataclass(frozen=True)
class Cancel(Intent):
    pass


@dataclass(frozen=True)
class Dismiss(Intent):
    """Leave a finished or error screen now instead of waiting for its timeout."""


@dataclass(frozen=True)
class ServiceOff(Intent):
    """Technician: take the kiosk out of service (`kioskctl service off`)."""

    reason: str = "maintenance"


@dataclass(frozen=True)
class ServiceOn(Intent):
    pass


@dataclass(frozen=True)
class DeviceEvent:
    """Something a device reported."""


@dataclass(frozen=True)
class CardPlaced(DeviceEvent):
    pass


@dataclass(frozen=True)
class CardRemoved(DeviceEvent):
    pass


@dataclass(frozen=True)
class ReaderLost(DeviceEvent):
    pass


@dataclass(frozen=True)
class ReaderBack(DeviceEvent):
    pass


@dataclass(frozen=True)
class DeviceFault(DeviceEvent):
    device: str
    code: int
    detail: str


@dataclass(frozen=True)
class Tick:
    """Timer tick: timeouts, payment polling and health checks happen here."""


@dataclass(frozen=True)
class Stop:
    """Ends Engine.run (shutdown)."""
