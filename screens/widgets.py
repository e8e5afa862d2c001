"""The few widgets every screen uses: buttons with a stable id and a double-tap guard, text labels
that follow the language, size and contrast settings, and the screen base class."""
from __future__ import annotations

import time
from typing import Any

from kivy.app import App
from kivy.properties import BooleanProperty, NumericProperty, OptionProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen

from kiosk.engine.view import ViewState

#: A digit key may repeat quickly ("1111" is a valid PIN); an action button may not.
KEY_GUARD_SECONDS = 0.12


class KioskLabel(Label):
    """Text in the current language's font; ``size_mm`` is the text height before large-text scaling."""

    size_mm = NumericProperty(4.2)
    ui_id = StringProperty("")
    font_lang = StringProperty("")  # draw in this language's font instead of the screen's


class KioskButton(ButtonBehavior, Label):
    """A touch target of at least 15 mm with a stable ``ui_id`` (touch automation finds it by that).

    It fires ``on_action`` (not ``on_release``) and only when the double-tap guard allows: an action
    button ignores a tap that comes within ``App.guard_seconds`` of the last accepted action anywhere
    on screen (a double tap must not also press the button that appears under the finger next); a
    ``key`` button (PIN digits) only guards against its own bounce.
    """

    ui_id = StringProperty("")
    kind = OptionProperty("primary", options=["primary", "secondary", "danger", "key", "choice"])
    selected = BooleanProperty(False)
    size_mm = NumericProperty(4.6)
    font_lang = StringProperty("")
    last_fired = NumericProperty(0.0)

    __events__ = ("on_action",)

    def on_release(self) -> None:
        app: Any = App.get_running_app()
        now = time.monotonic()
        if self.kind == "key":
            if now - self.last_fired < KEY_GUARD_SECONDS:
                return
        elif app is not None and not app.accept_action(now):
            return
        self.last_fired = now
        self.dispatch("on_action")

    def on_action(self) -> None:
        pass


class KioskScreen(Screen):
    """One screen. ``show(view)`` is called on the Kivy thread with every view while it is current."""

    def show(self, view: ViewState) -> None:
        pass

    @property
    def app(self) -> Any:
        return App.get_running_app()

    def tr(self, key: str, **fields: object) -> str:
        return self.app.tr(key, self.app.lang, **fields)

    def yen(self, amount: int) -> str:
        return self.app.yen(amount)
