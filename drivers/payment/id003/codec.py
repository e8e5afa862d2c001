"""ID-003 framing and payloads, pure: bytes in, values out (no I/O, no clocks).

Frame: ``SYNC(0xFC) LNG CMD DATA… CRCL CRCH`` where LNG counts the whole frame (5 + len(DATA)) and the
CRC is CRC-16/CCITT reflected ("Kermit": poly 0x8408, init 0, no final xor) over SYNC..DATA, low byte
first. Sources for every value: docs/protocols/id003.md.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

SYNC = 0xFC
FRAME_OVERHEAD = 5  # SYNC, LNG, CMD, CRC low, CRC high
MAX_FRAME = 255


class Command(enum.IntEnum):
    STATUS_REQUEST = 0x11
    RESET = 0x40
    STACK_1 = 0x41
    STACK_2 = 0x42
    RETURN = 0x43
    HOLD = 0x44
    WAIT = 0x45
    ACK = 0x50
    SET_DENOMINATION = 0xC0  # enable/inhibit per denomination: 2 bytes, 1 bit = inhibited
    SET_SECURITY = 0xC1
    SET_COMMUNICATION_MODE = 0xC2
    SET_INHIBIT = 0xC3  # whole acceptor: bit 0 = 1 inhibits
    SET_DIRECTION = 0xC4
    SET_OPTIONAL_FUNCTION = 0xC5
    GET_DENOMINATION = 0x80
    GET_SECURITY = 0x81
    GET_COMMUNICATION_MODE = 0x82
    GET_INHIBIT = 0x83
    GET_VERSION = 0x88
    GET_BOOT_VERSION = 0x89


SETTING_COMMANDS = frozenset({Command.SET_DENOMINATION, Command.SET_SECURITY, Command.SET_COMMUNICATION_MODE,
                              Command.SET_INHIBIT, Command.SET_DIRECTION, Command.SET_OPTIONAL_FUNCTION})
OPERATION_COMMANDS = frozenset({Command.RESET, Command.STACK_1, Command.STACK_2, Command.RETURN, Command.HOLD,
                                Command.WAIT})


class Status(enum.IntEnum):
    IDLING = 0x11
    ACCEPTING = 0x12
    ESCROW = 0x13
    STACKING = 0x14
    VEND_VALID = 0x15
    STACKED = 0x16
    REJECTING = 0x17
    RETURNING = 0x18
    HOLDING = 0x19
    DISABLED = 0x1A
    INITIALIZE = 0x1B
    POWER_UP = 0x40
    POWER_UP_BILL_IN_ACCEPTOR = 0x41
    POWER_UP_BILL_IN_STACKER = 0x42
    STACKER_FULL = 0x43
    STACKER_OPEN = 0x44
    ACCEPTOR_JAM = 0x45
    STACKER_JAM = 0x46
    PAUSE = 0x47  # UNCONFIRMED (one source)
    CHEATED = 0x48
    FAILURE = 0x49
    COMMUNICATION_ERROR = 0x4A
    INVALID_COMMAND = 0x4B


ACK = 0x50
POWER_UP_STATUSES = frozenset({Status.POWER_UP, Status.POWER_UP_BILL_IN_ACCEPTOR, Status.POWER_UP_BILL_IN_STACKER})
ERROR_STATUSES = frozenset({Status.STACKER_FULL, Status.STACKER_OPEN, Status.ACCEPTOR_JAM, Status.STACKER_JAM,
                            Status.PAUSE, Status.CHEATED, Status.FAILURE, Status.COMMUNICATION_ERROR,
                            Status.INVALID_COMMAND})

# What a person reads: reasons and failures as words (codes from docs/protocols/id003.md §3).
STATUS_TEXT = {
    Status.IDLING: "idling", Status.ACCEPTING: "accepting a note", Status.ESCROW: "note in escrow",
    Status.STACKING: "stacking", Status.VEND_VALID: "note accepted", Status.STACKED: "stacked",
    Status.REJECTING: "rejecting a note", Status.RETURNING: "returning a note", Status.HOLDING: "holding a note",
    Status.DISABLED: "disabled", Status.INITIALIZE: "waiting for its settings", Status.POWER_UP: "powered up",
    Status.POWER_UP_BILL_IN_ACCEPTOR: "powered up with a note in the acceptor",
    Status.POWER_UP_BILL_IN_STACKER: "powered up with a note in the stacker",
    Status.STACKER_FULL: "stacker full", Status.STACKER_OPEN: "stacker (cash box) open or removed",
    Status.ACCEPTOR_JAM: "note jammed in the acceptor", Status.STACKER_JAM: "note jammed in the stacker",
    Status.PAUSE: "paused (a second note is being inserted)", Status.CHEATED: "cheating detected",
    Status.FAILURE: "device failure", Status.COMMUNICATION_ERROR: "communication error",
    Status.INVALID_COMMAND: "invalid command",
}
REJECT_REASONS = {
    0x71: "insertion error", 0x72: "magnetic pattern error", 0x73: "a note remains in the head",
    0x74: "compensation error", 0x75: "conveying error", 0x76: "denomination not recognised",
    0x77: "photo pattern error", 0x78: "photo level error", 0x79: "inhibited or escrow timeout",
    0x7B: "operation error", 0x7C: "a note remains in the stacker", 0x7D: "length error",
    0x7E: "photo pattern error (2)",
}
FAILURE_CODES = {
    0xA2: "stack motor failure", 0xA5: "transport motor speed failure", 0xA6: "transport motor failure",
    0xA8: "solenoid failure", 0xA9: "PB unit failure", 0xAB: "cash box not ready",
    0xAF: "validator head removed", 0xB0: "boot ROM failure", 0xB1: "external ROM failure",
    0xB2: "RAM/ROM failure", 0xB3: "external ROM write failure",
}

# Default JPY escrow codes — UNCONFIRMED (firmware specific; docs/protocols/id003.md): configurable.
DEFAULT_JPY_ESCROW_CODES = {0x61: 1000, 0x62: 2000, 0x63: 5000, 0x64: 10000}
ESCROW_CODES = range(0x61, 0x69)  # 0x61 + bit position in the denomination mask


class FrameError(ValueError):
    """Bytes that are not a valid ID-003 frame (sync, length or CRC)."""


@dataclass(frozen=True)
class Frame:
    code: int  # a Command (host → validator) or a Status / ACK / echoed setting (validator → host)
    data: bytes = b""


def crc16_kermit(data: bytes) -> int:
    register = 0
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ 0x8408 if register & 1 else register >> 1
    return register


def encode(frame: Frame) -> bytes:
    size = FRAME_OVERHEAD + len(frame.data)
    if size > MAX_FRAME:
        raise ValueError(f"an ID-003 frame holds at most {MAX_FRAME - FRAME_OVERHEAD} data bytes, got {len(frame.data)}")
    body = bytes((SYNC, size, frame.code)) + bytes(frame.data)
    crc = crc16_kermit(body)
    return body + bytes((crc & 0xFF, crc >> 8))


def frame_size(buffer: bytes) -> int | None:
    """The size of the frame starting at ``buffer[0]``, once its LNG byte is there (None before)."""
    if len(buffer) < 2:
        return None
    if buffer[0] != SYNC:
        raise FrameError(f"expected SYNC 0xFC, got 0x{buffer[0]:02X}")
    if buffer[1] < FRAME_OVERHEAD:
        raise FrameError(f"length byte {buffer[1]} is shorter than a frame ({FRAME_OVERHEAD})")
    return buffer[1]


def decode(raw: bytes) -> Frame:
    size = frame_size(raw)
    if size is None or len(raw) != size:
        raise FrameError(f"frame of {len(raw)} bytes, its length byte says {size}")
    crc = crc16_kermit(raw[:-2])
    if raw[-2] != crc & 0xFF or raw[-1] != crc >> 8:
        raise FrameError(f"CRC {raw[-2]:02X} {raw[-1]:02X} does not match the frame's {crc & 0xFF:02X} {crc >> 8:02X}")
    return Frame(code=raw[2], data=bytes(raw[3:-2]))


def denomination_mask(enabled_codes: set[int] | frozenset[int]) -> bytes:
    """SET_DENOMINATION data: bit n of byte 1 is escrow code 0x61+n; 1 = inhibited, 0 = enabled."""
    inhibited = 0
    for bit, code in enumerate(ESCROW_CODES):
        if code not in enabled_codes:
            inhibited |= 1 << bit
    return bytes((inhibited, 0))


def enabled_codes(mask: bytes) -> frozenset[int]:
    if len(mask) != 2:
        raise FrameError(f"a denomination mask is 2 bytes, got {len(mask)}")
    return frozenset(code for bit, code in enumerate(ESCROW_CODES) if not mask[0] >> bit & 1)


def inhibit_data(inhibit: bool) -> bytes:
    return bytes((1 if inhibit else 0,))


def describe(frame: Frame) -> str:
    """A status as words for logs and screens ("note in escrow (code 0x63)", "rejecting: length error")."""
    try:
        status = Status(frame.code)
    except ValueError:
        return f"unknown status 0x{frame.code:02X}"
    text = STATUS_TEXT.get(status, status.name.lower())
    if status is Status.REJECTING and frame.data:
        return f"{text}: {REJECT_REASONS.get(frame.data[0], f'reason 0x{frame.data[0]:02X}')}"
    if status is Status.FAILURE and frame.data:
        return f"{text}: {FAILURE_CODES.get(frame.data[0], f'code 0x{frame.data[0]:02X}')}"
    if status in (Status.ESCROW, Status.VEND_VALID) and frame.data:
        return f"{text} (code 0x{frame.data[0]:02X})"
    return text
