"""Ports: the small interfaces the engine talks to. Drivers implement them; tests fake them.

Every call that does I/O has a bounded duration (the driver owns the timeout and raises a typed
``kiosk.errors`` error when it runs out). No port ever asks for, returns or stores personal data
beyond what the kiosk must hand from city hall to the printer, and no port carries the PIN further
than ``CardSession.verify_pin``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Protocol, runtime_checkable

# --- card --------------------------------------------------------------------------------------------


class CardEventKind(enum.Enum):
    PLACED = "placed"
    REMOVED = "removed"
    READER_LOST = "reader_lost"  # reader unplugged or pcscd gone: the card port is unusable
    READER_BACK = "reader_back"


@dataclass(frozen=True)
class CardEvent:
    kind: CardEventKind
    reader: str = ""


@runtime_checkable
class CardSession(Protocol):
    """One connection to one card, from placement to removal. JPKI user-authentication only."""

    def read_auth_certificate(self) -> bytes:
        """DER of the user-authentication certificate (needs no PIN)."""

    def pin_tries_left(self) -> int:
        """Remaining tries of the user-authentication PIN, read without spending one."""

    def verify_pin(self, pin: str, *, confirm_last_try: bool = False) -> None:
        """Send VERIFY once. Raises InvalidPinFormat (nothing sent), LastTryNotConfirmed (nothing sent),
        WrongPin(tries_left), PinLocked, CardRemoved, CardUnresponsive. Never retried."""

    def sign(self, data: bytes) -> bytes:
        """Signature with the user-authentication key, in the certificate's own algorithm: RSA PKCS#1 v1.5
        over SHA-256(data) (today's card) or ECDSA P-384 over SHA-384(data) as DER (next-generation card)."""

    def close(self) -> None: ...


@runtime_checkable
class CardReader(Protocol):
    def start_monitor(self, on_event: Callable[[CardEvent], None]) -> None:
        """Report card placement/removal and reader loss/return from the driver's own thread."""

    def stop_monitor(self) -> None: ...

    def open_session(self) -> CardSession:
        """Connect to the card now on the reader. Raises ReaderMissing, CardRemoved, NotMyNumberCard."""

    def card_present(self) -> bool: ...


# --- city hall ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    challenge_id: str
    nonce: bytes


@dataclass(frozen=True)
class Offer:
    """One certificate the resident may order, as city hall offers it."""

    cert_type: str  # "juminhyo" | "kazei" | "hikazei" (see config fees)
    fee_yen: int
    tax_years: tuple[int, ...] = ()
    options: tuple[str, ...] = ()  # e.g. "with_household", "with_honseki"
    max_copies: int = 5


@dataclass(frozen=True)
class AuthResult:
    session_id: str
    offers: tuple[Offer, ...]
    expires_at: datetime | None = None


@dataclass(frozen=True)
class OrderLine:
    cert_type: str
    copies: int
    unit_fee_yen: int
    tax_year: int | None = None
    options: tuple[str, ...] = ()

    @property
    def total_yen(self) -> int:
        return self.copies * self.unit_fee_yen


@dataclass(frozen=True)
class Order:
    lines: tuple[OrderLine, ...]

    @property
    def total_yen(self) -> int:
        return sum(line.total_yen for line in self.lines)

    @property
    def document_count(self) -> int:
        return sum(line.copies for line in self.lines)


@dataclass(frozen=True)
class IssuedDocument:
    """A finished, signed certificate from city hall. ``pdf`` is held in memory only until printed."""

    document_id: str
    issuance_number: str
    cert_type: str
    fee_yen: int
    sha256: str
    pdf: bytes = field(repr=False)


@runtime_checkable
class CityHallClient(Protocol):
    def ping(self) -> None:
        """Raise CityHallUnreachable / DeviceNotEnrolled unless city hall can issue right now."""

    def challenge(self) -> Challenge: ...

    def authenticate(self, challenge: Challenge, certificate_der: bytes, signature: bytes) -> AuthResult:
        """Raises CardRefused(reason), CardExpired, CityHallUnreachable."""

    def issue(self, session_id: str, order: Order, transaction_id: str, payment_ref: str) -> tuple[IssuedDocument, ...]:
        """Idempotent on transaction_id: asking again returns the same documents."""


# --- payment -----------------------------------------------------------------------------------------


class PaymentState(enum.Enum):
    PENDING = "pending"  # waiting for the resident (coins, QR scan)
    PAID = "paid"  # the full amount is in; change (if any) is settled
    CANCELLED = "cancelled"  # stopped before completion; anything taken was given back
    FAILED = "failed"  # declined / expired; nothing kept
    UNKNOWN = "unknown"  # the provider did not answer: ask again with the same key


@dataclass(frozen=True)
class PaymentStatus:
    key: str
    state: PaymentState
    amount_due: int
    amount_in: int = 0  # yen received from the resident so far
    change_paid: int = 0  # yen given back as change
    returned: int = 0  # yen given back on cancel
    unpaid_to_resident: int = 0  # yen owed back that the device could not pay (→ voucher)
    provider_ref: str = ""
    qr_payload: str = ""
    expires_at: datetime | None = None
    exact_amount_only: bool = False
    detail: str = ""
    # cash: what the devices take right now (shown on the payment screen), and whether a note was just
    # given back because the change could not be paid (the screen says so)
    accepted_coins: tuple[int, ...] = ()
    accepted_notes: tuple[int, ...] = ()
    change_short: bool = False


@dataclass(frozen=True)
class RefundResult:
    refund_key: str
    refunded: int  # yen actually given back
    unpaid: int  # yen that could not be given back (→ voucher)


@runtime_checkable
class PaymentProvider(Protocol):
    method: str  # "cash" | "qr"

    def available(self) -> PaymentStatus | None:
        """None when ready; else a status describing why not (e.g. exact amount only)."""

    def start(self, key: str, amount: int, description: str) -> PaymentStatus:
        """Start collecting ``amount`` yen under idempotency ``key`` (journaled before the call)."""

    def poll(self, key: str) -> PaymentStatus: ...

    def cancel(self, key: str) -> PaymentStatus:
        """Stop collecting and give back what was taken (state CANCELLED)."""

    def refund(self, key: str, refund_key: str, amount: int) -> RefundResult:
        """Give ``amount`` back for a completed payment. Idempotent on ``refund_key``."""


@runtime_checkable
class MoneyLedger(Protocol):
    """Where payment drivers record each physical movement of money the moment it happens.

    ``key`` is the payment's idempotency key. ``ref`` names this one movement uniquely and stably
    (e.g. "<key>:coin:<event counter>", a capture id, a refund key): the ledger ignores a ref it has
    already recorded, so a driver that is unsure whether a report reached the journal (a crash, a
    replayed refund) simply reports again. ``reason`` for money_out: "change", "refund" or
    "cancel_return".
    """

    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None: ...

    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None: ...

    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None: ...


# --- printing ----------------------------------------------------------------------------------------


class PrintOutcome(enum.Enum):
    PRINTED = "printed"
    FAILED = "failed"
    NOT_FOUND = "not_found"  # no job of that name is known to the printer
    IN_PROGRESS = "in_progress"


@runtime_checkable
class DocumentPrinter(Protocol):
    def check_ready(self) -> None:
        """Raise a PrinterError subclass (PaperOut, PaperJam, ...) unless a job could print now."""

    def print_document(self, pdf: bytes, job_name: str) -> None:
        """Print and follow the job to completion; return only when printed, else raise."""

    def job_outcome(self, job_name: str) -> PrintOutcome:
        """What became of a job submitted earlier under ``job_name`` (used by crash recovery)."""


@dataclass(frozen=True)
class ReceiptLine:
    label_key: str  # catalog key of the certificate type
    copies: int
    unit_fee_yen: int


@dataclass(frozen=True)
class Receipt:
    transaction_id: str
    issued_at: datetime
    lines: tuple[ReceiptLine, ...]
    total_yen: int
    paid_yen: int
    change_yen: int
    method: str
    refund_yen: int = 0
    voucher_yen: int = 0
    voucher: "PrintedVoucher | None" = None
    language: str = "ja"


@dataclass(frozen=True)
class PrintedVoucher:
    """A 返金引換券 as printed: the signed code (sync/voucher.py) for the QR, the same code for people to
    type, and the last day it can be redeemed at the counter."""

    code: str
    text: str
    expires_at: datetime


@runtime_checkable
class VoucherIssuer(Protocol):
    """Signs a 返金引換券 for yen the kiosk could not pay back (adapter: sync.voucher.KioskVoucherIssuer)."""

    def issue(self, txn_id: str, amount_yen: int, issued_at: datetime) -> PrintedVoucher: ...


@runtime_checkable
class ReceiptPrinter(Protocol):
    def check_ready(self) -> list[str]:
        """Raise PaperOut / CoverOpen / PrinterOffline; return warnings (e.g. ``["paper_near_end"]``)."""

    def print_receipt(self, receipt: Receipt) -> None: ...


# --- the person at the screen -------------------------------------------------------------------------


@runtime_checkable
class UserPrompts(Protocol):
    """The user-prompt handler: whatever shows the engine's view state to the resident and answers
    with intents (the Kivy UI, the headless demo driver, a test). The view state carries every prompt
    (PIN entry with tries left, the last-try confirmation, fee confirmation); answers come back to
    ``Engine.submit`` as intents, so the engine never blocks waiting for a person."""

    def show(self, view: object) -> None:
        """Receive an immutable ``kiosk.engine.ViewState``; called from the engine thread."""


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime:
        """Timezone-aware UTC."""
