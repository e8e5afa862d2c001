"""The demo control panel (only with a DemoControls, i.e. `kiosk demo`): place or remove a demo
resident's card, insert coins and notes, approve a QR payment — on the emulators, off the Kivy thread."""
from __future__ import annotations

from typing import Any, Callable

from kivy.app import App
from kivy.properties import StringProperty

from kivy.uix.floatlayout import FloatLayout
from screens.widgets import KioskButton

COINS_AND_NOTES = (10, 50, 100, 500, 1000)


class DemoPanel(FloatLayout):
    status = StringProperty("")

    def on_touch_down(self, touch: Any) -> bool:
        if self.ids.box.collide_point(*touch.pos):  # only the panel; the kiosk screen beside it stays live
            super().on_touch_down(touch)
            return True
        return False

    def on_touch_up(self, touch: Any) -> bool:
        if self.ids.box.collide_point(*touch.pos):
            super().on_touch_up(touch)
            return True
        return False

    def on_parent(self, _w: Any, parent: Any) -> None:
        if parent is not None:
            self.load_residents()

    def load_residents(self) -> None:
        app = App.get_running_app()
        if app.demo_controls is None:
            return
        app.run_off_ui(app.demo_controls.list_residents, self._residents_loaded)

    def _residents_loaded(self, residents: Any, error: BaseException | None) -> None:
        box = self.ids.residents
        box.clear_widgets()
        if error is not None:
            self.status = str(error)
            return
        for resident in residents:
            b = KioskButton(ui_id=f"demo.card.{resident.resident_id}", kind="secondary", size_mm=3.4,
                            text=resident.label, size_hint_y=None, height=App.get_running_app().mm * 16)
            b.bind(on_action=lambda _b, r=resident.resident_id: self.call(lambda c: c.place_card(r), f"card {r}",
                                                                          close=True))
            box.add_widget(b)

    def call(self, action: Callable[[Any], None], what: str, *, close: bool = False) -> None:
        """Run ``action`` on the demo controls off the Kivy thread. ``close``: the panel steps aside so
        the resident's next screen (the PIN pad, the menu) is free to touch."""
        app = App.get_running_app()
        controls = app.demo_controls
        if controls is None:
            return
        if close:
            app.hide_overlay("demo_panel")
        self.status = f"{what} …"
        app.run_off_ui(lambda: action(controls),
                       lambda _r, error: setattr(self, "status", f"{what}: {error}" if error else f"{what}: ok"))

    def insert(self, amount: int) -> None:
        self.call(lambda c: c.insert_yen(amount), f"+{amount}")
