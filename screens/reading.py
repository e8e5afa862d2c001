"""Reading the card, then checking it with city hall (CARD_READING, AUTHENTICATING)."""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class ReadingScreen(KioskScreen):
    step = StringProperty("reading")  # reading | checking

    def show(self, view: ViewState) -> None:
        self.step = "checking" if view.state == "AUTHENTICATING" else "reading"
