"""ccTalk over a serial port: one request, one reply, with the single-wire echo removed.

Every request has a reply timeout and a bounded retry budget (spec part 1 §12: a device stays silent
on a bad checksum or an unknown header, so silence and a garbled reply are both retried). Commands
that move money (hopper dispense) are sent with ``retries=0``: the caller checks the hopper's event
counter instead of sending twice.
"""
from __future__ import annotations

import logging
import termios
import threading
import time
from typing import Protocol

from kiosk.errors import PaymentDeviceFault

from .codec import HOST_ADDRESS, ChecksumMode, Frame, FrameError, Header, decode, encode

log = logging.getLogger(__name__)

INTER_BYTE_TIMEOUT = 0.05  # spec part 1 §11.1: a partial frame older than 50 ms is garbage


class SerialLike(Protocol):
    """The part of ``serial.Serial`` the transport uses (so unit tests can hand in a fake)."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NakReceived(Exception):
    """The device answered NAK (header 5): it understood and refused."""


class BusyReceived(Exception):
    """The device answered BUSY (header 6)."""


def open_serial(port: str, open_timeout: float) -> SerialLike:
    import serial  # the device library is imported only where a real port is opened

    try:
        return serial.Serial(port=port, baudrate=9600, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                             stopbits=serial.STOPBITS_ONE, timeout=open_timeout, write_timeout=open_timeout,
                             xonxoff=False, rtscts=False, dsrdtr=False, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PaymentDeviceFault(f"cannot open the ccTalk serial port {port}: {exc}; check the cable and "
                                 f"the [cash] port setting (ls -l /dev/serial/by-id/)", port=port) from exc


class CcTalkTransport:
    def __init__(self, port: SerialLike, *, echo: bool = True, mode: ChecksumMode = ChecksumMode.SIMPLE,
                 reply_timeout: float = 0.2, retries: int = 3, name: str = "ccTalk") -> None:
        self._port = port
        self.echo = echo
        self.mode = mode
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.name = name
        self._lock = threading.Lock()  # one conversation on the wire at a time
        self.requests_sent = 0
        self.retries_used = 0
        # Set once: pyserial reconfigures the tty on every timeout change. Reads loop on a deadline.
        self._port.timeout = min(INTER_BYTE_TIMEOUT, reply_timeout)

    def close(self) -> None:
        try:
            self._port.close()
        except Exception as exc:  # closing a dead port must not hide the error that made us close it
            log.warning("closing %s port failed: %s", self.name, exc)

    def request(self, address: int, header: int, data: bytes = b"", *, timeout: float | None = None,
                retries: int | None = None) -> bytes:
        """Send one command and return the reply's data bytes.

        Raises NakReceived / BusyReceived when the device answers so, PaymentDeviceFault when no valid
        reply came within ``1 + retries`` attempts of ``timeout`` seconds each.
        """
        frame = encode(Frame(destination=address, header=header, data=data, source=HOST_ADDRESS), self.mode)
        budget = self.retries if retries is None else retries
        wait = self.reply_timeout if timeout is None else timeout
        problem = ""
        with self._lock:
            for attempt in range(budget + 1):
                if attempt:
                    self.retries_used += 1
                try:
                    reply = self._exchange(frame, wait)
                except FrameError as exc:
                    problem = str(exc)
                    continue
                except (OSError, termios.error) as exc:  # a pulled USB adapter: EIO, ENODEV, a dead tty
                    raise PaymentDeviceFault(f"{self.name}: serial I/O failed talking to address {address}: {exc}",
                                             address=address, header=header) from exc
                if reply is None:
                    problem = f"no reply within {wait:.3f} s"
                    continue
                if reply.destination != HOST_ADDRESS or (reply.source is not None and reply.source != address):
                    problem = (f"reply from address {reply.source} to {reply.destination}, "
                               f"expected from {address} to {HOST_ADDRESS}")
                    continue
                if reply.header == Header.NAK:
                    raise NakReceived(f"address {address} refused header {header} (NAK)")
                if reply.header == Header.BUSY:
                    raise BusyReceived(f"address {address} is busy (header {header})")
                if reply.header != Header.REPLY:
                    problem = f"reply header {reply.header}, expected 0"
                    continue
                return reply.data
        raise PaymentDeviceFault(
            f"{self.name}: device at address {address} gave no valid reply to header {header} after "
            f"{budget + 1} tries ({problem}); check its power and cable, then `kioskctl test cash`",
            address=address, header=header)

    def _exchange(self, frame: bytes, wait: float) -> Frame | None:
        port = self._port
        port.reset_input_buffer()  # a late reply to an earlier, abandoned request must not be taken for ours
        self.requests_sent += 1
        port.write(frame)
        port.flush()
        deadline = time.monotonic() + wait
        if self.echo:
            echoed = self._read_exact(len(frame), deadline)
            if echoed != frame:
                raise FrameError(f"echo {echoed.hex(' ')} differs from the frame sent {frame.hex(' ')} "
                                 f"(bus collision or echo setting wrong)")
        head = self._read_exact(2, deadline)
        if len(head) < 2:
            if head:
                raise FrameError(f"reply cut short after {head.hex(' ')}")
            return None
        rest = self._read_exact(head[1] + 3, time.monotonic() + INTER_BYTE_TIMEOUT * (head[1] + 3))
        raw = head + rest
        return decode(raw, self.mode)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        port = self._port
        buf = bytearray()
        while len(buf) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            chunk = port.read(size - len(buf))
            if chunk:
                buf += chunk
        return bytes(buf)
