"""The emulated world of the demo (and of the end-to-end tests): every device at its real protocol on this
machine, and a local city hall.

    plan = WorldPlan(...)                      # what to start and where (kiosk/compose/demo.py derives it
    with EmulatedWorld(plan) as world:         #   from config/demo.toml and config/cityhall.toml)
        controls = world.controls()            # place a resident's card, insert coins, approve a QR payment
        ...                                    # the kiosk, built from the same config, talks to all of it

Started, in order: the test JPKI (a card per resident), pcscd with the virtual reader and the virtual
card, the ccTalk emulators on a pty, the ESC/POS printer on TCP, a private cupsd with an IPP printer
(ippeveprinter keeps every document it prints), the QR provider over HTTP, and city hall (migrated, the
kiosk's device key registered). Every process is stopped by its own pid when the world stops — also on
an error half-way — and the pids are written to ``<run_dir>/pids.json`` so a run that was killed outright
is cleaned up by the next one (only pids still running the same command line are touched).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.sim.services.process import ManagedProcess, ServiceFailed, free_port, port_open

log = logging.getLogger("drivers.sim.demo")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PIN = "1234"  # the virtual cards' user-authentication PIN (printed on the demo panel)


@dataclass(frozen=True)
class CityHallPlan:
    config_path: Path
    host: str
    port: int
    device_id: str
    device_public_key: str  # "ed25519:..." as sync.device_key.enroll prints it
    device_location: str


@dataclass(frozen=True)
class ResidentCard:
    card_id: str  # the card's certificate CN (20 characters, no personal data)
    resident_id: str  # the registry's id, e.g. "R0001"
    label: str  # what the demo panel shows: an invented demo name, and the status when not active


@dataclass(frozen=True)
class WorldPlan:
    run_dir: Path  # sockets, the pty link, pids.json (short: Unix socket paths must stay under 108 bytes)
    log_dir: Path  # one log file per service
    pki_dir: Path
    residents: tuple[ResidentCard, ...]
    cctalk_link: Path
    escpos_port: int
    receipts_dir: Path
    cups_root: Path | None  # the cupsd ServerRoot; its socket is <root>/cups.sock. None = a temp dir
    cups_queue: str
    qr_port: int
    qr_api_key: str
    qr_api_secret: str
    cityhall: CityHallPlan | None = None
    apdu_log_dir: Path | None = None  # None: $MADOGUCHI_APDU_LOG_DIR (the tests' card guard) or off
    card_slot: int = 0  # vpcd slot of the virtual card: 0 → reader "Virtual PCD 00 00", 1 → "... 00 01"
    card_sign_latency_ms: int = 0  # a real card takes most of a second to sign; the demo shows that
    host: str = "127.0.0.1"

    @property
    def card_ids(self) -> tuple[str, ...]:
        return tuple(r.card_id for r in self.residents)

    @property
    def cash_control(self) -> Path:
        return self.run_dir / "cctalk-control.sock"

    @property
    def qr_url(self) -> str:
        return f"http://{self.host}:{self.qr_port}"


class PidFile:
    """The pids of everything a run started, so the next run can stop what a killed run left behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []

    def add(self, name: str, process: ManagedProcess) -> None:
        """Record a started (and ready) process with its command line as it runs now (after any exec)."""
        self.entries.append({"name": name, "pid": process.pid, "cmdline": _cmdline(process.pid)})
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.entries = []
        self.path.unlink(missing_ok=True)

    def stop_leftovers(self) -> list[str]:
        """Stop (by pid and process group) what a previous run recorded and is still running."""
        try:
            previous = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        stopped = []
        for entry in reversed(previous):
            pid, cmd = int(entry["pid"]), str(entry.get("cmdline", ""))
            if not cmd or not _runs(pid, cmd):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGCONT)
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _runs(pid, cmd) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _runs(pid, cmd):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            stopped.append(f"{entry['name']} (pid {pid})")
        self.path.unlink(missing_ok=True)
        return stopped


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _runs(pid: int, cmdline: str) -> bool:
    """``pid`` is alive and still runs ``cmdline`` (a recycled pid runs something else)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and _cmdline(pid) == cmdline


def mint_cards(pki_dir: Path, card_ids: tuple[str, ...]) -> None:
    """The test JPKI and each resident's card files (kept in ``pki_dir`` between runs)."""
    from drivers.sim.jpki_card.sign_pki import sign_credentials
    from drivers.sim.pki import TestPKI

    pki = TestPKI(pki_dir)
    for card_id in card_ids:
        pki.card(card_id)
        sign_credentials(str(pki_dir), card_id)


def _sim(*args: str) -> list[str]:
    return [sys.executable, "-m", "drivers.sim.cli", *args]


def _cityhall(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cityhall.cli", "--config", str(config), *args]


class EmulatedWorld:
    def __init__(self, plan: WorldPlan, *, pcsc: Any = None) -> None:
        """``pcsc``: an already running PcscStack to use (a test process has one per process, see
        drivers/sim/services/pcsc.py shared_pcsc_stack); None starts and stops a private one."""
        self.plan = plan
        self.pids = PidFile(plan.run_dir / "pids.json")
        self._stack = contextlib.ExitStack()
        self._given_pcsc = pcsc
        self.pcsc: Any = pcsc
        self.card: Any = None
        self.cups: Any = None
        self.escpos_control_port = 0
        self.cityhall_url = ""
        self.started: list[str] = []

    # --- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> "EmulatedWorld":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        plan = self.plan
        for directory in (plan.run_dir, plan.log_dir, plan.receipts_dir):
            directory.mkdir(parents=True, exist_ok=True)
        leftovers = self.pids.stop_leftovers()
        if leftovers:
            log.warning("stopped what an earlier run left running: %s", ", ".join(leftovers))
        self._stack.callback(self.pids.clear)
        mint_cards(plan.pki_dir, plan.card_ids)
        self.started.append(f"test JPKI in {plan.pki_dir} ({len(plan.card_ids)} residents' cards)")
        self._start_card()
        self._start_cash()
        self._start_escpos()
        self._start_cups()
        self._start_qr()
        if plan.cityhall is not None:
            self._start_cityhall(plan.cityhall)

    def stop(self) -> None:
        self._stack.close()

    def spawn(self, name: str, argv: list[str], *, ready: Any, timeout: float = 30.0,
              env: dict[str, str] | None = None) -> ManagedProcess:
        """Start one service, record its pid, and have the world stop it."""
        process = ManagedProcess(argv, name=name, log_dir=self.plan.log_dir, cwd=str(REPO),
                                 env={"PYTHONUNBUFFERED": "1", **(env or {})})
        self._stack.callback(process.stop)
        process.start(ready=ready, timeout=timeout)
        self.pids.add(name, process)
        return process

    # --- the services -----------------------------------------------------------------------------

    def _start_card(self) -> None:
        from drivers.sim.services.pcsc import start_pcsc_stack, start_virtual_card

        if self.pcsc is None:
            self.pcsc = start_pcsc_stack(self.plan.run_dir / "pcsc")
            self._stack.callback(self.pcsc.stop)
            self.pids.add("pcscd", self.pcsc.process)
            self.started.append(f"pcscd with the virtual reader '{self.pcsc.reader}' (vpcd port "
                                f"{self.pcsc.vpcd_port}{', private mount namespace' if self.pcsc.isolated else ''})")
        self.card = start_virtual_card(self.pcsc, self.plan.pki_dir, log_dir=self.plan.apdu_log_dir,
                                       name="virtual-card", slot=self.plan.card_slot,
                                       extra_args=("--sign-latency-ms", str(self.plan.card_sign_latency_ms)))
        self._stack.callback(self.card.stop)
        self.pids.add("virtual-card", self.card.process)
        self.started.append(f"virtual My Number card (control port {self.card.control_port})")

    def _start_cash(self) -> None:
        plan = self.plan
        plan.cash_control.unlink(missing_ok=True)
        if plan.cctalk_link.is_symlink():
            plan.cctalk_link.unlink()
        self.spawn("cctalk", _sim("cash", "--link", str(plan.cctalk_link), "--control", str(plan.cash_control)),
                   ready=lambda: plan.cash_control.exists() and plan.cctalk_link.exists())
        self.started.append(f"ccTalk coin acceptor, note validator and hoppers on {plan.cctalk_link}")

    def _start_escpos(self) -> None:
        plan = self.plan
        self.escpos_control_port = free_port()
        if port_open(plan.host, plan.escpos_port):
            raise ServiceFailed(f"something already listens on {plan.host}:{plan.escpos_port} (the ESC/POS "
                                "printer's port in the kiosk config); stop it or change [receipt_printer] port")
        self.spawn("escpos", _sim("escpos", "--host", plan.host, "--port", str(plan.escpos_port),
                                  "--control-port", str(self.escpos_control_port), "--out", str(plan.receipts_dir)),
                   ready=lambda: port_open(plan.host, self.escpos_control_port))
        self.started.append(f"ESC/POS receipt printer on {plan.host}:{plan.escpos_port}")

    def _start_cups(self) -> None:
        from drivers.sim.services.cups import cups_stack

        self.cups = self._stack.enter_context(cups_stack(self.plan.log_dir / "cups", queue=self.plan.cups_queue,
                                                         printer_name="MadoguchiDemoPrinter",
                                                         root=self.plan.cups_root))
        self.pids.add("ippeveprinter", self.cups.printer)
        self.pids.add("cupsd", self.cups.cupsd)
        self.started.append(f"cupsd on {self.cups.server} with queue {self.cups.queue} → ippeveprinter "
                            f"(port {self.cups.printer_port})")

    def _start_qr(self) -> None:
        from drivers.sim.qr_provider.control import QrProviderControl

        plan = self.plan
        if port_open(plan.host, plan.qr_port):
            raise ServiceFailed(f"something already listens on {plan.qr_url} (the QR provider's URL in the "
                                "kiosk config); stop it or change [qr] base_url")
        control = QrProviderControl(plan.qr_url)
        self.spawn("qr-provider", _sim("qr", "--host", plan.host, "--port", str(plan.qr_port), "--api-key",
                                       plan.qr_api_key, "--api-secret", plan.qr_api_secret),
                   ready=control.healthy)
        control.close()
        self.started.append(f"QR payment provider on {plan.qr_url}")

    def _start_cityhall(self, ch: CityHallPlan) -> None:
        if port_open(ch.host, ch.port):
            raise ServiceFailed(f"something already listens on {ch.host}:{ch.port} (city hall's port); stop it "
                                "or change [service] port in the city hall config and [cityhall] url")
        self._cityhall_cli(ch, "migrate")
        registered = self._registered_key(ch)
        if registered is None:
            self._cityhall_cli(ch, "device", "add", ch.device_id, ch.device_public_key, "--label", "demo",
                               "--location", ch.device_location)
        elif registered != ch.device_public_key:
            raise ServiceFailed(
                f"city hall ({ch.config_path}) already has device {ch.device_id} with another key than this "
                "kiosk's; its data is demo data: delete city hall's data_dir (var/cityhall) and run again")
        self.spawn("cityhall", _cityhall(ch.config_path, "serve", "--host", ch.host, "--port", str(ch.port)),
                   ready=lambda: port_open(ch.host, ch.port), timeout=60)
        self.cityhall_url = f"http://{ch.host}:{ch.port}"
        self.started.append(f"city hall on {self.cityhall_url} (device {ch.device_id} registered)")

    def _cityhall_cli(self, ch: CityHallPlan, *args: str) -> str:
        done = subprocess.run(_cityhall(ch.config_path, *args), capture_output=True, text=True, timeout=120,
                              cwd=REPO)
        if done.returncode != 0:
            raise ServiceFailed(f"`cityhall {' '.join(args[:2])}` failed ({done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()}")
        return done.stdout

    def _registered_key(self, ch: CityHallPlan) -> str | None:
        for line in self._cityhall_cli(ch, "device", "list").splitlines():
            fields = line.split("\t")
            if fields and fields[0] == ch.device_id:
                if fields[1] != "active":
                    raise ServiceFailed(f"device {ch.device_id} is {fields[1]} at city hall; a revoked id is "
                                        "never reused: delete city hall's demo data (var/cityhall) and run again")
                return fields[-1]
        return None

    # --- what the kiosk and the demo panel use ----------------------------------------------------

    def controls(self) -> "DemoControls":
        return DemoControls(self)

    def printed_documents(self) -> list[Path]:
        """What the IPP printer received (ippeveprinter keeps every document), oldest first."""
        return self.cups.kept_documents() if self.cups is not None else []

    def receipts(self) -> list[Path]:
        from drivers.sim.escpos_printer.client import EscposControl

        return EscposControl(self.plan.host, self.escpos_control_port).receipts()


@dataclass
class DemoControls:
    """The demo control panel's actions, on the emulators' own control clients (what a resident does with
    their hands: put a card on the reader, feed coins and notes, scan the QR code with a phone)."""

    world: EmulatedWorld
    pin: str = DEFAULT_PIN
    card_algorithm: str = "rsa2048"  # "p384": residents hold next-generation (ECDSA P-384) cards
    _cash: Any = field(default=None, repr=False)

    @property
    def residents(self) -> tuple[ResidentCard, ...]:
        return self.world.plan.residents

    def card_of(self, resident_or_card_id: str) -> str:
        for resident in self.residents:
            if resident_or_card_id in (resident.resident_id, resident.card_id):
                return resident.card_id
        raise ValueError(f"no demo resident {resident_or_card_id!r}")

    def place_card(self, resident_or_card_id: str) -> None:
        """Put this resident's card on the reader (a resident id like R0001, or the card id)."""
        self.world.card.control.place(self.card_of(resident_or_card_id), self.pin,
                                      algorithm=None if self.card_algorithm == "rsa2048" else self.card_algorithm)

    def remove_card(self) -> None:
        self.world.card.control.remove()

    def card_on_reader(self) -> str | None:
        return self.world.card.control.status().get("placed")

    def _cash_client(self) -> Any:
        from drivers.sim.cctalk.control import CashSimClient

        if self._cash is None:
            self._cash = CashSimClient(str(self.world.plan.cash_control))
        return self._cash

    def insert_coin(self, yen: int) -> bool:
        return bool(self._cash_client().insert_coin(yen))

    def insert_note(self, yen: int) -> bool:
        return bool(self._cash_client().insert_note(yen))

    def insert_cash(self, yen: int) -> bool:
        """A note for 1000 and up, a coin otherwise."""
        return self.insert_note(yen) if yen >= 1000 else self.insert_coin(yen)

    def cash_state(self) -> dict[str, Any]:
        return self._cash_client().state()

    def pending_qr_payment(self) -> str | None:
        """The newest QR payment still waiting for the resident to scan it (its merchant payment id)."""
        from drivers.sim.qr_provider.control import QrProviderControl

        control = QrProviderControl(self.world.plan.qr_url)
        try:
            payments = control.records()["payments"]
        finally:
            control.close()
        waiting = [p for p in payments if p.get("status") == "CREATED"]
        return str(waiting[-1]["merchant_payment_id"]) if waiting else None

    def approve_qr(self) -> bool:
        """The resident scans the code and pays; False when no QR payment is waiting."""
        from drivers.sim.qr_provider.control import QrProviderControl

        payment_id = self.pending_qr_payment()
        if payment_id is None:
            return False
        control = QrProviderControl(self.world.plan.qr_url)
        try:
            control.approve(payment_id)
        finally:
            control.close()
        return True

    def close(self) -> None:
        if self._cash is not None:
            self._cash.close()
            self._cash = None


def copy_outputs(world: EmulatedWorld, out_dir: Path, since: float = 0.0) -> dict[str, list[Path]]:
    """Copy the certificate PDFs the printer kept and the receipt PNGs (modified after ``since``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copied: dict[str, list[Path]] = {"certificates": [], "receipts": []}
    for kind, files in (("certificates", world.printed_documents()), ("receipts", world.receipts())):
        for path in files:
            if path.stat().st_mtime + 1 < since:
                continue
            prefix = "certificate-" if kind == "certificates" else "receipt-"
            target = out_dir / (path.name if path.name.startswith(prefix) else prefix + path.name)
            shutil.copyfile(path, target)
            copied[kind].append(target)
    return copied


__all__ = ["CityHallPlan", "ResidentCard", "WorldPlan", "EmulatedWorld", "DemoControls", "PidFile", "copy_outputs",
           "mint_cards", "DEFAULT_PIN"]
