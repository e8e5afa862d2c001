"""Technician mode: behind its own credential (scrypt hash in kiosk.technician_credential_hash).

Reached by five taps on the header's left corner. Device status, a test print and the cash levels
come from a TechnicianPort the composition root injects; every call runs off the Kivy thread.
"""
from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.properties import BooleanProperty, StringProperty

from kiosk.errors import KioskError
from kiosk.credential import check_credential
from screens.widgets import KioskScreen

MAX_CODE_LENGTH = 12
LOGIN_ATTEMPTS = 3  # then technician mode closes; each failure waits a little longer
IDLE_LOGOUT_SECONDS = 180.0


class TechnicianScreen(KioskScreen):
    logged_in = BooleanProperty(False)
    busy = BooleanProperty(False)
    masked = StringProperty("")
    output = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._code: list[str] = []
        self._failures = 0
        self._logout: Any = None

    def start_login(self) -> None:
        self.logged_in, self.busy, self.output = False, False, ""
        self._code.clear()
        self._failures = 0
        self._update()

    def on_enter(self, *_: Any) -> None:
        self._arm_logout()

    def on_leave(self, *_: Any) -> None:
        self._code.clear()
        self.output = ""
        self.logged_in = False
        if self._logout is not None:
            self._logout.cancel()

    def _arm_logout(self) -> None:
        if self._logout is not None:
            self._logout.cancel()
        self._logout = Clock.schedule_once(lambda _dt: self.exit(), IDLE_LOGOUT_SECONDS)

    def _update(self) -> None:
        self.masked = "●" * len(self._code)

    def press(self, digit: str) -> None:
        if len(self._code) < MAX_CODE_LENGTH and not self.busy:
            self._code.append(digit)
            self._update()

    def clear(self) -> None:
        self._code.clear()
        self._update()

    def login(self) -> None:
        if not self._code or self.busy:
            return
        secret, stored = "".join(self._code), self.app.technician_hash
        self.clear()
        self.busy = True
        self.app.run_off_ui(lambda: check_credential(secret, stored), self._login_checked)

    def _login_checked(self, ok: Any, error: BaseException | None) -> None:
        self.busy = False
        self._arm_logout()
        if ok and error is None:
            self.logged_in = True
            self.output = self.tr("tech.welcome")
            return
        self._failures += 1
        self.output = self.tr("tech.wrong_code")
        if self._failures >= LOGIN_ATTEMPTS:
            self.exit()

    def run(self, what: str) -> None:
        tech = self.app.tech
        if tech is None:
            self.output = self.tr("tech.not_available")
            return
        if self.busy:
            return
        self.busy = True
        self.output = self.tr("tech.working")
        self._arm_logout()
        work = {"status": tech.device_status, "test_print": tech.test_print, "cash": tech.cash_levels,
                "service_off": lambda: tech.service_off("maintenance"), "service_on": tech.service_on}[what]
        self.app.run_off_ui(work, lambda result, error: self._show(what, result, error))

    def _show(self, what: str, result: Any, error: BaseException | None) -> None:
        self.busy = False
        if error is not None:
            code = getattr(error, "code", 799) if isinstance(error, KioskError) else 799
            self.output = f"E{code} {error}"
        elif what == "status":
            self.output = "\n".join(f"{'OK ' if s.ok else 'NG '} {s.device}: {s.detail}" for s in result)
        elif what == "cash":
            self.output = "\n".join(f"{c.label}: {c.yen:,}" + (f" ({c.detail})" if c.detail else "") for c in result)
        elif what == "test_print":
            self.output = str(result)
        else:
            self.output = self.tr("tech.done")

    def exit(self) -> None:
        if self.app.local.technician:
            self.app.leave_technician()
