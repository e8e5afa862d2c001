"""`kiosk run [--config FILE] [--headless]`: the appliance process.

The engine runs on its own thread (Engine.run); the Kivy UI runs on the main thread and gets view
states through the Clock. Headless, the views are logged until SIGTERM. Either way the engine is
stopped, the devices closed and the journal closed before the process exits.
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from kiosk.compose import Devices, build_engine, load, test_print_pages
from kiosk.engine import Engine, ViewState
from kiosk.engine import events as ev
from kiosk.errors import KioskError
from kiosk.ops.cashbook import hopper_coins_of, levels_from
from kiosk.ops.lifecycle import ApplianceLifecycle

log = logging.getLogger("kiosk.run")

ENGINE_STOP_TIMEOUT = 15.0  # seconds to let the engine finish the event in hand


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kiosk run", description="run the kiosk (engine + touch UI)")
    parser.add_argument("--config", help="config file (default $KIOSK_CONFIG, else config/kiosk.toml)")
    parser.add_argument("--headless", action="store_true", help="no UI: log the view states until SIGTERM")
    args = parser.parse_args(argv)
    config = load(args.config)
    if not args.headless:
        from screens.environment import configure_kivy  # before Kivy is imported anywhere
        configure_kivy(fullscreen=True)
    engine, devices = build_engine(config, on_view=log_view)
    stop = threading.Event()
    engine_thread = threading.Thread(target=engine.run, args=(stop,), name="engine", daemon=True)
    # systemd READY=1 + watchdog from this (main) loop, safe mode, `kioskctl service on|off`: kiosk.ops.lifecycle
    lifecycle = ApplianceLifecycle(config.data_dir, engine.journal, config.kiosk.device_id, config.timeouts)
    lifecycle.prepare(engine, engine_thread.is_alive)
    engine_thread.start()
    try:
        if args.headless:
            wait_for_sigterm(stop, lifecycle.tick)
        else:
            from kivy.clock import Clock
            from screens.app import run_app
            Clock.schedule_interval(lambda _dt: lifecycle.tick(), 1.0)
            cash_options = config.cash.options if config.cash is not None else None
            run_app(engine, config, tech=TechnicianAccess(engine, devices, cash_options))
    finally:
        lifecycle.stop()
        stop.set()
        engine.submit(ev.Stop())
        engine_thread.join(ENGINE_STOP_TIMEOUT)
        if engine_thread.is_alive():
            log.error("the engine did not stop within %.0f s; exiting anyway (recovery settles at the next start)",
                      ENGINE_STOP_TIMEOUT)
        devices.close()
        engine.journal.close()
    return 0


def log_view(view: ViewState) -> None:
    log.info("view: %s%s", view.state, f" ({view.out_of_service_reason})" if view.out_of_service_reason else "")


def wait_for_sigterm(stop: threading.Event, on_tick: Any = None) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("running headless; stop with SIGTERM")
    while not stop.wait(1.0):
        if on_tick is not None:
            on_tick()


@dataclass
class TechnicianAccess:
    """screens.protocols.TechnicianPort on the built devices (technician mode on the touch screen)."""

    engine: Engine
    devices: Devices
    cash_options: Any = None  # the [cash] driver options: which coins the hoppers hold

    def device_status(self) -> list[Any]:
        from screens.protocols import DeviceStatus
        checks = {"cityhall": self.devices.cityhall.ping, "document_printer": self.devices.document_printer.check_ready,
                  "receipt_printer": self.devices.receipt_printer.check_ready}
        try:
            present = self.devices.card.card_present()
            result = [DeviceStatus("card", True, "card on the reader" if present else "reader ready, no card")]
        except KioskError as exc:
            result = [DeviceStatus("card", False, f"E{exc.code} {exc.detail}")]
        for name, check in checks.items():
            try:
                warnings = check()
                result.append(DeviceStatus(name, True, ", ".join(warnings or []) or "ready"))
            except KioskError as exc:
                result.append(DeviceStatus(name, False, f"E{exc.code} {exc.detail}"))
        for method, provider in self.devices.payments.items():
            try:
                problem = provider.available()
                result.append(DeviceStatus(method, problem is None or problem.exact_amount_only,
                                           "ready" if problem is None else problem.detail))
            except KioskError as exc:
                result.append(DeviceStatus(method, False, f"E{exc.code} {exc.detail}"))
        return result

    def test_print(self) -> str:
        receipt = test_print_pages().receipt_for_test_print(self.engine.language)  # the same as kioskctl's
        self.devices.receipt_printer.print_receipt(receipt)
        return f"test receipt {receipt.transaction_id} printed"

    def cash_levels(self) -> list[Any]:
        """The same book as `kioskctl cash`: refills minus payouts per hopper, takings since emptying."""
        from screens.protocols import CashLevel
        book = levels_from(self.engine.journal.events(), hopper_coins_of(self.cash_options))
        levels = [CashLevel(f"hopper {coin} yen", coin * coins, f"{coins} coins")
                  for coin, coins in sorted(book.hoppers.items())]
        levels.append(CashLevel("cash box", book.cashbox_yen, f"since {book.last_emptied_at or 'the start'}"))
        cash = self.devices.payments.get("cash")
        if cash is not None:
            problem = cash.available()
            levels.append(CashLevel("change hoppers", 0, "ready" if problem is None else problem.detail))
        return levels

    def service_off(self, reason: str) -> None:
        self.engine.submit(ev.ServiceOff(reason))

    def service_on(self) -> None:
        self.engine.submit(ev.ServiceOn())
