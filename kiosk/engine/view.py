"""Immutable view state: everything a screen needs to draw, and nothing more.

The engine emits a new ViewState after every event; the UI shows it (on the Kivy thread via the
Clock). Outside a transaction every transaction field is empty, so a walked-away resident leaves
nothing on screen.
"""
from __future__ import annotations

from dataclasses import dataclass

from kiosk.ports import Offer, OrderLine


@dataclass(frozen=True)
class PaymentView:
    method: str
    amount_due: int
    amount_in: int = 0
    change_paid: int = 0
    qr_payload: str = ""
    seconds_left: int | None = None
    accepted_coins: tuple[int, ...] = ()  # from the payment driver: the money the devices take now
    accepted_notes: tuple[int, ...] = ()
    change_short: bool = False  # a note went back: not enough change for it


@dataclass(frozen=True)
class ErrorView:
    code: int
    key: str  # catalog key: error.<key>.title / error.<key>.action
    detail: str = ""
    reason: str = ""  # e.g. the city hall refusal reason


@dataclass(frozen=True)
class ViewState:
    state: str
    language: str
    in_service: bool = True
    out_of_service_reason: str = ""
    card_present: bool = False
    # transaction data — all empty outside a transaction
    txn_id: str | None = None
    pin_tries_left: int | None = None
    pin_entry_id: int = 0
    last_try_confirm_needed: bool = False
    wrong_pin: bool = False
    offers: tuple[Offer, ...] = ()
    order: tuple[OrderLine, ...] = ()
    total_yen: int = 0
    payment_methods: tuple[str, ...] = ()
    exact_amount_only: bool = False
    payment: PaymentView | None = None
    documents_total: int = 0
    documents_printed: int = 0
    refund_yen: int = 0
    voucher_yen: int = 0
    voucher_code: str = ""  # the 返金引換券's number on screen (its transaction number; the signed code is on paper)
    receipt_printed: bool = False
    error: ErrorView | None = None
    warning_seconds_left: int | None = None  # "are you still there?" countdown

    def holds_transaction_data(self) -> bool:
        return bool(self.txn_id or self.pin_tries_left is not None or self.offers or self.order
                    or self.total_yen or self.payment or self.documents_total or self.refund_yen
                    or self.voucher_yen or self.voucher_code)
