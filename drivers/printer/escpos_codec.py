"""ESC/POS bytes the kiosk sends and the status bytes it reads back: pure, no I/O.

Used by the receipt driver (encoding commands, decoding DLE EOT replies) and by the emulator in
drivers/sim/escpos_printer (building replies). Bit meanings follow docs/payment-printing.md §4.4.
"""
from __future__ import annotations

from dataclasses import dataclass

ESC, GS, DLE, EOT, FS = 0x1B, 0x1D, 0x10, 0x04, 0x1C

INIT = bytes((ESC, 0x40))  # ESC @
AUTO_STATUS_BACK_OFF = bytes((GS, 0x61, 0x00))  # GS a 0: keep unsolicited status out of our replies
CUT_FULL = bytes((GS, 0x56, 0x00))  # GS V 0
CUT_PARTIAL = bytes((GS, 0x56, 0x01))  # GS V 1

# DLE EOT n
STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_ERROR_CAUSE, STATUS_PAPER = 1, 2, 3, 4

_FIXED_MASK, _FIXED_VALUE = 0x93, 0x12  # bits 1 and 4 always 1, bits 0 and 7 always 0
_INVERT = bytes(b ^ 0xFF for b in range(256))


def status_request(n: int) -> bytes:
    if n not in (1, 2, 3, 4):
        raise ValueError(f"DLE EOT n must be 1..4, got {n}")
    return bytes((DLE, EOT, n))


def feed_lines(n: int) -> bytes:
    return bytes((ESC, 0x64, max(0, min(n, 255))))  # ESC d n


def is_status_byte(value: int) -> bool:
    return value & _FIXED_MASK == _FIXED_VALUE


@dataclass(frozen=True)
class PrinterStatus:
    """The union of what the DLE EOT replies said (fields not asked stay False)."""

    offline: bool = False
    cover_open: bool = False
    paper_end_stop: bool = False
    error: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    auto_recoverable_error: bool = False
    paper_near_end: bool = False
    paper_end: bool = False


def decode_status(n: int, reply: bytes) -> dict[str, bool]:
    """Decode one DLE EOT n reply; raises ValueError unless it is exactly one valid status byte."""
    if len(reply) != 1:
        raise ValueError(f"expected 1 status byte for DLE EOT {n}, got {len(reply)} ({reply.hex() or 'nothing'})")
    b = reply[0]
    if not is_status_byte(b):
        raise ValueError(f"byte {b:#04x} is not a DLE EOT status byte (fixed bits wrong)")
    if n == STATUS_PRINTER:
        return {"offline": bool(b & 0x08)}
    if n == STATUS_OFFLINE_CAUSE:
        return {"cover_open": bool(b & 0x04), "paper_end_stop": bool(b & 0x20), "error": bool(b & 0x40)}
    if n == STATUS_ERROR_CAUSE:
        return {"cutter_error": bool(b & 0x08), "unrecoverable_error": bool(b & 0x20),
                "auto_recoverable_error": bool(b & 0x40)}
    if n == STATUS_PAPER:
        return {"paper_near_end": b & 0x0C == 0x0C, "paper_end": b & 0x60 == 0x60}
    raise ValueError(f"DLE EOT n must be 1..4, got {n}")


def encode_status(n: int, status: PrinterStatus) -> bytes:
    """The reply a printer in ``status`` gives to DLE EOT n (the emulator's side)."""
    b = _FIXED_VALUE
    if n == STATUS_PRINTER:
        b |= 0x08 if status.offline else 0
    elif n == STATUS_OFFLINE_CAUSE:
        b |= (0x04 if status.cover_open else 0) | (0x20 if status.paper_end_stop else 0) | (0x40 if status.error else 0)
    elif n == STATUS_ERROR_CAUSE:
        b |= ((0x08 if status.cutter_error else 0) | (0x20 if status.unrecoverable_error else 0)
              | (0x40 if status.auto_recoverable_error else 0))
    elif n == STATUS_PAPER:
        b |= (0x0C if status.paper_near_end or status.paper_end else 0) | (0x60 if status.paper_end else 0)
    else:
        raise ValueError(f"DLE EOT n must be 1..4, got {n}")
    return bytes((b,))


def raster_image(width_bytes: int, height: int, bits: bytes) -> bytes:
    """GS v 0 (normal density): ``bits`` are rows of ``width_bytes`` bytes, MSB leftmost, 1 = black."""
    if len(bits) != width_bytes * height:
        raise ValueError(f"raster data is {len(bits)} bytes, expected {width_bytes} x {height}")
    if not (0 < width_bytes < 65536 and 0 < height < 65536):
        raise ValueError("raster size out of range")
    return bytes((GS, 0x76, 0x30, 0, width_bytes & 0xFF, width_bytes >> 8, height & 0xFF, height >> 8)) + bits


def raster_from_image(image: "object") -> tuple[int, int, bytes]:
    """(width_bytes, height, bits) of a Pillow image, black = 1 (Pillow's mode "1" stores white as 1)."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    mono = image if image.mode == "1" else image.convert("L").point(lambda v: 255 if v >= 128 else 0, "1")
    width_bytes = (mono.width + 7) // 8
    if mono.width % 8:
        padded = Image.new("1", (width_bytes * 8, mono.height), 1)
        padded.paste(mono, (0, 0))
        mono = padded
    bits = mono.tobytes().translate(_INVERT)
    return width_bytes, mono.height, bits
