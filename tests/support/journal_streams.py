"""Realistic kiosk journal streams, as the engine and the payment drivers write them, for the counter's
projection test (Hypothesis picks the episodes) and bench/dashboard.py (a seeded random picks them).

An episode is one thing that happens at a kiosk: a cash or QR sale with change, a failed print refunded,
a voucher, a fault and recovery, paper low, service off/on, a refill, an emptying, a float snapshot.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Sequence

from kiosk.journal.chain import GENESIS_HASH, Event, event_hash

EPISODES = ("cash_sale", "cash_sale_change", "qr_sale", "print_failed_refund", "voucher", "fault_recovery",
            "paper_low", "service_pause", "refill", "emptied", "float_snapshot", "pin_warning", "alarm")
CERT_TYPES = ("juminhyo", "kazei", "hikazei")


def episode_events(name: str, n: int, txn: str, cert: str = "juminhyo", copies: int = 1) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(txn_id, kind, body) triples for one episode; ``n`` makes its keys unique."""
    fee = 300 * copies
    key = f"pk-{n}"
    t: list[tuple[str | None, str, dict[str, Any]]] = []

    def sale(method: str, paid: int, printed: bool) -> None:
        t.append((txn, "txn.started", {"state": "CARD_READING", "language": "ja"}))
        t.append((txn, "payment.intent", {"payment_key": key, "method": method, "amount": fee}))
        if method == "qr":
            t.append((txn, "money.in", {"payment_key": key, "amount": fee, "source": "qr",
                                        "ref": f"{key}:capture:q{n}"}))
        else:
            left = paid
            for coin in (1000, 500, 100):
                while left >= coin:
                    source = f"note {coin}" if coin >= 1000 else f"coin {coin}"
                    t.append((txn, "money.in", {"payment_key": key, "amount": coin, "source": source, "ref": ""}))
                    left -= coin
        docs = [{"document_id": f"{txn}-d{i}", "issuance_number": f"11229-{n:06d}-{i}", "cert_type": cert,
                 "fee": 300, "sha256": "ab" * 32} for i in range(copies)]
        t.append((txn, "issue.outcome", {"documents": docs}))
        for doc in docs:
            t.append((txn, "print.outcome", {"document_id": doc["document_id"], "printed": printed}))
        owed = (paid if method != "qr" else fee) - (fee if printed else 0)
        if method != "qr" and paid > fee and printed:
            for coin in (500, 100, 50, 10):
                while owed >= coin:
                    t.append((txn, "money.out", {"payment_key": key, "amount": coin, "reason": "change", "ref": ""}))
                    owed -= coin
        elif not printed:
            if method == "qr":
                t.append((txn, "money.out", {"payment_key": key, "amount": fee, "reason": "refund",
                                             "ref": f"{key}:refund:r{n}"}))
            else:
                t.append((txn, "money.out", {"payment_key": key, "amount": paid, "reason": "refund", "ref": ""}))
        t.append((txn, "receipt.intent", {}))
        t.append((txn, "receipt.outcome", {"printed": True}))
        t.append((txn, "txn.closed", {"outcome": "completed" if printed else "refunded"}))

    if name == "cash_sale":
        sale("cash", fee, True)
    elif name == "cash_sale_change":
        sale("cash", 1000 if fee < 1000 else fee + 500, True)
    elif name == "qr_sale":
        sale("qr", fee, True)
    elif name == "print_failed_refund":
        sale("cash", fee, False)
    elif name == "voucher":
        t.append((txn, "txn.started", {"state": "CARD_READING", "language": "ja"}))
        t.append((txn, "payment.intent", {"payment_key": key, "method": "cash", "amount": 300}))
        t.append((txn, "money.in", {"payment_key": key, "amount": 500, "source": "coin 500", "ref": ""}))
        t.append((txn, "alarm", {"payment_key": key, "code": 309, "detail": "500 yen could not be given back",
                                 "amount_at_risk": 500}))
        t.append((txn, "voucher.issued", {"amount": 500, "voucher_code": f"V{n}"}))
        t.append((txn, "txn.closed", {"outcome": "voucher"}))
    elif name == "fault_recovery":
        t.append((None, "device.fault", {"detail": "A4 printer: cover open", "code": 404}))
        t.append((None, "kiosk.state", {"from": "IDLE", "to": "OUT_OF_SERVICE", "reason": "device_fault"}))
        t.append((None, "kiosk.state", {"from": "OUT_OF_SERVICE", "to": "IDLE", "reason": "healthy again"}))
    elif name == "paper_low":
        t.append((None, "device.warning", {"device": "receipt_printer", "warning": "paper_near_end"}))
    elif name == "service_pause":
        t.append((None, "service.off", {"reason": "maintenance"}))
        t.append((None, "kiosk.state", {"from": "IDLE", "to": "OUT_OF_SERVICE", "reason": "maintenance"}))
        t.append((None, "service.on", {}))
        t.append((None, "kiosk.state", {"from": "OUT_OF_SERVICE", "to": "IDLE", "reason": "service on"}))
    elif name == "refill":
        t.append((None, "cash.refill", {"added": {"100": 100, "10": 50}}))
    elif name == "emptied":
        t.append((None, "cash.emptied", {"counted": {"1000": 2, "100": 3}, "counted_yen": 2300, "expected_yen": 2300,
                                         "difference_yen": 0}))
    elif name == "float_snapshot":
        t.append((None, "cash.float", {"hoppers": [{"coin_yen": 100, "coins": 80, "capacity": 500},
                                                   {"coin_yen": 10, "coins": 200, "capacity": 1000}],
                                       "stacker": [{"note_yen": 1000, "notes": 4, "capacity": 300}]}))
    elif name == "pin_warning":
        t.append((txn, "txn.started", {"state": "CARD_READING", "language": "ja"}))
        t.append((txn, "card.verify.outcome", {"ok": False, "tries_left": 1}))
        t.append((txn, "txn.closed", {"outcome": "cancelled"}))
    elif name == "alarm":
        t.append((None, "alarm", {"payment_key": "idle", "code": 304, "detail": "hopper empty", "amount_at_risk": 0}))
    else:
        raise ValueError(f"unknown episode {name}")
    return t


def chain_events(device_id: str, triples: Sequence[tuple[str | None, str, dict[str, Any], str]],
                 first_seq: int = 1, prev_hash: str = GENESIS_HASH) -> list[Event]:
    """Hash-chained journal events from (txn_id, kind, body, at)."""
    events: list[Event] = []
    for seq, (txn, kind, body, at) in enumerate(triples, start=first_seq):
        fields = {"device_id": device_id, "seq": seq, "txn_id": txn, "kind": kind, "at": at, "body": body,
                  "prev_hash": prev_hash}
        prev_hash = event_hash(fields)
        events.append(Event(**fields, hash=prev_hash))
    return events


def stream(device_id: str, episodes: Sequence[tuple[str, int, int]], start: datetime,
           spacing: timedelta = timedelta(minutes=7)) -> list[tuple[str | None, str, dict[str, Any], str]]:
    """Episodes (name, cert index, copies) one after another from ``start``, one second between events."""
    out: list[tuple[str | None, str, dict[str, Any], str]] = [
        (None, "kiosk.state", {"from": "BOOT", "to": "IDLE", "reason": "start"},
         start.isoformat(timespec="microseconds"))]
    moment = start
    for n, (name, cert, copies) in enumerate(episodes, start=1):
        moment += spacing
        txn = f"{device_id}-{n:06d}"
        for i, (txn_id, kind, body) in enumerate(episode_events(name, n, txn, CERT_TYPES[cert % 3], copies)):
            out.append((txn_id, kind, body, (moment + timedelta(seconds=i)).isoformat(timespec="microseconds")))
    return out


def realistic_day(rng: random.Random, per_day: int) -> Iterator[tuple[str, int, int]]:
    """A day's episodes: mostly sales, now and then the rest."""
    weights = {"cash_sale": 30, "cash_sale_change": 25, "qr_sale": 25, "print_failed_refund": 2, "voucher": 1,
               "fault_recovery": 1, "paper_low": 2, "service_pause": 1, "refill": 1, "emptied": 1,
               "float_snapshot": 4, "pin_warning": 3, "alarm": 1}
    names = list(weights)
    for _ in range(per_day):
        yield rng.choices(names, [weights[n] for n in names])[0], rng.randrange(3), rng.choice((1, 1, 1, 2))


def utc(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=timezone.utc)
