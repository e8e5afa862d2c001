"""Which screen shows a view state, and the UI's own small state between engine states.

Pure Python (no Kivy). The engine's states are coarse on purpose; the UI keeps a few local steps:
IDLE shows the attract screen, the "place your card" prompt or a short thank-you; CHOOSING walks
type -> options -> copies and ends in ONE ChooseOrder intent; CONFIRMING shows the fee, then the
payment method, and ends in ONE ChoosePayment intent. Local state is dropped whenever a transaction
ends, so nothing a resident chose survives them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.engine.view import ViewState
from kiosk.ports import Offer, OrderLine

#: Every screen, in the order a resident meets them (the gallery and the docs use this order).
SCREENS = ("idle", "place_card", "reading", "pin", "remove_card", "menu", "options", "copies", "fee",
           "payment_method", "cash", "qr", "printing", "done", "thanks", "error", "out_of_service", "technician")

_BY_STATE = {
    "CARD_READING": "reading", "AUTHENTICATING": "reading", "PIN_ENTRY": "pin", "REMOVE_CARD": "remove_card",
    "ISSUING": "printing", "PRINTING": "printing", "RECEIPT": "printing", "REFUNDING": "printing",
    "DONE": "done", "ERROR": "error", "OUT_OF_SERVICE": "out_of_service", "FAILSAFE": "out_of_service",
}


@dataclass
class Choice:
    """What the resident is choosing in CHOOSING (one certificate type per order)."""

    cert_type: str = ""
    tax_year: int | None = None
    options: set[str] = field(default_factory=set)
    copies: int = 1

    def start(self, offer: Offer) -> None:
        self.cert_type = offer.cert_type
        self.tax_year = offer.tax_years[0] if offer.tax_years else None
        self.options = set()
        self.copies = 1

    def line(self, offer: Offer) -> OrderLine:
        return OrderLine(offer.cert_type, self.copies, offer.fee_yen, self.tax_year,
                         tuple(o for o in offer.options if o in self.options))


@dataclass
class LocalState:
    idle_step: str = "idle"  # idle | place_card | thanks
    choose_step: str = "menu"  # menu | options | copies
    confirm_step: str = "fee"  # fee | payment_method
    technician: bool = False
    choice: Choice = field(default_factory=Choice)

    def forget_transaction(self) -> None:
        self.choose_step, self.confirm_step, self.choice = "menu", "fee", Choice()

    def follow(self, previous: ViewState | None, view: ViewState) -> None:
        """Update the local steps when the engine's state changes."""
        before = previous.state if previous else None
        if before == view.state:
            return
        if view.state == "CHOOSING":
            if before == "CONFIRMING" and self.choice.cert_type:
                self.choose_step = "copies"  # "back" from the fee: keep what was chosen
            else:
                self.choose_step, self.choice = "menu", Choice()
        elif view.state == "CONFIRMING":
            self.confirm_step = "fee"
        elif view.state == "IDLE":
            self.forget_transaction()
            if before != "DONE" or self.idle_step != "thanks":
                self.idle_step = "idle"
        elif view.state != "IDLE" and self.idle_step != "idle":
            self.idle_step = "idle"

    def offer(self, view: ViewState) -> Offer | None:
        return next((o for o in view.offers if o.cert_type == self.choice.cert_type), None)


def screen_for(view: ViewState, local: LocalState) -> str:
    if local.technician:
        return "technician"
    if view.state == "IDLE":
        return local.idle_step
    if view.state == "CHOOSING":
        return local.choose_step
    if view.state == "CONFIRMING":
        return local.confirm_step
    if view.state == "PAYING":
        if view.payment is None:
            return "printing"  # the provider has not answered yet: "please wait"
        return "qr" if view.payment.method == "qr" else "cash"
    return _BY_STATE.get(view.state, "out_of_service")
