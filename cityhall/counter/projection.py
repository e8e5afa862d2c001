"""The counter's projection of the kiosks' journals: one row per kiosk (state, devices, cash float) and
one per kiosk and JST day (certificates, takings, refunds, vouchers, emptying), kept by ingest in the
same database transaction that stores the events, so the fleet page and the daily book never re-read
the journal. ``rebuild`` recomputes everything from ``journal_events`` with the same ``apply_events``;
a test checks that both give the same rows, however the events were split into batches.

Event bodies read (the kiosk journal's; see cityhall/dashboard/views.py for the money ones):

    kiosk.state {to, reason}, service.off {reason}, service.on, kiosk.safe_mode    the kiosk's mode
    device.fault {code, detail[, device]}, device.warning {device, warning}          devices, paper
    device.status {device, status[, paper]}                                          a device's own report
    money.in {payment_key, amount, source "coin 100" | "note 1000" | "qr"}, money.out {amount, reason},
    payment.intent {payment_key, method}, issue.outcome {documents}, print.outcome {document_id, printed}
    voucher.issued {amount}, txn.started, txn.closed, alarm {code, amount_at_risk}, recovery.done {in_doubt}
    cash.refill {coin_yen, coins} or {added: {denomination: count}}                  coins put in hoppers
    cash.emptied {counted_yen, expected_yen[, counted: {denomination: count}]}      the cash box emptied
    any event whose body has ``hoppers`` / ``stacker`` (a float snapshot, e.g. from the payment driver):
        a list of {coin_yen|note_yen|denomination, coins|notes|count, capacity} or {denomination: count}

Why a generic float: the payment driver's own snapshots replace the book-kept counts when they come.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from cityhall.storage import Database, Transaction
from kiosk.journal.chain import Event

JST = timezone(timedelta(hours=9), "JST")
OUT_OF_SERVICE_STATES = {"OUT_OF_SERVICE", "FAILSAFE"}
DEVICE_ROLES = ("card_reader", "printer", "receipt_printer", "coin_mech", "note_validator", "hoppers")
#: Names a kiosk uses for a device in its events → the fleet page's role.
ROLE_ALIASES = {"card": "card_reader", "reader": "card_reader", "card_reader": "card_reader",
                "printer": "printer", "document_printer": "printer", "a4": "printer",
                "receipt": "receipt_printer", "receipt_printer": "receipt_printer",
                "coin": "coin_mech", "coin_acceptor": "coin_mech", "coin_mech": "coin_mech",
                "note": "note_validator", "note_validator": "note_validator", "bill_validator": "note_validator",
                "hopper": "hoppers", "hoppers": "hoppers"}
DAY_COUNTERS = ("transactions", "cash_in", "qr_in", "change_out", "refund_cash", "refund_qr", "vouchers_issued",
                "vouchers_issued_yen", "unmatched_yen", "emptyings", "emptied_counted", "emptied_expected",
                "refilled_yen")
PAPER_OUT_WORDS = ("paper_out", "paper_empty", "no_paper")


def jst_day(at: str) -> str:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(JST).date().isoformat()


def role_of_fault(code: int, detail: str, named: str | None) -> str:
    if named and named in ROLE_ALIASES:
        return ROLE_ALIASES[named]
    text = detail.lower()
    if 200 <= code < 300:
        return "card_reader"
    if code == 410 or "receipt" in text:
        return "receipt_printer"
    if 400 <= code < 500:
        return "printer"
    if code == 304 or "hopper" in text:
        return "hoppers"
    if "note" in text or "bill" in text or "紙幣" in detail:
        return "note_validator"
    if 300 <= code < 400:
        return "coin_mech"
    return "card_reader" if "card" in text else "other"


@dataclass
class AlarmDraft:
    """An alarm found while projecting; cityhall.counter.alarms stores it (once, by dedupe key)."""

    kind: str
    severity: str
    dedupe_key: str
    at: str
    seq: int | None = None
    amount_yen: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class KioskState:
    device_id: str
    last_seq: int = 0
    mode: str = "unknown"  # in_service | paused | fault | unknown
    mode_reason: str = ""
    mode_since: str | None = None
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    cash: dict[str, Any] = field(default_factory=lambda: {"hopper": {}, "stacker": {}, "box": {}, "box_yen": 0})
    last_event_at: str | None = None
    last_emptied_at: str | None = None
    last_refill_at: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (self.device_id, self.last_seq, self.mode, self.mode_reason, self.mode_since,
                json.dumps(self.devices, sort_keys=True), json.dumps(self.cash, sort_keys=True), self.last_event_at,
                self.last_emptied_at, self.last_refill_at)


@dataclass
class KioskDayFigures:
    device_id: str
    day: str
    certificates: dict[str, dict[str, int]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {name: 0 for name in DAY_COUNTERS})

    def add(self, name: str, amount: int) -> None:
        self.counters[name] += amount


KIOSK_COLUMNS = ("device_id", "last_seq", "mode", "mode_reason", "mode_since", "devices", "cash", "last_event_at",
                 "last_emptied_at", "last_refill_at")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _denomination_counts(value: Any, count_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """A float snapshot part → {denomination: {"count", "capacity"}} (both shapes the docstring names)."""
    result: dict[str, dict[str, int]] = {}
    if isinstance(value, Mapping):
        for denom, item in value.items():
            if isinstance(item, Mapping):
                result[str(denom)] = {"count": _int(item.get("count")), "capacity": _int(item.get("capacity"))}
            else:
                result[str(denom)] = {"count": _int(item), "capacity": 0}
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, Mapping):
                continue
            denom = next((item[k] for k in ("coin_yen", "note_yen", "denomination", "yen") if k in item), None)
            count = next((item[k] for k in count_names if k in item), 0)
            if isinstance(denom, int):
                slot = result.setdefault(str(denom), {"count": 0, "capacity": 0})
                slot["count"] += _int(count)
                slot["capacity"] += _int(item.get("capacity"))
    return result


class Projector:
    """Applies events to one kiosk's state and day rows, loading what it needs from the transaction."""

    def __init__(self, tx: Transaction, device_id: str, postgres: bool) -> None:
        self.tx = tx
        self.device_id = device_id
        self.postgres = postgres
        row = tx.one("SELECT * FROM kiosk_projection WHERE device_id = ?" + (" FOR UPDATE" if postgres else ""),
                     (device_id,))
        self.state = KioskState(device_id)
        if row is not None:
            self.state = KioskState(device_id, int(row["last_seq"]), row["mode"], row["mode_reason"], row["mode_since"],
                                    json.loads(row["devices"]), json.loads(row["cash"]), row["last_event_at"],
                                    row["last_emptied_at"], row["last_refill_at"])
        self.days: dict[str, KioskDayFigures] = {}
        self.context: dict[str, Any] = {}
        self.dirty_context: set[str] = set()
        self.alarms: list[AlarmDraft] = []

    # --- loading and saving ----------------------------------------------------------------------------

    def day(self, day: str) -> KioskDayFigures:
        if day not in self.days:
            row = self.tx.one("SELECT * FROM kiosk_day_projection WHERE device_id = ? AND day = ?",
                              (self.device_id, day))
            figures = KioskDayFigures(self.device_id, day)
            if row is not None:
                figures.certificates = json.loads(row["certificates"])
                figures.counters = {name: int(row[name]) for name in DAY_COUNTERS}
            self.days[day] = figures
        return self.days[day]

    def preload_context(self, keys: Iterable[str]) -> None:
        wanted = sorted(set(keys) - set(self.context))
        for start in range(0, len(wanted), 200):
            chunk = wanted[start:start + 200]
            rows = self.tx.execute("SELECT ctx_key, value FROM projection_context WHERE device_id = ? AND ctx_key IN ("
                                   + ", ".join("?" * len(chunk)) + ")", (self.device_id, *chunk))
            for row in rows:
                self.context[row["ctx_key"]] = json.loads(row["value"])

    def get(self, key: str) -> Any:
        if key not in self.context:
            self.preload_context([key])
        return self.context.get(key)

    def put(self, key: str, value: Any) -> None:
        self.context[key] = value
        self.dirty_context.add(key)

    def save(self) -> None:
        marks = ", ".join("?" * len(KIOSK_COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in KIOSK_COLUMNS[1:])
        self.tx.execute(f"INSERT INTO kiosk_projection ({', '.join(KIOSK_COLUMNS)}) VALUES ({marks}) "
                        f"ON CONFLICT (device_id) DO UPDATE SET {updates}", self.state.row())
        for figures in self.days.values():
            columns = ("device_id", "day", "certificates", *DAY_COUNTERS)
            values = (self.device_id, figures.day, json.dumps(figures.certificates, sort_keys=True),
                      *(figures.counters[name] for name in DAY_COUNTERS))
            self.tx.execute(f"INSERT INTO kiosk_day_projection ({', '.join(columns)}) VALUES "
                            f"({', '.join('?' * len(columns))}) ON CONFLICT (device_id, day) DO UPDATE SET "
                            + ", ".join(f"{c} = excluded.{c}" for c in columns[2:]), values)
        for key in sorted(self.dirty_context):
            self.tx.execute("INSERT INTO projection_context (device_id, ctx_key, value) VALUES (?, ?, ?) "
                            "ON CONFLICT (device_id, ctx_key) DO UPDATE SET value = excluded.value",
                            (self.device_id, key, json.dumps(self.context[key], sort_keys=True)))

    # --- the events ------------------------------------------------------------------------------------

    def apply(self, events: Sequence[Event]) -> list[AlarmDraft]:
        keys: set[str] = set()
        for e in events:
            if e.txn_id:
                keys.add("txn:" + e.txn_id)
            if "payment_key" in e.body:
                keys.add("pay:" + str(e.body["payment_key"]))
            if e.kind == "print.outcome":
                keys.add("doc:" + str(e.body.get("document_id")))
        self.preload_context(keys | {"service_off"})
        for event in events:
            if event.seq <= self.state.last_seq:
                continue
            self._one(event)
            self.state.last_seq = event.seq
            self.state.last_event_at = event.at
        self.save()
        return self.alarms

    def _set_mode(self, mode: str, reason: str, at: str) -> None:
        if mode != self.state.mode or reason != self.state.mode_reason:
            self.state.mode_since = at if mode != self.state.mode else self.state.mode_since
            self.state.mode, self.state.mode_reason = mode, reason

    def _device(self, role: str, at: str, **values: Any) -> dict[str, Any]:
        slot = self.state.devices.setdefault(role, {"status": "ok"})
        slot.update(values, at=at)
        return slot

    def _txn_money(self, txn_id: str | None, name: str, amount: int) -> None:
        if not txn_id:
            return
        money = self.get("txn:" + txn_id) or {}
        money[name] = money.get(name, 0) + amount
        self.put("txn:" + txn_id, money)

    def _alarm(self, kind: str, severity: str, event: Event, amount: int = 0, **params: Any) -> None:
        self.alarms.append(AlarmDraft(kind, severity, f"{self.device_id}:{kind}:{event.seq}", event.at, event.seq,
                                      amount, params))

    def _one(self, e: Event) -> None:  # noqa: C901 - one branch per event kind, read top to bottom
        body, kind = e.body, e.kind
        day = self.day(jst_day(e.at))
        if "hoppers" in body or "stacker" in body:
            self._float_snapshot(body)
        if kind == "kiosk.state":
            target = str(body.get("to", ""))
            if self.get("service_off"):
                self._set_mode("paused", str(self.get("service_off")), e.at)
            elif target in OUT_OF_SERVICE_STATES:
                self._set_mode("fault", str(body.get("reason") or target), e.at)
            else:
                self._set_mode("in_service", "", e.at)
                if body.get("reason") == "healthy again":
                    for slot in self.state.devices.values():
                        if slot.get("status") == "fault":
                            slot.update(status="ok", code=None, at=e.at)
        elif kind == "service.off":
            self.put("service_off", str(body.get("reason") or "technician"))
            self._set_mode("paused", str(body.get("reason") or ""), e.at)
        elif kind == "service.on":
            self.put("service_off", None)
            self._set_mode("in_service", "", e.at)
        elif kind == "kiosk.safe_mode":
            self._set_mode("fault", "safe_mode", e.at)
        elif kind == "device.fault":
            code = _int(body.get("code"))
            role = role_of_fault(code, str(body.get("detail", "")), body.get("device"))
            slot = self._device(role, e.at, status="fault", code=code)
            if code == 401:
                slot["paper"] = "out"
            self._alarm("device_fault", "warning", e, role=role, code=code)
        elif kind == "device.warning":
            role = ROLE_ALIASES.get(str(body.get("device", "")), "printer")
            warning = str(body.get("warning", ""))
            if "paper" in warning:
                level = "out" if warning in PAPER_OUT_WORDS else "low"
                self._device(role, e.at, paper=level)
                if e.txn_id:
                    self.put("warned:" + e.txn_id, True)
                self._alarm("paper_low", "notice", e, role=role, level=level)
        elif kind == "device.status":
            role = ROLE_ALIASES.get(str(body.get("device", "")), "other")
            status = str(body.get("status", "ok"))
            values: dict[str, Any] = {"status": status if status in ("ok", "warning", "fault") else "warning"}
            if body.get("paper") in ("ok", "low", "out"):
                values["paper"] = body["paper"]
            self._device(role, e.at, **values)
        elif kind == "receipt.outcome" and body.get("printed") and e.txn_id and not self.get("warned:" + e.txn_id):
            if self.state.devices.get("receipt_printer", {}).get("paper") == "low":
                self._device("receipt_printer", e.at, paper="ok")
        elif kind == "print.outcome" and body.get("printed"):
            doc = self.get("doc:" + str(body.get("document_id"))) or {}
            cert = day.certificates.setdefault(str(doc.get("cert_type", "unknown")), {"count": 0, "yen": 0})
            cert["count"] += 1
            cert["yen"] += _int(doc.get("fee"))
            self._txn_money(e.txn_id, "fees", _int(doc.get("fee")))
            slot = self.state.devices.get("printer")
            if slot and slot.get("paper") == "out":
                slot["paper"] = "ok"
        elif kind == "issue.outcome":
            for doc in body.get("documents", []) or []:
                if isinstance(doc, Mapping):
                    self.put("doc:" + str(doc.get("document_id")), {"cert_type": str(doc.get("cert_type", "unknown")),
                                                                    "fee": _int(doc.get("fee"))})
        elif kind == "payment.intent":
            self.put("pay:" + str(body.get("payment_key")), str(body.get("method", "")))
        elif kind == "txn.started":
            day.add("transactions", 1)
            self.put("txn:" + (e.txn_id or ""), {"day": day.day})
        elif kind == "money.in":
            self._money_in(e, day)
        elif kind == "money.out":
            self._money_out(e, day)
        elif kind == "voucher.issued":
            day.add("vouchers_issued", 1)
            day.add("vouchers_issued_yen", _int(body.get("amount")))
            self._txn_money(e.txn_id, "vouchers", _int(body.get("amount")))
        elif kind == "txn.closed" and e.txn_id:
            money = self.get("txn:" + e.txn_id) or {}
            unmatched = money.get("in", 0) - money.get("fees", 0) - money.get("change", 0) - money.get("refunds", 0) \
                - money.get("vouchers", 0)
            if unmatched:
                self.day(str(money.get("day") or day.day)).add("unmatched_yen", unmatched)
                self._alarm("unmatched_yen", "critical", e, unmatched, txn=e.txn_id)
        elif kind == "alarm":
            amount = _int(body.get("amount_at_risk"))
            self._alarm("money_at_risk", "critical" if amount else "warning", e, amount, code=_int(body.get("code")))
        elif kind == "recovery.done" and body.get("in_doubt"):
            self._alarm("payout_in_doubt", "critical", e, count=len(body["in_doubt"]))
        elif kind == "card.verify.outcome" and not body.get("ok") and isinstance(body.get("tries_left"), int) \
                and body["tries_left"] <= 1:
            self._alarm("card_lock", "notice", e, tries_left=body["tries_left"])
        elif kind == "cash.refill":
            self._refill(e, day)
        elif kind == "cash.emptied":
            self._emptied(e, day)

    def _is_qr(self, body: Mapping[str, Any]) -> bool:
        return body.get("source") == "qr" or self.get("pay:" + str(body.get("payment_key"))) == "qr"

    def _money_in(self, e: Event, day: KioskDayFigures) -> None:
        amount = _int(e.body.get("amount"))
        self._txn_money(e.txn_id, "in", amount)
        if self._is_qr(e.body):
            day.add("qr_in", amount)
            return
        day.add("cash_in", amount)
        parts = str(e.body.get("source", "")).split()
        denom = parts[1] if len(parts) > 1 and parts[1].isdigit() else str(amount)
        box = self.state.cash.setdefault("box", {})
        box[denom] = box.get(denom, 0) + 1
        self.state.cash["box_yen"] = self.state.cash.get("box_yen", 0) + amount
        if parts and parts[0] == "note":
            stacker = self.state.cash.setdefault("stacker", {})
            slot = stacker.setdefault(denom, {"count": 0, "capacity": 0})
            slot["count"] += 1

    def _money_out(self, e: Event, day: KioskDayFigures) -> None:
        amount = _int(e.body.get("amount"))
        qr = self._is_qr(e.body)
        if e.body.get("reason") == "change":
            day.add("change_out", amount)
            self._txn_money(e.txn_id, "change", amount)
        else:
            day.add("refund_qr" if qr else "refund_cash", amount)
            self._txn_money(e.txn_id, "refunds", amount)
        if qr:
            return
        remaining = amount
        hopper = self.state.cash.setdefault("hopper", {})
        for denom in sorted(hopper, key=int, reverse=True):
            n = min(remaining // int(denom), max(hopper[denom]["count"], 0))
            hopper[denom]["count"] -= n
            remaining -= n * int(denom)
        if remaining:
            self.state.cash["paid_unassigned_yen"] = self.state.cash.get("paid_unassigned_yen", 0) + remaining

    def _refill(self, e: Event, day: KioskDayFigures) -> None:
        added = e.body.get("added")
        if not isinstance(added, Mapping):
            added = {str(e.body.get("coin_yen")): e.body.get("coins")}
        hopper = self.state.cash.setdefault("hopper", {})
        for denom, count in added.items():
            if not str(denom).isdigit():
                continue
            slot = hopper.setdefault(str(denom), {"count": 0, "capacity": 0})
            slot["count"] += _int(count)
            day.add("refilled_yen", int(denom) * _int(count))
        self.state.last_refill_at = e.at

    def _emptied(self, e: Event, day: KioskDayFigures) -> None:
        expected = e.body.get("expected_yen")
        day.add("emptyings", 1)
        day.add("emptied_counted", _int(e.body.get("counted_yen")))
        day.add("emptied_expected", _int(expected) if isinstance(expected, int) else self.state.cash.get("box_yen", 0))
        self.state.cash["box"] = {}
        self.state.cash["box_yen"] = 0
        for slot in self.state.cash.get("stacker", {}).values():
            slot["count"] = 0
        self.state.last_emptied_at = e.at

    def _float_snapshot(self, body: Mapping[str, Any]) -> None:
        if "hoppers" in body:
            self.state.cash["hopper"] = _denomination_counts(body["hoppers"], ("coins", "count"))
        if "stacker" in body:
            self.state.cash["stacker"] = _denomination_counts(body["stacker"], ("notes", "count"))


def apply_events(tx: Transaction, device_id: str, events: Sequence[Event], postgres: bool) -> list[AlarmDraft]:
    """Project ``events`` (in sequence order, one device) inside the caller's transaction."""
    if not events:
        return []
    return Projector(tx, device_id, postgres).apply(events)


PROJECTION_TABLES = ("kiosk_projection", "kiosk_day_projection", "projection_context")


def _event(row: Mapping[str, Any]) -> Event:
    return Event(device_id=row["device_id"], seq=int(row["seq"]), txn_id=row["txn_id"], kind=row["kind"],
                 at=row["at"], body=json.loads(row["body"]), prev_hash="", hash="")


def rebuild(db: Database, page: int = 5000) -> dict[str, int]:
    """Recompute the projection of every device from its stored journal; returns events read per device.

    Each device is rebuilt in one transaction that holds its journal head, so ingest waits for it."""
    with db.transaction() as tx:
        device_ids = [r["device_id"] for r in tx.execute("SELECT device_id FROM journal_heads ORDER BY device_id")]
    counts: dict[str, int] = {}
    for device_id in device_ids:
        with db.transaction() as tx:
            tx.execute("SELECT last_seq FROM journal_heads WHERE device_id = ?" + (" FOR UPDATE" if db.postgres else ""),
                       (device_id,))
            for table in PROJECTION_TABLES:
                tx.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,))
            after, count = 0, 0
            while True:
                rows = tx.execute("SELECT device_id, seq, txn_id, kind, at, body FROM journal_events "
                                  "WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?", (device_id, after, page))
                if not rows:
                    break
                events = [_event(r) for r in rows]
                apply_events(tx, device_id, events, db.postgres)
                after, count = events[-1].seq, count + len(events)
            counts[device_id] = count
    return counts


def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every projection row, ordered — what the rebuild test compares."""
    order = {"kiosk_projection": "device_id", "kiosk_day_projection": "device_id, day",
             "projection_context": "device_id, ctx_key"}
    with db.transaction() as tx:
        return {table: tx.execute(f"SELECT * FROM {table} ORDER BY {order[table]}") for table in PROJECTION_TABLES}
