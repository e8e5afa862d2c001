"""Options of the chosen certificate: the tax year (tax certificates) and what the copy includes."""
from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty

from kiosk.engine.view import ViewState
from screens.widgets import KioskButton, KioskScreen


class OptionsScreen(KioskScreen):
    cert_name = StringProperty("")

    def show(self, view: ViewState) -> None:
        self._build(view)

    def _build(self, view: ViewState) -> None:
        offer = self.app.local.offer(view)
        years, options = self.ids.years, self.ids.options
        years.clear_widgets()
        options.clear_widgets()
        if offer is None:
            return
        choice = self.app.local.choice
        self.cert_name = self.tr(f"cert.{offer.cert_type}")
        for year in offer.tax_years:
            b = KioskButton(ui_id=f"options.year.{year}", kind="choice", selected=choice.tax_year == year,
                            text=self.tr("screen.options.tax_year", year=year))
            b.bind(on_action=lambda _b, y=year: self._pick_year(y, view))
            years.add_widget(b)
        for name in offer.options:
            b = KioskButton(ui_id=f"options.option.{name}", kind="choice", selected=name in choice.options,
                            text=self.tr(f"option.{name}"))
            b.bind(on_action=lambda _b, n=name: self._toggle(n, view))
            options.add_widget(b)

    def _pick_year(self, year: int, view: ViewState) -> None:
        self.app.local.choice.tax_year = year
        self._build(view)

    def _toggle(self, name: str, view: ViewState) -> None:
        chosen = self.app.local.choice.options
        chosen.symmetric_difference_update({name})
        self._build(view)

    def on_leave(self, *_: Any) -> None:
        self.ids.years.clear_widgets()
        self.ids.options.clear_widgets()
