"""What the composition root may hand the UI besides the engine: small Protocols, no drivers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class DeviceStatus:
    device: str  # "card" | "cityhall" | "document_printer" | "receipt_printer" | "cash" | "qr"
    ok: bool
    detail: str = ""  # for the technician: error code and text, never personal data


@dataclass(frozen=True)
class CashLevel:
    label: str  # e.g. "hopper 100 yen", "cash box (since start)"
    yen: int
    detail: str = ""


@runtime_checkable
class TechnicianPort(Protocol):
    """Technician mode's view of the devices. Every call may block (device I/O): the UI calls it off
    the Kivy thread and shows the answer when it comes."""

    def device_status(self) -> list[DeviceStatus]: ...

    def test_print(self) -> str:
        """Print a test receipt; return a one-line result for the screen. Raises KioskError on failure."""

    def cash_levels(self) -> list[CashLevel]: ...

    def service_off(self, reason: str) -> None: ...

    def service_on(self) -> None: ...


@dataclass(frozen=True)
class DemoResident:
    resident_id: str
    label: str  # what the demo panel shows on the button (a demo name, never a real person)


@runtime_checkable
class DemoControls(Protocol):
    """The demo control panel's hands on the emulators (implemented by the demo, on the emulators'
    control clients). Calls may block: the panel makes them off the Kivy thread."""

    def list_residents(self) -> list[DemoResident]: ...

    def place_card(self, resident_id: str) -> None: ...

    def remove_card(self) -> None: ...

    def insert_yen(self, amount: int) -> None:
        """A coin (10, 50, 100, 500) or a 1000-yen note."""

    def approve_qr(self) -> None: ...
