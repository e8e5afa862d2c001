"""Out of service, with the reason (and the error code when one caused it). Shown before anyone pays."""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class OutOfServiceScreen(KioskScreen):
    reason_text = StringProperty("")
    code_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        reason = view.out_of_service_reason or ("failsafe" if view.state == "FAILSAFE" else "fault")
        if self.app.has_text(f"oos.reason.{reason}"):
            self.reason_text = self.tr(f"oos.reason.{reason}")
        elif self.app.has_text(f"error.{reason}.title"):
            self.reason_text = self.tr(f"error.{reason}.title")
        else:
            self.reason_text = self.tr("oos.reason.fault")
        error = view.error
        self.code_text = self.tr("screen.error.code", code=error.code) if error is not None else ""
