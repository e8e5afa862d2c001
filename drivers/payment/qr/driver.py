"""Cashless QR payment (PayPay-style dynamic QR) over HTTP: the ``qr`` payment port.

The engine journals the idempotency key before calling ``start``; the key is the provider's
``merchantPaymentId``, so the provider holds at most one payment per key however often a request is
re-sent. That makes every call here safe to repeat, and the rule follows: a timeout or a lost answer is
state UNKNOWN, resolved by asking again with the same key (``poll``), never by a second payment.

Money movements go to ``context.ledger`` the moment the provider confirms them: ``money_in`` when the
capture is seen (once per key), ``money_out`` when a refund or a same-day cancel of a captured payment
is confirmed (once per refund key / key). Each report carries a stable ``ref`` built from the key and
the provider's ids, so the ledger also ignores a report repeated after a restart.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import date, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from drivers.payment.qr import codec
from kiosk.config import setting
from kiosk.errors import (PaymentDeclined, PaymentError, PaymentExpired, PaymentProviderUnreachable,
                          RefundFailed)
from kiosk.ports import MoneyLedger, PaymentState, PaymentStatus, RefundResult
from kiosk.registry import register

log = logging.getLogger("drivers.payment.qr")

AVAILABILITY_PROBE_ID = "availability-probe"


@dataclass(frozen=True)
class QrOptions:
    base_url: str = setting(doc="Provider API base URL (https; plain http only to a loopback emulator).",
                            pattern=r"https?://[^\s/]+(/[^\s]*)?")
    api_key: str = setting(doc="API key issued by the provider for this merchant.")
    api_secret: str = setting("", doc="API secret. Prefer api_secret_file so the secret is not in the "
                                      "config file.")
    api_secret_file: str = setting("", doc="File holding the API secret (mode 0600); relative to the data "
                                           "directory.")
    merchant_id: str = setting("", doc="Sent as X-ASSUME-MERCHANT when the key acts for a sub-merchant; "
                                       "empty to omit.")
    connect_timeout: float = setting(3.0, doc="Seconds to open a connection to the provider.", min=0.1, max=60)
    create_timeout: float = setting(30.0, doc="Seconds to wait for the answer to creating a QR code.",
                                    min=0.1, max=120)
    read_timeout: float = setting(15.0, doc="Seconds to wait for any other answer.", min=0.1, max=120)
    attempts: int = setting(3, doc="Tries per request (all requests are keyed, so repeating is safe).",
                            min=1, max=10)
    retry_backoff: float = setting(0.5, doc="Seconds before the second try; doubles for each further try.",
                                   min=0, max=30)
    qr_validity: int = setting(180, doc="Seconds a QR code may be paid before the provider expires it.",
                               min=30, max=3600)

    def __config_check__(self) -> tuple[str, str, str] | None:
        if bool(self.api_secret) == bool(self.api_secret_file):
            return ("api_secret", "exactly one of api_secret or api_secret_file",
                    "both" if self.api_secret else "neither")
        parts = urlsplit(self.base_url)
        if parts.scheme != "https" and not _loopback(parts.hostname or ""):
            return ("base_url", "an https URL (http only for a loopback emulator)", repr(self.base_url))
        return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class _NoAnswer(Exception):
    """No usable answer after every try. ``maybe_processed`` is False only when no request ever left."""

    def __init__(self, detail: str, maybe_processed: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.maybe_processed = maybe_processed


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError) or isinstance(exc.args[0] if exc.args else None,
                                                                NewConnectionError)


@dataclass
class _Local:
    """What this process knows about one key beyond what the provider says."""

    amount: int
    description: str
    expiry_epoch: int
    code_id: str = ""
    qr_payload: str = ""
    expires_at: datetime | None = None


class QrPayment:
    method = "qr"

    def __init__(self, options: QrOptions, ledger: MoneyLedger, *, secret: str,
                 session: requests.Session | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.ledger = ledger
        self._secret = secret
        self._clock = clock
        self._sleep = sleep
        self._base = options.base_url.rstrip("/")
        self._base_path = urlsplit(self._base).path
        self._session = session or requests.Session()
        # our retry loop is the only one: urllib3 must not silently re-send a request
        adapter = HTTPAdapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._lock = threading.RLock()
        self._local: dict[str, _Local] = {}
        self._captured: set[str] = set()  # keys whose money_in is recorded
        self._reversed: set[str] = set()  # keys whose same-day cancel money_out is recorded
        self._refunded: set[str] = set()  # refund keys whose money_out is recorded

    # --- transport ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None, read_timeout: float,
                 attempts: int | None = None) -> codec.Envelope:
        """Send a signed request; repeat it on no answer, 5xx or 429 (safe: every call is keyed)."""
        payload = codec.encode_json(body) if body is not None else None
        signed_path = self._base_path + path
        tries = attempts or self.options.attempts
        maybe_processed = False
        last = ""
        for attempt in range(tries):
            if attempt:
                self._sleep(self.options.retry_backoff * (2 ** (attempt - 1)))
            headers = {
                "Authorization": codec.auth_header(self.options.api_key, self._secret, method, signed_path, payload,
                                                   secrets.token_hex(8), int(self._clock())),
                "Content-Type": codec.CONTENT_TYPE_JSON,
                "Accept": "application/json",
            }
            if self.options.merchant_id:
                headers["X-ASSUME-MERCHANT"] = self.options.merchant_id
            try:
                response = self._session.request(method, self._base + path, data=payload, headers=headers,
                                                 timeout=(self.options.connect_timeout, read_timeout))
            except requests.RequestException as exc:
                maybe_processed = maybe_processed or not _never_sent(exc)
                last = f"{exc.__class__.__name__} on {method} {path}"
                log.warning("QR provider: %s (try %d of %d)", last, attempt + 1, tries)
                continue
            if response.status_code >= 500 or response.status_code == 429:
                maybe_processed = True
                last = f"HTTP {response.status_code} on {method} {path}"
                log.warning("QR provider: %s (try %d of %d)", last, attempt + 1, tries)
                continue
            try:
                return codec.decode_envelope(response.status_code, response.content)
            except codec.MalformedProviderResponse as exc:
                maybe_processed = True
                last = f"unreadable answer to {method} {path}: {exc}"
                log.warning("QR provider: %s (try %d of %d)", last, attempt + 1, tries)
        raise _NoAnswer(f"{last} after {tries} tries; provider {self._base}", maybe_processed)

    @staticmethod
    def _refused_credentials(env: codec.Envelope) -> PaymentProviderUnreachable:
        return PaymentProviderUnreachable(
            f"the provider refused the kiosk's credentials ({env.result.code}: {env.result.message}); "
            f"check [qr] api_key and the API secret", provider_code=env.result.code)

    # --- helpers --------------------------------------------------------------------------------------

    def _status(self, key: str, state: PaymentState, *, details: codec.PaymentDetails | None = None,
                detail: str = "", returned: int = 0) -> PaymentStatus:
        local = self._local.get(key)
        amount = details.amount if details else (local.amount if local else 0)
        return PaymentStatus(
            key=key, state=state, amount_due=amount,
            amount_in=amount if key in self._captured else 0,
            returned=returned,
            provider_ref=(details.payment_id or details.code_id) if details else (local.code_id if local else ""),
            qr_payload=local.qr_payload if local and state is PaymentState.PENDING else "",
            expires_at=(local.expires_at if local and local.expires_at else (details.expires_at if details else None)),
            detail=detail)

    def _details(self, key: str) -> codec.PaymentDetails | None:
        """The provider's view of ``key``; None when it holds no such payment. Raises _NoAnswer."""
        env = self._request("GET", f"/v2/codes/payments/{key}", None, self.options.read_timeout)
        if env.result.code == codec.DYNAMIC_QR_PAYMENT_NOT_FOUND:
            return None
        if env.result.code == codec.UNAUTHORIZED:
            raise self._refused_credentials(env)
        if not env.result.ok or env.data is None:
            raise PaymentError(f"the provider refused to report payment {key}: {env.result.code} "
                               f"{env.result.message}", provider_code=env.result.code)
        return codec.decode_payment_details(env.data)

    def _record_capture(self, key: str, details: codec.PaymentDetails) -> None:
        if key not in self._captured:
            self.ledger.money_in(key, details.amount, "qr", ref=f"{key}:capture:{details.payment_id}")
            self._captured.add(key)
            log.info("QR payment %s captured: %d yen (provider id %s)", key, details.amount, details.payment_id)

    def _record_reversal(self, key: str, details: codec.PaymentDetails) -> int:
        """A captured payment the provider has cancelled: its money went back to the resident."""
        if details.accepted_at is None:
            return 0
        self._record_capture(key, details)
        if key not in self._reversed:
            self.ledger.money_out(key, details.amount, "cancel_return", ref=f"{key}:cancel:{details.payment_id}")
            self._reversed.add(key)
            log.info("QR payment %s cancelled after capture: %d yen back", key, details.amount)
        return details.amount

    def _from_details(self, key: str, details: codec.PaymentDetails) -> PaymentStatus:
        if details.status in ("COMPLETED", "REFUNDED"):
            self._record_capture(key, details)
            return self._status(key, PaymentState.PAID, details=details)
        if details.status == "CANCELED":
            returned = self._record_reversal(key, details)
            return self._status(key, PaymentState.CANCELLED, details=details, returned=returned,
                                detail="cancelled at the provider")
        if details.status == "FAILED":
            return self._status(key, PaymentState.FAILED, details=details,
                                detail=str(PaymentDeclined("the resident's payment app declined the payment")))
        if details.status == "EXPIRED":
            return self._status(key, PaymentState.FAILED, details=details,
                                detail=str(PaymentExpired("the QR code expired before it was paid")))
        return self._status(key, PaymentState.PENDING, details=details)

    def _unknown(self, key: str, exc: _NoAnswer) -> PaymentStatus:
        return self._status(key, PaymentState.UNKNOWN,
                            detail=f"E{PaymentProviderUnreachable.code} no answer from the QR provider ({exc.detail}); "
                                   f"ask again with the same key")

    # --- the port -------------------------------------------------------------------------------------

    def available(self) -> PaymentStatus | None:
        with self._lock:
            try:
                env = self._request("GET", f"/v2/codes/payments/{AVAILABILITY_PROBE_ID}", None,
                                    self.options.read_timeout, attempts=1)
            except _NoAnswer as exc:
                return PaymentStatus(key="", state=PaymentState.UNKNOWN, amount_due=0,
                                     detail=str(PaymentProviderUnreachable(exc.detail)))
            if env.result.code == codec.UNAUTHORIZED:
                return PaymentStatus(key="", state=PaymentState.FAILED, amount_due=0,
                                     detail=str(self._refused_credentials(env)))
            return None

    def start(self, key: str, amount: int, description: str) -> PaymentStatus:
        codec.check_merchant_id(key, "payment key")
        codec.money(amount)
        with self._lock:
            local = self._local.get(key)
            if local is None or local.amount != amount:
                local = _Local(amount, description, int(self._clock()) + self.options.qr_validity)
                self._local[key] = local
            return self._create(key, local, first=True)

    def _create(self, key: str, local: _Local, first: bool) -> PaymentStatus:
        body = codec.create_code_body(key, local.amount, local.description, int(self._clock()), local.expiry_epoch)
        try:
            env = self._request("POST", "/v2/codes", body, self.options.create_timeout)
        except _NoAnswer as exc:
            if first and not exc.maybe_processed:
                raise PaymentProviderUnreachable(f"the QR provider cannot be reached ({exc.detail}); no payment "
                                                 f"was created") from None
            return self._unknown(key, exc)
        if env.result.ok and env.data is not None:
            code = codec.decode_code_created(env.data)
            if code.merchant_payment_id != key or code.amount != local.amount:
                raise PaymentError(f"the provider answered for {code.merchant_payment_id} / {code.amount} yen, "
                                   f"asked {key} / {local.amount} yen")
            local.code_id, local.qr_payload, local.expires_at = code.code_id, code.url, code.expires_at
            log.info("QR code %s created for payment %s: %d yen until %s", code.code_id, key, local.amount,
                     code.expires_at.isoformat())
            return self._status(key, PaymentState.PENDING)
        if env.result.code == codec.UNAUTHORIZED:
            raise self._refused_credentials(env)
        if env.result.code == codec.DUPLICATE_DYNAMIC_QR_REQUEST:
            return self._recover_duplicate(key, local)
        raise PaymentDeclined(f"the QR provider refused to create the payment ({env.result.code}: "
                              f"{env.result.message})", provider_code=env.result.code)

    def _recover_duplicate(self, key: str, local: _Local) -> PaymentStatus:
        """The provider already holds ``key`` but will not give its QR code again."""
        try:
            details = self._details(key)
        except _NoAnswer as exc:
            return self._unknown(key, exc)
        if details is None or details.amount != local.amount:
            raise PaymentError(f"payment key {key} is already used at the provider for another amount; "
                               f"the engine must use a fresh key")
        if details.status != "CREATED":
            return self._from_details(key, details)
        # Nobody has seen that code, so nobody can pay it: withdraw it rather than leave it payable.
        try:
            self._cancel_at_provider(key)
        except _NoAnswer as exc:
            return self._unknown(key, exc)
        raise PaymentError(f"the QR code for payment {key} was lost on the way and has been withdrawn; "
                           f"start again with a new key (nothing was charged)")

    def poll(self, key: str) -> PaymentStatus:
        with self._lock:
            local = self._local.get(key)
            try:
                details = self._details(key)
            except _NoAnswer as exc:
                return self._unknown(key, exc)
            if details is None:
                if local is not None and not local.code_id:
                    # the create never arrived: sending it again under the same key is safe
                    return self._create(key, local, first=False)
                return self._status(key, PaymentState.FAILED,
                                    detail="the provider holds no payment under this key; nothing was charged")
            if details.status == "CREATED" and local is not None and not local.qr_payload:
                # the create arrived but its answer was lost: the same request again returns the same code
                created = self._create(key, local, first=False)
                if created.state is not PaymentState.PENDING:
                    return created
            return self._from_details(key, details)

    def _cancel_at_provider(self, key: str) -> codec.Envelope:
        env = self._request("DELETE", f"/v2/payments/{key}", None, self.options.read_timeout)
        if env.result.code == codec.UNAUTHORIZED:
            raise self._refused_credentials(env)
        return env

    def cancel(self, key: str) -> PaymentStatus:
        with self._lock:
            try:
                details = self._details(key)
                if details is None:
                    return self._status(key, PaymentState.CANCELLED, detail="no payment was created")
                if details.status in ("CREATED", "COMPLETED"):
                    if details.status == "COMPLETED":
                        self._record_capture(key, details)
                    env = self._cancel_at_provider(key)
                    if not env.result.ok and env.result.code != codec.ORDER_NOT_REVERSIBLE:
                        log.warning("QR provider refused to cancel %s: %s %s", key, env.result.code,
                                    env.result.message)
                    details = self._details(key) or details
            except _NoAnswer as exc:
                return self._unknown(key, exc)
            if details.status in ("FAILED", "EXPIRED"):
                return self._status(key, PaymentState.CANCELLED, details=details,
                                    detail=f"nothing was taken (provider state {details.status})")
            status = self._from_details(key, details)
            if status.state is PaymentState.PAID:
                return replace(status, detail="the provider would not cancel this paid payment; refund it instead")
            return status

    def refund(self, key: str, refund_key: str, amount: int) -> RefundResult:
        codec.check_merchant_id(refund_key, "refund key")
        codec.money(amount)
        with self._lock:
            try:
                known = self._refund_details(refund_key)
                if known is not None:
                    return self._refund_outcome(key, refund_key, known)
                details = self._details(key)
                if details is None or details.status in ("CREATED", "FAILED", "EXPIRED") \
                        or (details.status == "CANCELED" and details.accepted_at is None):
                    log.info("refund %s for %s: the payment never captured money; nothing to give back",
                             refund_key, key)
                    return RefundResult(refund_key, refunded=0, unpaid=0)
                if details.status == "CANCELED":
                    self._record_reversal(key, details)
                    return RefundResult(refund_key, refunded=0, unpaid=0)
                self._record_capture(key, details)
                body = codec.refund_body(refund_key, details.payment_id, amount, int(self._clock()),
                                         "certificate could not be issued")
                try:
                    env = self._request("POST", "/v2/refunds", body, self.options.create_timeout)
                except _NoAnswer:
                    known = self._refund_details(refund_key)
                    if known is None:
                        raise
                    return self._refund_outcome(key, refund_key, known)
            except _NoAnswer as exc:
                raise PaymentProviderUnreachable(f"the refund's outcome is unknown ({exc.detail}); ask again "
                                                 f"with the same refund key", refund_key=refund_key) from None
            if env.result.code == codec.UNAUTHORIZED:
                raise self._refused_credentials(env)
            if not env.result.ok or env.data is None:
                raise RefundFailed(f"the provider refused refund {refund_key} of {amount} yen "
                                   f"({env.result.code}: {env.result.message})", refund_key=refund_key,
                                   unpaid=amount, provider_code=env.result.code)
            return self._refund_outcome(key, refund_key, codec.decode_refund(env.data))

    def _refund_details(self, refund_key: str) -> codec.RefundDetails | None:
        env = self._request("GET", f"/v2/refunds/{refund_key}", None, self.options.read_timeout)
        if env.result.code == codec.REFUND_NOT_FOUND:
            return None
        if env.result.code == codec.UNAUTHORIZED:
            raise self._refused_credentials(env)
        if not env.result.ok or env.data is None:
            raise PaymentError(f"the provider refused to report refund {refund_key}: {env.result.code}")
        return codec.decode_refund(env.data)

    def _refund_outcome(self, key: str, refund_key: str, refund: codec.RefundDetails) -> RefundResult:
        if refund.status == "COMPLETED":
            if refund_key not in self._refunded:
                self.ledger.money_out(key, refund.amount, "refund", ref=f"{key}:refund:{refund_key}")
                self._refunded.add(refund_key)
                log.info("QR refund %s of %d yen for %s completed", refund_key, refund.amount, key)
            return RefundResult(refund_key, refunded=refund.amount, unpaid=0)
        if refund.status == "FAILED":
            raise RefundFailed(f"the provider could not refund {refund.amount} yen ({refund_key})",
                               refund_key=refund_key, unpaid=refund.amount)
        raise PaymentProviderUnreachable(f"refund {refund_key} is still being processed; ask again with the "
                                         f"same refund key", refund_key=refund_key)

    def reconcile(self, day: date) -> list[codec.TransactionRecord]:
        """The provider's captures, cancels and refunds of one day (Asia/Tokyo), for city hall's matching."""
        with self._lock:
            try:
                env = self._request("GET", f"/v2/transactions/{day.isoformat()}", None, self.options.read_timeout)
            except _NoAnswer as exc:
                raise PaymentProviderUnreachable(f"cannot fetch the provider's report for {day} ({exc.detail})") \
                    from None
            if env.result.code == codec.UNAUTHORIZED:
                raise self._refused_credentials(env)
            if not env.result.ok or env.data is None:
                raise PaymentError(f"the provider refused the report for {day}: {env.result.code}")
            return codec.decode_transactions(env.data)

    def close(self) -> None:
        self._session.close()


def read_secret(options: QrOptions, data_dir: Path | None) -> str:
    if options.api_secret:
        return options.api_secret
    path = Path(options.api_secret_file)
    if not path.is_absolute() and data_dir is not None:
        path = data_dir / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PaymentProviderUnreachable(f"cannot read the QR provider secret from {path}: {exc.strerror}; "
                                         f"check [qr] api_secret_file") from None
    if not secret:
        raise PaymentProviderUnreachable(f"the QR provider secret file {path} is empty")
    return secret


@register("qr", "paypay", QrOptions)
def build_qr_payment(options: QrOptions, context: Any) -> QrPayment:
    ledger = getattr(context, "ledger", None)
    if ledger is None:
        raise TypeError("the QR payment driver needs context.ledger (a kiosk.ports.MoneyLedger)")
    return QrPayment(options, ledger, secret=read_secret(options, getattr(context, "data_dir", None)))
