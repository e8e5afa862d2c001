"""QR payment: the code drawn from view.payment.qr_payload (segno, as a texture) and the countdown."""
from __future__ import annotations

from typing import Any

import segno
from kivy.graphics.texture import Texture
from kivy.properties import ObjectProperty, StringProperty
from kivy.uix.widget import Widget

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


def qr_texture(payload: str) -> Texture:
    """One texel per module (with the quiet zone), scaled up without smoothing."""
    code = segno.make(payload, error="m")
    rows = [bytes(row) for row in code.matrix_iter(scale=1, border=4)]
    size = len(rows)
    pixels = bytearray()
    for row in reversed(rows):  # textures start at the bottom
        for dark in row:
            pixels += b"\x00\x00\x00" if dark else b"\xff\xff\xff"
    texture = Texture.create(size=(size, size), colorfmt="rgb")
    texture.blit_buffer(bytes(pixels), colorfmt="rgb", bufferfmt="ubyte")
    texture.mag_filter = texture.min_filter = "nearest"
    return texture


class QrCode(Widget):
    texture = ObjectProperty(None, allownone=True)
    payload = StringProperty("")
    ui_id = StringProperty("")

    def on_payload(self, _w: Any, payload: str) -> None:
        self.texture = qr_texture(payload) if payload else None


class QrScreen(KioskScreen):
    amount_text = StringProperty("")
    countdown_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        p = view.payment
        if p is None:
            return
        self.ids.code.payload = p.qr_payload
        self.amount_text = self.tr("screen.qr.amount", amount=self.yen(p.amount_due))
        self.countdown_text = ("" if p.seconds_left is None else
                               self.tr("screen.qr.countdown", minutes=p.seconds_left // 60,
                                       seconds=f"{p.seconds_left % 60:02d}"))

    def on_leave(self, *_: Any) -> None:
        self.ids.code.payload = ""
        self.amount_text = self.countdown_text = ""

    def cancel(self) -> None:
        self.app.submit(ev.Cancel())
