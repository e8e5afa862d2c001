"""Number of copies; "next" sends the whole choice as ONE ChooseOrder intent."""
from __future__ import annotations

from kivy.properties import NumericProperty, StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class CopiesScreen(KioskScreen):
    copies = NumericProperty(1)
    max_copies = NumericProperty(1)
    cert_name = StringProperty("")
    total_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        offer = self.app.local.offer(view)
        if offer is None:
            return
        choice = self.app.local.choice
        choice.copies = max(1, min(choice.copies, offer.max_copies))
        self.copies, self.max_copies = choice.copies, offer.max_copies
        self.cert_name = self.tr(f"cert.{offer.cert_type}")
        self.total_text = self.tr("screen.copies.total", unit=self.yen(offer.fee_yen),
                                  total=self.yen(offer.fee_yen * choice.copies))

    def change(self, delta: int) -> None:
        self.app.local.choice.copies += delta
        if self.app.view is not None:
            self.show(self.app.view)

    def back(self) -> None:
        view = self.app.view
        offer = self.app.local.offer(view) if view else None
        self.app.go("options" if offer is not None and (offer.options or offer.tax_years) else "menu")

    def next(self) -> None:
        view = self.app.view
        offer = self.app.local.offer(view) if view else None
        if offer is not None:
            self.app.submit(ev.ChooseOrder((self.app.local.choice.line(offer),)))

    def on_leave(self, *_: object) -> None:
        self.cert_name = self.total_text = ""
