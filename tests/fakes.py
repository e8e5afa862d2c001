"""In-process fakes of every port, for engine unit tests, the Hypothesis state machine and the kill-9
harness. They share a ``World``: what happened outside the kiosk (coins in the acceptor, money at the
QR provider, paper in the tray), which the kiosk cannot undo. With a path, the world is saved to a
JSON file (atomically) after every change, so it survives a SIGKILL of the kiosk process — as a real
payment provider or printer would.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiosk import errors
from kiosk.ports import (AuthResult, CardEvent, CardEventKind, Challenge, IssuedDocument, MoneyLedger, Offer, Order,
                         PaymentState, PaymentStatus, PrintOutcome, Receipt, RefundResult)

GOOD_PIN = "4821"
EPOCH = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.timezone.utc)  # 10:00 JST on a Monday

OFFERS = (
    Offer("juminhyo", 300, options=("with_household", "with_honseki"), max_copies=3),
    Offer("kazei", 300, tax_years=(2025, 2024), max_copies=2),
)


def make_certificate(expired: bool = False) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "84390000000000000042")])
    not_after = EPOCH - dt.timedelta(days=1) if expired else EPOCH + dt.timedelta(days=365)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(42).not_valid_before(EPOCH - dt.timedelta(days=400)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


_CERTS: dict[bool, bytes] = {}


def certificate(expired: bool = False) -> bytes:
    if expired not in _CERTS:
        _CERTS[expired] = make_certificate(expired)
    return _CERTS[expired]


class World:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        if self.path and self.path.exists():
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        else:
            self.data = {
                "card": {"present": False, "tries": 3, "expired": False, "pull_on": None},
                "verify_calls": [], "payments": {}, "refunds": {}, "tray": [], "jobs": {}, "receipts": [],
                "faults": {}, "hopper": 100_000, "card_present_at_payment_start": [],
                "issued": {},
            }

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)

    def fault(self, name: str) -> Any:
        return self.data["faults"].get(name)

    def set_fault(self, name: str, value: Any = True) -> None:
        if value:
            self.data["faults"][name] = value
        else:
            self.data["faults"].pop(name, None)
        self.save()

    # --- truth for the invariants -----------------------------------------------------------------
    def money_in(self) -> int:
        return sum(p["in"] for p in self.data["payments"].values())

    def money_back(self) -> int:
        return (sum(p["change"] + p["returned"] for p in self.data["payments"].values())
                + sum(r["paid"] for r in self.data["refunds"].values()))

    def fees_in_tray(self) -> int:
        return sum(d["fee"] for d in self.data["tray"])


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> dt.datetime:
        return EPOCH + dt.timedelta(seconds=self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeCardSession:
    def __init__(self, world: World) -> None:
        self.world = world

    def _maybe_pull(self, step: str) -> None:
        card = self.world.data["card"]
        if card.get("pull_on") == step:
            card["present"], card["pull_on"] = False, None
            self.world.save()
            raise errors.CardRemoved(f"card pulled during {step}")
        if not card["present"]:
            raise errors.CardRemoved("no card on the reader")

    def read_auth_certificate(self) -> bytes:
        self._maybe_pull("read")
        if self.world.fault("not_jpki"):
            raise errors.NotMyNumberCard("JPKI AP missing")
        return certificate(self.world.data["card"]["expired"])

    def pin_tries_left(self) -> int:
        self._maybe_pull("tries")
        return self.world.data["card"]["tries"]

    def verify_pin(self, pin: str, *, confirm_last_try: bool = False) -> None:
        if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
            raise errors.InvalidPinFormat("PIN must be 4 digits")
        card = self.world.data["card"]
        if card["tries"] == 1 and not confirm_last_try:
            raise errors.LastTryNotConfirmed()
        self._maybe_pull("verify")
        self.world.data["verify_calls"].append(len(self.world.data["verify_calls"]) + 1)
        if card["tries"] == 0:
            self.world.save()
            raise errors.PinLocked("locked")
        if pin != GOOD_PIN:
            card["tries"] -= 1
            self.world.save()
            if card["tries"] == 0:
                raise errors.PinLocked("locked")
            raise errors.WrongPin(card["tries"])
        card["tries"] = 3
        self.world.save()

    def sign(self, data: bytes) -> bytes:
        self._maybe_pull("sign")
        return hashlib.sha256(b"signed:" + data).digest()

    def close(self) -> None:
        pass


class FakeCardReader:
    def __init__(self, world: World) -> None:
        self.world = world
        self.on_event: Callable[[CardEvent], None] | None = None

    def start_monitor(self, on_event: Callable[[CardEvent], None]) -> None:
        self.on_event = on_event

    def stop_monitor(self) -> None:
        self.on_event = None

    def open_session(self) -> FakeCardSession:
        if self.world.fault("reader_missing"):
            raise errors.ReaderMissing("no reader")
        if not self.world.data["card"]["present"]:
            raise errors.CardRemoved("no card")
        return FakeCardSession(self.world)

    def card_present(self) -> bool:
        return self.world.data["card"]["present"]

    def place(self) -> None:
        self.world.data["card"]["present"] = True
        self.world.save()
        if self.on_event:
            self.on_event(CardEvent(CardEventKind.PLACED))

    def remove(self) -> None:
        self.world.data["card"]["present"] = False
        self.world.save()
        if self.on_event:
            self.on_event(CardEvent(CardEventKind.REMOVED))


class FakeCityHall:
    def __init__(self, world: World) -> None:
        self.world = world
        self.n = 0

    def ping(self) -> None:
        if self.world.fault("cityhall_down"):
            raise errors.CityHallUnreachable("connection refused")

    def challenge(self) -> Challenge:
        self.ping()
        self.n += 1
        return Challenge(f"c{self.n}", os.urandom(32))

    def authenticate(self, challenge: Challenge, certificate_der: bytes, signature: bytes) -> AuthResult:
        self.ping()
        if signature != hashlib.sha256(b"signed:" + challenge.nonce).digest():
            raise errors.CardRefused("bad_signature")
        refused = self.world.fault("refuse")
        if refused:
            raise errors.CardRefused(refused)
        return AuthResult(f"s{self.n}", OFFERS)

    def issue(self, session_id: str, order: Order, transaction_id: str, payment_ref: str) -> tuple[IssuedDocument, ...]:
        self.ping()
        if self.world.fault("issue_fails"):
            raise errors.CityHallRejected("registry unavailable")
        docs = []
        n = 0
        for line in order.lines:
            for copy in range(line.copies):
                n += 1
                pdf = f"%PDF-1.7 fake {transaction_id} {line.cert_type} {copy}".encode()
                docs.append(IssuedDocument(f"{transaction_id}-{n}", f"131-{transaction_id}-{n}", line.cert_type,
                                           line.unit_fee_yen, hashlib.sha256(pdf).hexdigest(), pdf))
        self.world.data["issued"][transaction_id] = [d.fee_yen for d in docs]
        self.world.save()
        return tuple(docs)


class _FakePayment:
    """Shared bookkeeping of the cash and QR fakes. Every movement is reported to the ledger with a
    stable ref, and reported again on poll/refund replays (the ledger ignores refs it has)."""

    method = "?"

    def __init__(self, world: World, ledger: MoneyLedger) -> None:
        self.world = world
        self.ledger = ledger

    def _p(self, key: str) -> dict[str, Any] | None:
        return self.world.data["payments"].get(key)

    def _status(self, key: str) -> PaymentStatus:
        if self.world.fault("provider_unreachable"):
            return PaymentStatus(key, PaymentState.UNKNOWN, 0, detail="provider unreachable")
        p = self._p(key)
        if p is None:
            return PaymentStatus(key, PaymentState.FAILED, 0, detail="no such payment")
        return PaymentStatus(key, PaymentState(p["state"]), p["due"], p["in"], p["change"], p["returned"],
                             p["unpaid"], provider_ref=key, qr_payload=p.get("qr", ""),
                             detail=p.get("detail", ""))

    def _replay(self, key: str) -> None:
        p = self._p(key)
        if p is None:
            return
        for ref, (direction, amount, why) in p["moves"].items():
            if direction == "in":
                self.ledger.money_in(key, amount, why, ref=ref)
            else:
                self.ledger.money_out(key, amount, why, ref=ref)

    def _move(self, key: str, direction: str, amount: int, why: str) -> None:
        p = self._p(key)
        assert p is not None
        ref = f"{key}:{len(p['moves']) + 1}"
        p["moves"][ref] = (direction, amount, why)
        self.world.save()  # the money moved in the world first ...
        if direction == "in":  # ... then the driver tells the journal
            self.ledger.money_in(key, amount, why, ref=ref)
        else:
            self.ledger.money_out(key, amount, why, ref=ref)

    def available(self) -> PaymentStatus | None:
        return None

    def start(self, key: str, amount: int, description: str) -> PaymentStatus:
        self.world.data["card_present_at_payment_start"].append(self.world.data["card"]["present"])
        if self.world.fault("provider_unreachable"):
            raise errors.PaymentProviderUnreachable("timeout")
        if self._p(key) is None:
            self.world.data["payments"][key] = {"method": self.method, "due": amount, "in": 0, "change": 0,
                                                "returned": 0, "unpaid": 0, "state": "pending", "moves": {},
                                                "qr": f"https://qr.example/{key}" if self.method == "qr" else ""}
            self.world.save()
        return self.poll(key)

    def poll(self, key: str) -> PaymentStatus:
        self._replay(key)
        return self._status(key)

    def cancel(self, key: str) -> PaymentStatus:
        p = self._p(key)
        if p is not None and p["state"] == "pending":
            p["state"] = "cancelled"
            back = p["in"] - p["returned"]
            if back:
                paid = min(back, self.world.data["hopper"]) if self.method == "cash" else back
                self.world.data["hopper"] -= paid if self.method == "cash" else 0
                p["returned"] += paid
                p["unpaid"] += back - paid
                self._move(key, "out", paid, "cancel_return")
            self.world.save()
        return self.poll(key)

    def refund(self, key: str, refund_key: str, amount: int) -> RefundResult:
        if self.world.fault("refund_fails"):
            raise errors.RefundFailed("refunds are not possible now")
        refunds = self.world.data["refunds"]
        if refund_key not in refunds:
            paid = min(amount, self.world.data["hopper"]) if self.method == "cash" else amount
            if self.method == "cash":
                self.world.data["hopper"] -= paid
            refunds[refund_key] = {"key": key, "paid": paid, "asked": amount}
            self.world.save()
        r = refunds[refund_key]
        if r["paid"]:
            self.ledger.money_out(key, r["paid"], "refund", ref=f"refund:{refund_key}")
        return RefundResult(refund_key, r["paid"], r["asked"] - r["paid"])


class FakeCash(_FakePayment):
    method = "cash"

    def insert(self, key: str, amount: int) -> None:
        """A coin or note goes in (the resident's action)."""
        p = self._p(key)
        if p is None or p["state"] != "pending" or p["method"] != "cash":
            return
        p["in"] += amount
        self._move(key, "in", amount, "coin" if amount < 1000 else "note")
        if p["in"] >= p["due"]:
            change = p["in"] - p["due"]
            paid = min(change, self.world.data["hopper"])
            self.world.data["hopper"] -= paid
            p["change"] += paid
            p["unpaid"] += change - paid
            p["state"] = "paid"
            if paid:
                self._move(key, "out", paid, "change")
            self.world.save()


class FakeQr(_FakePayment):
    method = "qr"

    def approve(self, key: str) -> None:
        p = self._p(key)
        if p is None or p["state"] != "pending" or p["method"] != "qr":
            return
        p["in"], p["state"] = p["due"], "paid"
        self._move(key, "in", p["due"], "qr_capture")

    def decline(self, key: str) -> None:
        p = self._p(key)
        if p is not None and p["state"] == "pending" and p["method"] == "qr":
            p["state"], p["detail"] = "failed", "declined"
            self.world.save()

    def refund(self, key: str, refund_key: str, amount: int) -> RefundResult:
        return super().refund(key, refund_key, amount)


class FakeDocumentPrinter:
    def __init__(self, world: World) -> None:
        self.world = world

    def check_ready(self) -> None:
        if self.world.fault("paper_out"):
            raise errors.PaperOut("media-empty")

    def print_document(self, pdf: bytes, job_name: str) -> None:
        self.check_ready()
        if self.world.fault("jam_next_print"):
            self.world.set_fault("jam_next_print", False)
            self.world.data["jobs"][job_name] = "aborted"
            self.world.save()
            raise errors.PaperJam("media-jam")
        txn_id, n = job_name.rsplit("-doc", 1)
        fee = self.world.data["issued"][txn_id][int(n) - 1]
        self.world.data["tray"].append({"job": job_name, "txn": txn_id, "fee": fee, "bytes": len(pdf)})
        self.world.data["jobs"][job_name] = "completed"
        self.world.save()

    def job_outcome(self, job_name: str) -> PrintOutcome:
        state = self.world.data["jobs"].get(job_name)
        if state is None:
            return PrintOutcome.NOT_FOUND
        return PrintOutcome.PRINTED if state == "completed" else PrintOutcome.FAILED


class FakeReceiptPrinter:
    def __init__(self, world: World) -> None:
        self.world = world

    def check_ready(self) -> list[str]:
        if self.world.fault("receipt_paper_out"):
            raise errors.PaperOut("receipt paper end")
        return ["paper_near_end"] if self.world.fault("receipt_near_end") else []

    def print_receipt(self, receipt: Receipt) -> None:
        self.check_ready()
        self.world.data["receipts"].append({"txn": receipt.transaction_id, "total": receipt.total_yen,
                                            "refund": receipt.refund_yen, "voucher": receipt.voucher_yen})
        self.world.save()
        if receipt.voucher is not None:
            self.world.data["receipts"][-1]["voucher_code"] = receipt.voucher.code
            self.world.save()


def voucher_issuer(device_id: str = "wako-honcho-01", valid_days: int = 90) -> Any:
    """The real 返金引換券 signer (sync/voucher.py) with a fresh key; ``.key`` verifies what it signed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync.voucher import KioskVoucherIssuer

    return KioskVoucherIssuer(Ed25519PrivateKey.generate(), device_id, valid_days)
