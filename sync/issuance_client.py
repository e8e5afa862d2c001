"""The kiosk's city hall client: implements kiosk.ports.CityHallClient over HTTPS with requests.

Every request is signed with the device key (sync.signing) and has a connect and a read timeout.
Retries are bounded and only where repeating is harmless: the reachability probe, asking for a
challenge, and issuing (idempotent on the transaction id — a timeout there is an *unknown* outcome,
resolved by asking again with the same id). Authentication is never repeated: the challenge is single
use, so a lost answer means starting the card step again.

Errors map to kiosk.errors: CityHallUnreachable (network, timeouts, city hall not ready),
DeviceNotEnrolled (unknown or revoked device), CardRefused(reason) / CardExpired, SessionExpired,
CityHallRejected (city hall said no to this request), CityHallError (city hall failed).

Config (the [cityhall] section of the kiosk's TOML)::

    [cityhall]
    driver = "http"
    url = "https://cityhall.example.lg.jp:8470"
    key_path = "device-key.pem"      # relative to the kiosk's data_dir
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.config import setting
from kiosk.errors import (
    CardExpired,
    CardRefused,
    CardRevoked,
    CardStatusUnknown,
    CityHallError,
    CityHallRejected,
    CityHallUnreachable,
    DeviceNotEnrolled,
    SessionExpired,
)
from kiosk.ports import AuthResult, Challenge, IssuedDocument, Offer, Order
from kiosk.registry import register
from sync.device_key import load_device_key
from sync.signing import DEVICE_ID_PATTERN, new_nonce, sign_request

log = logging.getLogger("sync.issuance_client")

_RETRYABLE_STATUS = (502, 503, 504)


@dataclass(frozen=True)
class CityHallOptions:
    url: str = setting(doc="City hall's base URL, e.g. https://cityhall.example.lg.jp:8470",
                       pattern=r"https?://[^/\s]+/?")
    key_path: str = setting("device-key.pem", doc="This kiosk's Ed25519 device key (`kioskctl enroll`); "
                                                  "relative paths are inside the kiosk's data_dir.")
    device_id: str = setting("", doc="Device id at city hall; '' = kiosk.device_id.",
                             pattern=f"|{DEVICE_ID_PATTERN}")
    ca_file: str = setting("", doc="CA bundle that signs city hall's TLS certificate; '' = system CAs.")
    connect_timeout: float = setting(3.0, doc="Seconds to open a connection.", min=0.1, max=60)
    read_timeout: float = setting(10.0, doc="Seconds to wait for an answer (ping, challenge, authenticate).",
                                  min=0.1, max=120)
    issue_timeout: float = setting(30.0, doc="Seconds to wait for issued documents (rendering takes time).",
                                   min=0.5, max=300)
    retries: int = setting(2, doc="Extra attempts for ping, challenge and issue after a network failure.",
                           min=0, max=10)
    retry_delay: float = setting(0.5, doc="Seconds before the first retry; doubles each time.", min=0, max=30)


class HttpCityHallClient:
    def __init__(self, base_url: str, device_id: str, key: Ed25519PrivateKey, *, connect_timeout: float = 3.0,
                 read_timeout: float = 10.0, issue_timeout: float = 30.0, retries: int = 2,
                 retry_delay: float = 0.5, verify: str | bool = True,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self._key = key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.issue_timeout = issue_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self._verify = verify
        self._clock = clock
        self._sleep = sleep
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    # --- transport -----------------------------------------------------------------------------------

    def _send(self, method: str, path: str, payload: dict[str, Any] | None, read_timeout: float,
              attempts: int) -> dict[str, Any]:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(self.retry_delay * 2 ** (attempt - 1))
            headers = sign_request(self._key, self.device_id, method, path, body, int(self._clock()), new_nonce())
            if payload is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._http.request(method, self.base_url + path, data=body or None, headers=headers,
                                              timeout=(self.connect_timeout, read_timeout), verify=self._verify,
                                              allow_redirects=False)
            except requests.Timeout:
                last_problem = f"no answer within {read_timeout:.0f} s"
            except requests.ConnectionError as exc:
                last_problem = f"cannot connect ({type(exc).__name__})"
            except requests.RequestException as exc:
                last_problem = f"request failed ({type(exc).__name__})"
            else:
                if response.status_code in _RETRYABLE_STATUS and attempt + 1 < attempts:
                    last_problem = f"HTTP {response.status_code}"
                    continue
                return self._answer(response, path)
            log.warning("city hall %s %s attempt %d/%d: %s", method, path, attempt + 1, attempts, last_problem)
        raise CityHallUnreachable(f"city hall at {self.base_url} unreachable for {method} {path}: {last_problem}; "
                                  "check the network link and that the city hall service runs")

    def _answer(self, response: requests.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
                raise CityHallUnreachable(f"city hall answered HTTP {response.status_code} to {path} without a "
                                          "JSON body (a proxy in between?)")
            raise CityHallError(f"city hall answered HTTP {response.status_code} to {path} with a body that is "
                                "not a JSON object")
        if response.status_code == 200:
            return data
        raise _error_for(response.status_code, data, path)

    # --- the port ------------------------------------------------------------------------------------

    def ping(self) -> None:
        self._send("GET", "/v1/ping", None, self.read_timeout, self.retries + 1)

    def challenge(self) -> Challenge:
        data = self._send("POST", "/v1/challenges", {}, self.read_timeout, self.retries + 1)
        try:
            return Challenge(str(data["challenge_id"]), base64.b64decode(data["nonce"], validate=True))
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise CityHallError("city hall's challenge answer is malformed") from None

    def authenticate(self, challenge: Challenge, certificate_der: bytes, signature: bytes) -> AuthResult:
        data = self._send("POST", "/v1/sessions", {
            "challenge_id": challenge.challenge_id,
            "certificate": base64.b64encode(certificate_der).decode("ascii"),
            "signature": base64.b64encode(signature).decode("ascii")}, self.read_timeout, 1)
        try:
            offers = tuple(Offer(cert_type=str(o["cert_type"]), fee_yen=int(o["fee_yen"]),
                                 tax_years=tuple(int(y) for y in o.get("tax_years", ())),
                                 options=tuple(str(x) for x in o.get("options", ())),
                                 max_copies=int(o.get("max_copies", 5))) for o in data["offers"])
            expires = datetime.fromisoformat(data["expires_at"]) if data.get("expires_at") else None
            return AuthResult(session_id=str(data["session_id"]), offers=offers, expires_at=expires)
        except (KeyError, TypeError, ValueError):
            raise CityHallError("city hall's authentication answer is malformed") from None

    def issue(self, session_id: str, order: Order, transaction_id: str, payment_ref: str) -> tuple[IssuedDocument, ...]:
        payload = {"session_id": session_id, "transaction_id": transaction_id, "payment_ref": payment_ref,
                   "order": {"lines": [{"cert_type": line.cert_type, "copies": line.copies,
                                        "unit_fee_yen": line.unit_fee_yen, "tax_year": line.tax_year,
                                        "options": list(line.options)} for line in order.lines]}}
        data = self._send("POST", "/v1/issuances", payload, self.issue_timeout, self.retries + 1)
        documents = []
        try:
            for d in data["documents"]:
                pdf = base64.b64decode(d["pdf_base64"], validate=True)
                if hashlib.sha256(pdf).hexdigest() != d["sha256"]:
                    raise CityHallError(f"document {d['issuance_number']} arrived damaged (hash mismatch); "
                                        "ask again with the same transaction id")
                documents.append(IssuedDocument(document_id=str(d["document_id"]),
                                                issuance_number=str(d["issuance_number"]),
                                                cert_type=str(d["cert_type"]), fee_yen=int(d["fee_yen"]),
                                                sha256=str(d["sha256"]), pdf=pdf))
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise CityHallError("city hall's issuance answer is malformed") from None
        if len(documents) != order.document_count:
            raise CityHallError(f"city hall returned {len(documents)} documents for an order of "
                                f"{order.document_count}")
        return tuple(documents)


def _error_for(status: int, data: dict[str, Any], path: str) -> Exception:
    error = str(data.get("error", ""))
    reason = str(data.get("reason", ""))
    detail = str(data.get("detail", ""))[:300]
    if status == 401:
        if reason in ("unknown_device", "device_revoked"):
            return DeviceNotEnrolled(f"city hall does not accept this kiosk ({reason}): {detail}; "
                                     "enroll it again (`kioskctl enroll`, then `cityhall device add`)",
                                     reason=reason)
        return CityHallRejected(f"city hall refused the request signature ({reason}): {detail}", reason=reason)
    if status == 403 and error == "card_refused":
        if reason in ("expired", "certificate_expired"):
            return CardExpired(f"city hall: the card's certificate has expired ({detail})")
        if reason == "certificate_revoked":
            return CardRevoked(f"city hall: the card's certificate is revoked ({detail})")
        if reason == "certificate_status_unknown":
            return CardStatusUnknown(f"city hall could not check the card's certificate status ({detail})")
        return CardRefused(reason or "unknown_card", f"city hall refused the card: {reason}")
    if (status == 404 and error == "session_unknown") or (status == 410 and error == "session_expired") \
            or (status == 409 and error == "challenge_invalid"):
        return SessionExpired(f"city hall: {detail}", reason=error)
    if status >= 500:
        return CityHallUnreachable(f"city hall cannot serve {path} now (HTTP {status} {error}): {detail}",
                                   status=status) if status in _RETRYABLE_STATUS else \
            CityHallError(f"city hall failed on {path} (HTTP {status} {error}): {detail}", status=status)
    field = data.get("field")
    return CityHallRejected(f"city hall rejected {path} (HTTP {status} {error}"
                            + (f", field {field}" if field else "") + f"): {detail}",
                            status=status, error=error, **({"field": str(field)} if field else {}))


def device_identity(options: CityHallOptions, data_dir: Any, kiosk_device_id: str) -> tuple[str, Ed25519PrivateKey]:
    """(device id, device key) this kiosk is enrolled with: requests and 返金引換券 are signed with it."""
    key_path = Path(options.key_path)
    if not key_path.is_absolute() and data_dir is not None:
        key_path = Path(data_dir) / key_path
    device_id = options.device_id or kiosk_device_id
    if not device_id:
        raise DeviceNotEnrolled("no device id: set kiosk.device_id (or cityhall.device_id)")
    return device_id, load_device_key(key_path)


@register("cityhall", "http", CityHallOptions)
def build_http_client(options: CityHallOptions, context: Any) -> HttpCityHallClient:
    device_id, key = device_identity(options, getattr(context, "data_dir", None),
                                     str(getattr(context, "device_id", "") or ""))
    return HttpCityHallClient(options.url, device_id, key,
                              connect_timeout=options.connect_timeout, read_timeout=options.read_timeout,
                              issue_timeout=options.issue_timeout, retries=options.retries,
                              retry_delay=options.retry_delay, verify=options.ca_file or True)
