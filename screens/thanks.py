"""Thank you: a few seconds, then the attract screen (nothing of the transaction is shown)."""
from __future__ import annotations

from typing import Any

from kivy.clock import Clock

from screens.widgets import KioskScreen

SHOW_SECONDS = 4.0


class ThanksScreen(KioskScreen):
    def on_enter(self, *_: Any) -> None:
        self._timer = Clock.schedule_once(lambda _dt: self.done(), SHOW_SECONDS)

    def on_leave(self, *_: Any) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()

    def done(self) -> None:
        if self.app.screen == "thanks":
            self.app.go("idle")
