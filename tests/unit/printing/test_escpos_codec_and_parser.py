"""ESC/POS codec and the emulator's stream parser, on byte transcripts."""
from __future__ import annotations

import pytest
from PIL import Image

from drivers.printer import escpos_codec as codec
from drivers.sim.escpos_printer.parser import EscposParser


@pytest.mark.parametrize("n,reply,expected", [
    (1, b"\x12", {"offline": False}),
    (1, b"\x1a", {"offline": True}),
    (2, b"\x16", {"cover_open": True, "paper_end_stop": False, "error": False}),
    (2, b"\x32", {"cover_open": False, "paper_end_stop": True, "error": False}),
    (3, b"\x1a", {"cutter_error": True, "unrecoverable_error": False, "auto_recoverable_error": False}),
    (4, b"\x12", {"paper_near_end": False, "paper_end": False}),
    (4, b"\x1e", {"paper_near_end": True, "paper_end": False}),
    (4, b"\x72", {"paper_near_end": False, "paper_end": True}),
    (4, b"\x7e", {"paper_near_end": True, "paper_end": True}),
])
def test_status_bytes_decode(n, reply, expected):
    assert codec.decode_status(n, reply) == expected


@pytest.mark.parametrize("reply", [b"", b"\x12\x12", b"\x04", b"\x00", b"\x92", b"\x13"])
def test_no_answer_two_bytes_or_invalid_byte_is_refused(reply):
    with pytest.raises(ValueError):
        codec.decode_status(4, reply)


def test_emulator_replies_round_trip_through_the_decoder():
    status = codec.PrinterStatus(offline=True, cover_open=True, paper_near_end=True)
    assert codec.decode_status(1, codec.encode_status(1, status)) == {"offline": True}
    assert codec.decode_status(2, codec.encode_status(2, status))["cover_open"] is True
    assert codec.decode_status(4, codec.encode_status(4, status)) == {"paper_near_end": True, "paper_end": False}
    assert codec.encode_status(4, codec.PrinterStatus(paper_end=True)) == b"\x7e"


def test_commands_are_the_documented_bytes():
    assert codec.INIT == b"\x1b\x40"
    assert codec.AUTO_STATUS_BACK_OFF == b"\x1d\x61\x00"
    assert codec.status_request(4) == b"\x10\x04\x04"
    assert codec.CUT_PARTIAL == b"\x1d\x56\x01" and codec.CUT_FULL == b"\x1d\x56\x00"
    assert codec.feed_lines(4) == b"\x1b\x64\x04"
    assert codec.raster_image(2, 1, b"\x80\x01") == b"\x1d\x76\x30\x00\x02\x00\x01\x00\x80\x01"
    with pytest.raises(ValueError):
        codec.raster_image(2, 2, b"\x00")


def test_raster_from_image_black_is_one_msb_leftmost_and_rows_padded():
    img = Image.new("1", (10, 2), 1)
    img.putpixel((0, 0), 0)
    img.putpixel((9, 1), 0)
    width_bytes, height, bits = codec.raster_from_image(img)
    assert (width_bytes, height) == (2, 2)
    assert bits == b"\x80\x00\x00\x40"


def test_parser_reassembles_commands_split_across_chunks():
    stream = (codec.INIT + codec.AUTO_STATUS_BACK_OFF + codec.status_request(4)
              + codec.raster_image(2, 2, b"\xff\x00\x0f\xf0") + b"ABC" + codec.feed_lines(3) + codec.CUT_PARTIAL
              + b"\x1d\x56\x42\x05")
    parser = EscposParser()
    events = []
    for i in range(len(stream)):  # worst case: one byte at a time
        events += parser.feed(stream[i:i + 1])
    assert parser.pending == 0
    kinds = [e.kind for e in events if e.kind != "data"]
    assert kinds == ["init", "auto_status_back", "status", "raster", "feed", "cut", "cut"]
    raster = next(e for e in events if e.kind == "raster")
    assert (raster.width_bytes, raster.height, raster.payload) == (2, 2, b"\xff\x00\x0f\xf0")
    assert b"".join(e.payload for e in events if e.kind == "data") == b"ABC"
    assert [e.n for e in events if e.kind == "cut"] == [1, 66]


def test_parser_treats_status_bytes_inside_raster_data_as_data():
    bits = codec.status_request(1) * 2  # six bytes that look like DLE EOT
    events = EscposParser().feed(codec.raster_image(3, 2, bits))
    assert [e.kind for e in events] == ["raster"]
