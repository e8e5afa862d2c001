"""The virtual card process: the card on vpcd's socket, its APDU log, its fault switches and its control
port.

vpcd wire protocol (shared/docs/jpki-card.md §7, test-stack.md): the card connects to pcscd's vpcd driver
over TCP; every message is a 2-byte big-endian length then the payload; a 1-byte payload is a control
code (00 power off, 01 power on, 02 reset, 04 send the ATR), anything longer is a command APDU answered
with data + SW. Closing the socket is the card leaving the reader. vpcd writes each APDU in two small
segments, so the socket runs with TCP_NODELAY and TCP_QUICKACK (re-armed before every read) — without
them Linux's delayed ACK adds ~40 ms per APDU.

Every APDU received is appended to ``<log dir>/apdu-<pid>.jsonl`` (VERIFY data masked) so the test
suite's guard (tests/support/card_guard.py) can prove the kiosk never touched what it must not.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.sim.jpki_card.card import LEGACY_ATR, CardFiles, CardOptions, VirtualJpkiCard, parse_sw

APDU_LOG_ENV = "MADOGUCHI_APDU_LOG_DIR"
CORRUPT_MODES = ("truncate", "flip", "short")


def mask_apdu(apdu: bytes) -> str:
    """Hex of an APDU for the log; the data of a VERIFY (a PIN or password) is replaced by '**'."""
    if len(apdu) > 5 and apdu[1] == 0x20:
        return apdu[:5].hex().upper() + "**" * (len(apdu) - 5)
    return apdu.hex().upper()


class ApduLog:
    """Append-only JSON lines, one per APDU the card received. Thread-safe; flushed per line."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.path: Path | None = None
        self._lock = threading.Lock()
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self.path = Path(directory) / f"apdu-{os.getpid()}.jsonl"

    def record(self, card_id: str, apdu: bytes, response: bytes | None, note: str = "") -> None:
        if self.path is None:
            return
        entry = {"ts": time.time(), "card": card_id, "apdu": mask_apdu(apdu),
                 "sw": response[-2:].hex().upper() if response and len(response) >= 2 else None,
                 "rlen": len(response) if response is not None else 0}
        if note:
            entry["note"] = note
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


@dataclass
class Fault:
    """A one-shot fault on the ``skip``-th next APDU (counted from 0) whose INS matches ``ins`` (any if None)."""

    kind: str  # corrupt | stall | pull
    ins: int | None = None
    skip: int = 0
    mode: str = "truncate"

    def matches(self, apdu: bytes) -> bool:
        if self.ins is not None and apdu[1] != self.ins:
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


@dataclass
class Settings:
    atr: bytes = LEGACY_ATR
    apdu_latency: float = 0.0
    sign_latency: float = 0.0
    # A reader's CCID dwMaxCCIDMessageLength (e.g. 522 for the Sony RC-S300, docs/card-readers.md); 0 = none.
    # A command or response that does not fit a CCID message (10-byte header + APDU) breaks the link,
    # as a real reader fails the transfer.
    max_message: int = 0
    options: CardOptions = field(default_factory=CardOptions)


CCID_HEADER = 10


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


class CardSimulator:
    def __init__(self, *, pki_dir: str | os.PathLike[str], vpcd_host: str = "127.0.0.1", vpcd_port: int = 35963,
                 log_dir: str | os.PathLike[str] | None = None, settings: Settings | None = None) -> None:
        self.pki_dir = Path(pki_dir)
        self.vpcd = (vpcd_host, vpcd_port)
        self.log = ApduLog(log_dir)
        self.settings = settings or Settings()
        self.cards: dict[str, VirtualJpkiCard] = {}  # a card keeps its PIN counters between placements
        self.faults: list[Fault] = []
        self.placed: str | None = None
        self.placed_key: str | None = None  # the key of self.cards: "<card id>" or "<card id>/p384"
        self.connected = False
        self.stalled = False
        self.apdu_count = 0
        self._lock = threading.RLock()
        self._generation = 0
        self._sock: socket.socket | None = None
        self._unstall = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control -----------------------------------------------------------------------------------
    def card(self, card_id: str, pin: str | None = None, sign_password: str | None = None,
             algorithm: str | None = None) -> VirtualJpkiCard:
        """The card with this certificate CN; ``algorithm`` p384 is the same resident's next-generation card."""
        key = card_id if algorithm in (None, "rsa2048") else f"{card_id}/{algorithm}"
        with self._lock:
            card = self.cards.get(key)
            if card is None:
                card = VirtualJpkiCard(self._files(card_id, algorithm or "rsa2048"), pin=pin or "1234",
                                       sign_password=sign_password or "TEST1234", options=self.settings.options)
                self.cards[key] = card
            else:
                if pin:
                    card.pins["auth"].secret = pin.encode("ascii")
                if sign_password:
                    card.pins["sign"].secret = sign_password.encode("ascii")
            return card

    def _files(self, card_id: str, algorithm: str = "rsa2048") -> CardFiles:
        from drivers.sim.jpki_card.sign_pki import sign_credentials
        from drivers.sim.pki import TestPKI
        from cryptography.hazmat.primitives import serialization

        pki = TestPKI(self.pki_dir)
        auth = pki.card(card_id, algorithm=algorithm)
        sign = sign_credentials(self.pki_dir, card_id)
        return CardFiles(auth_cert=auth.cert_der,
                         auth_ca_cert=pki.ca_for(algorithm)[1].public_bytes(serialization.Encoding.DER),
                         auth_key=auth.private_key(), sign_cert=sign.cert_der, sign_ca_cert=sign.ca_cert_der,
                         sign_key=sign.private_key())

    def place(self, card_id: str, pin: str | None = None, sign_password: str | None = None,
              algorithm: str | None = None) -> None:
        card = self.card(card_id, pin, sign_password, algorithm)
        self.remove()
        with self._lock:
            self._generation += 1
            self.placed = card_id
            self.placed_key = card_id if algorithm in (None, "rsa2048") else f"{card_id}/{algorithm}"
            self._unstall.clear()
            self._thread = threading.Thread(target=self._run_link, args=(self._generation, card_id, card),
                                            name=f"vpcd-link-{card_id}", daemon=True)
            self._thread.start()

    def remove(self) -> None:
        with self._lock:
            self._generation += 1
            self.placed = None
            thread, self._thread = self._thread, None
            self._unstall.set()
            self._close_socket()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.connected = False

    def arm(self, fault: Fault) -> None:
        with self._lock:
            if fault.kind == "stall":
                self._unstall.clear()
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self._unstall.set()

    def status(self) -> dict[str, Any]:
        with self._lock:
            card = self.cards.get(self.placed_key) if self.placed and self.placed_key else None
            return {
                "placed": self.placed, "connected": self.connected, "stalled": self.stalled,
                "apdus": self.apdu_count, "faults": [f.kind for f in self.faults],
                "algorithm": card.algorithm if card else None,
                "auth_tries": card.pins["auth"].tries if card else None,
                "sign_tries": card.pins["sign"].tries if card else None,
                "vpcd_port": self.vpcd[1], "log": str(self.log.path) if self.log.path else None,
            }

    # --- the vpcd link -----------------------------------------------------------------------------
    def _current(self, generation: int) -> bool:
        return self._generation == generation

    def _run_link(self, generation: int, card_id: str, card: VirtualJpkiCard) -> None:
        while self._current(generation):
            try:
                sock = socket.create_connection(self.vpcd, timeout=1.0)
            except OSError:
                time.sleep(0.1)  # pcscd not (yet/again) listening: a real card just sits on the reader
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if not self._current(generation):
                    sock.close()
                    return
                self._sock = sock
                self.connected = True
            card.reset()
            self._serve(generation, card_id, card, sock)
            with self._lock:
                if self._sock is sock:
                    self._close_socket()
            time.sleep(0.1)  # the reader side went away (pcscd restart): reconnect while still placed

    def _serve(self, generation: int, card_id: str, card: VirtualJpkiCard, sock: socket.socket) -> None:
        while self._current(generation):
            header = _recv_exact(sock, 2)
            if header is None:
                return
            payload = _recv_exact(sock, int.from_bytes(header, "big"))
            if payload is None:
                return
            if len(payload) == 1:
                code = payload[0]
                if code in (0, 1, 2):
                    card.reset()
                elif code == 4:
                    self._send(sock, self.settings.atr)
                continue
            response = self._answer(generation, card_id, card, payload)
            if response is None:
                return
            self._send(sock, response)

    def _take_fault(self, apdu: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(apdu):
                    self.faults.remove(fault)
                    return fault
        return None

    def _answer(self, generation: int, card_id: str, card: VirtualJpkiCard, apdu: bytes) -> bytes | None:
        with self._lock:
            self.apdu_count += 1
        limit = self.settings.max_message - CCID_HEADER if self.settings.max_message else 0
        if limit and len(apdu) > limit:
            self.log.record(card_id, apdu, None, f"reader refused: command of {len(apdu)} bytes > {limit}")
            return None
        fault = self._take_fault(apdu)
        if fault is not None and fault.kind == "pull":
            self.log.record(card_id, apdu, None, "card pulled before answering")
            with self._lock:
                if self._current(generation):
                    self._generation += 1
                    self.placed = None
                    self._close_socket()
            return None
        if fault is not None and fault.kind == "stall":
            self.log.record(card_id, apdu, None, "stalled: no answer")
            self.stalled = True
            self._unstall.wait()
            self.stalled = False
            return None  # released by remove / clear: the connection is dropped, the command never answered
        response = card.process(apdu)
        latency = self.settings.apdu_latency
        if apdu[1] == 0x2A and response[-2:] == b"\x90\x00":
            latency += self.settings.sign_latency
        if latency:
            time.sleep(latency)
        note = ""
        if limit and len(response) > limit:
            self.log.record(card_id, apdu, None, f"reader refused: response of {len(response)} bytes > {limit}")
            return None
        if fault is not None and fault.kind == "corrupt":
            response, note = corrupt(response, fault.mode), f"corrupted ({fault.mode})"
        self.log.record(card_id, apdu, response, note)
        return response

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        try:
            sock.sendall(len(payload).to_bytes(2, "big") + payload)
        except OSError:
            pass

    def shutdown(self) -> None:
        self.remove()


def corrupt(response: bytes, mode: str) -> bytes:
    if mode == "truncate" or len(response) <= 2:
        return response[:1]  # not even a status word
    if mode == "flip":
        return bytes((response[0] ^ 0xFF,)) + response[1:]
    if mode == "short":
        return response[:-3] + response[-2:]  # one data byte missing, SW intact
    raise ValueError(f"unknown corruption mode {mode!r}; one of {', '.join(CORRUPT_MODES)}")


# --- control port ----------------------------------------------------------------------------------

HELP = """commands (one per line, answers 'ok ...' or 'error ...'):
  ping                                   -> ok pong
  place CARD_ID [pin=1234] [sign_password=TEST1234] [algorithm=rsa2048|p384]
                                         put a resident's card on the reader (p384: next-generation card)
  remove                                 take the card off the reader
  set KEY=VALUE ...                      tries=N sign_tries=N blocked_sw=6984|6983|63C0
                                         locked_status_sw=63C0 not_jpki=0|1 atr=HEX
                                         apdu_latency_ms=N sign_latency_ms=N ecdsa_der=0|1
                                         max_message=N (refuse APDUs/responses longer, like a reader)
  fault corrupt|stall|pull [ins=B0] [skip=N] [mode=truncate|flip|short]
                                         one-shot fault on a coming APDU (pull = card taken mid-command)
  fault clear                            disarm faults, release a stall
  status                                 -> ok {json}
  quit                                   stop the virtual card process"""


def _parse_kv(words: list[str]) -> dict[str, str]:
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"expected KEY=VALUE, found {word!r}")
        out[key] = value
    return out


def execute(sim: CardSimulator, line: str) -> str:
    words = line.split()
    if not words:
        return "error empty command"
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd == "ping":
            return "ok pong"
        if cmd == "help":
            return "ok " + HELP.replace("\n", " | ")
        if cmd == "place":
            if not args:
                return "error usage: place CARD_ID [pin=....]"
            kv = _parse_kv(args[1:])
            sim.place(args[0], kv.get("pin"), kv.get("sign_password"), kv.get("algorithm"))
            return f"ok placed {args[0]}"
        if cmd == "remove":
            sim.remove()
            return "ok removed"
        if cmd == "set":
            return "ok " + ",".join(_apply_setting(sim, k, v) for k, v in _parse_kv(args).items())
        if cmd == "fault":
            if args[:1] == ["clear"]:
                sim.clear_faults()
                return "ok cleared"
            if not args or args[0] not in ("corrupt", "stall", "pull"):
                return "error usage: fault corrupt|stall|pull [ins=XX] [skip=N] [mode=...]"
            kv = _parse_kv(args[1:])
            mode = kv.get("mode", "truncate")
            if mode not in CORRUPT_MODES:
                return f"error mode must be one of {', '.join(CORRUPT_MODES)}"
            sim.arm(Fault(args[0], int(kv["ins"], 16) if "ins" in kv else None, int(kv.get("skip", "0")), mode))
            return f"ok armed {args[0]}"
        if cmd == "status":
            return "ok " + json.dumps(sim.status())
        return f"error unknown command {cmd!r}; try 'help'"
    except (ValueError, KeyError) as exc:
        return f"error {exc}"


def _apply_setting(sim: CardSimulator, key: str, value: str) -> str:
    options = sim.settings.options
    if key in ("tries", "sign_tries"):
        if sim.placed is None:
            raise ValueError("no card on the reader")
        sim.cards[sim.placed_key].set_tries("auth" if key == "tries" else "sign", int(value))
    elif key == "blocked_sw":
        options.blocked_sw = parse_sw(value)
    elif key == "locked_status_sw":
        options.locked_status_sw = parse_sw(value)
    elif key == "not_jpki":
        options.not_jpki = value not in ("0", "false", "no")
    elif key == "ecdsa_der":
        options.ecdsa_der = value not in ("0", "false", "no")
    elif key == "atr":
        sim.settings.atr = bytes.fromhex(value)
    elif key == "max_message":
        sim.settings.max_message = int(value)
    elif key == "apdu_latency_ms":
        sim.settings.apdu_latency = float(value) / 1000
    elif key == "sign_latency_ms":
        sim.settings.sign_latency = float(value) / 1000
    else:
        raise ValueError(f"unknown setting {key!r}")
    return key


class _ControlHandler(socketserver.StreamRequestHandler):
    server: "ControlServer"

    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").strip()
            if line.lower() == "quit":
                self.wfile.write(b"ok bye\n")
                self.wfile.flush()
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return
            self.wfile.write((execute(self.server.sim, line) + "\n").encode())
            self.wfile.flush()


class ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: CardSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        super().__init__((host, port), _ControlHandler)
