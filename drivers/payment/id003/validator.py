"""An ID-003 note validator behind the cash rules' NoteValidatorDevice interface.

The validator only answers; its state is the status it reports to each status request. This class
turns that stream of states into events, once each: an escrow (decide now), a credit (VEND VALID,
which the host ACKs; the validator repeats it until then, so a lost ACK never credits twice), a
return, a rejection, and the faults. Sequences and codes: docs/protocols/id003.md §4.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from kiosk.errors import PaymentDeviceFault

from ..cash.devices import EscrowEmpty, NoteEvent, NoteEventKind, PollResult
from . import codec
from .codec import ACK, Command, Frame, Status
from .transport import Id003Transport

log = logging.getLogger(__name__)

_ERROR_KINDS = {
    Status.STACKER_FULL: NoteEventKind.STACKER_FULL,
    Status.STACKER_OPEN: NoteEventKind.FAULT,
    Status.ACCEPTOR_JAM: NoteEventKind.JAMMED,
    Status.STACKER_JAM: NoteEventKind.JAMMED,
    Status.CHEATED: NoteEventKind.FRAUD,
    Status.FAILURE: NoteEventKind.FAULT,
}
_IN_ESCROW = (Status.ESCROW, Status.HOLDING)
_SETTLED = (Status.IDLING, Status.DISABLED, Status.INITIALIZE)  # no note in the validator: settings allowed


class Id003NoteValidator:
    address = 0  # one validator per port: no bus address (logs name it "ID-003")
    last_counter: int | None = None  # ID-003 has no event counter: the state itself is re-read

    def __init__(self, transport: Id003Transport, escrow_codes: dict[int, int], *, reset_timeout: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.transport = transport
        self.bill_table = dict(escrow_codes)
        self.reset_timeout = reset_timeout
        self._sleep = sleep
        self.power_up_status: Status | None = None  # what the validator said when it was found
        self.version = ""
        self._last: Frame | None = None  # the last status frame read
        self._escrow_code = 0  # the note of the current escrow episode (0: none)
        self._credited_code = 0  # VEND VALID already credited in this episode (ACK may have been lost)
        self._enabled_codes: frozenset[int] | None = None
        self._inhibited: bool | None = None
        self._wanted: frozenset[int] | None = None  # notes to enable once the validator is idle again

    # --- setup -----------------------------------------------------------------------------------

    def status(self) -> Frame:
        reply = self.transport.request(Frame(Command.STATUS_REQUEST))
        self._last = reply
        return reply

    def setup(self) -> Status:
        """Power-up sequence: status → reset → wait for INITIALIZE → settings (each echoed) → DISABLED.

        Returns the status the validator had when found (POWER_UP*, or a working status when the kiosk
        restarted without the validator losing power)."""
        first = self.status()
        try:
            found = Status(first.code)
        except ValueError:
            raise PaymentDeviceFault(f"the ID-003 validator answered an unknown status 0x{first.code:02X} "
                                     f"at start; check it is an ID-003 device") from None
        self.power_up_status = found
        self._operate(Command.RESET)
        deadline = time.monotonic() + self.reset_timeout
        while True:
            reply = self.status()
            if reply.code == Status.INITIALIZE:
                break
            if reply.code in (Status.DISABLED, Status.IDLING):
                break  # some firmware keeps its settings over a reset and goes straight on
            if time.monotonic() > deadline:
                raise PaymentDeviceFault(f"the ID-003 validator did not initialise within {self.reset_timeout:.0f} s "
                                         f"after a reset (status: {codec.describe(reply)})")
            self._sleep(0.05)
        try:
            self.version = self.transport.request(Frame(Command.GET_VERSION)).data.decode("ascii", "replace")
        except PaymentDeviceFault:
            self.version = ""  # optional: not every firmware answers it
        self._setting(Command.SET_SECURITY, b"\x00\x00")
        self._setting(Command.SET_COMMUNICATION_MODE, b"\x00")
        self._setting(Command.SET_DENOMINATION, codec.denomination_mask(frozenset(self.bill_table)))
        self._enabled_codes = None
        self._setting(Command.SET_INHIBIT, codec.inhibit_data(True))
        self._inhibited = True
        self._escrow_code = self._credited_code = 0
        return found

    def _setting(self, command: Command, data: bytes) -> None:
        reply = self.transport.request(Frame(command, data))
        if (reply.code, reply.data) != (command, data):
            raise PaymentDeviceFault(f"the ID-003 validator did not echo setting 0x{command:02X} "
                                     f"(answered 0x{reply.code:02X} {reply.data.hex(' ')})")

    def _operate(self, command: Command) -> Frame:
        reply = self.transport.request(Frame(command))
        if reply.code != ACK:
            if reply.code == Status.INVALID_COMMAND:
                raise EscrowEmpty(f"the validator refused command 0x{command:02X} in its present state")
            raise PaymentDeviceFault(f"the ID-003 validator answered 0x{reply.code:02X} to command "
                                     f"0x{command:02X} instead of ACK")
        return reply

    # --- NoteValidatorDevice ---------------------------------------------------------------------

    def set_accepting(self, values: set[int]) -> None:
        """Enable exactly the notes worth ``values``. Settings are sent only while no note is being
        handled (the emulator, like a strict device, refuses them then); until then the wish is kept and
        applied at the next idle poll — a note inserted meanwhile still waits in escrow for a decision."""
        codes = frozenset(c for c, v in self.bill_table.items() if v in values)
        if self._last is not None and self._last.code not in _SETTLED:
            self._wanted = codes
            return
        self._wanted = None
        self._apply(codes)

    def _apply(self, codes: frozenset[int]) -> None:
        if codes and codes != self._enabled_codes:
            self._setting(Command.SET_DENOMINATION, codec.denomination_mask(codes))
            self._enabled_codes = codes
        inhibit = not codes
        if inhibit != self._inhibited:
            self._setting(Command.SET_INHIBIT, codec.inhibit_data(inhibit))
            self._inhibited = inhibit

    def poll(self) -> PollResult:
        previous = self._last
        reply = self.status()
        events: list[NoteEvent] = []
        try:
            status = Status(reply.code)
        except ValueError:
            log.warning("ID-003: unknown status 0x%02X %s", reply.code, reply.data.hex(" "))
            return PollResult((), 0, False)
        same = previous is not None and (previous.code, previous.data) == (reply.code, reply.data)
        code = reply.data[0] if reply.data else 0
        if status is Status.ESCROW:
            if not self._escrow_code:  # a new note: the validator repeats ESCROW until the host decides
                self._escrow_code, self._credited_code = code, 0
                events.append(NoteEvent(kind=None, bill_type=code, value=self.bill_table.get(code, 0),
                                        escrow=True, code=code, text=codec.describe(reply)))
        elif status is Status.VEND_VALID:
            # Credit once per note; ACK every time (the validator repeats VEND VALID until it hears it).
            if self._credited_code != code:
                self._credited_code = code
                events.append(NoteEvent(kind=None, bill_type=code, value=self.bill_table.get(code, 0),
                                        escrow=False, code=code, text=codec.describe(reply)))
            self.transport.send(Frame(Command.ACK))
        elif status in (Status.STACKED, Status.STACKING):
            pass
        elif status in (Status.RETURNING, Status.REJECTING):
            if self._escrow_code and not self._credited_code:
                events.append(NoteEvent(kind=NoteEventKind.RETURNED, code=self._escrow_code,
                                        text=codec.describe(reply)))
            elif status is Status.REJECTING and not same:
                events.append(NoteEvent(kind=NoteEventKind.REJECTED, code=code, text=codec.describe(reply)))
            self._escrow_code = self._credited_code = 0
        elif status in (Status.IDLING, Status.DISABLED, Status.ACCEPTING, Status.HOLDING, Status.INITIALIZE):
            if status in (Status.IDLING, Status.DISABLED) and self._escrow_code and not self._credited_code:
                events.append(NoteEvent(kind=NoteEventKind.RETURNED, code=self._escrow_code,
                                        text="the note left escrow"))
            if status is not Status.HOLDING and status is not Status.ACCEPTING:
                self._escrow_code = self._credited_code = 0
        elif status in codec.POWER_UP_STATUSES:
            self.power_up_status = status
            return PollResult((), 0, True)  # it lost power: the provider re-initialises it
        elif status in _ERROR_KINDS:
            if not same:
                events.append(NoteEvent(kind=_ERROR_KINDS[status], code=reply.code, text=codec.describe(reply)))
        elif status in (Status.PAUSE, Status.COMMUNICATION_ERROR, Status.INVALID_COMMAND):
            if not same:
                log.warning("ID-003 validator: %s", codec.describe(reply))
        if self._wanted is not None and status in _SETTLED:
            wanted, self._wanted = self._wanted, None
            self._apply(wanted)
        return PollResult(tuple(events), 0, False)

    def route(self, stack: bool) -> None:
        if self._last is None or self._last.code not in _IN_ESCROW:
            raise EscrowEmpty("no note in escrow")
        self._operate(Command.STACK_1 if stack else Command.RETURN)

    def extend_escrow(self) -> None:
        if self._last is None or self._last.code not in _IN_ESCROW:
            raise EscrowEmpty("no note in escrow")
        self._operate(Command.HOLD)
