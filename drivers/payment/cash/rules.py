"""The money rules of a cash payment, apart from any device: what a payment holds, and how change is made.

Pure (no I/O, no clocks): the provider (provider.py) asks these questions before it moves money.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from kiosk.ports import PaymentState, PaymentStatus

JAPANESE_COINS = (1, 5, 10, 50, 100, 500)
JAPANESE_NOTES = (1000, 2000, 5000, 10000)


@dataclass
class Payment:
    """One cash payment's book: everything in, out and owed, in integer yen."""

    key: str
    amount_due: int
    state: PaymentState = PaymentState.PENDING
    amount_in: int = 0
    change_paid: int = 0
    returned: int = 0
    unpaid: int = 0
    exact_amount_only: bool = False
    detail: str = ""
    note_in_escrow: int = 0
    note_stacking: int = 0
    note_stacking_since: float = 0.0
    note_escrow_extended: float = 0.0
    closing: bool = False  # cancel or fault in progress: credits no longer complete the payment
    refunded: int = 0
    notes_refused_for_change: int = 0  # notes given back because the change could not be paid
    accepting: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # coins, notes enabled right now

    def status(self, provider_ref: str = "") -> PaymentStatus:
        return PaymentStatus(key=self.key, state=self.state, amount_due=self.amount_due, amount_in=self.amount_in,
                             change_paid=self.change_paid, returned=self.returned,
                             unpaid_to_resident=self.unpaid, provider_ref=provider_ref,
                             exact_amount_only=self.exact_amount_only, detail=self.detail,
                             accepted_coins=self.accepting[0], accepted_notes=self.accepting[1],
                             change_short=self.notes_refused_for_change > 0)

    @property
    def still_due(self) -> int:
        """Yen the resident still has to put in, counting a note that is in escrow or being stacked."""
        return self.amount_due - self.amount_in - self.note_in_escrow - self.note_stacking


def can_make(amount: int, coin_values: list[int]) -> bool:
    """Can ``amount`` be paid with unlimited coins of ``coin_values``? (Greedy is exact for yen coins.)"""
    for value in sorted(set(coin_values), reverse=True):
        amount %= value
    return amount == 0


def plan_change(amount: int, held: Mapping[int, int | None]) -> dict[int, int] | None:
    """The coins to pay ``amount`` with, largest first, using at most the coins each hopper holds.

    ``held`` maps coin value → coins believed in its hopper (None: not counted, assume enough). Returns
    coin → count, or None when the amount cannot be made. Largest-first is exact here because each yen
    hopper coin divides the next larger one (10 | 50 | 100 | 500): a larger coin can always be replaced
    by smaller ones, never the other way round, so taking the largest that fits never blocks a solution.
    """
    if amount < 0:
        raise ValueError(f"change cannot be negative, got {amount}")
    plan: dict[int, int] = {}
    remaining = amount
    for coin in sorted(held, reverse=True):
        if remaining < coin:
            continue
        limit = held[coin]
        take = remaining // coin if limit is None else min(remaining // coin, max(0, limit))
        if take:
            plan[coin] = take
            remaining -= take * coin
    return plan if remaining == 0 else None


def note_acceptable(payment: Payment, value: int, held: Mapping[int, int | None]) -> bool:
    """Take this note/coin now? Only if it does not exceed what is due, or the change it needs can be paid
    from the coins actually held (decided BEFORE a note is stacked)."""
    remaining = payment.still_due
    return value <= remaining or plan_change(value - remaining, held) is not None
