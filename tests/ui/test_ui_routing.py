"""The UI's local steps and the screen for each view state (pure, no Kivy)."""
from __future__ import annotations

from kiosk.engine.view import PaymentView, ViewState
from kiosk.ports import Offer, OrderLine
from kiosk.credential import check_credential, hash_credential
from screens.routing import LocalState, screen_for

OFFER = Offer("kazei", 300, tax_years=(2025, 2024), options=(), max_copies=2)


def v(state: str, **kw: object) -> ViewState:
    return ViewState(state=state, language="ja", **kw)  # type: ignore[arg-type]


def test_engine_states_map_to_screens() -> None:
    local = LocalState()
    assert screen_for(v("IDLE"), local) == "idle"
    assert screen_for(v("AUTHENTICATING"), local) == "reading"
    assert screen_for(v("PAYING", payment=PaymentView("qr", 300)), local) == "qr"
    assert screen_for(v("PAYING", payment=PaymentView("cash", 300)), local) == "cash"
    assert screen_for(v("PAYING"), local) == "printing"
    assert screen_for(v("REFUNDING"), local) == "printing"
    assert screen_for(v("FAILSAFE"), local) == "out_of_service"
    local.technician = True
    assert screen_for(v("IDLE"), local) == "technician"


def test_choosing_steps_end_in_one_order_line_and_are_forgotten_at_idle() -> None:
    local = LocalState()
    local.follow(v("REMOVE_CARD"), v("CHOOSING", offers=(OFFER,)))
    assert local.choose_step == "menu"
    local.choice.start(OFFER)
    local.choice.tax_year, local.choice.copies = 2024, 2
    local.choose_step = "copies"
    assert local.choice.line(OFFER) == OrderLine("kazei", 2, 300, 2024, ())
    local.follow(v("CHOOSING"), v("CONFIRMING"))
    assert local.confirm_step == "fee"
    local.follow(v("CONFIRMING"), v("CHOOSING", offers=(OFFER,)))  # "back" keeps the choice
    assert local.choose_step == "copies" and local.choice.copies == 2
    local.follow(v("CHOOSING"), v("IDLE"))
    assert local.choice.cert_type == "" and local.idle_step == "idle"


def test_thanks_survives_the_end_of_a_finished_transaction_only() -> None:
    local = LocalState(idle_step="thanks")
    local.follow(v("DONE"), v("IDLE"))
    assert local.idle_step == "thanks"
    local = LocalState(idle_step="thanks")
    local.follow(v("ERROR"), v("IDLE"))
    assert local.idle_step == "idle"


def test_technician_credential() -> None:
    stored = hash_credential("2468", log2_n=10)
    assert stored.startswith("scrypt$10$8$1$")
    assert check_credential("2468", stored)
    assert not check_credential("2469", stored)
    assert not check_credential("", stored)
    assert not check_credential("2468", "")
    assert not check_credential("2468", "scrypt$40$8$1$00$00")  # refuses absurd memory
    assert hash_credential("2468", log2_n=10) != stored  # salted
