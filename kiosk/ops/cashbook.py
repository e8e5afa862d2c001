"""Cash levels as the journal knows them, and the technician's refills and emptyings as journal events.

The devices cannot count what they hold (a hopper reports at most "low"), so the levels are kept as a
book: coins put into a hopper (``cash.refill``) minus coins it paid out (cash ``money.out`` events),
and the cash box's takings (cash ``money.in``) since it was last emptied (``cash.emptied``, with the
amount the technician counted, so a difference shows up at city hall's reconciliation). A payout event
names an amount, not a hopper: it is split over the hoppers largest coin first, as the cash driver pays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from kiosk.journal import Event, Journal

REFILL = "cash.refill"
EMPTIED = "cash.emptied"
HOPPER_COINS = (10, 50, 100, 500)


@dataclass
class CashLevels:
    hoppers: dict[int, int] = field(default_factory=dict)  # coin yen -> coins believed inside
    cashbox_yen: int = 0  # taken since the last emptying
    cashbox_coins_yen: int = 0
    cashbox_notes_yen: int = 0
    last_refill_at: str | None = None
    last_emptied_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"hoppers": [{"coin_yen": c, "coins": n, "yen": c * n} for c, n in sorted(self.hoppers.items())],
                "hopper_total_yen": sum(c * n for c, n in self.hoppers.items()),
                "cashbox_yen": self.cashbox_yen, "cashbox_coins_yen": self.cashbox_coins_yen,
                "cashbox_notes_yen": self.cashbox_notes_yen, "last_refill_at": self.last_refill_at,
                "last_emptied_at": self.last_emptied_at}


def hopper_coins_of(cash_options: Mapping[str, Any] | None) -> tuple[int, ...]:
    hoppers = (cash_options or {}).get("hoppers", ())
    return tuple(sorted({int(h["coin_yen"]) for h in hoppers}, reverse=True))


def _is_cash_in(event: Event) -> bool:
    source = str(event.body.get("source", ""))
    return event.kind == "money.in" and (source.startswith("coin") or source.startswith("note"))


def _is_cash_out(event: Event) -> bool:
    # Cash payouts carry no provider reference; QR captures, cancels and refunds always do.
    return event.kind == "money.out" and not event.body.get("ref")


def levels_from(events: Iterable[Event], hopper_coins: tuple[int, ...]) -> CashLevels:
    levels = CashLevels(hoppers={c: 0 for c in hopper_coins})
    for event in events:
        if event.kind == REFILL:
            coin = int(event.body["coin_yen"])
            levels.hoppers[coin] = levels.hoppers.get(coin, 0) + int(event.body["coins"])
            levels.last_refill_at = event.at
        elif event.kind == EMPTIED:
            levels.cashbox_yen = levels.cashbox_coins_yen = levels.cashbox_notes_yen = 0
            levels.last_emptied_at = event.at
        elif _is_cash_in(event):
            amount = int(event.body["amount"])
            levels.cashbox_yen += amount
            if str(event.body.get("source", "")).startswith("note"):
                levels.cashbox_notes_yen += amount
            else:
                levels.cashbox_coins_yen += amount
        elif _is_cash_out(event):
            remaining = int(event.body["amount"])
            for coin in sorted(levels.hoppers, reverse=True):
                n = remaining // coin
                levels.hoppers[coin] -= n
                remaining -= n * coin
    return levels


def read_levels(journal: Journal, cash_options: Mapping[str, Any] | None) -> CashLevels:
    return levels_from(journal.events(), hopper_coins_of(cash_options))


def record_refill(journal: Journal, coin_yen: int, coins: int, cash_options: Mapping[str, Any] | None) -> Event:
    fitted = hopper_coins_of(cash_options)
    if coin_yen not in fitted:
        raise ValueError(f"no hopper pays {coin_yen}-yen coins on this kiosk (hoppers: "
                         f"{', '.join(f'{c} yen' for c in fitted) or 'none'})")
    if coins <= 0 or coins > 5000:
        raise ValueError(f"a refill adds 1 to 5000 coins, not {coins}")
    return journal.append(REFILL, {"coin_yen": coin_yen, "coins": coins})


def record_emptied(journal: Journal, counted_yen: int) -> Event:
    if counted_yen < 0:
        raise ValueError("the counted amount is a non-negative number of yen")
    expected = read_levels(journal, None).cashbox_yen
    return journal.append(EMPTIED, {"counted_yen": counted_yen, "expected_yen": expected,
                                    "difference_yen": counted_yen - expected})
