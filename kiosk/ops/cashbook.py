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
            for coin, coins in refill_counts(event.body).items():
                levels.hoppers[coin] = levels.hoppers.get(coin, 0) + coins
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


def refill_counts(body: Mapping[str, Any]) -> dict[int, int]:
    """Coins added per denomination, from either refill body: {coin_yen, coins} or {added: {yen: coins}}."""
    if isinstance(body.get("added"), Mapping):
        return {int(coin): int(n) for coin, n in body["added"].items()}
    return {int(body["coin_yen"]): int(body["coins"])}


def record_refill(journal: Journal, coin_yen: int, coins: int, cash_options: Mapping[str, Any] | None) -> Event:
    return record_refills(journal, {coin_yen: coins}, cash_options)


def record_refills(journal: Journal, added: Mapping[int, int], cash_options: Mapping[str, Any] | None) -> Event:
    """One journal event for the coins put into the hoppers, per denomination (city hall's fleet page
    adds them to the float)."""
    fitted = hopper_coins_of(cash_options)
    if not added:
        raise ValueError("say which coins were added, e.g. --add 100=50")
    for coin_yen, coins in added.items():
        if coin_yen not in fitted:
            raise ValueError(f"no hopper pays {coin_yen}-yen coins on this kiosk (hoppers: "
                             f"{', '.join(f'{c} yen' for c in fitted) or 'none'})")
        if coins <= 0 or coins > 5000:
            raise ValueError(f"a refill adds 1 to 5000 coins, not {coins}")
    body: dict[str, Any] = {"added": {str(c): n for c, n in sorted(added.items())}}
    if len(added) == 1:
        ((coin_yen, coins),) = added.items()
        body.update(coin_yen=coin_yen, coins=coins)
    return journal.append(REFILL, body)


DENOMINATIONS = (10000, 5000, 2000, 1000, 500, 100, 50, 10, 5, 1)


def record_emptied(journal: Journal, counted_yen: int | None = None,
                   counted: Mapping[int, int] | None = None) -> Event:
    """The cash box emptied: what the technician counted (a total, or pieces per denomination), against
    what the book expected; city hall's daily book shows the difference."""
    if counted is not None:
        for denomination, pieces in counted.items():
            if denomination not in DENOMINATIONS:
                raise ValueError(f"{denomination} yen is not a Japanese coin or note")
            if pieces < 0:
                raise ValueError(f"a count of {denomination}-yen pieces is not negative ({pieces})")
        total = sum(d * n for d, n in counted.items())
        if counted_yen is not None and counted_yen != total:
            raise ValueError(f"the pieces counted add up to {total} yen, not the {counted_yen} yen given")
        counted_yen = total
    if counted_yen is None or counted_yen < 0:
        raise ValueError("the counted amount is a non-negative number of yen")
    expected = read_levels(journal, None).cashbox_yen
    body: dict[str, Any] = {"counted_yen": counted_yen, "expected_yen": expected,
                            "difference_yen": counted_yen - expected}
    if counted is not None:
        body["counted"] = {str(d): n for d, n in sorted(counted.items(), reverse=True) if n}
    return journal.append(EMPTIED, body)
