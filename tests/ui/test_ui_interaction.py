"""Touch behaviour around the flow: the double-tap guard, the language switch from any screen, the
large-text and high-contrast toggles, service hours on the idle screen, and technician mode."""
from __future__ import annotations

import subprocess

import pytest

from kiosk.compose import Devices
from kiosk.compose.run import TechnicianAccess
from tests.ui.conftest import TECH_CODE, Kiosk, UiSession
from tests.fakes import GOOD_PIN
from tests.ui.test_ui_flows import to_choosing, type_pin

pytestmark = pytest.mark.ui


def double_click(ui: UiSession, ui_id: str) -> None:
    """Two taps 0.2 s apart at one place; the app runs its frames in between, as it would for a finger."""
    x, y = ui.app.window_point(ui_id)
    for _ in range(2):
        subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], check=True, timeout=10)
        ui.driver.pump(0.2)
    ui.driver.pump(0.5)


def test_a_double_tap_presses_one_button_only(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, app = ui_session, ui_session.app
    guard = app.guard_seconds
    try:
        # without the guard the second tap lands on the next screen's button ("back") at the same place
        app.guard_seconds = 0
        double_click(ui, "idle.start")
        assert app.screen == "idle"
        app.guard_seconds = 0.6
        ui.driver.pump(0.7)
        double_click(ui, "idle.start")
        assert app.screen == "place_card"
    finally:
        app.guard_seconds = guard


def test_language_can_be_switched_in_the_middle_of_a_transaction(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d, app = ui_session, ui_session.driver, ui_session.app
    to_choosing(ui, kiosk)
    assert "住民票の写し" in app.find("menu.offer.juminhyo").text
    d.tap("header.language")
    d.tap("language.en")
    d.run_until(lambda: "Residence record" in app.find("menu.offer.juminhyo").text, 10, "English menu")
    d.run_until(lambda: kiosk.engine.view().language == "en", 5, "the engine's language")
    assert app.screen == "menu" and app.font == "Roboto"
    d.tap("header.language")
    d.tap("language.ko")
    d.run_until(lambda: "주민표" in app.find("menu.offer.juminhyo").text, 10, "Korean menu")
    assert app.font == "wqy"


def test_large_text_and_high_contrast(ui_session: UiSession, kiosk: Kiosk) -> None:
    d, app = ui_session.driver, ui_session.app
    start = app.find("idle.start")
    normal = start.font_size
    d.tap("header.large_text")
    d.run_until(lambda: app.find("idle.start").font_size > normal * 1.2, 5, "larger text")
    d.tap("header.contrast")
    d.run_until(lambda: list(app.c_background) == [0, 0, 0, 1], 5, "black background")
    assert list(app.c_text) == [1, 1, 1, 1]
    d.tap("header.contrast")
    d.tap("header.large_text")
    d.run_until(lambda: app.find("idle.start").font_size == normal and app.c_background[0] > 0.9, 5, "back")


def test_outside_service_hours_the_idle_screen_says_when_service_resumes(ui_session: UiSession,
                                                                         kiosk: Kiosk) -> None:
    ui, app = ui_session, ui_session.app
    kiosk.clock.advance(14 * 3600)  # 10:00 JST -> 00:00 JST
    idle = app.screens["idle"]
    idle.update_hours()
    ui.driver.step()
    assert idle.closed and "06:30" in idle.hours_text and "12/01" in idle.hours_text
    assert app.find("idle.start").disabled


def test_technician_mode_needs_its_credential(ui_session: UiSession, kiosk: Kiosk) -> None:
    d, app = ui_session.driver, ui_session.app
    k = kiosk
    app.tech = TechnicianAccess(k.engine, Devices(k.card, k.engine.ports.cityhall, {"cash": k.cash, "qr": k.qr},
                                                  k.engine.ports.document_printer, k.engine.ports.receipt_printer))
    try:
        x, y = app.window_point("header.technician")
        for _ in range(5):
            d.tap_point(x, y)
        d.wait_screen("technician")
        for digit in "1111":
            d.tap(f"tech.key.{digit}")
        d.tap("tech.login")
        d.run_until(lambda: app.find("tech.output").text == app.tr("tech.wrong_code"), 10, "refused")
        assert not app.screens["technician"].logged_in
        for digit in TECH_CODE:
            d.tap(f"tech.key.{digit}")
        d.tap("tech.login")
        d.run_until(lambda: app.screens["technician"].logged_in, 10, "logged in")
        d.tap("tech.status")
        d.run_until(lambda: "document_printer" in app.find("tech.output").text, 10, "device status")
        k.world.set_fault("receipt_paper_out")
        d.tap("tech.status")
        d.run_until(lambda: "NG  receipt_printer: E401" in app.find("tech.output").text, 10, "a fault shown")
        k.world.set_fault("receipt_paper_out", False)
        d.tap("tech.test_print")
        d.run_until(lambda: "printed" in app.find("tech.output").text, 10, "test print")
        assert k.world.data["receipts"][-1]["txn"].startswith("TEST-")
        d.tap("tech.cash")
        d.run_until(lambda: "cash box" in app.find("tech.output").text, 10, "cash levels")
        d.tap("tech.service_off")
        d.run_until(lambda: k.engine.view().state == "OUT_OF_SERVICE", 10, "service off")
        d.tap("tech.exit")
        d.wait_screen("out_of_service")
        assert app.find("out_of_service.reason").text == app.tr("oos.reason.maintenance")
        for _ in range(5):
            d.tap_point(x, y)
        d.wait_screen("technician")
        assert app.find("tech.masked").text == ""  # a new login every time
        for digit in TECH_CODE:
            d.tap(f"tech.key.{digit}")
        d.tap("tech.login")
        d.run_until(lambda: app.screens["technician"].logged_in, 10, "logged in again")
        d.tap("tech.service_on")
        d.run_until(lambda: k.engine.view().state == "IDLE", 10, "service on")
        d.tap("tech.exit")
        d.wait_screen("idle")
    finally:
        app.tech = None


class FakesDemoControls:
    """screens.protocols.DemoControls on the in-process fakes (the demo implements it on the emulators)."""

    def __init__(self, k: Kiosk) -> None:
        self.k = k

    def list_residents(self) -> list[object]:
        from screens.protocols import DemoResident
        return [DemoResident("r1", "デモ 太郎"), DemoResident("r2", "Demo Hanako")]

    def place_card(self, resident_id: str) -> None:
        self.k.card.place()

    def remove_card(self) -> None:
        self.k.card.remove()

    def insert_yen(self, amount: int) -> None:
        self.k.cash.insert(self.k.payment_key(), amount)

    def approve_qr(self) -> None:
        self.k.qr.approve(self.k.payment_key())


def test_demo_panel_places_a_card_and_pays(ui_session: UiSession, kiosk: Kiosk) -> None:
    from screens.protocols import DemoControls
    ui, d, app = ui_session, ui_session.driver, ui_session.app
    controls = FakesDemoControls(kiosk)
    assert isinstance(controls, DemoControls)
    app.demo_controls, app.demo_enabled = controls, True
    try:
        d.tap("header.demo")
        d.tap("demo.card.r1")
        d.wait_screen("pin")
        d.run_until(lambda: app.find("demo.close") is None, 5, "the panel to step aside")
        type_pin(ui, GOOD_PIN)
        d.wait_screen("remove_card")
        d.tap("header.demo")
        d.tap("demo.remove_card")
        d.wait_screen("menu")
        d.tap("menu.offer.kazei")
        d.tap("options.next")
        d.tap("copies.next")
        d.tap("fee.pay")
        d.tap("payment.cash")
        d.wait_screen("cash")
        d.tap("header.demo")
        d.tap("demo.yen.100")
        d.wait_text("cash.inserted", "100")
        d.tap("demo.yen.500")
        d.wait_screen("done", timeout=15)
        d.tap("demo.close")
        d.run_until(lambda: app.find("demo.close") is None, 5, "panel closed")
    finally:
        app.demo_controls, app.demo_enabled = None, False
