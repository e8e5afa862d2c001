"""A small client of the emulator's control API, for tests, benches and the demo.

    control = QrProviderControl("http://127.0.0.1:8765")
    control.approve("tx-123")                   # the resident scans and pays
    control.fault("create", "drop")             # commit the next create, lose its answer
    control.payment("tx-123")["create_requests"]
"""
from __future__ import annotations

from typing import Any

import requests

TIMEOUT = (2.0, 5.0)


class QrProviderControl:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.session.request(method, f"{self.base_url}/_control/{path}", json=body, timeout=TIMEOUT)
        data = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"QR emulator control {method} {path} answered {response.status_code}: "
                               f"{data.get('error', data)}")
        return data

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "health").get("ok"))
        except (requests.RequestException, RuntimeError, ValueError):
            return False

    def approve(self, merchant_payment_id: str) -> dict[str, Any]:
        return self._call("POST", f"payments/{merchant_payment_id}/approve")

    def decline(self, merchant_payment_id: str) -> dict[str, Any]:
        return self._call("POST", f"payments/{merchant_payment_id}/decline")

    def expire(self, merchant_payment_id: str) -> dict[str, Any]:
        return self._call("POST", f"payments/{merchant_payment_id}/expire")

    def payment(self, merchant_payment_id: str) -> dict[str, Any]:
        return self._call("GET", f"payments/{merchant_payment_id}")

    def records(self) -> dict[str, Any]:
        return self._call("GET", "records")

    def auto(self, action: str, after: float = 0.0) -> None:
        """Every new payment: the resident does ``action`` ("approve", "decline", "expire", "" for
        nothing) ``after`` seconds after the QR code was created."""
        self._call("POST", "auto", {"action": action, "after": after})

    def fault(self, operation: str, kind: str, *, seconds: float = 0.0, status: int = 503, times: int = 1,
              process: bool = False) -> None:
        """Inject a fault on the next ``times`` requests of ``operation`` (create, details, delete_code,
        cancel, refund, refund_status, transactions, any): "drop" commits and loses the answer, "delay"
        commits and answers after ``seconds``, "error" answers ``status`` (after committing if
        ``process``)."""
        self._call("POST", "faults", {"operation": operation, "kind": kind, "seconds": seconds,
                                      "status": status, "times": times, "process": process})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def decline_refunds(self, decline: bool = True) -> None:
        self._call("POST", "refunds", {"decline": decline})

    def reset(self) -> None:
        self._call("POST", "reset")

    def close(self) -> None:
        self.session.close()
