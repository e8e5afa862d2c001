"""Take your card: the card leaves the reader before any money is taken."""
from __future__ import annotations

from kiosk.engine import events as ev
from screens.widgets import KioskScreen


class RemoveCardScreen(KioskScreen):
    def cancel(self) -> None:
        self.app.submit(ev.Cancel())
