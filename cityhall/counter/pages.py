"""The counter's dashboard pages. cityhall.dashboard owns the login, the templates and the session; it
hands this module a ``Kit`` (render, current session, CSRF check, clock) and the routes below are added
to the same app. Every POST is a staff action: checked for role (403 otherwise, and audited as refused),
CSRF, then done and audited in one transaction.

    /dashboard/                     fleet (from the projection)
    /dashboard/alarms               alarms, acknowledge, dead webhook letters
    /dashboard/vouchers             scan / type a 返金引換券 code, redeem it once
    /dashboard/daybook              日計 of a day (one kiosk or all), sign-off, adjustments, corrections,
    /dashboard/daybook.csv|.pdf     ... exported
    /dashboard/month                the month's days
    /dashboard/audit                the staff audit log
    /dashboard/staff                staff accounts and devices (admin)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cityhall.counter import daybook, staff
from cityhall.counter.alarms import AlarmStore
from cityhall.counter.fleet import DEVICE_ROLES, PAPER_ROLES, error_message_keys, fleet_rows
from cityhall.counter.projection import JST
from cityhall.counter.vouchers import VoucherDesk
from cityhall.counter.webhook import WebhookSender
from cityhall.devices import DeviceRegistryError
from kiosk.i18n import catalog

PREFIX = "/dashboard"
MAX_NOTE = 500
#: Transaction outcomes the catalog words (outcome.<key>).
OUTCOMES = ("completed", "partly_refunded", "refunded", "voucher", "cancelled", "abandoned")


FLEET_PAGE_ROWS = 100


def fleet_page_rows(rows: list[Any], page: int) -> tuple[list[Any], int]:
    """Kiosks that need someone first (silent, fault, paused, open alarms), then the rest; one page of them."""
    rows = sorted(rows, key=lambda r: (r.state == "in_service" and not r.open_alarms, r.device_id))
    pages = max(1, -(-len(rows) // FLEET_PAGE_ROWS))
    page = min(max(page, 1), pages)
    return rows[(page - 1) * FLEET_PAGE_ROWS:page * FLEET_PAGE_ROWS], pages


@dataclass
class Kit:
    render: Callable[..., Response]
    current: Callable[[Request], Any]
    csrf_ok: Callable[[Any, Any], bool]
    now: Callable[[], datetime]
    language: Callable[[Request], str]


def install(app: FastAPI, kit: Kit) -> None:
    service = app.state.service
    db = service.db
    settings = service.config.counter
    alarms = AlarmStore(db)
    sender = WebhookSender(db, settings, service.clock)
    app.state.webhook_sender = sender
    desk = VoucherDesk(db, app.state.devices)
    error_keys = error_message_keys()

    @app.on_event("startup")
    def start_sender() -> None:
        sender.start()

    @app.on_event("shutdown")
    def stop_sender() -> None:
        sender.stop()

    def login_redirect() -> Response:
        return RedirectResponse(f"{PREFIX}/login", status_code=303)

    def forbidden(request: Request, session: Any, action: str, target: str = "") -> Response:
        staff.record_now(db, kit.now(), session.username, action + ".denied", target, role=session.role)
        return kit.render(request, "forbidden.html", status=403, session=session, action=action)

    async def staff_action(request: Request, action: str) -> tuple[Any, Any, Response | None]:
        """(session, form, refusal): the refusal is a redirect, a 403 or a CSRF 403."""
        session = kit.current(request)
        if session is None:
            return None, None, login_redirect()
        form = await request.form()
        if not staff.may(session.role, action):
            return session, form, forbidden(request, session, action)
        if not kit.csrf_ok(session, form):
            return session, form, kit.render(request, "forbidden.html", status=403, session=session, action="csrf")
        return session, form, None

    def pick_day(text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return kit.now().astimezone(JST).date()

    # --- fleet ----------------------------------------------------------------------------------------

    @app.get(PREFIX + "/", include_in_schema=False)
    def fleet_page(request: Request, page: int = 1) -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        rows, pages = fleet_page_rows(fleet_rows(db, kit.now(), timedelta(minutes=settings.silent_after_minutes)),
                                      page)
        return kit.render(request, "fleet.html", session=session, rows=rows, roles=DEVICE_ROLES, page=page,
                          pages=pages,
                          paper_roles=PAPER_ROLES, te=catalog("errors", kit.language(request)),
                          error_keys=error_keys)

    # --- alarms ---------------------------------------------------------------------------------------

    @app.get(PREFIX + "/alarms", include_in_schema=False)
    def alarms_page(request: Request, show: str = "open") -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        return kit.render(request, "alarms.html", session=session, alarms=alarms.list(open_only=show == "open"),
                          show=show, dead=sender.dead_letters(), may_ack=staff.may(session.role, "acknowledge_alarm"))

    @app.post(PREFIX + "/alarms/{alarm_id}/ack", include_in_schema=False)
    async def acknowledge(request: Request, alarm_id: str) -> Response:
        session, form, refusal = await staff_action(request, "acknowledge_alarm")
        if refusal is not None:
            return refusal
        note = str(form.get("note", "")).strip()[:MAX_NOTE]

        def work() -> bool:
            with db.transaction() as tx:
                done = alarms.acknowledge(tx, alarm_id[:32], session.username, note, kit.now())
                staff.record(tx, kit.now(), session.username, "acknowledge_alarm" if done else
                             "acknowledge_alarm.already", alarm_id[:32], note=note)
            return done

        done = await run_in_threadpool(work)
        if not done:
            return kit.render(request, "alarms.html", status=409, session=session, alarms=alarms.list(), show="all",
                              dead=sender.dead_letters(), may_ack=True, error="alarm.already_acknowledged")
        return RedirectResponse(f"{PREFIX}/alarms?show=all#alarm-{alarm_id}", status_code=303)

    @app.post(PREFIX + "/alarms/dead/{message_id}/requeue", include_in_schema=False)
    async def requeue(request: Request, message_id: str) -> Response:
        session, _, refusal = await staff_action(request, "acknowledge_alarm")
        if refusal is not None:
            return refusal
        if sender.requeue(message_id[:32]):
            staff.record_now(db, kit.now(), session.username, "requeue_webhook", message_id[:32])
        return RedirectResponse(f"{PREFIX}/alarms", status_code=303)

    # --- vouchers -------------------------------------------------------------------------------------

    def why_text(request: Request) -> Callable[[Any], str]:
        lang = kit.language(request)
        t, te = catalog("dashboard", lang), catalog("errors", lang)

        def text(check: Any) -> str:
            kind, _, value = (check.why or "").partition(".")
            if kind == "code" and value.isdigit():
                return te("error." + error_keys.get(int(value), "internal") + ".title") + f" (E{value})"
            if kind == "outcome" and value in OUTCOMES:
                return t("outcome." + value)
            return t("voucher.why_unknown")
        return text

    @app.get(PREFIX + "/vouchers", include_in_schema=False)
    def voucher_page(request: Request, code: str = "") -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        check = desk.check(code.strip()[:512], kit.now()) if code.strip() else None
        return kit.render(request, "vouchers.html", session=session, code=code.strip()[:512], check=check,
                          why_text=why_text(request),
                          may_redeem=staff.may(session.role, "redeem_voucher"),
                          recent=desk.recent(kit.now().astimezone(JST).date()))

    @app.post(PREFIX + "/vouchers/redeem", include_in_schema=False)
    async def redeem(request: Request) -> Response:
        session, form, refusal = await staff_action(request, "redeem_voucher")
        if refusal is not None:
            return refusal
        code = str(form.get("code", "")).strip()[:512]
        result = await run_in_threadpool(desk.redeem, code, session.username, kit.now())
        status = 200 if result.ok else (409 if result.reason == "already_redeemed" else 422)
        return kit.render(request, "vouchers.html", status=status, session=session, code=code, check=result,
                          why_text=why_text(request),
                          may_redeem=True, recent=desk.recent(kit.now().astimezone(JST).date()), redeemed=result.ok)

    # --- daily book -----------------------------------------------------------------------------------

    def scope_of(kiosk: str) -> str:
        return kiosk if kiosk and re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", kiosk) else daybook.ALL

    def daybook_page(request: Request, session: Any, day: date, scope: str, status: int = 200,
                     error: str | None = None) -> Response:
        try:
            book = daybook.build(db, day, scope)
        except daybook.DayBookError as exc:
            return kit.render(request, "forbidden.html", status=exc.status, session=session, action=exc.reason)
        with db.transaction() as tx:
            kiosks = [r["device_id"] for r in tx.execute("SELECT device_id FROM devices ORDER BY device_id")]
        return kit.render(request, "daybook.html", status=status, session=session, book=book, kiosks=kiosks,
                          may_sign=staff.may(session.role, "sign_off_day"), error=error)

    @app.get(PREFIX + "/daybook", include_in_schema=False)
    def daybook_view(request: Request, day: str = "", kiosk: str = "") -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        return daybook_page(request, session, pick_day(day), scope_of(kiosk))

    @app.post(PREFIX + "/daybook/sign", include_in_schema=False)
    async def sign(request: Request) -> Response:
        session, form, refusal = await staff_action(request, "sign_off_day")
        if refusal is not None:
            return refusal
        day, scope = pick_day(str(form.get("day", ""))), scope_of(str(form.get("kiosk", "")))
        try:
            await run_in_threadpool(daybook.sign_off, db, day, scope, session.username, kit.now())
        except daybook.DayBookError as exc:
            return daybook_page(request, session, day, scope, exc.status, "daybook.error." + exc.reason)
        return RedirectResponse(f"{PREFIX}/daybook?day={day}&kiosk={'' if scope == daybook.ALL else scope}",
                                status_code=303)

    @app.post(PREFIX + "/daybook/entry", include_in_schema=False)
    async def entry(request: Request) -> Response:
        session, form, refusal = await staff_action(request, "correct_day")
        if refusal is not None:
            return refusal
        day, scope = pick_day(str(form.get("day", ""))), scope_of(str(form.get("kiosk", "")))
        try:
            amount = int(str(form.get("amount", "0")).replace(",", "").strip() or "0")
        except ValueError:
            return daybook_page(request, session, day, scope, 422, "daybook.error.bad_amount")
        try:
            await run_in_threadpool(daybook.add_entry, db, day, scope, str(form.get("kind", "")), amount,
                                    str(form.get("note", ""))[:MAX_NOTE], session.username, kit.now())
        except daybook.DayBookError as exc:
            return daybook_page(request, session, day, scope, exc.status, "daybook.error." + exc.reason)
        return RedirectResponse(f"{PREFIX}/daybook?day={day}&kiosk={'' if scope == daybook.ALL else scope}",
                                status_code=303)

    def export(request: Request, day: str, kiosk: str, kind: str) -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        chosen, scope = pick_day(day), scope_of(kiosk)
        book = daybook.build(db, chosen, scope)
        t = catalog("dashboard", kit.language(request))
        staff.record_now(db, kit.now(), session.username, f"export_daybook_{kind}", f"{scope} {chosen}")
        name = f"nikkei-{chosen.isoformat()}-{scope}.{kind}"
        if kind == "csv":
            return Response(daybook.csv_bytes(book, t), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return Response(daybook.pdf_bytes(book, t, service.config.city.name), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{name}"'})

    @app.get(PREFIX + "/daybook.csv", include_in_schema=False)
    def daybook_csv(request: Request, day: str = "", kiosk: str = "") -> Response:
        return export(request, day, kiosk, "csv")

    @app.get(PREFIX + "/daybook.pdf", include_in_schema=False)
    def daybook_pdf(request: Request, day: str = "", kiosk: str = "") -> Response:
        return export(request, day, kiosk, "pdf")

    @app.get(PREFIX + "/month", include_in_schema=False)
    def month_page(request: Request, month: str = "") -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        today = kit.now().astimezone(JST).date()
        match = re.fullmatch(r"(\d{4})-(\d{2})", month)
        year, number = (int(match[1]), int(match[2])) if match and 1 <= int(match[2]) <= 12 else (today.year, today.month)
        days, total = daybook.month(db, year, number)
        return kit.render(request, "month.html", session=session, month=f"{year:04d}-{number:02d}", days=days,
                          total=total)

    # --- audit, staff, devices ------------------------------------------------------------------------

    @app.get(PREFIX + "/audit", include_in_schema=False)
    def audit_page(request: Request, user: str = "") -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        return kit.render(request, "audit.html", session=session, entries=staff.entries(db, username=user[:40] or None),
                          user=user[:40])

    @app.get(PREFIX + "/staff", include_in_schema=False)
    def staff_page(request: Request) -> Response:
        session = kit.current(request)
        if session is None:
            return login_redirect()
        if not staff.may(session.role, "manage_staff"):
            return forbidden(request, session, "manage_staff")
        return kit.render(request, "staff.html", session=session, users=app.state.staff.list(), roles=staff.ROLES,
                          devices=app.state.devices.list())

    @app.post(PREFIX + "/staff/role", include_in_schema=False)
    async def set_role(request: Request) -> Response:
        session, form, refusal = await staff_action(request, "manage_staff")
        if refusal is not None:
            return refusal
        username, role = str(form.get("username", ""))[:40], str(form.get("role", ""))
        try:
            app.state.staff.set_role(username, role)
        except staff.StaffError:
            return kit.render(request, "forbidden.html", status=422, session=session, action="bad_role")
        staff.record_now(db, kit.now(), session.username, "set_role", username, role=role)
        return RedirectResponse(f"{PREFIX}/staff", status_code=303)

    @app.post(PREFIX + "/devices/{device_id}/revoke", include_in_schema=False)
    async def revoke(request: Request, device_id: str) -> Response:
        session, _, refusal = await staff_action(request, "revoke_device")
        if refusal is not None:
            return refusal
        try:
            app.state.devices.revoke(device_id[:64], kit.now())
        except DeviceRegistryError:
            return kit.render(request, "forbidden.html", status=404, session=session, action="unknown_device")
        staff.record_now(db, kit.now(), session.username, "revoke_device", device_id[:64])
        return RedirectResponse(f"{PREFIX}/staff", status_code=303)
