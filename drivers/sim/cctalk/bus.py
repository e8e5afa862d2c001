"""The emulated ccTalk bus: frame assembly, echo, addressing, checksum, and scripted wire faults.

``SimBus.receive(bytes)`` is pure in/out (what the host wrote → what goes back on the wire), so it runs
behind a pseudo-terminal (``PtyBus``, the real thing for integration tests and the demo) or directly
behind an in-memory serial object in unit tests.
"""
from __future__ import annotations

import logging
import os
import select
import termios
import threading
import time
import tty
from typing import Callable, Iterable

from drivers.payment.cctalk import codec
from drivers.payment.cctalk.codec import ChecksumMode, Frame, FrameError, Header

from .devices import NAK, SimDevice

log = logging.getLogger(__name__)

INTER_BYTE_TIMEOUT = 0.05


class SimBus:
    def __init__(self, devices: Iterable[SimDevice], *, echo: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.devices = {d.address: d for d in devices}
        self.echo = echo
        self.clock = clock
        self.lock = threading.RLock()  # the control interface and the wire share the devices
        self._buffer = bytearray()
        self._last_byte_at = 0.0
        # scripted faults
        self.stalled_until = 0.0
        self.drop_replies = 0
        self.corrupt_replies = 0
        self.garbage_replies = 0
        self.reply_delay = 0.0
        # counters for tests
        self.frames = 0
        self.bad_checksums = 0

    def receive(self, data: bytes) -> bytes:
        out = bytearray(data if self.echo else b"")
        now = self.clock()
        with self.lock:
            if self._buffer and now - self._last_byte_at > INTER_BYTE_TIMEOUT:
                log.debug("dropping %d stale bytes of a partial frame", len(self._buffer))
                self._buffer.clear()
            self._last_byte_at = now
            self._buffer += data
            while True:
                size = codec.frame_size(bytes(self._buffer))
                if size is None or len(self._buffer) < size:
                    break
                raw, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
                out += self._frame(raw)
        return bytes(out)

    def tick(self) -> None:
        with self.lock:
            for device in self.devices.values():
                device.tick()

    def _frame(self, raw: bytes) -> bytes:
        device = self.devices.get(raw[0])
        if device is None:
            return b""  # for someone else (or nobody): its bytes are swallowed
        try:
            frame = codec.decode(raw, device.mode)
        except FrameError:
            self.bad_checksums += 1
            return b""  # spec part 1 §12: a bad checksum gets no answer
        self.frames += 1
        reply = device.handle(frame.header, frame.data)
        if reply is None:
            return b""
        if self.clock() < self.stalled_until:
            return b""
        if self.drop_replies:
            self.drop_replies -= 1
            return b""
        header = Header.NAK if reply is NAK else Header.REPLY
        data = b"" if reply is NAK else bytes(reply)  # type: ignore[arg-type]
        source = device.address if device.mode is ChecksumMode.SIMPLE else None
        wire = codec.encode(Frame(destination=frame.source or codec.HOST_ADDRESS, header=header, data=data,
                                  source=source), device.mode)
        if self.corrupt_replies:
            self.corrupt_replies -= 1
            wire = wire[:-1] + bytes(((wire[-1] + 1) & 0xFF,))
        if self.garbage_replies:
            self.garbage_replies -= 1
            wire = b"\x55" + wire
        return wire


class PtyBus:
    """Serve a SimBus on a pseudo-terminal; the host opens ``path`` with pyserial.

    ``unplug()`` closes the pty and removes the link, as when a USB-serial adapter is pulled: the
    host's reads and writes fail and the path is gone; ``replug()`` makes a new pty behind the same
    link (a new /dev/pts number, as a re-plugged adapter gets), with the devices' state unchanged."""

    def __init__(self, bus: SimBus, link: str | None = None) -> None:
        self.bus = bus
        self.link = link
        self._lock = threading.Lock()
        self.master = self.slave = -1
        self.path = ""
        self._open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cctalk-pty", daemon=True)

    def _open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)  # no line discipline echo or translation: bytes as sent
        self.path = os.ttyname(self.slave)
        if self.link:
            if os.path.islink(self.link):
                os.unlink(self.link)
            os.symlink(self.path, self.link)

    def _close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1
        if self.link and os.path.islink(self.link):
            os.unlink(self.link)

    @property
    def plugged(self) -> bool:
        return self.master >= 0

    def unplug(self) -> None:
        with self._lock:
            self._close()

    def replug(self) -> str:
        with self._lock:
            if not self.plugged:
                self._open()
            return self.path

    def start(self) -> "PtyBus":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with self._lock:
            self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self.master
            if master < 0:
                time.sleep(0.01)
                self.bus.tick()
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.01)
            except (OSError, ValueError):  # unplugged between the check and the select
                continue
            if ready:
                try:
                    data = os.read(master, 512)
                except OSError:  # the host side went away; keep serving for the next open
                    time.sleep(0.01)
                    continue
                out = self.bus.receive(data)
                if out:
                    try:
                        echo_len = len(data) if self.bus.echo else 0
                        if echo_len:
                            os.write(master, out[:echo_len])
                        if len(out) > echo_len:
                            if self.bus.reply_delay:
                                time.sleep(self.bus.reply_delay)
                            os.write(master, out[echo_len:])
                    except OSError:
                        pass  # unplugged mid-reply: the bytes are lost on the wire, as on a real cable
            self.bus.tick()
