"""Certificate menu: only what city hall offers this resident (view.offers), with its fee."""
from __future__ import annotations

from typing import Any

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from kiosk.ports import Offer
from screens.widgets import KioskButton, KioskScreen


class MenuScreen(KioskScreen):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[tuple[Offer, ...], str] | None = None

    def show(self, view: ViewState) -> None:
        key = (view.offers, self.app.lang)
        if key == self._shown:
            return
        self._shown = key
        box = self.ids.offers
        box.clear_widgets()
        for offer in view.offers:
            button = KioskButton(ui_id=f"menu.offer.{offer.cert_type}", kind="choice", size_mm=4.8)
            button.text = self.tr("screen.menu.offer", name=self.tr(f"cert.{offer.cert_type}"),
                                  fee=self.yen(offer.fee_yen))
            button.bind(on_action=lambda _b, o=offer: self.choose(o))
            box.add_widget(button)

    def on_leave(self, *_: Any) -> None:
        self._shown = None
        self.ids.offers.clear_widgets()  # nothing of a resident's stays in the widget tree

    def choose(self, offer: Offer) -> None:
        self.app.local.choice.start(offer)
        self.app.go("options" if offer.options or offer.tax_years else "copies")

    def cancel(self) -> None:
        self.app.submit(ev.Cancel())
