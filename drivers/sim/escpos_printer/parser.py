"""Incremental parser of an ESC/POS byte stream: pure (bytes in, events out), fed chunk by chunk.

Knows the commands the kiosk and common receipt software send; anything else is passed through as
"data" (printable text on a real printer), so unknown bytes are visible in tests rather than lost.
"""
from __future__ import annotations

from dataclasses import dataclass

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C

# command prefix → number of parameter bytes that follow (fixed-length commands)
_FIXED = {
    bytes((ESC, 0x40)): 0,  # ESC @ initialise
    bytes((ESC, 0x74)): 1,  # ESC t n code table
    bytes((ESC, 0x64)): 1,  # ESC d n feed lines
    bytes((ESC, 0x4A)): 1,  # ESC J n feed dots
    bytes((ESC, 0x61)): 1,  # ESC a n justification
    bytes((ESC, 0x45)): 1,  # ESC E n bold
    bytes((ESC, 0x21)): 1,  # ESC ! n print mode
    bytes((ESC, 0x32)): 0,  # ESC 2 default line spacing
    bytes((ESC, 0x33)): 1,  # ESC 3 n line spacing
    bytes((GS, 0x21)): 1,  # GS ! n character size
    bytes((GS, 0x61)): 1,  # GS a n automatic status back
    bytes((FS, 0x26)): 0,  # FS & Kanji mode on
    bytes((FS, 0x2E)): 0,  # FS . Kanji mode off
    bytes((FS, 0x43)): 1,  # FS C n Kanji code system
    bytes((DLE, 0x04)): 1,  # DLE EOT n real-time status
}
_NAMES = {b"\x1b\x40": "init", b"\x1b\x64": "feed", b"\x1d\x61": "auto_status_back", b"\x10\x04": "status"}


@dataclass(frozen=True)
class Event:
    kind: str  # init | status | feed | auto_status_back | raster | graphics | cut | command | data
    n: int = 0  # the parameter (status n, feed lines, cut mode)
    width_bytes: int = 0
    height: int = 0
    payload: bytes = b""


class EscposParser:
    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back because the command they start is not complete yet."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        events: list[Event] = []
        while self._buf:
            consumed, event = self._one()
            if consumed == 0:
                break  # incomplete command: wait for more bytes
            events.append(event)
            del self._buf[:consumed]
        return events

    def _one(self) -> tuple[int, Event]:
        buf = self._buf
        first = buf[0]
        if first not in (ESC, GS, DLE, FS):
            end = 1
            while end < len(buf) and buf[end] not in (ESC, GS, DLE, FS):
                end += 1
            return end, Event("data", payload=bytes(buf[:end]))
        if len(buf) < 2:
            return 0, Event("data")
        prefix = bytes(buf[:2])
        if prefix in _FIXED:
            size = 2 + _FIXED[prefix]
            if len(buf) < size:
                return 0, Event("data")
            n = buf[2] if size > 2 else 0
            return size, Event(_NAMES.get(prefix, "command"), n=n, payload=bytes(buf[:size]))
        if prefix == b"\x1d\x76":  # GS v 0 m xL xH yL yH d...
            if len(buf) < 8:
                return 0, Event("data")
            width_bytes, height = buf[4] | buf[5] << 8, buf[6] | buf[7] << 8
            size = 8 + width_bytes * height
            if len(buf) < size:
                return 0, Event("data")
            return size, Event("raster", n=buf[3], width_bytes=width_bytes, height=height, payload=bytes(buf[8:size]))
        if prefix == b"\x1d\x28":  # GS ( L pL pH ...: skipped whole, counted as graphics
            if len(buf) < 5:
                return 0, Event("data")
            size = 5 + (buf[3] | buf[4] << 8)
            if len(buf) < size:
                return 0, Event("data")
            return size, Event("graphics", payload=bytes(buf[:size]))
        if prefix == b"\x1d\x56":  # GS V m  |  GS V m n (m = 65/66)
            if len(buf) < 3:
                return 0, Event("data")
            mode = buf[2]
            size = 4 if mode in (65, 66, 97, 98, 103, 104) else 3
            if len(buf) < size:
                return 0, Event("data")
            return size, Event("cut", n=mode, payload=bytes(buf[:size]))
        return 1, Event("data", payload=bytes(buf[:1]))  # a lone control byte: pass it through
