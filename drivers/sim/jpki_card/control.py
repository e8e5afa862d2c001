"""Client of the virtual card's control port: what tests, the benchmark and the demo use to place and
remove residents' cards and to switch faults on (see ``HELP`` in drivers/sim/jpki_card/simulator.py).

    card = CardSimControl(port)
    card.place("TESTCARD000000000001", pin="1234")
    card.fault("pull", ins=0xB0, skip=2)
    card.remove()
"""
from __future__ import annotations

import json
import socket
import time
from typing import Any


class CardSimError(RuntimeError):
    pass


class CardSimControl:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def command(self, line: str) -> str:
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        text = reply.decode().strip()
        if not text.startswith("ok"):
            raise CardSimError(f"virtual card refused {line.split()[0]!r}: {text or '(no answer)'}")
        return text[3:]

    def ping(self) -> bool:
        try:
            return self.command("ping") == "pong"
        except OSError:
            return False

    def place(self, card_id: str, pin: str | None = None, *, algorithm: str | None = None,
              wait_connected: bool = True) -> None:
        self.command(f"place {card_id}" + (f" pin={pin}" if pin else "") + (f" algorithm={algorithm}" if algorithm else ""))
        if wait_connected:
            self.wait(lambda s: s["connected"], "the virtual card to reach the reader")

    def remove(self) -> None:
        self.command("remove")

    def set(self, **settings: object) -> None:
        self.command("set " + " ".join(f"{k}={v}" for k, v in settings.items()))

    def fault(self, kind: str, *, ins: int | None = None, skip: int = 0, mode: str = "truncate") -> None:
        words = [f"fault {kind}", f"skip={skip}", f"mode={mode}"]
        if ins is not None:
            words.append(f"ins={ins:02X}")
        self.command(" ".join(words))

    def clear_faults(self) -> None:
        self.command("fault clear")

    def status(self) -> dict[str, Any]:
        return json.loads(self.command("status"))

    def wait(self, predicate: Any, what: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise CardSimError(f"timed out after {timeout:.0f} s waiting for {what}; status {status}")
            time.sleep(0.02)

    def quit(self) -> None:
        try:
            self.command("quit")
        except (OSError, CardSimError):
            pass
