"""PIN pad: masked digits, tries left, and the last-try confirmation BEFORE the resident types.

The digits live only in this screen's memory until OK sends one EnterPin with the view's
``pin_entry_id`` (the engine sends at most one VERIFY per entry id); they are cleared at once after
sending, when a new entry starts, and whenever the screen is left.
"""
from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen

PIN_LENGTH = 4


class PinScreen(KioskScreen):
    masked = StringProperty("")
    digits_entered = NumericProperty(0)
    message = StringProperty("")
    message_is_error = BooleanProperty(False)
    confirm_needed = BooleanProperty(False)
    sent = BooleanProperty(False)  # waiting for the card's answer to this entry

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._digits: list[str] = []
        self._entry_id = 0
        self._update_mask()

    def show(self, view: ViewState) -> None:
        if view.pin_entry_id != self._entry_id:  # a new entry: whatever was typed is gone
            self._entry_id = view.pin_entry_id
            self.clear()
            self.sent = False
        self.confirm_needed = view.last_try_confirm_needed
        tries = view.pin_tries_left
        if view.wrong_pin and tries is not None:
            self.message, self.message_is_error = self.tr("screen.pin.wrong", tries=tries), True
        elif tries is not None:
            self.message, self.message_is_error = self.tr("screen.pin.tries_left", tries=tries), tries <= 1
        else:
            self.message, self.message_is_error = "", False

    def on_leave(self, *_: Any) -> None:
        self.clear()
        self.sent = False

    def press(self, digit: str) -> None:
        if len(self._digits) < PIN_LENGTH and not self.sent:
            self._digits.append(digit)
            self._update_mask()

    def clear(self) -> None:
        self._digits.clear()
        self._update_mask()

    def ok(self) -> None:
        if len(self._digits) != PIN_LENGTH or self.sent:
            return
        pin = "".join(self._digits)
        self.clear()
        self.sent = True
        self.app.submit(ev.EnterPin(pin, self._entry_id))

    def confirm_last_try(self) -> None:
        self.app.submit(ev.ConfirmLastTry())

    def cancel(self) -> None:
        self.clear()
        self.app.submit(ev.Cancel())

    def _update_mask(self) -> None:
        self.digits_entered = len(self._digits)
        self.masked = "  ".join(["●"] * len(self._digits) + ["○"] * (PIN_LENGTH - len(self._digits)))
