"""The staff dashboard: server-rendered HTML (Jinja2 templates next to this file, no front-end build),
in Japanese and English (kiosk/locale/<lang>/LC_MESSAGES/dashboard.po).

    /dashboard/login            staff login (scrypt-hashed passwords; `cityhall staff add NAME`)
    /dashboard/                 fleet, in words, from the counter's projection (cityhall/counter/pages.py
                                has the counter's pages: alarms, vouchers, daily book, month, audit, staff)
    /dashboard/transactions     look a transaction up by id (its journal events and issuances)
    /dashboard/reconciliation   daily money vs documents per kiosk, mismatches highlighted
    /dashboard/alerts           gaps, forks, bad signatures, replays, devices silent too long
    /dashboard/verify           is this certificate PDF genuine? (city hall's /verify check)

Every page but the login needs a staff session; every POST carries the session's CSRF token.
"""
from __future__ import annotations

import hmac
import secrets
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from cityhall.counter import pages as counter_pages
from cityhall.counter.fleet import fleet_rows
from cityhall.dashboard import views
from cityhall.dashboard.auth import StaffSession, StaffStore
from kiosk.i18n import catalog

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("ja", "en", "zh", "ko", "vi", "pt")
SESSION_COOKIE = "mdg_session"
LOGIN_CSRF_COOKIE = "mdg_login_csrf"
LANG_COOKIE = "mdg_lang"
PREFIX = "/dashboard"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["jst"] = views.jst
    env.filters["yen"] = views.yen_text
    env.filters["jst_date"] = lambda m: m.astimezone(views.JST).strftime("%Y-%m-%d %H:%M") if m else "—"
    return env


def install(app: FastAPI) -> None:
    service = app.state.service
    db = service.db
    staff = StaffStore(db)
    app.state.staff = staff
    env = _environment()

    def now() -> datetime:
        return datetime.fromtimestamp(service.clock(), timezone.utc)

    def language(request: Request) -> str:
        wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "ja"
        return wanted if wanted in LANGUAGES else "ja"

    def render(request: Request, template: str, status: int = 200, session: StaffSession | None = None,
               **context: Any) -> HTMLResponse:
        lang = language(request)
        tr = catalog("dashboard", lang)
        html = env.get_template(template).render(t=tr, lang=lang, session=session, request=request, prefix=PREFIX,
                                                 path=request.url.path, **context)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", path=PREFIX)
        return response

    def current(request: Request) -> StaffSession | None:
        return staff.session(request.cookies.get(SESSION_COOKIE), now())

    def to_login(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/login", status_code=303)

    def csrf_ok(session: StaffSession, form: Any) -> bool:
        return hmac.compare_digest(str(form.get("csrf", "")), session.csrf_token)

    @app.get(PREFIX + "/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", csrf=token, error=None)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
                            secure=request.url.scheme == "https")
        return response

    @app.post(PREFIX + "/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(str(form.get("csrf", "")), cookie):
            return render(request, "login.html", status=403, csrf=cookie, error="login.csrf")
        result = await run_in_threadpool(staff.login, str(form.get("username", ""))[:64],
                                         str(form.get("password", ""))[:256], now())
        if result is None:
            return render(request, "login.html", status=401, csrf=cookie, error="login.failed")
        token, session = result
        response = RedirectResponse(PREFIX + "/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path=PREFIX,
                            secure=request.url.scheme == "https", max_age=int((session.expires_at - now()).total_seconds()))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
        return response

    @app.post(PREFIX + "/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = current(request)
        form = await request.form()
        if session is not None and csrf_ok(session, form):
            staff.logout(request.cookies.get(SESSION_COOKIE, ""))
        response = to_login(request)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    counter_pages.install(app, counter_pages.Kit(render, current, csrf_ok, now, language))

    @app.get(PREFIX + "/transactions", include_in_schema=False)
    def transaction_page(request: Request, id: str = "") -> Response:
        session = current(request)
        if session is None:
            return to_login(request)
        txn_id = id.strip()[:128]
        events, money, issuances = views.lookup_transaction(db, txn_id) if txn_id else ([], None, [])
        return render(request, "transaction.html", session=session, txn_id=txn_id, events=events, money=money,
                      issuances=issuances)

    @app.get(PREFIX + "/reconciliation", include_in_schema=False)
    def reconciliation_page(request: Request, day: str = "") -> Response:
        session = current(request)
        if session is None:
            return to_login(request)
        try:
            chosen = date.fromisoformat(day) if day else views.to_jst_date(now())
        except ValueError:
            chosen = views.to_jst_date(now())
        kiosks = views.reconciliation(db, chosen)
        return render(request, "reconciliation.html", session=session, day=chosen.isoformat(), kiosks=kiosks)

    @app.get(PREFIX + "/alerts", include_in_schema=False)
    def alerts_page(request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login(request)
        store = app.state.journal_store
        silent = [r for r in fleet_rows(db, now(), timedelta(minutes=service.config.counter.silent_after_minutes))
                  if r.state == "silent"]
        return render(request, "alerts.html", session=session, alerts=store.alerts(), silent=silent)

    @app.get(PREFIX + "/verify", include_in_schema=False)
    def verify_page(request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login(request)
        return render(request, "verify.html", session=session, result=None, filename="")

    @app.post(PREFIX + "/verify", include_in_schema=False)
    async def verify_upload(request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login(request)
        limit = service.config.service.max_verify_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + 65536:
            return render(request, "verify.html", status=413, session=session, filename="",
                          result={"genuine": False, "reason": "too_large", "detail": f"> {limit} bytes"})
        form = await request.form(max_files=1, max_part_size=limit)
        if not csrf_ok(session, form):
            return render(request, "verify.html", status=403, session=session, filename="",
                          result={"genuine": False, "reason": "csrf", "detail": ""})
        upload = form.get("file")
        pdf = await upload.read() if upload is not None and not isinstance(upload, str) else b""
        filename = getattr(upload, "filename", "") or ""
        if not pdf.startswith(b"%PDF-"):
            result = {"genuine": False, "reason": "not_pdf", "detail": ""}
        else:
            result = await run_in_threadpool(service.verify_pdf, pdf)
        return render(request, "verify.html", session=session, result=result, filename=filename)
