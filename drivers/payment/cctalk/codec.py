"""ccTalk framing and payloads, pure: bytes in, values out (no I/O, no clocks).

Frame (spec part 1 §7.1): ``[destination][N][source][header][data × N][checksum]`` where the sum of
all bytes, checksum included, is 0 mod 256. The CRC-16 variant (§7.2, part 3 appendix 9) puts the
CRC-CCITT (poly 0x1021, init 0, not reflected) low byte where the source was and the high byte where
the checksum was, computed over destination, N, header and data. Facts and sources:
/work/shared/docs/payment-printing.md §1.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

HOST_ADDRESS = 1
BROADCAST_ADDRESS = 0
MAX_DATA = 252
EVENT_SLOTS = 5  # pairs in a 229 / 159 reply


class Header(enum.IntEnum):
    REPLY = 0
    RESET_DEVICE = 1
    REQUEST_COMMS_REVISION = 4
    NAK = 5
    BUSY = 6
    ROUTE_BILL = 154
    REQUEST_BILL_ID = 157
    REQUEST_COUNTRY_SCALING = 156
    MODIFY_BILL_OPERATING_MODE = 153
    READ_BUFFERED_BILL_EVENTS = 159
    TEST_HOPPER = 163
    ENABLE_HOPPER = 164
    REQUEST_HOPPER_STATUS = 166
    DISPENSE_HOPPER_COINS = 167
    REQUEST_HOPPER_DISPENSE_COUNT = 168
    REQUEST_HOPPER_COIN = 171
    EMERGENCY_STOP = 172
    REQUEST_COIN_ID = 184
    REQUEST_PAYOUT_HIGH_LOW_STATUS = 217
    MODIFY_MASTER_INHIBIT = 228
    REQUEST_MASTER_INHIBIT = 227
    READ_BUFFERED_CREDIT = 229
    REQUEST_INHIBIT_STATUS = 230
    MODIFY_INHIBIT_STATUS = 231
    PERFORM_SELF_CHECK = 232
    REQUEST_SOFTWARE_REVISION = 241
    REQUEST_SERIAL_NUMBER = 242
    REQUEST_PRODUCT_CODE = 244
    REQUEST_EQUIPMENT_CATEGORY = 245
    REQUEST_MANUFACTURER_ID = 246
    REQUEST_STATUS = 248
    REQUEST_POLLING_PRIORITY = 249
    SIMPLE_POLL = 254


class ChecksumMode(enum.Enum):
    SIMPLE = "simple"
    CRC16 = "crc16"


class FrameError(ValueError):
    """Bytes that are not a valid ccTalk frame (wrong length or checksum)."""


@dataclass(frozen=True)
class Frame:
    destination: int
    header: int
    data: bytes = b""
    source: int | None = HOST_ADDRESS  # None in CRC-16 mode, where the source slot holds the CRC


def checksum8(data: bytes) -> int:
    """The byte that makes the sum of ``data`` plus itself 0 mod 256."""
    return (-sum(data)) & 0xFF


def crc16_ccitt(data: bytes, register: int = 0x0000) -> int:
    for byte in data:
        register ^= byte << 8
        for _ in range(8):
            register = ((register << 1) ^ 0x1021) if register & 0x8000 else (register << 1)
            register &= 0xFFFF
    return register


def encode(frame: Frame, mode: ChecksumMode = ChecksumMode.SIMPLE) -> bytes:
    if len(frame.data) > MAX_DATA:
        raise FrameError(f"ccTalk data is at most {MAX_DATA} bytes, got {len(frame.data)}")
    for name, value in (("destination", frame.destination), ("header", frame.header)):
        if not 0 <= value <= 255:
            raise FrameError(f"ccTalk {name} must be a byte, got {value}")
    n = len(frame.data)
    if mode is ChecksumMode.CRC16:
        crc = crc16_ccitt(bytes((frame.destination, n, frame.header)) + frame.data)
        return bytes((frame.destination, n, crc & 0xFF, frame.header)) + frame.data + bytes((crc >> 8,))
    source = HOST_ADDRESS if frame.source is None else frame.source
    body = bytes((frame.destination, n, source, frame.header)) + frame.data
    return body + bytes((checksum8(body),))


def frame_size(prefix: bytes) -> int | None:
    """Total size of the frame that starts with ``prefix``, once its length byte is known."""
    return prefix[1] + 5 if len(prefix) >= 2 else None


def decode(raw: bytes, mode: ChecksumMode = ChecksumMode.SIMPLE) -> Frame:
    if len(raw) < 5:
        raise FrameError(f"a ccTalk frame has at least 5 bytes, got {len(raw)}: {raw.hex(' ')}")
    if len(raw) != raw[1] + 5:
        raise FrameError(f"length byte says {raw[1]} data bytes but the frame has {len(raw)} bytes: {raw.hex(' ')}")
    data = bytes(raw[4:-1])
    if mode is ChecksumMode.CRC16:
        expected = crc16_ccitt(bytes((raw[0], raw[1], raw[3])) + data)
        found = raw[2] | (raw[-1] << 8)
        if expected != found:
            raise FrameError(f"CRC {found:04X} should be {expected:04X}: {raw.hex(' ')}")
        return Frame(destination=raw[0], header=raw[3], data=data, source=None)
    if sum(raw) & 0xFF:
        raise FrameError(f"checksum does not add up to 0 mod 256: {raw.hex(' ')}")
    return Frame(destination=raw[0], header=raw[3], data=data, source=raw[2])


# --- buffered events (229 coin credits, 159 bill events) -------------------------------------------------


@dataclass(frozen=True)
class EventBuffer:
    counter: int
    pairs: tuple[tuple[int, int], ...]  # newest first, as the device sends them


@dataclass(frozen=True)
class UnreadEvents:
    events: tuple[tuple[int, int], ...]  # oldest first: the order they happened
    lost: int  # events that fell off the 5-slot buffer before the host read them
    device_reset: bool  # counter went back to 0: power cycle or reset, inhibits are lost


def parse_event_buffer(data: bytes) -> EventBuffer:
    if len(data) != 1 + 2 * EVENT_SLOTS:
        raise FrameError(f"an event buffer reply has 11 bytes, got {len(data)}: {data.hex(' ')}")
    pairs = tuple((data[1 + 2 * i], data[2 + 2 * i]) for i in range(EVENT_SLOTS))
    return EventBuffer(counter=data[0], pairs=pairs)


def build_event_buffer(counter: int, pairs_newest_first: list[tuple[int, int]]) -> bytes:
    padded = (list(pairs_newest_first) + [(0, 0)] * EVENT_SLOTS)[:EVENT_SLOTS]
    return bytes([counter] + [b for pair in padded for b in pair])


def next_event_counter(counter: int) -> int:
    """After 255 the counter wraps to 1; 0 only ever means 'just powered up / reset'."""
    return 1 if counter >= 255 else counter + 1


def events_between(last_counter: int, counter: int) -> int:
    if counter == last_counter:
        return 0
    diff = counter - last_counter
    return diff + 255 if diff < 0 else diff


def unread_events(last_counter: int, buffer: EventBuffer) -> UnreadEvents:
    if buffer.counter == 0 and last_counter != 0:
        return UnreadEvents(events=(), lost=0, device_reset=True)
    new = events_between(last_counter, buffer.counter)
    visible = min(new, EVENT_SLOTS)
    return UnreadEvents(events=tuple(reversed(buffer.pairs[:visible])), lost=new - visible, device_reset=False)


# --- identifiers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Denomination:
    country: str
    value: int  # in the country's unit (coins) or in scaling-factor units (bills)
    issue: str


def parse_coin_id(data: bytes) -> Denomination | None:
    """``JP500A`` → JP, 500, A; an unprogrammed position (``......``) → None."""
    text = data.decode("ascii", errors="replace")
    if len(text) != 6 or not text[2:5].isdigit():
        return None
    return Denomination(country=text[:2], value=int(text[2:5]), issue=text[5])


def parse_bill_id(data: bytes) -> Denomination | None:
    """``JP1000A`` → JP, 1000, A (value in scaling-factor units); unprogrammed → None."""
    text = data.decode("ascii", errors="replace")
    if len(text) != 7 or not text[2:6].isdigit():
        return None
    return Denomination(country=text[:2], value=int(text[2:6]), issue=text[6])


def parse_scaling_factor(data: bytes) -> tuple[int, int] | None:
    """(factor, decimal places) from header 156; None when the country is not supported."""
    if len(data) != 3 or data == b"\x00\x00\x00":
        return None
    return data[0] | (data[1] << 8), data[2]


def inhibit_masks(enabled_positions: set[int], width: int = 2) -> bytes:
    """Header 231 data: bit (p-1) set = position p enabled (spec part 2 §3.25: 1 = enabled)."""
    value = 0
    for position in enabled_positions:
        if not 1 <= position <= 8 * width:
            raise ValueError(f"position {position} outside 1..{8 * width}")
        value |= 1 << (position - 1)
    return value.to_bytes(width, "little")


def enabled_positions(masks: bytes) -> set[int]:
    value = int.from_bytes(masks, "little")
    return {bit + 1 for bit in range(8 * len(masks)) if value >> bit & 1}


# --- hopper ------------------------------------------------------------------------------------------

HOPPER_ENABLE_CODE = 165


@dataclass(frozen=True)
class HopperStatus:
    counter: int  # increments once per accepted dispense command
    remaining: int  # coins still to pay in the current payout
    paid: int  # coins paid in the last (or current) payout
    unpaid: int  # coins the last payout failed to pay


def parse_hopper_status(data: bytes) -> HopperStatus:
    if len(data) != 4:
        raise FrameError(f"a hopper status reply has 4 bytes, got {len(data)}: {data.hex(' ')}")
    return HopperStatus(counter=data[0], remaining=data[1], paid=data[2], unpaid=data[3])


# Test hopper (163) register 1 / register 2 bits, spec part 2 §3.90.
HOPPER_REGISTER_1 = {
    0: "max_current_exceeded", 1: "payout_timeout", 2: "motor_reversed", 3: "opto_blocked_idle",
    4: "opto_short_idle", 5: "opto_blocked_payout", 6: "power_up", 7: "payout_disabled",
}
HOPPER_REGISTER_2 = {
    0: "opto_short_payout", 1: "single_coin_mode", 2: "use_other_hopper", 3: "opto_fraud",
    4: "motor_reverse_limit", 5: "inductive_coil_fault", 6: "nv_memory_checksum", 7: "pin_mechanism",
}
HOPPER_FAULT_FLAGS = frozenset({"max_current_exceeded", "payout_timeout", "opto_blocked_payout",
                                "opto_short_payout", "motor_reverse_limit", "inductive_coil_fault",
                                "nv_memory_checksum"})
HOPPER_FRAUD_FLAGS = frozenset({"opto_blocked_idle", "opto_short_idle", "opto_fraud"})


def parse_test_hopper(data: bytes) -> frozenset[str]:
    flags: set[str] = set()
    for table, byte in zip((HOPPER_REGISTER_1, HOPPER_REGISTER_2), data):
        flags |= {name for bit, name in table.items() if byte >> bit & 1}
    return frozenset(flags)


def build_test_hopper(flags: set[str] | frozenset[str]) -> bytes:
    registers = []
    for table in (HOPPER_REGISTER_1, HOPPER_REGISTER_2):
        registers.append(sum(1 << bit for bit, name in table.items() if name in flags))
    return bytes(registers)


@dataclass(frozen=True)
class PayoutLevel:
    below_low: bool
    at_or_above_high: bool
    low_sensor_fitted: bool
    high_sensor_fitted: bool


def parse_payout_level(data: bytes) -> PayoutLevel:
    if len(data) != 1:
        raise FrameError(f"a payout high/low status reply has 1 byte, got {len(data)}")
    b = data[0]
    return PayoutLevel(below_low=bool(b & 1), at_or_above_high=bool(b & 2),
                       low_sensor_fitted=bool(b & 16), high_sensor_fitted=bool(b & 32))


# --- event code tables (spec part 3 tables 2 and 7) ----------------------------------------------------


class CoinEventKind(enum.Enum):
    NONE = "none"  # null event, data block request, coin return lever
    REJECTED = "rejected"  # the coin came back to the resident: nothing to account
    JAMMED = "jammed"  # a sensor is blocked: a coin is stuck
    FRAUD = "fraud"
    KEPT_WITHOUT_CREDIT = "kept_without_credit"  # the coin probably went in but was not credited
    UNKNOWN = "unknown"  # fate unknown: the host runs a self-check


_COIN_CODES: dict[int, tuple[CoinEventKind, str]] = {
    0: (CoinEventKind.NONE, "no error"),
    1: (CoinEventKind.REJECTED, "reject coin"),
    2: (CoinEventKind.REJECTED, "inhibited coin"),
    3: (CoinEventKind.REJECTED, "multiple window"),
    4: (CoinEventKind.UNKNOWN, "wake-up timeout"),
    5: (CoinEventKind.UNKNOWN, "validation timeout"),
    6: (CoinEventKind.UNKNOWN, "credit sensor timeout"),
    7: (CoinEventKind.KEPT_WITHOUT_CREDIT, "sorter opto timeout"),
    8: (CoinEventKind.REJECTED, "second close coin error"),
    9: (CoinEventKind.REJECTED, "accept gate not ready"),
    10: (CoinEventKind.REJECTED, "credit sensor not ready"),
    11: (CoinEventKind.REJECTED, "sorter not ready"),
    12: (CoinEventKind.REJECTED, "reject coin not cleared"),
    13: (CoinEventKind.REJECTED, "validation sensor not ready"),
    14: (CoinEventKind.JAMMED, "credit sensor blocked"),
    15: (CoinEventKind.JAMMED, "sorter opto blocked"),
    16: (CoinEventKind.FRAUD, "credit sequence error"),
    17: (CoinEventKind.FRAUD, "coin going backwards"),
    18: (CoinEventKind.KEPT_WITHOUT_CREDIT, "coin too fast over credit sensor"),
    19: (CoinEventKind.KEPT_WITHOUT_CREDIT, "coin too slow over credit sensor"),
    20: (CoinEventKind.FRAUD, "coin-on-string mechanism activated"),
    21: (CoinEventKind.UNKNOWN, "DCE opto timeout"),
    22: (CoinEventKind.REJECTED, "DCE opto not seen"),
    23: (CoinEventKind.FRAUD, "credit sensor reached too early"),
    24: (CoinEventKind.REJECTED, "reject coin (repeated sequential trip)"),
    25: (CoinEventKind.REJECTED, "reject slug"),
    26: (CoinEventKind.JAMMED, "reject sensor blocked"),
    27: (CoinEventKind.KEPT_WITHOUT_CREDIT, "games overload"),
    28: (CoinEventKind.KEPT_WITHOUT_CREDIT, "max coin meter pulses exceeded"),
    29: (CoinEventKind.JAMMED, "accept gate open, not closed"),
    30: (CoinEventKind.REJECTED, "accept gate closed, not open"),
    31: (CoinEventKind.KEPT_WITHOUT_CREDIT, "manifold opto timeout"),
    32: (CoinEventKind.JAMMED, "manifold opto blocked"),
    33: (CoinEventKind.REJECTED, "manifold not ready"),
    34: (CoinEventKind.UNKNOWN, "security status changed"),
    35: (CoinEventKind.UNKNOWN, "motor exception"),
    36: (CoinEventKind.KEPT_WITHOUT_CREDIT, "swallowed coin"),
    37: (CoinEventKind.REJECTED, "coin too fast over validation sensor"),
    38: (CoinEventKind.REJECTED, "coin too slow over validation sensor"),
    39: (CoinEventKind.KEPT_WITHOUT_CREDIT, "coin incorrectly sorted"),
    40: (CoinEventKind.FRAUD, "external light attack"),
    253: (CoinEventKind.NONE, "data block request"),
    254: (CoinEventKind.NONE, "coin return mechanism activated"),
    255: (CoinEventKind.UNKNOWN, "unspecified alarm"),
}


def classify_coin_event(code: int) -> tuple[CoinEventKind, str]:
    if code in _COIN_CODES:
        return _COIN_CODES[code]
    if 128 <= code <= 159:
        return CoinEventKind.REJECTED, f"inhibited coin type {code - 127}"
    return CoinEventKind.UNKNOWN, f"coin acceptor event code {code}"


class BillEventKind(enum.Enum):
    STATUS = "status"
    RETURNED = "returned"  # a bill held in escrow went back to the resident
    REJECTED = "rejected"
    JAMMED = "jammed"
    FRAUD = "fraud"
    FAULT = "fault"  # the validator cannot take bills until someone fixes it
    STACKER_FULL = "stacker_full"


_BILL_CODES: dict[int, tuple[BillEventKind, str]] = {
    0: (BillEventKind.STATUS, "master inhibit active"),
    1: (BillEventKind.RETURNED, "bill returned from escrow"),
    2: (BillEventKind.REJECTED, "invalid bill (validation fail)"),
    3: (BillEventKind.REJECTED, "invalid bill (transport problem)"),
    4: (BillEventKind.REJECTED, "inhibited bill (serial)"),
    5: (BillEventKind.REJECTED, "inhibited bill (DIP switches)"),
    6: (BillEventKind.JAMMED, "bill jammed in transport (unsafe mode)"),
    7: (BillEventKind.JAMMED, "bill jammed in stacker"),
    8: (BillEventKind.FRAUD, "bill pulled backwards"),
    9: (BillEventKind.FRAUD, "bill tamper"),
    10: (BillEventKind.STATUS, "stacker OK"),
    11: (BillEventKind.FAULT, "stacker removed"),
    12: (BillEventKind.STATUS, "stacker inserted"),
    13: (BillEventKind.FAULT, "stacker faulty"),
    14: (BillEventKind.STACKER_FULL, "stacker full"),
    15: (BillEventKind.JAMMED, "stacker jammed"),
    16: (BillEventKind.JAMMED, "bill jammed in transport (safe mode)"),
    17: (BillEventKind.FRAUD, "opto fraud detected"),
    18: (BillEventKind.FRAUD, "string fraud detected"),
    19: (BillEventKind.FAULT, "anti-string mechanism faulty"),
    20: (BillEventKind.STATUS, "barcode detected"),
    21: (BillEventKind.STATUS, "unknown bill type stacked"),
}


def classify_bill_event(code: int) -> tuple[BillEventKind, str]:
    return _BILL_CODES.get(code, (BillEventKind.FAULT, f"bill validator event code {code}"))


BILL_ROUTE_RETURN = 0
BILL_ROUTE_STACK = 1
BILL_ROUTE_EXTEND_ESCROW = 255
BILL_ROUTE_ERRORS = {254: "escrow is empty", 255: "failed to route the bill"}
