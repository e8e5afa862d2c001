"""UI tests: the REAL Kivy app under a private Xvfb, tapped through the X server with xdotool, backed by
the real Engine on its own thread with the in-process fakes of tests/fakes.py.

Kivy allows one window per process, so the app is session-scoped: every test gets a fresh engine
(fresh journal, fresh fake world) attached to the same app, which is put back to a clean idle screen
afterwards. The Xvfb screen is 1920x1080 so the window can also be resized to the 15.6-inch panel;
the window starts at 800x480 (the 7-inch panel) in the top-left corner.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from kiosk.config import ServiceHoursSection, TimeoutsSection
from kiosk.engine import Engine, EnginePorts, ServiceHours
from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from kiosk.journal import Journal
from tests.fakes import (voucher_issuer, FakeCardReader, FakeCash, FakeCityHall, FakeClock, FakeDocumentPrinter, FakeQr,
                         FakeReceiptPrinter, World)

LANGUAGES = ("ja", "en", "zh", "ko", "vi", "pt")
TECH_CODE = "2468"
GUARD_SECONDS = 0.35  # shorter than the kiosk's 0.6 s so the suite stays quick; the guard test sets its own


class _Locked:
    """The fakes' world is plain dicts: the test thread (a resident's coins, a QR approval) and the
    engine thread (polls) must not change it at the same time, as a real device's own thread would not."""

    lock = threading.RLock()

    def start(self, *a: Any, **k: Any) -> Any:
        with self.lock:
            return super().start(*a, **k)  # type: ignore[misc]

    def poll(self, *a: Any, **k: Any) -> Any:
        with self.lock:
            return super().poll(*a, **k)  # type: ignore[misc]

    def cancel(self, *a: Any, **k: Any) -> Any:
        with self.lock:
            return super().cancel(*a, **k)  # type: ignore[misc]

    def refund(self, *a: Any, **k: Any) -> Any:
        with self.lock:
            return super().refund(*a, **k)  # type: ignore[misc]


class LockedCash(_Locked, FakeCash):
    def insert(self, key: str, amount: int) -> None:
        with self.lock:
            super().insert(key, amount)


class LockedQr(_Locked, FakeQr):
    def approve(self, key: str) -> None:
        with self.lock:
            super().approve(key)


@dataclass
class Kiosk:
    """One engine on its own thread, wired to fakes, shown by the session's app."""

    world: World
    clock: FakeClock
    journal: Journal
    card: FakeCardReader
    cash: LockedCash
    qr: LockedQr
    engine: Engine
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def payment_key(self) -> str:
        view = self.engine.view()
        assert view.txn_id, view
        key = self.journal.transaction(view.txn_id).payment_key
        assert key, "no payment started"
        return key

    def advance(self, seconds: float) -> None:
        """Time passes for the engine (its timeouts); the next tick notices."""
        self.clock.advance(seconds)
        self.engine.submit(ev.Tick())


@dataclass
class UiSession:
    app: Any
    driver: Any
    kiosk: Kiosk | None = None

    def submit(self, intent: object) -> None:
        if self.kiosk is not None:
            self.kiosk.engine.submit(intent)


@pytest.fixture(scope="session")
def ui_session() -> Iterator[UiSession]:
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.fail("Xvfb and xdotool are needed (Debian packages xvfb, xdotool; see config/debian-packages.txt)")
    from screens.display import VirtualDisplay
    display = VirtualDisplay(1920, 1080).start()
    saved_display = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display.display
    kivy_home = tempfile.mkdtemp(prefix="kivy-ui-")
    try:
        from screens.environment import configure_kivy
        configure_kivy(800, 480, kivy_home=kivy_home)
        from screens.app import build_app
        from kiosk.credential import hash_credential
        from screens.driver import AppDriver
        session = UiSession(app=None, driver=None)
        app = build_app(session.submit, languages=LANGUAGES, city_name="テスト市", inquiry_phone="000-0000-0000",
                        technician_hash=hash_credential(TECH_CODE, log2_n=10),
                        service_hours=ServiceHours.from_config(ServiceHoursSection()))
        app.guard_seconds = GUARD_SECONDS
        session.app, session.driver = app, AppDriver(app, use_xdotool=True).start()
        session.driver.wait_screen("idle")
        yield session
        app.stop()
    finally:
        display.stop()
        if saved_display is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = saved_display
        shutil.rmtree(kivy_home, ignore_errors=True)


def make_kiosk(tmp_path: Path, timeouts: TimeoutsSection | None = None) -> Kiosk:
    world = World()
    clock = FakeClock()
    journal = Journal(tmp_path / "journal.sqlite3", "k-ui-01")
    card = FakeCardReader(world)
    cash, qr = LockedCash(world, journal), LockedQr(world, journal)
    keys = iter(f"key{n:04d}" for n in range(1, 100000))
    engine = Engine(EnginePorts(card, FakeCityHall(world), {"cash": cash, "qr": qr}, FakeDocumentPrinter(world),
                                FakeReceiptPrinter(world), clock, voucher_issuer()), journal, timeouts or TimeoutsSection(),
                    languages=LANGUAGES, payment_methods=("cash", "qr"), new_key=lambda: next(keys))
    return Kiosk(world, clock, journal, card, cash, qr, engine)


@pytest.fixture
def kiosk(ui_session: UiSession, tmp_path: Path) -> Iterator[Kiosk]:
    from screens.app import attach_engine
    k = make_kiosk(tmp_path)
    app = ui_session.app
    app.now = k.clock.now
    ui_session.kiosk = k
    attach_engine(app, k.engine)
    k.thread = threading.Thread(target=k.engine.run, args=(k.stop,), name="engine-ui-test", daemon=True)
    k.thread.start()
    ui_session.driver.wait_screen("idle")
    yield k
    k.stop.set()
    k.engine.submit(ev.Stop())
    k.thread.join(10)
    assert not k.thread.is_alive(), "the engine thread did not stop"
    ui_session.kiosk = None
    reset_app(ui_session)
    k.journal.close()


def reset_app(session: UiSession) -> None:
    app = session.app
    app.local.technician = False
    for name in list(app.overlays):
        app.hide_overlay(name)
    app.large_text = app.high_contrast = False
    app.lang = "ja"
    app.apply_view(ViewState(state="IDLE", language="ja"))
    app.local.idle_step = "idle"
    app.refresh()
    session.driver.wait_screen("idle")
