"""HTTP front of the emulated provider: the PayPay-style API (signed with OPA-Auth, see
drivers.payment.qr.codec) and an unsigned control API for tests and the demo, loopback only.

    POST   /v2/codes                          create a dynamic QR code (idempotent on merchantPaymentId)
    GET    /v2/codes/payments/{mpid}          payment details
    DELETE /v2/codes/{codeId}                 delete a QR code (an unpaid payment becomes CANCELED)
    DELETE /v2/payments/{mpid}                cancel a payment (also a completed one, on the same day)
    POST   /v2/refunds                        refund (idempotent on merchantRefundId)
    GET    /v2/refunds/{mrid}                 refund details
    GET    /v2/transactions/{YYYY-MM-DD}      the day's captures, cancels and refunds (JST day);
                                              an emulator stand-in for the provider's settlement report

    GET    /_control/health
    GET    /_control/records                  everything the provider holds, and request counts
    GET    /_control/payments/{mpid}          one payment's record
    POST   /_control/payments/{mpid}/{approve|decline|expire}   what the resident does
    POST   /_control/auto      {"action": "approve"|"decline"|"expire"|"", "after": seconds}
    POST   /_control/faults    {"operation", "kind": "drop"|"delay"|"error", "seconds", "status",
                                "times", "process"}
    DELETE /_control/faults
    POST   /_control/refunds   {"decline": bool}
    POST   /_control/reset
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from drivers.payment.qr import codec
from drivers.sim.qr_provider.provider import Fault, Provider, Reply

log = logging.getLogger("kiosk-sim.qr")

MAX_BODY = 64 * 1024
NONCE_MEMORY_S = 600

API_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v2/codes"), "create"),
    ("GET", re.compile(r"/v2/codes/payments/(?P<id>[^/]+)"), "details"),
    ("DELETE", re.compile(r"/v2/codes/(?P<id>[^/]+)"), "delete_code"),
    ("DELETE", re.compile(r"/v2/payments/(?P<id>[^/]+)"), "cancel"),
    ("POST", re.compile(r"/v2/refunds"), "refund"),
    ("GET", re.compile(r"/v2/refunds/(?P<id>[^/]+)"), "refund_status"),
    ("GET", re.compile(r"/v2/transactions/(?P<id>\d{4}-\d{2}-\d{2})"), "transactions"),
]


class QrProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, api_keys: dict[str, str], max_skew: int = 120) -> None:
        super().__init__((host, port), Handler)
        self.api_keys = dict(api_keys)
        self.max_skew = max_skew
        self.provider = Provider(base_url=f"http://{host}:{self.server_address[1]}")
        self._nonces: dict[str, float] = {}
        self._nonce_lock = threading.Lock()

    def fresh_nonce(self, key: str, nonce: str) -> bool:
        now = time.monotonic()
        with self._nonce_lock:
            for old in [n for n, t in self._nonces.items() if now - t > NONCE_MEMORY_S]:
                del self._nonces[old]
            tag = f"{key}:{nonce}"
            if tag in self._nonces:
                return False
            self._nonces[tag] = now
            return True


class Handler(BaseHTTPRequestHandler):
    server: QrProviderServer
    protocol_version = "HTTP/1.1"
    server_version = "kiosk-sim-qr/1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't let them wait for an ACK

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    # --- plumbing ------------------------------------------------------------------------------------

    def read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"body of {length} bytes is over the {MAX_BODY}-byte limit")
        return self.rfile.read(length) if length else None

    def send_bytes(self, status: int, body: bytes, content_type: str = codec.CONTENT_TYPE_JSON) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away before the answer was sent")

    def send_json(self, status: int, obj: dict[str, Any]) -> None:
        self.send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json")

    def drop_connection(self) -> None:
        """The request was processed but its answer is lost on the way back."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
        except ValueError as exc:
            self.close_connection = True
            self.send_bytes(413, codec.envelope("INVALID_REQUEST_PARAMS", str(exc)))
            return
        if path.startswith("/_control/"):
            self.control(method, path, body)
            return
        for route_method, pattern, operation in API_ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                self.api(operation, match.groupdict().get("id", ""), method, path, body)
                return
        self.send_bytes(404, codec.envelope("RESOURCE_NOT_FOUND", f"no route {method} {path}"))

    # --- the signed API -------------------------------------------------------------------------------

    def api(self, operation: str, ident: str, method: str, path: str, body: bytes | None) -> None:
        try:
            fields = codec.verify_auth(self.headers.get("Authorization") or "", self.server.api_keys, method, path,
                                       body, self.headers.get("Content-Type") or "", int(time.time()),
                                       self.server.max_skew)
            if not self.server.fresh_nonce(fields.api_key, fields.nonce):
                raise ValueError("nonce already used (replayed request)")
        except ValueError as exc:
            log.warning("refused %s %s: %s", method, path, exc)
            self.send_bytes(401, codec.envelope(codec.UNAUTHORIZED, f"authentication failed: {exc}"))
            return
        provider = self.server.provider
        provider.count(operation)
        fault = provider.take_fault(operation)
        if fault is not None and fault.kind == "error" and not fault.process:
            self.send_bytes(fault.status, codec.envelope("SERVICE_ERROR", "injected failure"))
            return
        try:
            parsed = json.loads(body.decode("utf-8")) if body else {}
            if not isinstance(parsed, dict):
                raise ValueError("body is not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            self.send_bytes(400, codec.envelope("INVALID_REQUEST_PARAMS", f"bad JSON body: {exc}"))
            return
        reply = self.run(operation, ident, parsed)
        if fault is not None:
            if fault.kind == "drop":
                self.drop_connection()
                return
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            if fault.kind == "error":
                self.send_bytes(fault.status, codec.envelope("SERVICE_ERROR", "injected failure after commit"))
                return
        self.send_bytes(reply.status, reply.body())

    def run(self, operation: str, ident: str, body: dict[str, Any]) -> Reply:
        provider = self.server.provider
        if operation == "create":
            return provider.create(body)
        if operation == "details":
            return provider.details(ident)
        if operation == "delete_code":
            return provider.delete_code(ident)
        if operation == "cancel":
            return provider.cancel(ident)
        if operation == "refund":
            return provider.refund(body)
        if operation == "refund_status":
            return provider.refund_status(ident)
        if operation == "transactions":
            try:
                day = date.fromisoformat(ident)
            except ValueError:
                return Reply(400, "INVALID_PARAMS", f"not a date: {ident}")
            return provider.day_report(day)
        raise AssertionError(operation)

    # --- control --------------------------------------------------------------------------------------

    def control(self, method: str, path: str, body: bytes | None) -> None:
        provider = self.server.provider
        try:
            args = json.loads(body) if body else {}
            parts = path.strip("/").split("/")[1:]
            if method == "GET" and parts == ["health"]:
                self.send_json(200, {"ok": True})
            elif method == "GET" and parts == ["records"]:
                self.send_json(200, provider.records())
            elif method == "GET" and len(parts) == 2 and parts[0] == "payments":
                self.send_json(*provider.record(parts[1]))
            elif method == "POST" and len(parts) == 3 and parts[0] == "payments" \
                    and parts[2] in ("approve", "decline", "expire"):
                self.send_json(*provider.act(parts[1], parts[2]))
            elif method == "POST" and parts == ["auto"]:
                provider.set_auto(str(args.get("action") or ""), float(args.get("after") or 0.0))
                self.send_json(200, {"ok": True})
            elif method == "POST" and parts == ["faults"]:
                provider.add_fault(Fault(operation=str(args.get("operation", "any")), kind=str(args["kind"]),
                                         seconds=float(args.get("seconds", 0.0)), status=int(args.get("status", 503)),
                                         times=int(args.get("times", 1)), process=bool(args.get("process", False))))
                self.send_json(200, {"ok": True})
            elif method == "DELETE" and parts == ["faults"]:
                provider.faults.clear()
                self.send_json(200, {"ok": True})
            elif method == "POST" and parts == ["refunds"]:
                provider.decline_refunds = bool(args.get("decline", False))
                self.send_json(200, {"ok": True})
            elif method == "POST" and parts == ["reset"]:
                provider.reset()
                self.send_json(200, {"ok": True})
            else:
                self.send_json(404, {"error": f"no control route {method} {path}"})
        except (ValueError, KeyError, TypeError) as exc:
            self.send_json(400, {"error": f"bad control request: {exc}"})


def serve(host: str, port: int, api_keys: dict[str, str], max_skew: int = 120) -> QrProviderServer:
    """Bind now (port 0 picks a free one); call serve_forever() on the result."""
    return QrProviderServer(host, port, api_keys, max_skew)
