"""Payment method: cash or QR, with the exact-amount-only notice when the hoppers cannot give change."""
from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskButton, KioskScreen


class PaymentMethodScreen(KioskScreen):
    exact_amount_only = BooleanProperty(False)
    card_present = BooleanProperty(False)

    def show(self, view: ViewState) -> None:
        self.exact_amount_only = view.exact_amount_only and "cash" in view.payment_methods
        self.card_present = view.card_present
        box = self.ids.methods
        box.clear_widgets()
        for method in view.payment_methods:
            b = KioskButton(ui_id=f"payment.{method}", size_mm=5.4, text=self.tr(f"payment.{method}"))
            b.bind(on_action=lambda _b, m=method: self.app.submit(ev.ChoosePayment(m)))
            box.add_widget(b)

    def on_leave(self, *_: Any) -> None:
        self.ids.methods.clear_widgets()

    def cancel(self) -> None:
        self.app.submit(ev.Cancel())
