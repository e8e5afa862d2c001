"""An emulated JCM ID-003 note validator, as strict as the device: it answers only what the protocol
lets it answer in its present state (docs/protocols/id003.md).

``receive(bytes) -> bytes`` is pure in/out (what the host wrote → what goes back on the wire), so it runs
behind a pseudo-terminal (drivers.sim.cctalk.bus.PtyBus, shared with the ccTalk emulator) or in memory.
It keeps the physical truth the tests compare the kiosk's ledger with: yen stacked, notes returned.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from drivers.payment.id003 import codec
from drivers.payment.id003.codec import ACK, Command, Frame, FrameError, Status

log = logging.getLogger(__name__)

INTER_BYTE_TIMEOUT = 0.05
JPY_CODES = {1000: 0x61, 2000: 0x62, 5000: 0x63, 10000: 0x64}  # UNCONFIRMED defaults, like the driver's
SERIES = {1000: ("2004", "2024"), 2000: ("2000",), 5000: ("2004", "2024"), 10000: ("2004", "2024")}


PHYSICAL_ERRORS = frozenset({Status.STACKER_FULL, Status.STACKER_OPEN, Status.ACCEPTOR_JAM, Status.STACKER_JAM})


@dataclass
class _Note:
    value: int
    series: str
    code: int


class SimId003Validator:
    echo = False  # a full-duplex RS-232 line: nothing comes back but the validator's answers

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, escrow_timeout: float = 10.0,
                 accept_time: float = 0.05, stack_time: float = 0.1, return_time: float = 0.1,
                 reset_time: float = 0.2, stacker_capacity: int = 500, supports_2024: bool = True,
                 power_up: Status = Status.POWER_UP) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.escrow_timeout = escrow_timeout
        self.accept_time, self.stack_time, self.return_time, self.reset_time = (accept_time, stack_time,
                                                                                 return_time, reset_time)
        self.stacker_capacity = stacker_capacity
        self.supports_2024 = supports_2024
        self.state: Status = power_up
        self.state_data = b""
        self._state_since = clock()
        self.settings: dict[int, bytes] = {}
        self.inhibited = True
        self.enabled_codes: frozenset[int] = frozenset()
        self.note: _Note | None = None
        self.vend_acked = False
        self.error: Status | None = None  # a lasting error status (jam, stacker full/open, cheated, failure)
        self.error_data = b""
        self.reject_next: int = 0  # reason code for the next inserted note
        # wire faults
        self.silent_until = 0.0
        self.drop_replies = 0
        self.garbage_replies = 0
        self.reply_delay = 0.0
        self._buffer = bytearray()
        self._last_byte_at = 0.0
        # physical truth
        self.stacked: list[tuple[int, str]] = []
        self.notes_returned = 0
        self.notes_rejected = 0
        self.frames = 0
        self.bad_crc = 0
        self.invalid_commands = 0

    # --- the wire --------------------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        now = self.clock()
        out = bytearray()
        with self.lock:
            if self._buffer and now - self._last_byte_at > INTER_BYTE_TIMEOUT:
                self._buffer.clear()
            self._last_byte_at = now
            self._buffer += data
            while self._buffer:
                if self._buffer[0] != codec.SYNC:
                    del self._buffer[0]  # line noise before a frame
                    continue
                if len(self._buffer) < 2:
                    break
                size = self._buffer[1]
                if size < codec.FRAME_OVERHEAD:
                    del self._buffer[0]
                    continue
                if len(self._buffer) < size:
                    break
                raw, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
                out += self._frame(raw)
        return bytes(out)

    def _frame(self, raw: bytes) -> bytes:
        try:
            frame = codec.decode(raw)
        except FrameError:
            self.bad_crc += 1
            return b""  # UNCONFIRMED what a device answers to a bad CRC: it stays silent here
        self.frames += 1
        self.tick()
        reply = self._handle(frame)
        if reply is None or self.clock() < self.silent_until:
            return b""
        if self.drop_replies:
            self.drop_replies -= 1
            return b""
        wire = codec.encode(reply)
        if self.garbage_replies:
            self.garbage_replies -= 1
            wire = b"\x00\x55" + wire
        return wire

    # --- protocol --------------------------------------------------------------------------------

    def _status_frame(self) -> Frame:
        if self.error is not None:
            return Frame(self.error, self.error_data)
        return Frame(self.state, self.state_data)

    def _invalid(self, why: str) -> Frame:
        self.invalid_commands += 1
        log.info("ID-003 emulator: invalid command (%s) in state %s", why, self.state.name)
        return Frame(Status.INVALID_COMMAND)

    def _handle(self, frame: Frame) -> Frame | None:
        cmd = frame.code
        if cmd == Command.STATUS_REQUEST and not frame.data:
            return self._status_frame()
        if cmd == Command.ACK and not frame.data:
            if self.state is Status.VEND_VALID:
                self.vend_acked = True
            return None  # the host's ACK is never answered
        if cmd == Command.RESET and not frame.data:
            self._reset()
            return Frame(ACK)
        if cmd in (Command.GET_VERSION, Command.GET_BOOT_VERSION) and not frame.data:
            return Frame(cmd, b"MDG-SIM ID003 JPY 2024-ready" if self.supports_2024 else b"MDG-SIM ID003 JPY")
        if self.state in codec.POWER_UP_STATUSES:
            return self._invalid("not reset since power-up")
        if cmd in codec.SETTING_COMMANDS:
            if self.state not in (Status.INITIALIZE, Status.DISABLED, Status.IDLING):
                return self._invalid("settings only while no note is handled")
            return self._setting(Command(cmd), frame.data)
        if Command.GET_DENOMINATION <= cmd <= Command.GET_INHIBIT and not frame.data:
            stored = self.settings.get(cmd + 0x40)
            return Frame(cmd, stored) if stored is not None else self._invalid("setting never made")
        if cmd in (Command.STACK_1, Command.STACK_2, Command.RETURN, Command.HOLD) and not frame.data:
            if self.state not in (Status.ESCROW, Status.HOLDING) or self.error is not None:
                return self._invalid("no note in escrow")
            if cmd == Command.HOLD:
                self._go(Status.HOLDING)
            elif cmd == Command.RETURN:
                self._go(Status.RETURNING)
            else:
                self._go(Status.STACKING)
            return Frame(ACK)
        if cmd == Command.WAIT and not frame.data:
            return Frame(ACK)
        return self._invalid(f"unknown command 0x{cmd:02X} {frame.data.hex(' ')}")

    def _setting(self, cmd: Command, data: bytes) -> Frame:
        sizes = {Command.SET_DENOMINATION: 2, Command.SET_SECURITY: 2, Command.SET_COMMUNICATION_MODE: 1,
                 Command.SET_INHIBIT: 1, Command.SET_DIRECTION: 1, Command.SET_OPTIONAL_FUNCTION: 2}
        if len(data) != sizes[cmd]:
            return self._invalid(f"setting 0x{cmd:02X} needs {sizes[cmd]} data bytes, got {len(data)}")
        self.settings[cmd] = bytes(data)
        if cmd == Command.SET_DENOMINATION:
            self.enabled_codes = codec.enabled_codes(data)
        if cmd == Command.SET_INHIBIT:
            self.inhibited = bool(data[0] & 1)
        if self.state is Status.INITIALIZE and Command.SET_INHIBIT in self.settings \
                and Command.SET_DENOMINATION in self.settings:
            self._go(Status.DISABLED)
        if self.state in (Status.DISABLED, Status.IDLING):
            self._go(Status.DISABLED if self.inhibited else Status.IDLING)
        return Frame(cmd, data)  # settings are answered by their echo

    def _reset(self) -> None:
        was = self.state
        if was is Status.POWER_UP_BILL_IN_ACCEPTOR and self.note is not None:
            self.notes_returned += 1  # the note in the head comes back out
        elif was is Status.POWER_UP_BILL_IN_STACKER and self.note is not None:
            self._stack_now()  # the note half way into the stacker is stacked, without a credit
        self.note = None
        if self.error not in PHYSICAL_ERRORS:  # a reset cannot empty a stacker or pull out a jammed note
            self.error, self.error_data = None, b""
        self.settings.clear()
        self.inhibited = True
        self._go(Status.INITIALIZE)

    def _go(self, state: Status, data: bytes = b"") -> None:
        self.state, self.state_data, self._state_since = state, data, self.clock()

    def _idle_state(self) -> Status:
        return Status.DISABLED if self.inhibited else Status.IDLING

    def _stack_now(self) -> None:
        assert self.note is not None
        self.stacked.append((self.note.value, self.note.series))
        if len(self.stacked) >= self.stacker_capacity:
            self.error = Status.STACKER_FULL

    def tick(self) -> None:
        """Advance time-driven behaviour: accepting, escrow timeout, stacking, returning."""
        with self.lock:
            now = self.clock()
            age = now - self._state_since
            if self.error is not None:
                return
            if self.state is Status.ACCEPTING and age >= self.accept_time and self.note is not None:
                self._go(Status.ESCROW, bytes((self.note.code,)))
            elif self.state in (Status.ESCROW, Status.HOLDING) and age >= self.escrow_timeout:
                self._go(Status.REJECTING, b"\x79")  # no decision in time: given back ([EF])
                self.notes_returned += 1
                self.note = None
            elif self.state is Status.STACKING and age >= self.stack_time and self.note is not None:
                self.vend_acked = False
                self._go(Status.VEND_VALID, bytes((self.note.code,)))
            elif self.state is Status.VEND_VALID and self.vend_acked:
                self._stack_now()
                self.note = None
                self._go(Status.STACKED)
            elif self.state is Status.STACKED and age >= self.stack_time:
                self._go(self._idle_state())
            elif self.state is Status.RETURNING and age >= self.return_time:
                self.notes_returned += 1
                self.note = None
                self._go(self._idle_state())
            elif self.state is Status.REJECTING and age >= self.return_time:
                self._go(self._idle_state())

    # --- the resident and the technician (control interface) -------------------------------------

    def insert_note(self, value: int, series: str = "2024") -> str:
        """Feed a note; returns what the validator did with it ("escrow", "rejected", "refused")."""
        with self.lock:
            self.tick()
            if value not in JPY_CODES or series not in SERIES[value]:
                raise ValueError(f"no {series} series {value}-yen note exists (series: {SERIES.get(value)})")
            if self.state is not Status.IDLING or self.error is not None:
                return "refused"  # disabled or busy: the transport does not take the note in
            code = JPY_CODES[value]
            reason = self.reject_next
            if not reason and series == "2024" and not self.supports_2024:
                reason = 0x76  # firmware without the 2024 series: denomination not recognised
            if not reason and code not in self.enabled_codes:
                reason = 0x79  # inhibited denomination
            if reason:
                self.reject_next = 0
                self.notes_rejected += 1
                self._go(Status.REJECTING, bytes((reason,)))
                return "rejected"
            self.note = _Note(value, series, code)
            self._go(Status.ACCEPTING)
            return "escrow"

    def fault(self, status: Status, data: bytes = b"") -> None:
        with self.lock:
            self.error, self.error_data = status, data

    def clear_fault(self) -> None:
        """A technician fixed it (jam removed, stacker emptied and closed): the validator needs a reset."""
        with self.lock:
            if self.error is Status.STACKER_FULL:
                self.stacked.clear()
            self.error, self.error_data = None, b""
            self.note = None
            self._go(Status.INITIALIZE)
            self.settings.clear()

    def power_cycle(self) -> None:
        with self.lock:
            if self.note is not None and self.state in (Status.STACKING, Status.VEND_VALID):
                self._go(Status.POWER_UP_BILL_IN_STACKER)
            elif self.note is not None:
                self._go(Status.POWER_UP_BILL_IN_ACCEPTOR)
            else:
                self._go(Status.POWER_UP)
            self.error = None
            self.settings.clear()
            self.inhibited = True

    def state_dict(self) -> dict[str, object]:
        with self.lock:
            self.tick()
            status = self._status_frame()
            return {"status": Status(status.code).name.lower(), "inhibited": self.inhibited,
                    "enabled_values": sorted(v for v, c in JPY_CODES.items() if c in self.enabled_codes),
                    "stacked_yen": sum(v for v, _ in self.stacked), "stacked": [list(n) for n in self.stacked],
                    "notes_returned": self.notes_returned, "notes_rejected": self.notes_rejected,
                    "escrow_yen": self.note.value if self.note and self.state in (Status.ESCROW, Status.HOLDING)
                    else 0, "frames": self.frames, "bad_crc": self.bad_crc,
                    "invalid_commands": self.invalid_commands}
