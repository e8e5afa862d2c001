"""Fee confirmation: what was ordered and the total, before any payment starts."""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class FeeScreen(KioskScreen):
    lines_text = StringProperty("")
    total_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        lines = []
        for line in view.order:
            name = self.tr(f"cert.{line.cert_type}")
            if line.tax_year:
                name += " " + self.tr("screen.options.tax_year", year=line.tax_year)
            for option in line.options:
                name += " / " + self.tr(f"option.{option}")
            lines.append(self.tr("screen.fee.line", name=name, copies=line.copies,
                                 amount=self.yen(line.total_yen)))
        self.lines_text = "\n".join(lines)
        self.total_text = self.tr("screen.fee.total", total=self.yen(view.total_yen))

    def on_leave(self, *_: object) -> None:
        self.lines_text = self.total_text = ""

    def back(self) -> None:
        self.app.submit(ev.Back())

    def cancel(self) -> None:
        self.app.submit(ev.Cancel())
