"""ID-003 codec on byte transcripts (docs/protocols/id003.md §1–§3 name the sources of each fact)."""
from __future__ import annotations

import pytest

from drivers.payment.id003 import codec
from drivers.payment.id003.codec import Command, Frame, FrameError, Status


def test_status_request_transcript() -> None:
    """`FC 05 11 27 56` is the status request in [CRC] and three [TX] programs: SYNC, LNG=5, CMD, CRC low first."""
    assert codec.encode(Frame(Command.STATUS_REQUEST)) == bytes.fromhex("FC 05 11 27 56")
    assert codec.decode(bytes.fromhex("FC 05 11 27 56")) == Frame(Status.IDLING)


def test_crc_is_kermit_low_byte_first() -> None:
    """CRC-16/CCITT reflected (poly 0x8408, init 0) — [CV] refin/refout true, [PY] Kermit table."""
    assert codec.crc16_kermit(b"123456789") == 0x2189  # the catalogued check value of CRC-16/KERMIT
    assert codec.crc16_kermit(bytes.fromhex("FC 05 11")) == 0x5627


@pytest.mark.parametrize("frame,wire", [
    (Frame(Command.RESET), "FC 05 40 2B 15"),
    (Frame(Command.ACK), "FC 05 50 AA 05"),
    (Frame(Command.STACK_1), "FC 05 41 A2 04"),
    (Frame(Command.RETURN), "FC 05 43 B0 27"),
    (Frame(Status.ESCROW, b"\x61"), "FC 06 13 61 B0 FB"),
    (Frame(Command.SET_INHIBIT, b"\x01"), "FC 06 C3 01 8D C7"),
    (Frame(Command.SET_DENOMINATION, b"\x00\x00"), "FC 07 C0 00 00 2D B5"),
])
def test_frames_round_trip(frame: Frame, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert codec.encode(frame) == raw
    assert codec.decode(raw) == frame
    assert codec.frame_size(raw) == len(raw)  # LNG counts the whole frame


def test_bad_frames_are_refused_with_the_reason() -> None:
    with pytest.raises(FrameError, match="CRC"):
        codec.decode(bytes.fromhex("FC 05 11 27 57"))
    with pytest.raises(FrameError, match="SYNC"):
        codec.decode(bytes.fromhex("FD 05 11 27 56"))
    with pytest.raises(FrameError, match="length"):
        codec.decode(bytes.fromhex("FC 06 11 27 56"))
    with pytest.raises(FrameError, match="shorter"):
        codec.frame_size(bytes.fromhex("FC 02"))


def test_denomination_mask_one_bit_inhibits() -> None:
    """SET_DENOMINATION: bit n of byte 1 = escrow code 0x61+n, 1 = inhibited ([PY] "0 = enabled, 1 = disabled")."""
    assert codec.denomination_mask({0x61, 0x64}) == bytes((0b11110110, 0))
    assert codec.enabled_codes(bytes((0b11110110, 0))) == {0x61, 0x64}
    assert codec.denomination_mask(set()) == b"\xff\x00"


def test_statuses_read_as_words() -> None:
    assert codec.describe(Frame(Status.REJECTING, b"\x76")) == "rejecting a note: denomination not recognised"
    assert codec.describe(Frame(Status.FAILURE, b"\xa6")) == "device failure: transport motor failure"
    assert codec.describe(Frame(0x99)) == "unknown status 0x99"
