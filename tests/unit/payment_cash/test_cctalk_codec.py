"""ccTalk codec on byte transcripts from spec v4.7 (via /work/shared/docs/payment-printing.md §1)."""
from __future__ import annotations

import pytest

from drivers.payment.cctalk import codec
from drivers.payment.cctalk.codec import ChecksumMode, CoinEventKind, BillEventKind, Frame, FrameError, Header

H = bytes.fromhex

HOST_FRAMES = [  # (destination, header, data, wire bytes)
    (2, Header.SIMPLE_POLL, b"", "02 00 01 FE FF"),
    (2, Header.READ_BUFFERED_CREDIT, b"", "02 00 01 E5 18"),
    (2, Header.MODIFY_MASTER_INHIBIT, b"\x01", "02 01 01 E4 01 17"),
    (2, Header.MODIFY_INHIBIT_STATUS, b"\xff\xff", "02 02 01 E7 FF FF 16"),
    (2, Header.REQUEST_COIN_ID, b"\x01", "02 01 01 B8 01 43"),
    (2, Header.REQUEST_EQUIPMENT_CATEGORY, b"", "02 00 01 F5 08"),
    (2, Header.PERFORM_SELF_CHECK, b"", "02 00 01 E8 15"),
    (40, Header.READ_BUFFERED_BILL_EVENTS, b"", "28 00 01 9F 38"),
    (40, Header.ROUTE_BILL, b"\x01", "28 01 01 9A 01 3B"),
    (3, Header.ENABLE_HOPPER, b"\xa5", "03 01 01 A4 A5 B2"),
    (3, Header.REQUEST_HOPPER_STATUS, b"", "03 00 01 A6 56"),
    (3, Header.TEST_HOPPER, b"", "03 00 01 A3 59"),
    (0, 253, b"", "00 00 01 FD 02"),
]


@pytest.mark.parametrize("dest,header,data,wire", HOST_FRAMES)
def test_host_frames_match_the_spec_bytes(dest: int, header: int, data: bytes, wire: str) -> None:
    assert codec.encode(Frame(dest, header, data)) == H(wire)
    assert codec.decode(H(wire)) == Frame(dest, header, data, source=1)


def test_spec_appendix_16_checksum_example() -> None:
    assert codec.checksum8(bytes((40, 0, 1, 254))) == 217


def test_device_replies_decode() -> None:
    ack = codec.decode(H("01 00 02 00 FD"))
    assert (ack.destination, ack.source, ack.header, ack.data) == (1, 2, 0, b"")
    nak = codec.decode(H("01 00 03 05 F7"))
    assert (nak.source, nak.header) == (3, Header.NAK)
    credit = codec.decode(H("01 0B 02 00 01 03 01 00 00 00 00 00 00 00 00 ED"))
    buffer = codec.parse_event_buffer(credit.data)
    assert buffer.counter == 1 and buffer.pairs[0] == (3, 1)


def test_crc16_vectors_from_the_spec() -> None:
    # Reset device (header 1) to address 40: TX 40 0 70 1 63, RX 1 0 48 0 55 (decimal), CRC 0x3F46 / 0x3730.
    assert codec.crc16_ccitt(bytes((40, 0, 1))) == 0x3F46
    assert codec.crc16_ccitt(bytes((1, 0, 0))) == 0x3730
    tx = bytes((40, 0, 70, 1, 63))
    assert codec.encode(Frame(40, Header.RESET_DEVICE), ChecksumMode.CRC16) == tx == H("28 00 46 01 3F")
    rx = codec.decode(bytes((1, 0, 48, 0, 55)), ChecksumMode.CRC16)
    assert (rx.destination, rx.header, rx.data, rx.source) == (1, 0, b"", None)
    assert codec.encode(Frame(2, Header.SIMPLE_POLL), ChecksumMode.CRC16) == H("02 00 B1 FE 60")
    assert codec.crc16_ccitt(b"123456789") == 0x31C3  # the CRC-16/XMODEM check value


@pytest.mark.parametrize("raw,mode", [
    (H("02 00 01 FE FE"), ChecksumMode.SIMPLE),  # checksum off by one
    (H("02 01 01 FE FF"), ChecksumMode.SIMPLE),  # length byte says 1 data byte, there is none
    (H("02 00 01"), ChecksumMode.SIMPLE),
    (H("28 00 46 01 3E"), ChecksumMode.CRC16),
])
def test_bad_frames_are_refused(raw: bytes, mode: ChecksumMode) -> None:
    with pytest.raises(FrameError):
        codec.decode(raw, mode)


def test_encode_refuses_oversized_data() -> None:
    with pytest.raises(FrameError):
        codec.encode(Frame(2, 1, bytes(253)))


@pytest.mark.parametrize("last,now,new", [(23, 23, 0), (102, 104, 2), (255, 1, 1), (253, 3, 5), (48, 54, 6), (0, 3, 3)])
def test_event_counter_differences_from_the_spec(last: int, now: int, new: int) -> None:
    assert codec.events_between(last, now) == new


def test_unread_events_in_order_with_lost_and_reset() -> None:
    pairs = [(5, 1), (4, 1), (3, 1), (2, 1), (1, 1)]  # newest first
    buf = codec.EventBuffer(counter=12, pairs=tuple(pairs))
    two = codec.unread_events(10, buf)
    assert two.events == ((4, 1), (5, 1)) and two.lost == 0 and not two.device_reset
    gap = codec.unread_events(5, buf)
    assert gap.events == tuple(reversed(pairs)) and gap.lost == 2
    reset = codec.unread_events(67, codec.EventBuffer(counter=0, pairs=((0, 0),) * 5))
    assert reset.device_reset and reset.events == ()


def test_event_counter_wraps_to_one() -> None:
    assert codec.next_event_counter(255) == 1 and codec.next_event_counter(0) == 1
    assert codec.build_event_buffer(7, [(3, 1)]) == bytes((7, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0))


def test_coin_and_bill_ids() -> None:
    assert codec.parse_coin_id(b"JP500A") == codec.Denomination("JP", 500, "A")
    assert codec.parse_coin_id(b"......") is None
    assert codec.parse_bill_id(b"JP1000A") == codec.Denomination("JP", 1000, "A")
    assert codec.parse_bill_id(b"EU0005A") == codec.Denomination("EU", 5, "A")
    assert codec.parse_bill_id(b".......") is None
    assert codec.parse_scaling_factor(b"\x01\x00\x00") == (1, 0)
    assert codec.parse_scaling_factor(b"\x00\x00\x00") is None


def test_inhibit_masks_set_bit_enables() -> None:
    assert codec.inhibit_masks({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}) == b"\xff\xff"
    assert codec.inhibit_masks({3, 9}) == b"\x04\x01"
    assert codec.enabled_positions(b"\x04\x01") == {3, 9}
    assert codec.inhibit_masks(set()) == b"\x00\x00"


def test_hopper_payloads() -> None:
    assert codec.parse_hopper_status(b"\x07\x02\x03\x00") == codec.HopperStatus(7, 2, 3, 0)
    flags = codec.parse_test_hopper(b"\x82\x01")
    assert flags == {"payout_timeout", "payout_disabled", "opto_short_payout"}
    assert codec.build_test_hopper(flags) == b"\x82\x01"
    level = codec.parse_payout_level(b"\x11")
    assert level.below_low and level.low_sensor_fitted and not level.high_sensor_fitted


@pytest.mark.parametrize("code,kind", [(0, CoinEventKind.NONE), (1, CoinEventKind.REJECTED),
                                       (14, CoinEventKind.JAMMED), (20, CoinEventKind.FRAUD),
                                       (36, CoinEventKind.KEPT_WITHOUT_CREDIT), (5, CoinEventKind.UNKNOWN),
                                       (130, CoinEventKind.REJECTED), (170, CoinEventKind.UNKNOWN)])
def test_coin_event_classes(code: int, kind: CoinEventKind) -> None:
    assert codec.classify_coin_event(code)[0] is kind


@pytest.mark.parametrize("code,kind", [(1, BillEventKind.RETURNED), (6, BillEventKind.JAMMED),
                                       (17, BillEventKind.FRAUD), (14, BillEventKind.STACKER_FULL),
                                       (99, BillEventKind.FAULT)])
def test_bill_event_classes(code: int, kind: BillEventKind) -> None:
    assert codec.classify_bill_event(code)[0] is kind
