"""Request authentication and body limits: the one gatekeeper every city hall route imports.

The issuance API (cityhall.app), journal ingest (cityhall.ingest), the dashboard and the counter
import this module; it imports none of them, so the import graph of ``cityhall/`` stays acyclic
(tests/unit/test_architecture.py checks it).

Kiosk endpoints are signed per device (sync.signing). Their bodies are read here, not by FastAPI, so
the checks run in the order a gatekeeper wants: size (413) before authentication (401) before content
(422 naming the field)::

    @router.post("/v1/journal/batches")
    def ingest(auth: AuthenticatedRequest = Depends(authenticated_device)): ...

Body limits are per route: ``set_body_limit(app, path, limit)``; any other route gets the service's
``max_body_bytes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import Depends, Request

from cityhall.devices import Device, DeviceStore
from cityhall.service import ApiError
from sync.signing import SignatureRejected, parse_headers, verify_request


@dataclass(frozen=True)
class AuthenticatedRequest:
    device: Device
    body: bytes


def set_body_limit(app: Any, path: str, limit: int) -> None:
    """The largest body, in bytes, that ``path`` accepts (enforced while the body streams in)."""
    app.state.body_limits[path] = limit


def body_limit(request: Request) -> int:
    state = request.app.state
    return int(state.body_limits.get(request.url.path, state.max_body_bytes))


def too_large(limit: int, declared: str | None = None) -> ApiError:
    if declared is not None:
        return ApiError(413, "body_too_large", f"the body is {declared} bytes; the limit is {limit}", limit=limit)
    return ApiError(413, "body_too_large", f"the body exceeds the limit of {limit} bytes", limit=limit)


async def limited_body(request: Request) -> bytes:
    """The whole body, refused (413) as soon as it passes the route's limit, declared or streamed."""
    limit = body_limit(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _unauthorized(reason: str, detail: str) -> ApiError:
    return ApiError(401, "unauthenticated", detail, reason=reason)


def authenticated_device(request: Request, body: Annotated[bytes, Depends(limited_body)]) -> AuthenticatedRequest:
    """Runs in the thread pool (it touches the database)."""
    state = request.app.state
    try:
        signed = parse_headers(request.headers)
    except SignatureRejected as exc:
        raise _unauthorized(exc.reason, exc.detail) from None
    devices: DeviceStore = state.devices
    device = devices.get(signed.device_id)
    if device is None:
        raise _unauthorized("unknown_device", f"device {signed.device_id} is not registered at city hall")
    if not device.active:
        raise _unauthorized("device_revoked", f"device {signed.device_id} was revoked")
    target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    if request.scope.get("query_string"):
        target += "?" + request.scope["query_string"].decode("latin-1")
    now = state.clock()
    try:
        verify_request(device.key(), signed, request.method, target, body, now, state.max_skew)
    except SignatureRejected as exc:
        raise _unauthorized(exc.reason, exc.detail) from None
    moment = datetime.fromtimestamp(now, timezone.utc)
    if not devices.remember_nonce(device.device_id, signed.nonce, moment, timedelta(seconds=4 * state.max_skew)):
        raise _unauthorized("nonce_reused", "this request nonce was already used (a replayed request)")
    return AuthenticatedRequest(device, body)


Auth = Annotated[AuthenticatedRequest, Depends(authenticated_device)]

__all__ = ["AuthenticatedRequest", "Auth", "authenticated_device", "limited_body", "body_limit", "set_body_limit",
           "too_large"]
