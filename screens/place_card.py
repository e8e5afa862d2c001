"""Place your card: the prompt shown after the resident touches the attract screen."""
from __future__ import annotations

from typing import Any

from kivy.clock import Clock

from screens.widgets import KioskScreen

BACK_TO_ATTRACT_AFTER = 60.0  # seconds without a card


class PlaceCardScreen(KioskScreen):
    def on_enter(self, *_: Any) -> None:
        self._timer = Clock.schedule_once(lambda _dt: self.back(), BACK_TO_ATTRACT_AFTER)

    def on_leave(self, *_: Any) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()

    def back(self) -> None:
        if self.app.screen == "place_card":
            self.app.go("idle")
