"""The HTTP face of city hall (FastAPI, served by uvicorn through `cityhall serve`).

Kiosk endpoints (/v1/...) are signed per device; the authentication and the body limits live in
cityhall.requestauth, which this module, the journal ingest and the dashboard import (never the other
way round, so nothing in cityhall/ imports in a circle).
"""
from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from cityhall.devices import DeviceStore
from cityhall.requestauth import Auth
from cityhall.service import ApiError, IssuanceService
from sync.schemas import SchemaViolation, strict_loads

log = logging.getLogger("cityhall")
M = TypeVar("M", bound=BaseModel)

# --- request bodies ----------------------------------------------------------------------------------

TEXT_ID = r"^[A-Za-z0-9._:-]{1,128}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChallengeBody(_Strict):
    pass


class AuthenticateBody(_Strict):
    challenge_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    certificate: str = Field(min_length=16, max_length=8192, description="base64 DER of the card's "
                                                                          "user-authentication certificate")
    signature: str = Field(min_length=16, max_length=2048, description="base64 RSA PKCS#1 v1.5 SHA-256 "
                                                                       "signature over the challenge nonce")


class OrderLineBody(_Strict):
    cert_type: Literal["juminhyo", "kazei", "hikazei"]
    copies: int = Field(ge=1, le=20)
    unit_fee_yen: int = Field(ge=0, le=100000)
    tax_year: int | None = Field(default=None, ge=1989, le=2200)
    options: list[str] = Field(default_factory=list, max_length=8)


class OrderBody(_Strict):
    lines: list[OrderLineBody] = Field(min_length=1, max_length=10)


class IssueBody(_Strict):
    session_id: str = Field(pattern=r"^[A-Za-z0-9_-]{16,128}$")
    transaction_id: str = Field(pattern=TEXT_ID)
    payment_ref: str = Field(pattern=TEXT_ID)
    order: OrderBody


def parse_body(model: type[M], body: bytes) -> M:
    """422 naming the first bad field (``body`` when the JSON itself is malformed)."""
    try:
        raw = strict_loads(body or b"{}")
    except SchemaViolation as exc:
        raise ApiError(422, "invalid_request", exc.detail, field=exc.field) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ApiError(422, "invalid_request", "the body is not valid JSON", field="body") from None
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_request", first["msg"], field=field) from None


def b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_request", "not valid base64", field=field) from None


# --- the app -----------------------------------------------------------------------------------------


def create_app(service: IssuanceService, devices: DeviceStore) -> FastAPI:
    app = FastAPI(title="Madoguchi city hall", version="1",
                  description="Device-authenticated certificate issuance for Madoguchi kiosks, and verification "
                              "of issued certificates.")
    app.state.service = service
    app.state.devices = devices
    app.state.clock = service.clock
    app.state.max_body_bytes = service.config.service.max_body_bytes
    app.state.max_skew = float(service.config.service.max_clock_skew_seconds)
    app.state.body_limits = {}  # path → byte limit where it differs from max_body_bytes (journal batches)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", exc.error, exc.detail)
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        return JSONResponse({"error": "invalid_request", "detail": first.get("msg", "invalid"),
                             "field": ".".join(str(p) for p in first.get("loc", ()))}, status_code=422)

    def body_doc(model: type[BaseModel]) -> dict[str, Any]:
        return {"requestBody": {"required": True, "content": {"application/json": {
            "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        problem = service.readiness_problem()
        if problem:
            return JSONResponse({"status": "unavailable", "detail": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/ping", tags=["kiosk"], summary="Signed reachability probe: may this kiosk issue now?")
    def ping(auth: Auth) -> dict[str, Any]:
        problem = service.readiness_problem()
        if problem:
            raise ApiError(503, "not_ready", problem)
        return {"status": "ok", "device_id": auth.device.device_id, "server_time": service.now().isoformat()}

    @app.post("/v1/challenges", tags=["kiosk"], summary="A fresh single-use nonce for the card to sign",
              openapi_extra=body_doc(ChallengeBody))
    def challenge(auth: Auth) -> dict[str, Any]:
        parse_body(ChallengeBody, auth.body)
        return service.new_challenge(auth.device)

    @app.post("/v1/sessions", tags=["kiosk"], summary="Authenticate a card; answers the resident's offers",
              openapi_extra=body_doc(AuthenticateBody))
    def authenticate(auth: Auth) -> dict[str, Any]:
        body = parse_body(AuthenticateBody, auth.body)
        return service.authenticate(auth.device, body.challenge_id, b64(body.certificate, "certificate"),
                                    b64(body.signature, "signature"))

    @app.post("/v1/issuances", tags=["kiosk"], summary="Issue the ordered certificates (idempotent per "
                                                        "transaction id)", openapi_extra=body_doc(IssueBody))
    def issue(auth: Auth) -> dict[str, Any]:
        body = parse_body(IssueBody, auth.body)
        return service.issue(auth.device, body.session_id, body.transaction_id, body.payment_ref,
                             [line.model_dump() for line in body.order.lines])

    @app.get("/v1/issuances/{issuance_number}", tags=["verification"],
             summary="An issuance record (number, type, hash, status) — no resident data")
    def lookup(issuance_number: str) -> JSONResponse:
        record = service.lookup(issuance_number)
        if record is None:
            return JSONResponse({"error": "unknown_issuance", "detail": "no such issuance number"}, status_code=404)
        return JSONResponse(record)

    @app.get("/verify", tags=["verification"], summary="Check a QR payload read from paper (?qr=...); "
                                                        "without it, a page to upload a certificate PDF")
    def verify_get(qr: str | None = None) -> Response:
        if qr is None:
            return HTMLResponse(VERIFY_PAGE)
        if len(qr) > 512:
            raise ApiError(422, "invalid_request", "a certificate QR payload is shorter than 512 characters",
                           field="qr")
        return JSONResponse(service.verify_qr(qr))

    @app.post("/verify", tags=["verification"], summary="Check a certificate PDF (raw application/pdf body or "
                                                         "multipart field 'file')")
    async def verify(request: Request) -> JSONResponse:
        limit = service.config.service.max_verify_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, "body_too_large", f"the body is {declared} bytes; the limit is {limit}", limit=limit)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_part_size=limit)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "invalid_request", "upload the PDF in the field 'file'", field="file")
            pdf = await upload.read()
        else:
            pdf = await request.body()
        if len(pdf) > limit:
            raise ApiError(413, "body_too_large", f"the PDF exceeds {limit} bytes", limit=limit)
        if not pdf.startswith(b"%PDF-"):
            raise ApiError(422, "invalid_request", "the upload is not a PDF", field="file")
        result = await run_in_threadpool(service.verify_pdf, pdf)
        return JSONResponse(result)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (ChallengeBody, AuthenticateBody, IssueBody):
                defs = model.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {})
                components.update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    from cityhall import dashboard, ingest

    ingest.install(app)
    dashboard.install(app)
    return app


VERIFY_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>証明書の真正性確認 / Certificate check</title></head>
<body><h1>証明書の真正性確認 / Certificate check</h1>
<form method="post" action="/verify" enctype="multipart/form-data">
<input type="file" name="file" accept="application/pdf"> <button type="submit">確認 / Check</button>
</form></body></html>
"""
