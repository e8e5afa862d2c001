"""Cash: amount due, inserted and change, live from the view; cancel gives the money back."""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class CashScreen(KioskScreen):
    due_text = StringProperty("")
    inserted_text = StringProperty("")
    remaining_text = StringProperty("")
    change_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        p = view.payment
        if p is None:
            return
        self.due_text = self.yen(p.amount_due)
        self.inserted_text = self.yen(p.amount_in)
        self.remaining_text = self.yen(max(0, p.amount_due - p.amount_in))
        self.change_text = self.yen(p.change_paid)

    def on_leave(self, *_: object) -> None:
        self.due_text = self.inserted_text = self.remaining_text = self.change_text = ""

    def cancel(self) -> None:
        self.app.submit(ev.Cancel())
