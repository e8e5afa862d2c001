"""`kiosk demo`: the kiosk on its embedded default — every device emulated at its real protocol on this
machine, a local city hall on SQLite — then the kiosk itself.

    kiosk demo [--config config/demo.toml] [--cityhall-config config/cityhall.toml] [--output demo-output]
               [--headless] [--no-ui] [--method cash|qr] [--resident CARD_ID]

With a display ($DISPLAY) the kiosk window opens with the demo control panel (place or remove a
resident's card, insert coins and notes, approve a QR payment). Without one (or with --headless) the
demo runs the UI on its own Xvfb and performs ONE complete transaction as a resident would — taps on
the screen's buttons (xdotool clicks), the card and the coins through the emulators — and saves a
screenshot of every screen, the certificate PDF as the IPP printer received it and the receipt PNG into
the output folder, checks the certificate with `cityhall verify`, prints a summary and exits 0 (1 when
anything went wrong). --no-ui drives the engine's intents instead of the screens.

The emulated world is drivers/sim/demo.py (the end-to-end tests start the same one). Every process it
started is stopped by its pid at the end, on Ctrl-C / SIGTERM and on an error; what a killed run left
behind is stopped by the next run (its pids are in <run dir>/pids.json).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from kiosk.compose import build_engine, check_config, load
from kiosk.config import KioskConfig
from kiosk.engine import ViewState
from kiosk.engine import events as ev
from kiosk.errors import ConfigError, KioskError
from kiosk.ports import OrderLine

log = logging.getLogger("kiosk.compose.demo")

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT = 60.0  # seconds any one step of the scripted transaction may take
CARD_SIGN_MS = 800  # the demo's card signs as slowly as a real one, so "reading your card" is seen
PANEL = (800, 480)  # the 7-inch panel: the window size of the demo and its screenshots


# --- the plan: what to start, derived from the two config files ------------------------------------

def _option(config: KioskConfig, role: str, key: str, default: Any = None) -> Any:
    section = getattr(config, role)
    if section is None:
        return default
    return section.options.get(key, default)


def plan_world(config: KioskConfig, cityhall_config_path: str, *, with_cityhall: bool = True,
               card_slot: int = 0, card_sign_latency_ms: int = 0) -> Any:
    """The WorldPlan for ``config`` (the kiosk's devices say where every emulator must listen)."""
    from cityhall.config import load_cityhall_config
    from drivers.sim.demo import CityHallPlan, ResidentCard, WorldPlan
    from sync.device_key import enroll

    ch_config = load_cityhall_config(cityhall_config_path)
    registry = json.loads(ch_config.path(ch_config.registry.path).read_text(encoding="utf-8"))
    residents = tuple(ResidentCard(card_id, str(r.get("resident_id", card_id)), _label(r))
                      for card_id, r in registry.items())
    pki_dir = ch_config.path(ch_config.pki.crl_file).parent
    cctalk_link = Path(_option(config, "cash", "port", "/tmp/madoguchi-demo/cctalk"))
    cups_server = str(_option(config, "document_printer", "server", ""))
    qr = urlsplit(str(_option(config, "qr", "base_url", "http://127.0.0.1:8471")))
    cityhall_url = urlsplit(str(_option(config, "cityhall", "url", "http://127.0.0.1:8470")))
    cityhall = None
    if with_cityhall:
        key_path = Path(_option(config, "cityhall", "key_path", "device-key.pem"))
        public_key = enroll(key_path if key_path.is_absolute() else config.data_dir / key_path)
        cityhall = CityHallPlan(Path(ch_config.source).resolve(), cityhall_url.hostname or "127.0.0.1",
                                cityhall_url.port or 80, config.kiosk.device_id, public_key, config.kiosk.location)
    return WorldPlan(
        run_dir=cctalk_link.parent, log_dir=config.data_dir / "logs", pki_dir=pki_dir, residents=residents,
        cctalk_link=cctalk_link, escpos_port=int(_option(config, "receipt_printer", "port", 9100)),
        receipts_dir=config.data_dir / "receipts",
        cups_root=Path(cups_server).parent if cups_server.startswith("/") else None,
        cups_queue=str(_option(config, "document_printer", "queue", "kiosk-a4")),
        qr_port=qr.port or 80, qr_api_key=str(_option(config, "qr", "api_key", "demo-key")),
        qr_api_secret=str(_option(config, "qr", "api_secret", "demo-secret")), cityhall=cityhall, card_slot=card_slot,
        card_sign_latency_ms=card_sign_latency_ms)


def _label(record: dict[str, Any]) -> str:
    """The demo panel's button: the registry's invented demo name, and the status when not active."""
    status = str(record.get("status", "active"))
    name = str(record.get("name", record.get("resident_id", "?")))
    return name if status == "active" else f"{name} ({status})"


class PanelControls:
    """The screens' DemoControls protocol (screens/protocols.py) on the emulators' control clients."""

    def __init__(self, hands: Any) -> None:  # drivers.sim.demo.DemoControls
        self.hands = hands

    def list_residents(self) -> list[Any]:
        from screens.protocols import DemoResident

        return [DemoResident(r.resident_id, r.label) for r in self.hands.residents]

    def place_card(self, resident_id: str) -> None:
        self.hands.place_card(resident_id)

    def remove_card(self) -> None:
        self.hands.remove_card()

    def insert_yen(self, amount: int) -> None:
        if not self.hands.insert_cash(amount):
            log.info("the %d-yen %s was not accepted (payment not open?)", amount,
                     "note" if amount >= 1000 else "coin")

    def approve_qr(self) -> None:
        if not self.hands.approve_qr():
            log.info("no QR payment is waiting to be approved")


def active_residents(cityhall_config_path: str) -> list[str]:
    """Card ids of residents city hall will serve (status active), in registry order."""
    from cityhall.config import load_cityhall_config

    ch_config = load_cityhall_config(cityhall_config_path)
    registry = json.loads(ch_config.path(ch_config.registry.path).read_text(encoding="utf-8"))
    return [card_id for card_id, record in registry.items() if record.get("status") == "active"]


# --- driving the engine -------------------------------------------------------------------------------

class EngineRunner:
    """The engine on its own thread (as `kiosk run` has it) and every view it emits, for scripts to wait on."""

    def __init__(self) -> None:
        self.views: list[ViewState] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.engine: Any = None
        self.listeners: list[Callable[[ViewState], None]] = []

    def on_view(self, view: ViewState) -> None:
        with self._changed:
            self.views.append(view)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(view)

    def start(self, engine: Any) -> None:
        self.engine = engine
        self._thread = threading.Thread(target=engine.run, args=(self._stop,), name="engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self.engine.submit(ev.Stop())
            self._thread.join(15)

    @property
    def view(self) -> ViewState | None:
        with self._changed:
            return self.views[-1] if self.views else None

    def submit(self, event: object) -> None:
        self.engine.submit(event)

    def wait_for(self, predicate: Callable[[ViewState], bool], what: str, timeout: float = STEP_TIMEOUT,
                 *, since: int = 0) -> ViewState:
        """The first view (from index ``since``) satisfying ``predicate``; a typed error view ends the wait."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for view in self.views[since:]:
                    if predicate(view):
                        return view
                    if view.state in ("ERROR", "OUT_OF_SERVICE", "FAILSAFE"):
                        raise DemoFailed(f"waiting for {what}, the kiosk showed {view.state}"
                                         + (f" (error {view.error.code} {view.error.key}: {view.error.detail})"
                                            if view.error else ""))
                since = len(self.views)
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.views[-1].state if self.views else "nothing"
                    raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what} (the kiosk shows {last})")
                self._changed.wait(min(left, 0.5))

    def wait_state(self, state: str, *, since: int = 0, timeout: float = STEP_TIMEOUT) -> ViewState:
        return self.wait_for(lambda v: v.state == state, f"the {state} screen", timeout, since=since)

    def mark(self) -> int:
        with self._changed:
            return len(self.views)


class DemoFailed(RuntimeError):
    pass


@dataclass
class TransactionReport:
    method: str
    card_id: str
    txn_id: str = ""
    order: list[dict[str, Any]] = field(default_factory=list)
    total_yen: int = 0
    paid_yen: int = 0
    change_yen: int = 0
    documents: int = 0
    states: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        order = ", ".join(f"{o['copies']} × {o['cert_type']}" for o in self.order)
        paid = f"paid {self.paid_yen} yen by {self.method}" + (f", change {self.change_yen} yen" if self.change_yen else "")
        return [f"transaction {self.txn_id}: card {self.card_id}, ordered {order} for {self.total_yen} yen; {paid}; "
                f"{self.documents} document(s) printed",
                "screens: " + " → ".join(self.states)]


def choose_first_offer(view: ViewState) -> tuple[OrderLine, ...]:
    """One copy of the first certificate city hall offers (its latest tax year where that applies)."""
    if not view.offers:
        raise DemoFailed("city hall offered this resident no certificate")
    offer = view.offers[0]
    return (OrderLine(offer.cert_type, 1, offer.fee_yen, max(offer.tax_years) if offer.tax_years else None, ()),)


def coins_for(amount: int) -> list[int]:
    """What the demo resident feeds in: 500-yen coins until the fee is covered (so change is paid out)."""
    return [500] * max(1, -(-amount // 500))


def scripted_transaction(runner: EngineRunner, controls: Any, card_id: str, method: str,
                         pin: str = "1234") -> TransactionReport:
    """One complete transaction through the engine's intents, with the emulators doing what a resident's
    hands do. Every wait is bounded; an error screen ends it with DemoFailed."""
    report = TransactionReport(method, card_id)
    start = runner.mark()
    runner.wait_for(lambda v: v.state == "IDLE" and not v.card_present, "the idle screen with an empty reader")
    controls.place_card(card_id)
    view = runner.wait_state("PIN_ENTRY", since=start)
    report.txn_id = view.txn_id or ""
    runner.submit(ev.EnterPin(pin, view.pin_entry_id))
    runner.wait_state("REMOVE_CARD", since=start)
    controls.remove_card()
    view = runner.wait_state("CHOOSING", since=start)
    lines = choose_first_offer(view)
    runner.submit(ev.ChooseOrder(lines))
    view = runner.wait_state("CONFIRMING", since=start)
    report.order = [{"cert_type": line.cert_type, "copies": line.copies, "tax_year": line.tax_year} for line in lines]
    report.total_yen = view.total_yen
    runner.submit(ev.ChoosePayment(method))
    view = runner.wait_for(lambda v: v.state == "PAYING" and v.payment is not None, "the payment screen", since=start)
    if method == "cash":
        for coin in coins_for(view.total_yen):
            if not controls.insert_coin(coin):
                raise DemoFailed(f"the coin acceptor refused a {coin}-yen coin")
    else:
        deadline = time.monotonic() + 15
        while not controls.approve_qr():
            if time.monotonic() > deadline:
                raise DemoFailed("no QR payment was waiting at the provider")
            time.sleep(0.2)
    done = runner.wait_state("DONE", since=start, timeout=STEP_TIMEOUT * 2)
    if done.error is not None:
        raise DemoFailed(f"the transaction ended with error {done.error.code} {done.error.key}: {done.error.detail}")
    report.documents = done.documents_printed
    ledger = runner.engine.journal.transaction(report.txn_id)
    report.paid_yen, report.change_yen = ledger.money_in, ledger.change_paid
    after_done = runner.mark()
    runner.submit(ev.Dismiss())
    runner.wait_state("IDLE", since=after_done)
    seen: list[str] = []
    for v in runner.views[start:]:
        if not seen or seen[-1] != v.state:
            seen.append(v.state)
    report.states = seen
    return report


# --- touching the UI (headless: under a private Xvfb) ------------------------------------------------------

def _touch_run(config: KioskConfig, engine: Any, runner: EngineRunner, hands: Any, card_id: str, method: str,
               output: Path) -> TransactionReport:
    from screens.display import VirtualDisplay

    display = VirtualDisplay(*PANEL).start()
    previous_display = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display.display
    try:
        from screens.environment import configure_kivy

        os.environ.setdefault("KIVY_HOME", str(config.data_dir / "kivy"))  # not a new temp dir per run
        configure_kivy(PANEL[0], PANEL[1])
        return touch_transaction(config, engine, runner, hands, card_id, method, output)
    finally:
        runner.stop()  # before the display goes: the engine must not post views to a dead window
        display.stop()
        if previous_display is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous_display


def touch_transaction(config: KioskConfig, engine: Any, runner: EngineRunner, hands: Any, card_id: str,
                      method: str, shots: Path) -> TransactionReport:
    """ONE transaction by touch, as a resident does it: taps on the screen's buttons (real X clicks with
    xdotool when there is an X display), the card and the coins through the emulators. A screenshot of
    every screen the resident meets goes to ``shots`` (screen-NN-<name>.png)."""
    from screens.app import app_for

    app = app_for(engine, config, demo_controls=PanelControls(hands))
    show = app.post_view

    def both(view: ViewState) -> None:
        runner.on_view(view)
        show(view)

    engine.on_view = both
    camera = _Camera(shots)
    driver = _ShootingDriver(app, camera)
    report = TransactionReport(method, card_id)
    runner.start(engine)
    driver.start()
    try:
        driver.wait_screen("idle", 20)
        driver.tap("header.demo")  # the demo panel: what a presenter uses; shown once, then closed
        resident = next(r.resident_id for r in hands.residents if r.card_id == card_id)
        driver.run_until(lambda: app.find(f"demo.card.{resident}"), 10, "the demo panel's residents")
        camera.shoot(driver, "demo_panel")
        driver.tap("header.demo")  # closes it again (its own close button scrolls below the residents)
        driver.tap("idle.start")
        driver.wait_screen("place_card")
        hands.place_card(card_id)  # the resident puts the card on the reader
        driver.wait_screen("pin", 30)
        for digit in hands.pin:
            driver.tap(f"pin.key.{digit}")
        driver.tap("pin.ok")
        driver.wait_screen("remove_card", 30)
        report.txn_id = app.view.txn_id or ""
        hands.remove_card()  # ... and takes it off again
        driver.wait_screen("menu", 30)
        offer = app.view.offers[0]
        driver.tap(f"menu.offer.{offer.cert_type}")
        if offer.options or offer.tax_years:
            driver.wait_screen("options")
            driver.tap("options.next")
        driver.wait_screen("copies")
        driver.tap("copies.next")
        driver.wait_screen("fee")
        report.total_yen = app.view.total_yen
        report.order = [{"cert_type": line.cert_type, "copies": line.copies, "tax_year": line.tax_year}
                        for line in app.view.order]
        driver.tap("fee.pay")
        driver.wait_screen("payment_method")
        driver.tap(f"payment.{method}")
        driver.wait_screen(method, 30)
        if method == "cash":
            for coin in coins_for(report.total_yen):
                if not hands.insert_coin(coin):
                    raise DemoFailed(f"the coin acceptor refused a {coin}-yen coin")
        else:
            driver.run_until(hands.approve_qr, 15, "the QR payment to be waiting at the provider")
        driver.wait_screen("done", STEP_TIMEOUT * 2)
        done = app.view
        if done.error is not None:
            raise DemoFailed(f"the transaction ended with error {done.error.code} {done.error.key}: "
                             f"{done.error.detail}")
        report.documents = done.documents_printed
        driver.tap("done.finish")
        driver.wait_screen("thanks")
        driver.wait_screen("idle", 15)
    except TimeoutError as exc:
        raise DemoFailed(str(exc)) from None
    finally:
        app.stop()
    ledger = engine.journal.transaction(report.txn_id)
    report.paid_yen, report.change_yen = ledger.money_in, ledger.change_paid
    report.states = camera.seen
    return report


class _Camera:
    """A screenshot of each screen the first time it is fully shown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: list[str] = []
        self.busy = False

    def shoot(self, driver: Any, name: str) -> None:
        if name in self.seen or self.busy:
            return
        self.busy = True
        try:
            self.seen.append(name)
            driver.screenshot(self.directory / f"screen-{len(self.seen):02d}-{name}.png")
        finally:
            self.busy = False


def _shooting_driver_class() -> type:
    from screens.driver import AppDriver

    class ShootingDriver(AppDriver):
        def __init__(self, app: Any, camera: _Camera) -> None:
            super().__init__(app)
            self.camera = camera
            self._pending = ""

        def step(self) -> None:
            super().step()
            if self.camera.busy or not self.started:
                return
            name = self.app.screen
            if name and name == self._pending and self.app.root.ids.manager.current == name:
                self.camera.shoot(self, name)  # drawn for one frame already: what the resident sees
            self._pending = name

    return ShootingDriver


def _ShootingDriver(app: Any, camera: _Camera) -> Any:  # noqa: N802 — reads as the class it makes
    return _shooting_driver_class()(app, camera)


# --- the command ----------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="kiosk config (default config/demo.toml)")
    parser.add_argument("--cityhall-config", default=None, help="city hall config (default config/cityhall.toml)")
    parser.add_argument("--output", default=None, help="where the headless run saves its outputs (default "
                                                       "demo-output/ in the checkout)")
    parser.add_argument("--headless", action="store_true", help="run the scripted transaction even with a display")
    parser.add_argument("--method", choices=("cash", "qr"), default="cash", help="how the scripted resident pays")
    parser.add_argument("--resident", help="card id of the scripted resident (default: the first active one)")
    parser.add_argument("--no-ui", action="store_true", help="headless: drive the engine's intents instead of "
                                                            "touching the UI (no Xvfb, no screenshots)")
    return parser


def _raise_on_sigterm() -> Callable[[], None]:
    """SIGTERM ends the demo like Ctrl-C does, so every `finally` stops what it started."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def sync_available() -> bool:
    return importlib.util.find_spec("kiosk.compose.sync") is not None


def ui_available() -> bool:
    try:
        return importlib.util.find_spec("screens.app") is not None
    except ModuleNotFoundError:  # an install made before screens/ existed: see scripts/bootstrap
        return False


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    config_path = args.config or str(REPO / "config" / "demo.toml")
    cityhall_path = args.cityhall_config or str(REPO / "config" / "cityhall.toml")
    output = Path(args.output) if args.output else REPO / "demo-output"
    headless = args.headless or not os.environ.get("DISPLAY")
    if os.geteuid() != 0:
        print("kiosk demo: the demo runs its own pcscd (in a private mount namespace) and its own cupsd (whose "
              "filters run as user lp), which needs root: run `sudo make demo` (or `sudo .venv/bin/kiosk demo`)",
              file=sys.stderr)
        return 2
    restore = _raise_on_sigterm()
    logs = "var/demo/logs"
    try:
        config = load(config_path)
        logs = str(config.data_dir / "logs")
        check_config(config)
        return _run(config, cityhall_path, output, headless, args)
    except KeyboardInterrupt:
        print("kiosk demo: stopped; every process it started has been stopped", file=sys.stderr)
        return 130
    except (ConfigError, KioskError) as exc:
        print(f"kiosk demo: {exc}", file=sys.stderr)
        return 2
    except DemoFailed as exc:
        print(f"kiosk demo: FAILED: {exc}\n  every process it started has been stopped; their logs are in {logs}",
              file=sys.stderr)
        return 1
    finally:
        restore()


def _run(config: KioskConfig, cityhall_path: str, output: Path, headless: bool, args: argparse.Namespace) -> int:
    from drivers.sim.demo import EmulatedWorld
    from drivers.sim.services.process import ServiceFailed

    plan = plan_world(config, cityhall_path, card_sign_latency_ms=CARD_SIGN_MS)
    _quiet_console(config.data_dir / "logs" / "kiosk.log")
    print("kiosk demo: starting the emulators and city hall (logs in "
          f"{config.data_dir / 'logs'}) ...", flush=True)
    summary: list[str] = []
    try:
        with EmulatedWorld(plan) as world:
            world.pcsc.apply_to_environ()  # the kiosk's PC/SC library must find this pcscd (read at first use)
            if sync_available():
                world.spawn("kiosk-sync", [sys.executable, "-m", "kiosk.cli", "sync", "--config", config.source],
                            ready=None)
                world.started.append("the journal uploader (`kiosk sync`)")
            else:
                summary.append("journal uploader: not started (kiosk/compose/sync.py is not in this checkout)")
            controls = world.controls()
            try:
                if not headless:
                    return _windowed(config, controls)
                summary = _headless(config, cityhall_path, world, controls, output, args, summary)
                if sync_available():
                    summary.append("journal: " + wait_for_upload(config))
            finally:
                controls.close()
    except ServiceFailed as exc:
        raise DemoFailed(str(exc)) from None
    print("\n".join(summary + ["every process the demo started has been stopped by its pid."]))
    return 0


def _windowed(config: KioskConfig, controls: Any) -> int:
    if not ui_available():
        raise DemoFailed("the touch UI (screens/) is not in this checkout yet; run `kiosk demo --headless`")
    from screens.environment import configure_kivy

    os.environ.setdefault("KIVY_HOME", str(config.data_dir / "kivy"))
    configure_kivy(PANEL[0], PANEL[1])
    from screens.app import run_app

    runner = EngineRunner()
    engine, devices = build_engine(config, on_view=runner.on_view)
    runner.start(engine)
    print("kiosk demo: the kiosk window is open; the demo panel (top bar) places cards, inserts coins and "
          "approves QR payments. Close the window or press Ctrl-C to stop everything.", flush=True)
    try:
        run_app(engine, config, tech=None, demo_controls=PanelControls(controls))
    finally:
        runner.stop()
        devices.close()
    return 0


def _quiet_console(log_file: Path) -> None:
    """The kiosk's INFO log goes to a file; the terminal shows warnings and the summary."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    root.addHandler(file_handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))


def _headless(config: KioskConfig, cityhall_path: str, world: Any, controls: Any, output: Path,
              args: argparse.Namespace, notes: list[str]) -> list[str]:
    """The scripted transaction; returns the summary to print once everything is stopped."""
    from drivers.sim.demo import copy_outputs

    output.mkdir(parents=True, exist_ok=True)
    for stale in output.iterdir():  # a second run leaves only its own outputs
        if stale.is_file():
            stale.unlink()
    card_id = args.resident or active_residents(cityhall_path)[0]
    print(f"kiosk demo: everything is up; a resident ({card_id}) now pays by {args.method} ...", flush=True)
    began = time.time()
    runner = EngineRunner()
    engine, devices = build_engine(config, on_view=runner.on_view)
    try:
        if ui_available() and not args.no_ui:
            report = _touch_run(config, engine, runner, controls, card_id, args.method, output)
        else:
            notes.append("screens: the touch UI is not used (" + ("--no-ui" if args.no_ui else
                         "screens/app.py is not in this checkout") + "); the transaction went through the "
                         "engine's intents and screens.jsonl lists the view states instead of screenshots")
            runner.start(engine)
            report = scripted_transaction(runner, controls, card_id, args.method, controls.pin)
    finally:
        runner.stop()
        devices.close()
    (output / "screens.jsonl").write_text("".join(json.dumps(_view_record(v), ensure_ascii=False) + "\n"
                                                  for v in runner.views), encoding="utf-8")
    wait_for_outputs(world, report.documents, began)
    copied = copy_outputs(world, output, began)
    verdicts = [_verify(cityhall_path, pdf) for pdf in copied["certificates"]]
    summary = _summary(world, report, copied, verdicts, notes, output)
    if not copied["certificates"] or not copied["receipts"] or not all(ok for ok, _ in verdicts):
        print("\n".join(summary))
        raise DemoFailed("the certificate or the receipt is missing or the certificate did not verify")
    return summary


def wait_for_outputs(world: Any, documents: int, since: float, timeout: float = 30.0) -> None:
    """The printer keeps a document once its job completes; the receipt PNG is written when it is cut."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docs = [p for p in world.printed_documents() if p.stat().st_mtime + 1 >= since]
        receipts = [p for p in world.receipts() if p.stat().st_mtime + 1 >= since]
        if len(docs) >= documents and receipts:
            return
        time.sleep(0.2)


def wait_for_upload(config: KioskConfig, timeout: float = 20.0) -> str:
    """Give the uploader a moment to send the transaction's events; say how far it got."""
    from kiosk.compose import open_journal

    journal = open_journal(config, readonly=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            stats = journal.stats()
            if stats.unsynced == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        journal.close()
    if stats.unsynced == 0:
        return f"all {stats.last_seq} events uploaded to city hall and acknowledged"
    return (f"{stats.unsynced} of {stats.last_seq} events not yet acknowledged by city hall after {timeout:.0f} s "
            f"(the uploader sends them on the next run; its log: {config.data_dir / 'logs' / 'kiosk-sync.log'})")


def _verify(cityhall_path: str, pdf: Path) -> tuple[bool, str]:
    done = subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", cityhall_path, "verify", str(pdf)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    return done.returncode == 0, (done.stdout or done.stderr).strip()


def _view_record(view: ViewState) -> dict[str, Any]:
    record = asdict(view)
    record.pop("pin_entry_id", None)
    return record


def _summary(world: Any, report: TransactionReport, copied: dict[str, list[Path]], verdicts: list[tuple[bool, str]],
             notes: list[str], output: Path) -> list[str]:
    lines = ["", "Madoguchi demo — headless run", "started:"]
    lines += [f"  - {item}" for item in world.started]
    lines += ["did:"] + [f"  {line}" for line in report.lines()]
    lines += ["saved in " + str(output) + ":"]
    lines += [f"  - {p.name}" for p in copied["certificates"] + copied["receipts"]]
    shots = sorted(output.glob("screen-*.png"))
    if shots:
        lines += [f"  - {len(shots)} screenshots: " + ", ".join(p.name for p in shots)]
    lines += ["  - screens.jsonl (every view state the kiosk showed)"]
    lines += ["checked:"] + [f"  - cityhall verify: {text}" for _, text in verdicts]
    lines += [f"note: {n}" for n in notes]
    return lines
