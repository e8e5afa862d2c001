"""Script the ccTalk emulator: a JSON-lines control socket (Unix domain) and its Python client.

One request per line, ``{"cmd": "insert_coin", "value": 500}``; one answer per line,
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``. Commands:

    state                              physical truth: cash box, stacked notes, hopper levels, paid out
    insert_coin value                  a resident drops a coin (credited only if enabled)
    insert_note value                  a resident feeds a note (escrow, then stacked or returned)
    coin_error code                    push a coin acceptor event code (14 = jam, 20 = coin on string ...)
    jam                                coin acceptor: credit sensor blocked (code 14)
    fraud [code]                       coin acceptor fraud event (default 20, coin on string)
    note_error code                    push a note validator event code (6 = jam, 17 = opto fraud ...)
    lose_events values                 coins go in between two polls (> 5 → the host sees a counter gap)
    power_cycle                        the coin acceptor resets (counter 0, inhibited)
    self_check_fault code [extra]      coin acceptor self-check answer
    hopper_empty address               the hopper has no coins left
    hopper_low address low             force the low-level sensor
    hopper_fill address coins          refill
    hopper_refuse address on           answer NAK to dispense
    hopper_drop_dispense_reply address pay, but lose the reply to the next dispense
    hopper_jam address                 a coin sticks in the exit: the next payout aborts with a jam flag
    hopper_clear_jam address           a technician removed the stuck coin (flags stay until a reset)
    unplug                             the USB-serial cable is pulled: the pty closes, its link vanishes
    replug                             plugged back: a new pty behind the same link, devices unchanged
    stall seconds                      no device answers for that long
    drop_replies count                 the next replies are lost
    bad_checksum count                 the next replies have a wrong checksum
    garbage count                      a stray byte before each of the next replies
    reply_delay seconds                delay every reply
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from typing import Any

from .bus import SimBus
from .devices import SimCoinAcceptor, SimHopper, SimNoteValidator


class CashSimController:
    def __init__(self, bus: SimBus, pty: Any = None) -> None:
        self.bus = bus
        self.pty = pty  # the PtyBus, for unplug / replug

    @property
    def coin(self) -> SimCoinAcceptor:
        return next(d for d in self.bus.devices.values() if isinstance(d, SimCoinAcceptor))

    @property
    def note(self) -> SimNoteValidator | None:
        return next((d for d in self.bus.devices.values() if isinstance(d, SimNoteValidator)), None)

    def hopper(self, address: int) -> SimHopper:
        device = self.bus.devices.get(int(address))
        if not isinstance(device, SimHopper):
            raise ValueError(f"no hopper at address {address}")
        return device

    def hoppers(self) -> list[SimHopper]:
        return [d for d in self.bus.devices.values() if isinstance(d, SimHopper)]

    def state(self) -> dict[str, Any]:
        note = self.note
        hoppers = [h.state() for h in self.hoppers()]
        coin = self.coin.state()
        note_state = note.state() if note else {}
        return {
            "coin": coin, "note": note_state, "hoppers": hoppers,
            "bus": {"frames": self.bus.frames, "bad_checksums": self.bus.bad_checksums},
            "in_yen": int(coin["cashbox_yen"]) + int(note_state.get("stacked_yen", 0)),  # type: ignore[call-overload]
            "out_yen": sum(int(h["paid_out_yen"]) for h in hoppers),  # type: ignore[call-overload]
        }

    def execute(self, cmd: str, args: dict[str, Any]) -> Any:
        with self.bus.lock:
            return self._execute(cmd, args)

    def _execute(self, cmd: str, a: dict[str, Any]) -> Any:
        bus = self.bus
        if cmd == "state":
            return self.state()
        if cmd == "insert_coin":
            return self.coin.insert_coin(int(a["value"]))
        if cmd == "insert_note":
            note = self.note
            if note is None:
                raise ValueError("no note validator on this bus")
            return note.insert_note(int(a["value"]))
        if cmd == "coin_error":
            self.coin.error_event(int(a["code"]))
        elif cmd == "jam":
            self.coin.error_event(14)
        elif cmd == "fraud":
            self.coin.error_event(int(a.get("code", 20)))
        elif cmd == "note_error":
            note = self.note
            if note is None:
                raise ValueError("no note validator on this bus")
            note.error_event(int(a["code"]))
        elif cmd == "lose_events":
            self.coin.lose_events([int(v) for v in a["values"]])
        elif cmd == "power_cycle":
            self.coin.power_cycle()
        elif cmd == "self_check_fault":
            self.coin.self_check_fault = (int(a["code"]), int(a.get("extra", 0)))
        elif cmd == "hopper_empty":
            self.hopper(a["address"]).coins = 0
        elif cmd == "hopper_low":
            self.hopper(a["address"]).forced_low = bool(a.get("low", True))
        elif cmd == "hopper_fill":
            self.hopper(a["address"]).fill(int(a["coins"]))
        elif cmd == "hopper_refuse":
            self.hopper(a["address"]).dispense_refused = bool(a.get("on", True))
        elif cmd == "hopper_drop_dispense_reply":
            self.hopper(a["address"]).drop_next_dispense_reply = True
        elif cmd == "hopper_jam":
            self.hopper(a["address"]).jammed = True
        elif cmd == "hopper_clear_jam":
            self.hopper(a["address"]).jammed = False
        elif cmd in ("unplug", "replug"):
            if self.pty is None:
                raise ValueError("this emulator is not behind a pty")
            return self.pty.unplug() if cmd == "unplug" else self.pty.replug()
        elif cmd == "stall":
            bus.stalled_until = bus.clock() + float(a["seconds"])
        elif cmd == "drop_replies":
            bus.drop_replies = int(a["count"])
        elif cmd == "bad_checksum":
            bus.corrupt_replies = int(a["count"])
        elif cmd == "garbage":
            bus.garbage_replies = int(a["count"])
        elif cmd == "reply_delay":
            bus.reply_delay = float(a["seconds"])
        else:
            raise ValueError(f"unknown command {cmd!r}")
        return None


class _Handler(socketserver.StreamRequestHandler):
    server: "ControlServer"

    def handle(self) -> None:
        for line in self.rfile:
            try:
                request = json.loads(line)
                result = self.server.controller.execute(str(request.pop("cmd")), request)
                answer = {"ok": True, "result": result}
            except Exception as exc:  # the answer tells the script what was wrong
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, controller: CashSimController) -> None:
        if os.path.exists(path):
            os.unlink(path)
        self.controller = controller
        super().__init__(path, _Handler)
        self.path = path
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cctalk-control", daemon=True)

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class CashSimClient:
    """Talk to a running ``kiosk-sim cash`` through its control socket."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self._sock, self._file = sock, sock.makefile("rwb")

    def call(self, cmd: str, **args: Any) -> Any:
        if self._sock is None:
            self._connect()
        self._file.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            self.close()
            raise ConnectionError(f"the cash emulator closed its control socket {self.path}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(f"cash emulator refused {cmd}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        if self._sock is not None:
            self._file.close()
            self._sock.close()
            self._sock = self._file = None

    # conveniences used by tests and the demo
    def state(self) -> dict[str, Any]:
        return self.call("state")

    def insert_coin(self, value: int) -> bool:
        return self.call("insert_coin", value=value)

    def insert_note(self, value: int) -> bool:
        return self.call("insert_note", value=value)

    def jam(self) -> None:
        self.call("jam")

    def fraud(self, code: int = 20) -> None:
        self.call("fraud", code=code)

    def lose_events(self, values: list[int]) -> None:
        self.call("lose_events", values=values)

    def hopper_empty(self, address: int) -> None:
        self.call("hopper_empty", address=address)

    def hopper_low(self, address: int, low: bool = True) -> None:
        self.call("hopper_low", address=address, low=low)

    def hopper_fill(self, address: int, coins: int) -> None:
        self.call("hopper_fill", address=address, coins=coins)

    def unplug(self) -> None:
        self.call("unplug")

    def replug(self) -> str:
        return self.call("replug")

    def stall(self, seconds: float) -> None:
        self.call("stall", seconds=seconds)

    def __enter__(self) -> "CashSimClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
