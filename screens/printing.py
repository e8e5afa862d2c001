"""Issuing, printing (n of m), the receipt, or money going back (REFUNDING): please wait."""
from __future__ import annotations

from kivy.properties import NumericProperty, StringProperty

from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen

_TITLES = {"ISSUING": "screen.printing.issuing", "PRINTING": "screen.printing.title",
           "RECEIPT": "screen.printing.receipt", "REFUNDING": "screen.printing.refunding",
           "PAYING": "screen.printing.wait"}


class PrintingScreen(KioskScreen):
    title_key = StringProperty("screen.printing.title")
    progress_text = StringProperty("")
    progress = NumericProperty(0.0)

    def show(self, view: ViewState) -> None:
        self.title_key = _TITLES.get(view.state, "screen.printing.wait")
        total = view.documents_total
        if total and view.state in ("PRINTING", "RECEIPT"):
            self.progress = view.documents_printed / total
            self.progress_text = self.tr("screen.printing.progress", printed=view.documents_printed, total=total)
        else:
            self.progress, self.progress_text = 0.0, ""

    def on_leave(self, *_: object) -> None:
        self.progress, self.progress_text = 0.0, ""
