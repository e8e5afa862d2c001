"""'Are you still there?': shown when a step is about to time out (view.warning_seconds_left).

Any touch tells the engine the resident is there (the app sends Touch for every touch); when the time
runs out the engine ends the transaction and the idle screen comes back with nothing left on it.
"""
from __future__ import annotations

from kivy.app import App
from kivy.properties import StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.overlay import Overlay


class WarningOverlay(Overlay):
    seconds_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        app = App.get_running_app()
        self.seconds_text = app.tr("screen.warning.seconds", app.lang, seconds=view.warning_seconds_left or 0)

    def still_here(self) -> None:
        app = App.get_running_app()
        app.submit(ev.Touch())
        app.hide_overlay("warning")
