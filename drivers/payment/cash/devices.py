"""The small interfaces the money rules talk to, whatever bus a device is on.

A bus package (drivers/payment/cctalk, drivers/payment/id003) adapts its devices to these; the
provider never sees a header, a status byte or a frame. Events are reported once, in order.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Protocol


class NoteEventKind(enum.Enum):
    STATUS = "status"  # nothing for the money rules (idle, inhibited, stacker back in place ...)
    RETURNED = "returned"  # a note held in escrow went back to the resident
    REJECTED = "rejected"  # a note was refused and given back
    JAMMED = "jammed"
    FRAUD = "fraud"
    FAULT = "fault"  # the validator cannot take notes until someone fixes it
    STACKER_FULL = "stacker_full"


@dataclass(frozen=True)
class NoteEvent:
    kind: NoteEventKind | None  # None: an event with a note (escrow or credit)
    bill_type: int = 0  # the bus's own code for the note (ccTalk bill type, ID-003 escrow code)
    value: int = 0  # yen; 0 when the code is not in the validator's table
    escrow: bool = False  # True: held in escrow, decide now; False with a note: stacked and credited
    code: int = 0
    text: str = ""


@dataclass(frozen=True)
class PollResult:
    events: tuple  # CoinEvent or NoteEvent, oldest first
    lost: int  # events the device reported but the host could not read
    device_reset: bool  # the device lost power or was reset since the last poll


class EscrowEmpty(Exception):
    """Asked to stack, return or hold a note, but there is no note in escrow (it already went back)."""


class CoinAcceptorDevice(Protocol):
    address: int
    coin_table: dict[int, int]  # position → yen

    def set_accepting(self, values: set[int]) -> None: ...

    def poll(self) -> PollResult: ...


class NoteValidatorDevice(Protocol):
    address: int
    bill_table: dict[int, int]  # the bus's note code → yen
    last_counter: int | None  # event counter to resume after a reconnect (None: the bus has none)

    def set_accepting(self, values: set[int]) -> None: ...

    def poll(self) -> PollResult: ...

    def route(self, stack: bool) -> None:
        """Stack (True) or return (False) the note in escrow; EscrowEmpty when there is none."""

    def extend_escrow(self) -> None:
        """Keep holding the note in escrow a while longer; EscrowEmpty when there is none."""


class PayoutDevice(Protocol):
    address: int
    coin_yen: int

    def dispense(self, coins: int, on_paid: Callable[[int], None]) -> object: ...

    def test(self) -> frozenset[str]: ...

    def reset(self, settle: float = 0.3) -> frozenset[str]: ...
