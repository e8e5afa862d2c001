"""A resident's transactions, tapped on the real app (xdotool clicks on Xvfb) against the real Engine."""
from __future__ import annotations

import re

import pytest

from tests.fakes import GOOD_PIN
from tests.ui.conftest import Kiosk, UiSession

pytestmark = pytest.mark.ui


def start_with_card(ui: UiSession, k: Kiosk) -> None:
    d = ui.driver
    d.tap("idle.start")
    d.wait_screen("place_card")
    k.card.place()


def type_pin(ui: UiSession, pin: str) -> None:
    for digit in pin:
        ui.driver.tap(f"pin.key.{digit}")
    ui.driver.tap("pin.ok")


def to_choosing(ui: UiSession, k: Kiosk) -> None:
    d = ui.driver
    start_with_card(ui, k)
    d.wait_screen("pin")
    d.wait_text("pin.message", "3")
    type_pin(ui, GOOD_PIN)
    d.wait_screen("remove_card")
    k.card.remove()
    d.wait_screen("menu")


def order_juminhyo(ui: UiSession, k: Kiosk, copies: int = 1) -> None:
    d = ui.driver
    to_choosing(ui, k)
    d.tap("menu.offer.juminhyo")
    d.wait_screen("options")
    d.tap("options.option.with_household")
    d.tap("options.next")
    d.wait_screen("copies")
    for _ in range(copies - 1):
        d.tap("copies.plus")
    d.tap("copies.next")
    d.wait_screen("fee")
    d.wait_text("fee.total", f"{300 * copies:,}")


def pay_with(ui: UiSession, method: str) -> None:
    d = ui.driver
    d.tap("fee.pay")
    d.wait_screen("payment_method")
    d.tap(f"payment.{method}")
    d.wait_screen(method)


def visible_text(ui: UiSession) -> str:
    return "\n".join(str(getattr(w, "text", "")) for w in ui.app.widgets())


def finish_and_check_idle(ui: UiSession) -> None:
    d = ui.driver
    d.tap("done.finish")
    d.wait_screen("thanks")
    d.wait_screen("idle", timeout=10)


def test_full_cash_transaction(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    order_juminhyo(ui, kiosk, copies=2)
    pay_with(ui, "cash")
    d.wait_text("cash.due", "600")
    key = kiosk.payment_key()
    kiosk.cash.insert(key, 500)
    d.wait_text("cash.inserted", "500")
    d.wait_text("cash.remaining", "100")
    kiosk.cash.insert(key, 1000)  # a note: 900 yen change
    d.wait_screen("done", timeout=15)
    d.wait_text("done.documents", "2")
    assert len(kiosk.world.data["tray"]) == 2
    assert kiosk.world.data["payments"][key]["change"] == 900
    assert kiosk.world.data["receipts"][-1]["total"] == 600
    finish_and_check_idle(ui)


def test_full_qr_transaction(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    to_choosing(ui, kiosk)
    d.tap("menu.offer.kazei")
    d.wait_screen("options")
    d.tap("options.year.2024")
    d.tap("options.next")
    d.wait_screen("copies")
    d.tap("copies.next")
    d.wait_screen("fee")
    pay_with(ui, "qr")
    d.wait_text("qr.amount", "300")
    code = ui.app.find("qr.code")
    assert code.payload.startswith("https://qr.example/") and code.texture is not None  # drawn from the payload
    kiosk.qr.approve(kiosk.payment_key())
    d.wait_screen("done", timeout=15)
    assert kiosk.world.data["tray"][0]["fee"] == 300
    order = kiosk.journal.transactions()[-1].order_json
    assert '"tax_year": 2024' in order
    finish_and_check_idle(ui)


def test_wrong_pin_twice_then_right(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    start_with_card(ui, kiosk)
    d.wait_screen("pin")
    type_pin(ui, "1111")
    d.wait_text("pin.message", "2")
    assert ui.app.find("pin.masked").text.count("●") == 0  # nothing typed stays on screen
    type_pin(ui, "2222")
    # one try left: the confirmation comes BEFORE the keypad, and nothing is sent without it
    d.run_until(lambda: ui.app.find("pin.confirm_last_try") is not None
                and ui.app.screens["pin"].confirm_needed, 10, "last-try confirmation")
    assert kiosk.world.data["verify_calls"] == [1, 2]
    d.tap("pin.confirm_last_try")
    d.run_until(lambda: not ui.app.screens["pin"].confirm_needed, 10, "keypad back")
    type_pin(ui, GOOD_PIN)
    d.wait_screen("remove_card")
    assert kiosk.world.data["verify_calls"] == [1, 2, 3]
    assert kiosk.world.data["card"]["tries"] == 3


def test_card_pulled_while_reading(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    kiosk.world.data["card"]["pull_on"] = "read"
    start_with_card(ui, kiosk)
    d.wait_screen("error")
    d.wait_text("error.code", "E202")
    assert ui.app.find("error.title").text == ui.app.tr("error.card_removed.title")
    assert ui.app.find("error.action").text == ui.app.tr("error.card_removed.action")
    d.tap("error.ok")
    d.wait_screen("idle")


def test_cancel_during_payment_returns_the_money(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    order_juminhyo(ui, kiosk)
    pay_with(ui, "cash")
    key = kiosk.payment_key()
    kiosk.cash.insert(key, 100)
    d.wait_text("cash.inserted", "100")
    d.tap("cash.cancel")
    d.wait_screen("idle", timeout=15)
    payment = kiosk.world.data["payments"][key]
    assert payment["state"] == "cancelled" and payment["returned"] == 100
    assert kiosk.world.data["tray"] == []
    assert kiosk.journal.transactions()[-1].outcome == "cancelled"


def test_paper_out_after_payment_shows_the_refund(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    order_juminhyo(ui, kiosk)
    pay_with(ui, "cash")
    kiosk.world.set_fault("paper_out")  # the tray runs empty after the pre-payment check
    kiosk.cash.insert(kiosk.payment_key(), 500)
    d.wait_screen("done", timeout=15)
    refund = d.wait_text("done.refund", "300")
    assert ui.app.yen(300) in refund
    d.wait_text("done.problem", "E401")
    assert kiosk.world.data["tray"] == []
    assert kiosk.world.money_in() == kiosk.world.money_back()  # 500 in: 200 change + 300 refunded
    d.tap("done.finish")
    # with no paper the kiosk goes out of service rather than let the next resident pay
    d.wait_screen("out_of_service")
    d.wait_text("out_of_service.code", "E401")


def test_inactivity_warning_then_idle_with_nothing_left(ui_session: UiSession, kiosk: Kiosk) -> None:
    ui, d = ui_session, ui_session.driver
    order_juminhyo(ui, kiosk, copies=3)
    assert "900" in visible_text(ui)
    order_text = ui.app.find("fee.lines").text
    assert order_text
    timeouts = kiosk.engine.timeouts
    kiosk.advance(timeouts.confirming - timeouts.inactivity_warning + 1)
    d.run_until(lambda: ui.app.find("warning.continue") is not None, 10, "the inactivity warning")
    d.wait_text("warning.seconds", "19")
    kiosk.advance(timeouts.inactivity_warning)
    d.wait_screen("idle", timeout=10)
    d.run_until(lambda: ui.app.find("warning.continue") is None, 5, "the warning to go")
    view = ui.app.view
    assert view.state == "IDLE" and not view.holds_transaction_data()
    text = visible_text(ui)
    for leftover in ("900", "300", order_text, ui.app.tr("option.with_household")):
        assert leftover not in text
    for name, screen in ui.app.screens.items():  # nor in any screen waiting off-stage
        for w in screen.walk():
            assert not re.search(r"[39]00", str(getattr(w, "text", ""))), (name, w.text)
    assert ui.app.local.choice.cert_type == ""
