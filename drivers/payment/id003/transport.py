"""ID-003 over a serial port (9600 baud, 8E1): one host frame, at most one validator frame back.

Every exchange has a reply timeout and a bounded retry budget; a garbled reply (bad CRC, stray bytes
before SYNC) is retried like silence. The host's ACK of a VEND VALID gets no answer (docs/protocols/
id003.md §2), so it is sent with ``send`` and never waited for.
"""
from __future__ import annotations

import logging
import termios
import threading
import time
from typing import Protocol

from kiosk.errors import PaymentDeviceFault

from .codec import SYNC, Frame, FrameError, decode, encode, frame_size

log = logging.getLogger(__name__)

INTER_BYTE_TIMEOUT = 0.05  # a partial frame older than 50 ms is garbage ([PY]: "50 ms, per ID-003 specs")


class SerialLike(Protocol):
    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_serial(port: str, open_timeout: float, parity: str = "even") -> SerialLike:
    """Open the validator's line: 9600 baud, 8 data bits, even parity, 1 stop bit (docs/protocols/id003.md §1).

    ``parity="none"`` exists only for a pseudo-terminal: Linux ptys carry no parity and some kernels
    refuse PARENB on them (tcsetattr EINVAL), so the emulator's line is opened 8N1."""
    import serial  # the device library is imported only where a real port is opened

    try:
        return serial.Serial(port=port, baudrate=9600, bytesize=serial.EIGHTBITS,
                             parity=serial.PARITY_EVEN if parity == "even" else serial.PARITY_NONE,
                             stopbits=serial.STOPBITS_ONE, timeout=min(INTER_BYTE_TIMEOUT, open_timeout),
                             write_timeout=open_timeout,
                             xonxoff=False, rtscts=False, dsrdtr=False, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PaymentDeviceFault(f"cannot open the ID-003 note validator's serial port {port}: {exc}; check the "
                                 f"cable and the [cash.id003] port setting (ls -l /dev/serial/by-id/)",
                                 port=port) from exc


class Id003Transport:
    def __init__(self, port: SerialLike, *, reply_timeout: float = 0.2, retries: int = 3,
                 name: str = "ID-003") -> None:
        self._port = port
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.name = name
        self._lock = threading.Lock()
        self.frames_sent = 0
        self.retries_used = 0
        wanted = min(INTER_BYTE_TIMEOUT, reply_timeout)
        if port.timeout != wanted:  # set once: pyserial reconfigures the tty on every change, and a pty
            self._port.timeout = wanted  # refuses a second even-parity tcsetattr (EINVAL)

    def close(self) -> None:
        try:
            self._port.close()
        except Exception as exc:  # closing a dead port must not hide the error that made us close it
            log.warning("closing %s port failed: %s", self.name, exc)

    def send(self, frame: Frame) -> None:
        """Send a frame that gets no answer (the host's ACK)."""
        with self._lock:
            try:
                self._port.reset_input_buffer()
                self._port.write(encode(frame))
                self._port.flush()
                self.frames_sent += 1
            except (OSError, termios.error) as exc:
                raise PaymentDeviceFault(f"{self.name}: serial I/O failed: {exc}") from exc

    def request(self, frame: Frame, *, retries: int | None = None, timeout: float | None = None) -> Frame:
        raw = encode(frame)
        budget = self.retries if retries is None else retries
        wait = self.reply_timeout if timeout is None else timeout
        problem = ""
        with self._lock:
            for attempt in range(budget + 1):
                if attempt:
                    self.retries_used += 1
                try:
                    reply = self._exchange(raw, wait)
                except FrameError as exc:
                    problem = str(exc)
                    continue
                except (OSError, termios.error) as exc:  # a pulled USB adapter: EIO, ENODEV, a dead tty
                    raise PaymentDeviceFault(f"{self.name}: serial I/O failed: {exc}") from exc
                if reply is None:
                    problem = f"no reply within {wait:.3f} s"
                    continue
                return reply
        raise PaymentDeviceFault(f"{self.name}: the note validator gave no valid reply to command 0x{frame.code:02X} "
                                 f"after {budget + 1} tries ({problem}); check its power and cable, then "
                                 f"`kioskctl test cash`", command=frame.code)

    def _exchange(self, raw: bytes, wait: float) -> Frame | None:
        port = self._port
        port.reset_input_buffer()  # a late reply to an abandoned request must not be taken for this one
        port.write(raw)
        port.flush()
        self.frames_sent += 1
        deadline = time.monotonic() + wait
        skipped = 0
        while True:  # stray bytes before SYNC are line noise: skip them (and count them as a problem)
            first = self._read_exact(1, deadline)
            if not first:
                if skipped:
                    raise FrameError(f"{skipped} stray byte(s) and no frame")
                return None
            if first[0] == SYNC:
                break
            skipped += 1
        length = self._read_exact(1, time.monotonic() + INTER_BYTE_TIMEOUT)
        if not length:
            raise FrameError("reply cut short after SYNC")
        size = frame_size(first + length)
        assert size is not None
        rest = self._read_exact(size - 2, time.monotonic() + INTER_BYTE_TIMEOUT * size)
        frame = decode(first + length + rest)
        if skipped:
            log.debug("%s: skipped %d stray byte(s) before a valid frame", self.name, skipped)
        return frame

    def _read_exact(self, size: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            if deadline - time.monotonic() <= 0:
                break
            chunk = self._port.read(size - len(buf))
            if chunk:
                buf += chunk
        return bytes(buf)
