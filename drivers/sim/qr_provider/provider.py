"""The emulated provider's books: payments by merchantPaymentId, refunds by merchantRefundId, the
money movements of each day, the resident's actions (approve, decline, let expire) and the faults a
test has asked for. No HTTP here (see server.py); every method is thread-safe.

States follow PayPay's data model: CREATED → COMPLETED / FAILED / EXPIRED / CANCELED, COMPLETED →
CANCELED (cancel on the day) or REFUNDED (refunded in full).
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from drivers.payment.qr import codec

JST = timezone(timedelta(hours=9))
DEFAULT_VALIDITY_S = 300
OPERATIONS = ("create", "details", "delete_code", "cancel", "refund", "refund_status", "transactions", "any")
FAULT_KINDS = ("drop", "delay", "error")
RESIDENT_ACTIONS = ("approve", "decline", "expire")


@dataclass
class Payment:
    merchant_payment_id: str
    code_id: str
    amount: int
    description: str
    requested_at: int
    expiry: int
    created_mono: float
    status: str = "CREATED"
    payment_id: str = ""
    accepted_at: int | None = None
    canceled_at: int | None = None
    code_deleted: bool = False
    create_requests: int = 1
    refunded: int = 0

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "merchantPaymentId": self.merchant_payment_id,
            "codeId": self.code_id,
            "status": self.status,
            "amount": codec.money(self.amount),
            "requestedAt": self.requested_at,
            "expiryDate": self.expiry,
            "orderDescription": self.description,
        }
        if self.payment_id:
            data["paymentId"] = self.payment_id
        if self.accepted_at is not None:
            data["acceptedAt"] = self.accepted_at
        return data

    def code(self, base_url: str) -> dict[str, Any]:
        return {
            "codeId": self.code_id,
            "merchantPaymentId": self.merchant_payment_id,
            "url": f"{base_url}/qr/{self.code_id}",
            "deeplink": f"paypay://payment?link_key={self.code_id}",
            "amount": codec.money(self.amount),
            "expiryDate": self.expiry,
            "codeType": "ORDER_QR",
        }


@dataclass
class Refund:
    merchant_refund_id: str
    merchant_payment_id: str
    payment_id: str
    amount: int
    reason: str
    status: str
    accepted_at: int | None
    requests: int = 1

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {"merchantRefundId": self.merchant_refund_id, "paymentId": self.payment_id,
                                "amount": codec.money(self.amount), "status": self.status, "reason": self.reason}
        if self.accepted_at is not None:
            data["acceptedAt"] = self.accepted_at
        return data


@dataclass
class Fault:
    operation: str
    kind: str
    seconds: float = 0.0
    status: int = 503
    times: int = 1
    process: bool = False  # for "error": commit the request before answering 5xx


@dataclass
class Reply:
    status: int
    code: str
    message: str
    data: dict[str, Any] | None = None

    def body(self) -> bytes:
        return codec.envelope(self.code, self.message, self.data)


@dataclass
class Provider:
    base_url: str = "http://127.0.0.1"
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    payments: dict[str, Payment] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    auto_action: str = ""
    auto_after: float = 0.0
    decline_refunds: bool = False
    requests_seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)

    def _now(self) -> int:
        return int(self.clock())

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012d}"

    def _settle(self, p: Payment) -> None:
        """Apply what happens by itself with time: expiry, and the scripted resident action."""
        if p.status != "CREATED":
            return
        if self._now() >= p.expiry:
            p.status = "EXPIRED"
        elif self.auto_action and self.monotonic() - p.created_mono >= self.auto_after:
            self._resident(p, self.auto_action)

    def _resident(self, p: Payment, action: str) -> None:
        if action == "approve":
            p.status = "COMPLETED"
            p.payment_id = self._next_id("P")
            p.accepted_at = self._now()
            self.transactions.append({"kind": "capture", "merchantPaymentId": p.merchant_payment_id,
                                      "paymentId": p.payment_id, "amount": codec.money(p.amount),
                                      "at": p.accepted_at})
        elif action == "decline":
            p.status = "FAILED"
        elif action == "expire":
            p.status = "EXPIRED"
            p.expiry = min(p.expiry, self._now())

    # --- the API ---------------------------------------------------------------------------------------

    def count(self, operation: str) -> None:
        with self._lock:
            self.requests_seen[operation] = self.requests_seen.get(operation, 0) + 1

    def create(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            try:
                mpid = codec.check_merchant_id(str(body.get("merchantPaymentId") or ""), "merchantPaymentId")
                amount_obj = body.get("amount") or {}
                if amount_obj.get("currency") != codec.CURRENCY:
                    raise ValueError("currency must be JPY")
                amount = amount_obj.get("amount")
                codec.money(amount)
                if body.get("codeType") != "ORDER_QR":
                    raise ValueError("codeType must be ORDER_QR")
            except (ValueError, AttributeError) as exc:
                return Reply(400, "INVALID_PARAMS", str(exc))
            existing = self.payments.get(mpid)
            if existing is not None:
                existing.create_requests += 1
                if existing.amount != amount:
                    return Reply(400, codec.DUPLICATE_DYNAMIC_QR_REQUEST,
                                 "merchantPaymentId already used with a different amount")
                # same request again (a client retrying after a lost answer): the same code, no new payment
                return Reply(201, codec.SUCCESS, "Success", existing.code(self.base_url))
            now = self._now()
            expiry = body.get("expiryDate")
            if not isinstance(expiry, int) or isinstance(expiry, bool) or expiry <= now:
                expiry = now + DEFAULT_VALIDITY_S
            p = Payment(mpid, self._next_id("C"), amount, str(body.get("orderDescription") or ""),
                        int(body.get("requestedAt") or now), expiry, self.monotonic())
            self.payments[mpid] = p
            return Reply(201, codec.SUCCESS, "Success", p.code(self.base_url))

    def details(self, mpid: str) -> Reply:
        with self._lock:
            p = self.payments.get(mpid)
            if p is None:
                return Reply(400, codec.DYNAMIC_QR_PAYMENT_NOT_FOUND, "The specified transaction is not found")
            self._settle(p)
            return Reply(200, codec.SUCCESS, "Success", p.public())

    def delete_code(self, code_id: str) -> Reply:
        with self._lock:
            p = next((p for p in self.payments.values() if p.code_id == code_id), None)
            if p is None or p.code_deleted:
                return Reply(404, codec.DYNAMIC_QR_NOT_FOUND, "The specified QR code cannot be found")
            self._settle(p)
            p.code_deleted = True
            if p.status == "CREATED":
                p.status = "CANCELED"
                p.canceled_at = self._now()
            return Reply(200, codec.SUCCESS, "Success")

    def cancel(self, mpid: str) -> Reply:
        with self._lock:
            p = self.payments.get(mpid)
            if p is None:
                return Reply(400, codec.DYNAMIC_QR_PAYMENT_NOT_FOUND, "The specified transaction is not found")
            self._settle(p)
            if p.status == "CANCELED":
                return Reply(202, codec.REQUEST_ACCEPTED, "Request accepted")
            if p.status == "COMPLETED" and p.refunded == 0:
                p.status = "CANCELED"
                p.canceled_at = self._now()
                self.transactions.append({"kind": "cancel", "merchantPaymentId": mpid, "paymentId": p.payment_id,
                                          "amount": codec.money(p.amount), "at": p.canceled_at})
                return Reply(202, codec.REQUEST_ACCEPTED, "Request accepted")
            if p.status == "CREATED":
                p.status = "CANCELED"
                p.canceled_at = self._now()
                p.code_deleted = True
                return Reply(202, codec.REQUEST_ACCEPTED, "Request accepted")
            return Reply(400, codec.ORDER_NOT_REVERSIBLE, f"Order status is {p.status}")

    def refund(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            try:
                mrid = codec.check_merchant_id(str(body.get("merchantRefundId") or ""), "merchantRefundId")
                amount_obj = body.get("amount") or {}
                if amount_obj.get("currency") != codec.CURRENCY:
                    raise ValueError("currency must be JPY")
                amount = amount_obj.get("amount")
                codec.money(amount)
            except (ValueError, AttributeError) as exc:
                return Reply(400, "INVALID_PARAMS", str(exc))
            payment_id = str(body.get("paymentId") or "")
            existing = self.refunds.get(mrid)
            if existing is not None:
                existing.requests += 1
                if existing.payment_id != payment_id or existing.amount != amount:
                    return Reply(400, "DUPLICATE_REFUND_REQUEST", "merchantRefundId already used for another refund")
                return Reply(201, codec.SUCCESS, "Success", existing.public())
            p = next((p for p in self.payments.values() if p.payment_id and p.payment_id == payment_id), None)
            if p is None:
                return Reply(400, "INVALID_PARAMS", "paymentId is not a completed payment")
            if p.status not in ("COMPLETED", "REFUNDED") or amount > p.amount - p.refunded:
                return Reply(400, "INVALID_PARAMS",
                             f"cannot refund {amount} yen of a {p.status} payment with "
                             f"{p.amount - p.refunded} yen refundable")
            now = self._now()
            if self.decline_refunds:
                r = Refund(mrid, p.merchant_payment_id, payment_id, amount, str(body.get("reason") or ""),
                           "FAILED", None)
            else:
                r = Refund(mrid, p.merchant_payment_id, payment_id, amount, str(body.get("reason") or ""),
                           "COMPLETED", now)
                p.refunded += amount
                if p.refunded == p.amount:
                    p.status = "REFUNDED"
                self.transactions.append({"kind": "refund", "merchantPaymentId": p.merchant_payment_id,
                                          "merchantRefundId": mrid, "paymentId": payment_id,
                                          "amount": codec.money(amount), "at": now})
            self.refunds[mrid] = r
            return Reply(201, codec.SUCCESS, "Success", r.public())

    def refund_status(self, mrid: str) -> Reply:
        with self._lock:
            r = self.refunds.get(mrid)
            if r is None:
                return Reply(404, codec.REFUND_NOT_FOUND, "Refund not found")
            return Reply(200, codec.SUCCESS, "Success", r.public())

    def day_report(self, day: date) -> Reply:
        with self._lock:
            for p in self.payments.values():
                self._settle(p)
            rows = [t for t in self.transactions
                    if datetime.fromtimestamp(t["at"], tz=JST).date() == day]
            return Reply(200, codec.SUCCESS, "Success", {"date": day.isoformat(), "transactions": rows})

    # --- control -----------------------------------------------------------------------------------------

    def act(self, mpid: str, action: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            p = self.payments.get(mpid)
            if p is None:
                return 404, {"error": f"no payment {mpid!r}"}
            self._settle(p)
            if p.status != "CREATED" or p.code_deleted:
                return 409, {"error": f"payment {mpid!r} is {p.status}, the resident cannot act on it"}
            self._resident(p, action)
            return 200, asdict(p)

    def record(self, mpid: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            p = self.payments.get(mpid)
            if p is None:
                return 404, {"error": f"no payment {mpid!r}"}
            self._settle(p)
            return 200, asdict(p)

    def records(self) -> dict[str, Any]:
        with self._lock:
            for p in self.payments.values():
                self._settle(p)
            return {"payments": [asdict(p) for p in self.payments.values()],
                    "refunds": [asdict(r) for r in self.refunds.values()],
                    "transactions": list(self.transactions),
                    "requests": dict(self.requests_seen)}

    def set_auto(self, action: str, after: float) -> None:
        if action not in RESIDENT_ACTIONS + ("",):
            raise ValueError(f"auto action must be one of {RESIDENT_ACTIONS} or empty")
        with self._lock:
            self.auto_action, self.auto_after = action, max(0.0, after)

    def add_fault(self, fault: Fault) -> None:
        if fault.operation not in OPERATIONS or fault.kind not in FAULT_KINDS or fault.times < 1:
            raise ValueError(f"fault needs operation in {OPERATIONS}, kind in {FAULT_KINDS}, times >= 1")
        with self._lock:
            self.faults.append(fault)

    def take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.operation in (operation, "any"):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
            return None

    def reset(self) -> None:
        with self._lock:
            self.payments.clear()
            self.refunds.clear()
            self.transactions.clear()
            self.faults.clear()
            self.requests_seen.clear()
            self.auto_action, self.auto_after, self.decline_refunds = "", 0.0, False
