"""Idle / attract: what the kiosk is for, the language choice, and the service hours."""
from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.properties import BooleanProperty, StringProperty

from kiosk.engine.hours import JST
from kiosk.engine.view import ViewState
from screens import theme
from screens.widgets import KioskScreen


class IdleScreen(KioskScreen):
    hours_text = StringProperty("")
    closed = BooleanProperty(False)
    language_names = theme.LANGUAGE_NAMES

    def on_enter(self, *_: Any) -> None:
        self._timer = Clock.schedule_interval(lambda _dt: self.update_hours(), 30)

    def on_leave(self, *_: Any) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()

    def show(self, view: ViewState) -> None:
        self.update_hours()

    def update_hours(self) -> None:
        hours = self.app.service_hours
        if hours is None:
            self.closed, self.hours_text = False, ""
            return
        now = self.app.now()
        opens, closes = hours.opens.strftime("%H:%M"), hours.closes.strftime("%H:%M")
        self.closed = not hours.is_open(now)
        if self.closed:
            resume = hours.next_opening(now).astimezone(JST)
            self.hours_text = self.tr("screen.idle.closed", date=resume.strftime("%m/%d"),
                                      time=resume.strftime("%H:%M"), opens=opens, closes=closes)
        else:
            self.hours_text = self.tr("screen.idle.hours", opens=opens, closes=closes)

    def start(self) -> None:
        self.app.go("place_card")

    def on_touch_down(self, touch: Any) -> bool:
        if super().on_touch_down(touch):
            return True
        if self.collide_point(*touch.pos) and not self.closed:
            self.start()  # a touch anywhere on the attract screen starts
            return True
        return False
