"""Wire format of the PayPay-style dynamic-QR API: request signing, request bodies, response decoding.

Pure functions over bytes and dicts, no I/O: the driver (drivers.payment.qr.driver) and the emulator
(drivers.sim.qr_provider) both use them, and tests/unit/payment_qr checks them on transcripts.

Authentication follows PayPay's Open Payment API ("OPA-Auth", see docs/payment-printing.md §3.1 and
the official SDK): every request carries

    Authorization: hmac OPA-Auth:<api key>:<mac>:<nonce>:<epoch seconds>:<body hash>

where ``body hash`` is base64(MD5(content type + body)) or the word ``empty`` for a request without a
body, and ``mac`` is base64(HMAC-SHA256(api secret, path \\n method \\n nonce \\n epoch \\n content type
\\n body hash)), the content type being ``empty`` for a request without a body. The path is signed
without its query string, so this API carries parameters in the path only.

Every response is an envelope ``{"resultInfo": {"code", "message", "codeId"}, "data": {...}}``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from kiosk.ports import PaymentState

AUTH_SCHEME = "hmac OPA-Auth"
CONTENT_TYPE_JSON = "application/json;charset=UTF-8"
EMPTY = "empty"
CURRENCY = "JPY"
MAX_MERCHANT_ID = 64

# resultInfo.code values the driver acts on (the rest are reported verbatim)
SUCCESS = "SUCCESS"
REQUEST_ACCEPTED = "REQUEST_ACCEPTED"
UNAUTHORIZED = "UNAUTHORIZED"
DUPLICATE_DYNAMIC_QR_REQUEST = "DUPLICATE_DYNAMIC_QR_REQUEST"
DYNAMIC_QR_PAYMENT_NOT_FOUND = "DYNAMIC_QR_PAYMENT_NOT_FOUND"
DYNAMIC_QR_NOT_FOUND = "DYNAMIC_QR_NOT_FOUND"
ORDER_NOT_REVERSIBLE = "ORDER_NOT_REVERSIBLE"
REFUND_NOT_FOUND = "RESOURCE_NOT_FOUND"

# Provider payment states (PayPay data model) and what each means to the kiosk.
PROVIDER_STATES: Mapping[str, PaymentState] = {
    "CREATED": PaymentState.PENDING,  # QR shown, nobody has paid yet
    "AUTHORIZED": PaymentState.PENDING,  # pre-auth only; the kiosk never asks for it
    "COMPLETED": PaymentState.PAID,
    "REFUNDED": PaymentState.PAID,  # it was paid; the refund is accounted separately
    "FAILED": PaymentState.FAILED,
    "EXPIRED": PaymentState.FAILED,
    "CANCELED": PaymentState.CANCELLED,
}


class MalformedProviderResponse(ValueError):
    """The provider answered with something that is not the documented envelope."""


# --- signing -----------------------------------------------------------------------------------------


def body_hash(content_type: str, body: bytes | None) -> str:
    if not body:
        return EMPTY
    digest = hashlib.md5(content_type.encode("utf-8") + body, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def signing_string(path: str, method: str, nonce: str, epoch: int, content_type: str, hashed_body: str) -> str:
    return "\n".join([path, method.upper(), nonce, str(epoch), content_type, hashed_body])


def mac(api_secret: str, text: str) -> str:
    digest = hmac.new(api_secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_content_type(body: bytes | None, content_type: str = CONTENT_TYPE_JSON) -> str:
    return content_type if body else EMPTY


def auth_header(api_key: str, api_secret: str, method: str, path: str, body: bytes | None,
                nonce: str, epoch: int, content_type: str = CONTENT_TYPE_JSON) -> str:
    """The Authorization header value for one request. ``path`` excludes scheme, host and query."""
    ctype = signed_content_type(body, content_type)
    hashed = body_hash(ctype, body)
    signature = mac(api_secret, signing_string(path, method, nonce, epoch, ctype, hashed))
    return f"{AUTH_SCHEME}:{api_key}:{signature}:{nonce}:{epoch}:{hashed}"


@dataclass(frozen=True)
class AuthFields:
    api_key: str
    mac: str
    nonce: str
    epoch: int
    body_hash: str


def parse_auth_header(value: str) -> AuthFields:
    prefix = AUTH_SCHEME + ":"
    if not value.startswith(prefix):
        raise ValueError(f"Authorization does not start with {AUTH_SCHEME!r}")
    parts = value[len(prefix):].split(":")
    if len(parts) != 5:
        raise ValueError(f"Authorization has {len(parts)} fields after the scheme, expected 5")
    api_key, signature, nonce, epoch, hashed = parts
    if not epoch.isdigit():
        raise ValueError("Authorization epoch is not a number")
    if not api_key or not signature or not nonce:
        raise ValueError("Authorization has an empty key, mac or nonce")
    return AuthFields(api_key, signature, nonce, int(epoch), hashed)


def verify_auth(value: str, secrets: Mapping[str, str], method: str, path: str, body: bytes | None,
                content_type: str, now_epoch: int, max_skew: int) -> AuthFields:
    """Check a request's Authorization; return its fields or raise ValueError saying what is wrong.

    Replay protection (nonce already seen) is the caller's: it needs state."""
    fields = parse_auth_header(value)
    secret = secrets.get(fields.api_key)
    if secret is None:
        raise ValueError("unknown API key")
    if abs(now_epoch - fields.epoch) > max_skew:
        raise ValueError(f"request time is {now_epoch - fields.epoch} s off the server clock (limit {max_skew} s)")
    ctype = signed_content_type(body, content_type)
    hashed = body_hash(ctype, body)
    if not hmac.compare_digest(hashed, fields.body_hash):
        raise ValueError("body hash does not match the body")
    expected = mac(secret, signing_string(path, method, fields.nonce, fields.epoch, ctype, hashed))
    if not hmac.compare_digest(expected, fields.mac):
        raise ValueError("signature does not match")
    return fields


# --- request bodies ------------------------------------------------------------------------------------


def encode_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def check_merchant_id(value: str, what: str) -> str:
    if not value or len(value) > MAX_MERCHANT_ID or not value.isascii() or not value.isprintable():
        raise ValueError(f"{what} must be 1–{MAX_MERCHANT_ID} printable ASCII characters, got {value!r}")
    return value


def money(amount: int) -> dict[str, Any]:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a positive integer of yen, got {amount!r}")
    return {"amount": amount, "currency": CURRENCY}


def create_code_body(merchant_payment_id: str, amount: int, description: str, requested_at: int,
                     expiry_date: int) -> dict[str, Any]:
    return {
        "merchantPaymentId": check_merchant_id(merchant_payment_id, "merchantPaymentId"),
        "amount": money(amount),
        "codeType": "ORDER_QR",
        "orderDescription": description[:255],
        "isAuthorization": False,
        "requestedAt": requested_at,
        "expiryDate": expiry_date,
    }


def refund_body(merchant_refund_id: str, payment_id: str, amount: int, requested_at: int,
                reason: str) -> dict[str, Any]:
    return {
        "merchantRefundId": check_merchant_id(merchant_refund_id, "merchantRefundId"),
        "paymentId": payment_id,
        "amount": money(amount),
        "requestedAt": requested_at,
        "reason": reason[:255],
    }


# --- responses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultInfo:
    code: str
    message: str = ""
    code_id: str = ""

    @property
    def ok(self) -> bool:
        return self.code in (SUCCESS, REQUEST_ACCEPTED)


@dataclass(frozen=True)
class Envelope:
    http_status: int
    result: ResultInfo
    data: Mapping[str, Any] | None


@dataclass(frozen=True)
class CodeCreated:
    code_id: str
    merchant_payment_id: str
    url: str
    deeplink: str
    amount: int
    expires_at: datetime


@dataclass(frozen=True)
class PaymentDetails:
    merchant_payment_id: str
    status: str
    amount: int
    payment_id: str = ""
    code_id: str = ""
    requested_at: datetime | None = None
    accepted_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def state(self) -> PaymentState:
        return PROVIDER_STATES[self.status]


@dataclass(frozen=True)
class RefundDetails:
    merchant_refund_id: str
    payment_id: str
    status: str  # CREATED | COMPLETED | FAILED
    amount: int
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class TransactionRecord:
    """One money movement the provider reports for a day (for city hall's reconciliation)."""

    kind: str  # "capture" | "refund" | "cancel"
    merchant_payment_id: str
    payment_id: str
    amount: int
    at: datetime
    merchant_refund_id: str = ""


def decode_envelope(http_status: int, body: bytes) -> Envelope:
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedProviderResponse(f"HTTP {http_status} body is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("resultInfo"), dict):
        raise MalformedProviderResponse(f"HTTP {http_status} body has no resultInfo object")
    info = obj["resultInfo"]
    code = info.get("code")
    if not isinstance(code, str) or not code:
        raise MalformedProviderResponse(f"HTTP {http_status} resultInfo has no code")
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise MalformedProviderResponse(f"HTTP {http_status} data is not an object")
    return Envelope(http_status, ResultInfo(code, str(info.get("message") or ""), str(info.get("codeId") or "")), data)


def _field(data: Mapping[str, Any], name: str, tp: type, *, required: bool = True) -> Any:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, tp) or isinstance(value, bool):
        raise MalformedProviderResponse(f"field {name!r} should be {tp.__name__}, found {value!r}")
    return value


def _epoch(data: Mapping[str, Any], name: str, *, required: bool = False) -> datetime | None:
    value = _field(data, name, int, required=required)
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


def _amount(data: Mapping[str, Any]) -> int:
    amount = _field(data, "amount", dict)
    currency = amount.get("currency")
    if currency != CURRENCY:
        raise MalformedProviderResponse(f"currency should be {CURRENCY}, found {currency!r}")
    value = _field(amount, "amount", int)
    if value < 0:
        raise MalformedProviderResponse(f"amount is negative: {value}")
    return value


def decode_code_created(data: Mapping[str, Any]) -> CodeCreated:
    return CodeCreated(
        code_id=_field(data, "codeId", str),
        merchant_payment_id=_field(data, "merchantPaymentId", str),
        url=_field(data, "url", str),
        deeplink=_field(data, "deeplink", str, required=False) or "",
        amount=_amount(data),
        expires_at=_epoch(data, "expiryDate", required=True),  # type: ignore[arg-type]
    )


def decode_payment_details(data: Mapping[str, Any]) -> PaymentDetails:
    status = _field(data, "status", str)
    if status not in PROVIDER_STATES:
        raise MalformedProviderResponse(f"unknown payment status {status!r}")
    return PaymentDetails(
        merchant_payment_id=_field(data, "merchantPaymentId", str),
        status=status,
        amount=_amount(data),
        payment_id=_field(data, "paymentId", str, required=False) or "",
        code_id=_field(data, "codeId", str, required=False) or "",
        requested_at=_epoch(data, "requestedAt"),
        accepted_at=_epoch(data, "acceptedAt"),
        expires_at=_epoch(data, "expiryDate"),
    )


REFUND_STATES = ("CREATED", "COMPLETED", "FAILED")


def decode_refund(data: Mapping[str, Any]) -> RefundDetails:
    status = _field(data, "status", str)
    if status not in REFUND_STATES:
        raise MalformedProviderResponse(f"unknown refund status {status!r}")
    return RefundDetails(
        merchant_refund_id=_field(data, "merchantRefundId", str),
        payment_id=_field(data, "paymentId", str),
        status=status,
        amount=_amount(data),
        accepted_at=_epoch(data, "acceptedAt"),
    )


TRANSACTION_KINDS = ("capture", "refund", "cancel")


def decode_transactions(data: Mapping[str, Any]) -> list[TransactionRecord]:
    rows = _field(data, "transactions", list)
    records = []
    for row in rows:
        if not isinstance(row, dict):
            raise MalformedProviderResponse(f"transaction row is not an object: {row!r}")
        kind = _field(row, "kind", str)
        if kind not in TRANSACTION_KINDS:
            raise MalformedProviderResponse(f"unknown transaction kind {kind!r}")
        records.append(TransactionRecord(
            kind=kind,
            merchant_payment_id=_field(row, "merchantPaymentId", str),
            payment_id=_field(row, "paymentId", str),
            amount=_amount(row),
            at=_epoch(row, "at", required=True),  # type: ignore[arg-type]
            merchant_refund_id=_field(row, "merchantRefundId", str, required=False) or "",
        ))
    return records


# --- emulator side: building responses (kept here so both ends share one shape) ------------------------


def envelope(code: str, message: str, data: Mapping[str, Any] | None = None, code_id: str = "") -> bytes:
    obj: dict[str, Any] = {"resultInfo": {"code": code, "message": message, "codeId": code_id}}
    if data is not None:
        obj["data"] = dict(data)
    return encode_json(obj)
