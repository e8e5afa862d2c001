"""The emulator proper: a TCP printer port (one client at a time, like a real port-9100 printer) and a
line-based JSON control port through which tests or a person change its state."""
from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drivers.printer import escpos_codec as codec
from drivers.sim.escpos_printer.parser import EscposParser, Event

log = logging.getLogger(__name__)

PAPER_STATES = ("ok", "near_end", "end")


@dataclass
class EmulatorState:
    paper: str = "ok"  # ok | near_end | end
    cover_open: bool = False
    offline: bool = False  # offline for no other reason (e.g. the feed button held)
    cutter_error: bool = False
    stall: bool = False  # stop reading and answering: a wedged printer
    cover_open_after: int | None = None  # open the cover once this many raster bytes were printed

    def status(self) -> codec.PrinterStatus:
        paper_end = self.paper == "end"
        return codec.PrinterStatus(
            offline=self.offline or self.cover_open or paper_end or self.cutter_error,
            cover_open=self.cover_open, paper_end_stop=paper_end, error=self.cutter_error,
            cutter_error=self.cutter_error, paper_near_end=self.paper == "near_end", paper_end=paper_end)

    def can_print(self) -> bool:
        return not (self.offline or self.cover_open or self.paper == "end" or self.cutter_error)


@dataclass
class Counters:
    connections: int = 0
    bytes_received: int = 0
    raster_bytes_printed: int = 0
    raster_bytes_dropped: int = 0  # sent while the printer could not print
    status_replies: int = 0
    cuts: int = 0
    receipts: list[str] = field(default_factory=list)
    partial_receipts: list[str] = field(default_factory=list)  # printed, never cut (job broke off)
    text: str = ""


class EscposEmulator:
    def __init__(self, out_dir: str | Path, host: str = "127.0.0.1", port: int = 9100, control_port: int = 0) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state = EmulatorState()
        self.counters = Counters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._printer_sock = socket.create_server((host, port))
        self._control_sock = socket.create_server((host, control_port))
        self.host = host
        self.port = self._printer_sock.getsockname()[1]
        self.control_port = self._control_sock.getsockname()[1]
        self._bands: list[Event] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "EscposEmulator":
        for target, name in ((self._serve_printer, "escpos-printer"), (self._serve_control, "escpos-control")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for sock in (self._printer_sock, self._control_sock):
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    # --- printer port ------------------------------------------------------------------------------

    def _serve_printer(self) -> None:
        self._printer_sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._printer_sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with conn:
                self._serve_client(conn)

    def _serve_client(self, conn: socket.socket) -> None:
        parser = EscposParser()
        conn.settimeout(0.2)
        with self._lock:
            self.counters.connections += 1
        while not self._stop.is_set():
            if self.state.stall:
                self._stop.wait(0.05)  # neither read nor answer, like a wedged printer
                continue
            try:
                chunk = conn.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            if not chunk:
                break
            with self._lock:
                self.counters.bytes_received += len(chunk)
                for event in parser.feed(chunk):
                    reply = self._handle(event)
                    if reply:
                        try:
                            conn.sendall(reply)
                        except OSError:
                            break
        with self._lock:
            if self._bands:  # the job broke off before its cut: what came out so far is kept apart
                self.counters.partial_receipts.append(str(self._save("partial")))

    def _handle(self, event: Event) -> bytes:
        state = self.state
        if event.kind == "status":
            self.counters.status_replies += 1
            return codec.encode_status(event.n, state.status())
        if event.kind == "raster":
            if not state.can_print():
                self.counters.raster_bytes_dropped += len(event.payload)
                return b""
            self._bands.append(event)
            self.counters.raster_bytes_printed += len(event.payload)
            if state.cover_open_after is not None and self.counters.raster_bytes_printed >= state.cover_open_after:
                state.cover_open, state.cover_open_after = True, None
        elif event.kind == "cut":
            if state.can_print() and self._bands:
                self.counters.cuts += 1
                self.counters.receipts.append(str(self._save("receipt")))
        elif event.kind == "data" and state.can_print():
            self.counters.text += event.payload.decode("latin-1")
        return b""

    def _save(self, prefix: str) -> Path:
        from PIL import Image

        width = max(b.width_bytes for b in self._bands) * 8
        height = sum(b.height for b in self._bands)
        sheet = Image.new("1", (width, height), 1)
        y = 0
        for band in self._bands:
            inverted = band.payload.translate(bytes(b ^ 0xFF for b in range(256)))  # printer 1 = black
            sheet.paste(Image.frombytes("1", (band.width_bytes * 8, band.height), inverted), (0, y))
            y += band.height
        self._bands = []
        count = len(self.counters.receipts) + len(self.counters.partial_receipts) + 1
        path = self.out_dir / f"{prefix}-{count:04d}.png"
        sheet.save(path)
        return path

    # --- control port -----------------------------------------------------------------------------

    def _serve_control(self) -> None:
        self._control_sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._control_sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            threading.Thread(target=self._control_client, args=(conn,), daemon=True).start()

    def _control_client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                try:
                    answer = self.control(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                stream.write(json.dumps(answer).encode() + b"\n")
                stream.flush()

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """{"cmd": "set", "paper": "end"} | {"cmd": "reset"} | {"cmd": "state"}"""
        with self._lock:
            cmd = request.get("cmd")
            if cmd == "set":
                for key, value in request.items():
                    if key == "cmd":
                        continue
                    if key not in EmulatorState.__dataclass_fields__:
                        raise KeyError(f"unknown setting {key!r}")
                    if key == "paper" and value not in PAPER_STATES:
                        raise ValueError(f"paper must be one of {PAPER_STATES}")
                    setattr(self.state, key, value)
            elif cmd == "reset":
                self.state = EmulatorState()
            elif cmd != "state":
                raise ValueError(f"unknown command {cmd!r}")
            return {"ok": True, "state": asdict(self.state), "counters": asdict(self.counters)}
