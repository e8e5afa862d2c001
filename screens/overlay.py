"""Base of the overlays (language choice, inactivity warning, demo panel): drawn above the screen,
they take every touch that lands on them so nothing underneath is pressed by accident."""
from __future__ import annotations

from typing import Any

from kivy.uix.floatlayout import FloatLayout


class Overlay(FloatLayout):
    def on_touch_down(self, touch: Any) -> bool:
        super().on_touch_down(touch)
        return True  # modal: nothing below gets it

    def on_touch_move(self, touch: Any) -> bool:
        super().on_touch_move(touch)
        return True

    def on_touch_up(self, touch: Any) -> bool:
        super().on_touch_up(touch)
        return True
