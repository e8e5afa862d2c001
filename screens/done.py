"""Take your documents and receipt; money given back (refund) or a refund voucher when there is one."""
from __future__ import annotations

from kivy.properties import StringProperty

from kiosk.engine import events as ev
from kiosk.engine.view import ViewState
from screens.widgets import KioskScreen


class DoneScreen(KioskScreen):
    title_text = StringProperty("")
    documents_text = StringProperty("")
    refund_text = StringProperty("")
    problem_text = StringProperty("")

    def show(self, view: ViewState) -> None:
        printed_all = view.documents_total > 0 and view.documents_printed == view.documents_total
        self.title_text = self.tr("screen.done.title" if printed_all else "screen.done.title_problem")
        parts = []
        if view.documents_printed:
            parts.append(self.tr("screen.done.documents", printed=view.documents_printed))
        parts.append(self.tr("screen.done.receipt" if view.receipt_printed else "screen.done.no_receipt"))
        self.documents_text = "\n".join(parts)
        money = []
        if view.refund_yen:
            money.append(self.tr("screen.done.refund", amount=self.yen(view.refund_yen)))
        if view.voucher_yen:
            money.append(self.tr("screen.done.voucher", amount=self.yen(view.voucher_yen), code=view.voucher_code))
        self.refund_text = "\n".join(money)
        error = view.error
        self.problem_text = (self.tr("screen.error.code", code=error.code) + "  " + self.tr(f"error.{error.key}.title")
                             if error is not None else "")

    def on_leave(self, *_: object) -> None:
        self.title_text = self.documents_text = self.refund_text = self.problem_text = ""

    def finish(self) -> None:
        self.app.go("thanks")
        self.app.submit(ev.Dismiss())
