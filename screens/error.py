"""An error before any money was taken: the numeric code, what happened and what to do."""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class ErrorScreen(KioskScreen):
    code_text = StringProperty("")
    title_text = StringProperty("")
    action_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        error = view.error
        key = error.key if error is not None else "internal"
        self.code_text = self.tr("screen.error.code", code=error.code if error is not None else 799)
        self.title_text = self.tr(f"error.{key}.title")
        self.action_text = self.tr(f"error.{key}.action")

    def on_leave(self, *_: object) -> None:
        self.code_text = self.title_text = self.action_text = ""

    def dismiss(self) -> None:
        self.app.submit(ev.Dismiss())
