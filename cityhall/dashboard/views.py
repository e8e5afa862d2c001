"""What the dashboard shows, derived from ingested journal events (pure functions over rows, plus the
queries that fetch them). Event bodies are the kiosk journal's (kiosk/journal/store.py and the engine):

    money.in        {payment_key, amount, source, ref}         source "qr" = a QR capture, else cash
    money.out       {payment_key, amount, reason, ref}         reason change | refund | cancel_return
    payment.intent  {payment_key, method, amount}              method cash | qr
    issue.outcome   {documents: [{document_id, fee, ...}]}
    print.outcome   {document_id, printed, ...}
    voucher.issued  {amount, voucher_code}
    txn.started / txn.closed {outcome}
    kiosk.state {from, to, reason}, service.off / service.on, device.fault {detail, code},
    device.warning {device, warning}, alarm {code, detail, amount_at_risk}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping

from cityhall.storage import Database, from_db_time
from sync.schemas import MAX_YEN

JST = timezone(timedelta(hours=9), "JST")
SILENT_AFTER = timedelta(minutes=15)
STATUS_KINDS = ("kiosk.state", "service.off", "service.on", "device.fault", "device.warning", "alarm",
                "money.in", "money.out", "payment.intent")
OUT_OF_SERVICE_STATES = {"OUT_OF_SERVICE", "FAILSAFE"}


# Defence in depth: ingest refuses malformed events (sync.schemas), but a page must still render any
# row a database holds (an older city hall stored what it was sent). A value of the wrong type or range
# counts as nothing and shows as-is; it never raises.

def parse_at(text: Any) -> datetime | None:
    """The aware time ``text`` names, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def jst(moment: datetime | str | None) -> str:
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, str):
        try:
            moment = from_db_time(moment)
        except (ValueError, TypeError):
            parsed = parse_at(moment)
            if parsed is None:
                return str(moment)[:40]
            moment = parsed
    try:
        return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, AttributeError):
        return str(moment)[:40]


def yen(value: Any) -> int:
    """An amount as integer yen; anything that is not an integer 0..10^9 counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_YEN else 0


def yen_text(value: Any) -> str:
    """How the ``yen`` template filter shows a value: digits grouped, or the raw value when it is not money."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)[:40]


def _body(row: Mapping[str, Any]) -> dict[str, Any]:
    body = row["body"]
    try:
        value = json.loads(body) if isinstance(body, (str, bytes)) else body
    except (ValueError, RecursionError):
        return {}
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- fleet -------------------------------------------------------------------------------------------


@dataclass
class KioskRow:
    device_id: str
    location: str
    status: str
    last_seen_at: str | None
    last_seq: int
    backlog: int
    oldest_unsent_at: str | None
    software_version: str
    in_service: bool | None
    service_detail: str
    faults_24h: int
    last_fault: str
    paper: str
    cash_in_box: int
    silent: bool


def kiosk_row(device: Mapping[str, Any], head: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]],
              now: datetime) -> KioskRow:
    in_service: bool | None = None
    detail, last_fault, paper = "", "", ""
    faults = 0
    cash_in = cash_out = 0
    methods: dict[str, str] = {}
    day_ago = now - timedelta(hours=24)
    for row in events:
        kind, body = row["kind"], _body(row)
        if kind == "payment.intent":
            methods[str(body.get("payment_key"))] = str(body.get("method", ""))
        elif kind == "kiosk.state":
            in_service = body.get("to") not in OUT_OF_SERVICE_STATES
            detail = str(body.get("reason") or body.get("to") or "")
        elif kind == "service.off":
            in_service, detail = False, str(body.get("reason", ""))
        elif kind == "service.on":
            in_service, detail = True, ""
        elif kind == "device.fault":
            last_fault = f"{body.get('code', '')} {body.get('detail', '')}".strip()
            at = parse_at(row["at"])
            if at is not None and at >= day_ago:
                faults += 1
        elif kind == "device.warning":
            if "printer" in str(body.get("device", "")):
                paper = str(body.get("warning", ""))
        elif kind == "money.in":
            if body.get("source") != "qr" and methods.get(str(body.get("payment_key"))) != "qr":
                cash_in += yen(body.get("amount", 0))
        elif kind == "money.out":
            if methods.get(str(body.get("payment_key"))) != "qr" and ":cancel:" not in str(body.get("ref", "")) \
                    and ":refund:" not in str(body.get("ref", "")):
                cash_out += yen(body.get("amount", 0))
    last_seen = head["last_seen_at"] if head else None
    silent = device["status"] == "active" and (last_seen is None or from_db_time(last_seen) < now - SILENT_AFTER)
    return KioskRow(device["device_id"], device["location"], device["status"], last_seen,
                    int(head["last_seq"]) if head else 0, int(head["backlog"]) if head else 0,
                    head["oldest_unsent_at"] if head else None, head["software_version"] if head else "",
                    in_service, detail, faults, last_fault, paper, cash_in - cash_out, silent)


def fleet(db: Database, now: datetime) -> list[KioskRow]:
    marks = ", ".join("?" for _ in STATUS_KINDS)
    rows = []
    with db.transaction() as tx:
        devices = tx.execute("SELECT device_id, location, status FROM devices ORDER BY device_id")
        heads = {h["device_id"]: h for h in tx.execute("SELECT * FROM journal_heads")}
        for device in devices:
            events = tx.execute(f"SELECT kind, at, body FROM journal_events WHERE device_id = ? AND kind IN ({marks}) "
                                "ORDER BY seq", (device["device_id"], *STATUS_KINDS))
            rows.append(kiosk_row(device, heads.get(device["device_id"]), events, now))
    return rows


# --- reconciliation ----------------------------------------------------------------------------------


@dataclass
class TxnMoney:
    txn_id: str
    device_id: str
    started_at: str = ""
    outcome: str | None = None
    fees_printed: int = 0
    cash_in: int = 0
    qr_in: int = 0
    change: int = 0
    cash_refunds: int = 0
    qr_refunds: int = 0
    vouchers: int = 0
    documents_printed: int = 0
    documents_failed: int = 0

    @property
    def money_in(self) -> int:
        return self.cash_in + self.qr_in

    @property
    def difference(self) -> int:
        """Money in that no printed certificate, change, refund or voucher accounts for (0 when balanced)."""
        return self.money_in - self.fees_printed - self.change - self.cash_refunds - self.qr_refunds - self.vouchers

    @property
    def closed(self) -> bool:
        return self.outcome is not None

    @property
    def mismatch(self) -> bool:
        return self.closed and self.difference != 0


def transaction_money(events: Iterable[Mapping[str, Any]]) -> dict[str, TxnMoney]:
    """Per transaction id, the money and documents its events record (events in sequence order)."""
    txns: dict[str, TxnMoney] = {}
    fees: dict[str, int] = {}
    methods: dict[str, str] = {}
    for row in events:
        txn_id = row["txn_id"]
        if not txn_id:
            continue
        t = txns.setdefault(txn_id, TxnMoney(txn_id, row["device_id"]))
        kind, body = row["kind"], _body(row)
        amount = yen(body.get("amount", 0))
        if kind == "txn.started":
            t.started_at = row["at"] if isinstance(row["at"], str) else ""
        elif kind == "payment.intent":
            methods[str(body.get("payment_key"))] = str(body.get("method", ""))
        elif kind == "issue.outcome":
            for doc in _list(body.get("documents")):
                if isinstance(doc, Mapping):
                    fees[str(doc.get("document_id"))] = yen(doc.get("fee", 0))
        elif kind == "print.outcome":
            if body.get("printed"):
                t.fees_printed += fees.get(str(body.get("document_id")), 0)
                t.documents_printed += 1
            else:
                t.documents_failed += 1
        elif kind == "money.in":
            if body.get("source") == "qr" or methods.get(str(body.get("payment_key"))) == "qr":
                t.qr_in += amount
            else:
                t.cash_in += amount
        elif kind == "money.out":
            qr = methods.get(str(body.get("payment_key"))) == "qr"
            if body.get("reason") == "change":
                t.change += amount
            elif qr:
                t.qr_refunds += amount
            else:
                t.cash_refunds += amount
        elif kind == "voucher.issued":
            t.vouchers += amount
        elif kind == "txn.closed":
            t.outcome = str(body.get("outcome", "closed"))
    return txns


@dataclass
class KioskDay:
    device_id: str
    location: str
    transactions: list[TxnMoney] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(t, name) for t in self.transactions)

    @property
    def mismatches(self) -> list[TxnMoney]:
        return [t for t in self.transactions if t.mismatch]

    @property
    def open(self) -> list[TxnMoney]:
        return [t for t in self.transactions if not t.closed]


def day_bounds(day: date) -> tuple[str, str, str]:
    """UTC text bounds of a JST day as the kiosk writes times, plus the end of the next day (late events)."""
    start = datetime.combine(day, time(0), JST).astimezone(timezone.utc)
    fmt = lambda m: m.isoformat(timespec="microseconds")  # noqa: E731 - same text form as the journal's
    return fmt(start), fmt(start + timedelta(days=1)), fmt(start + timedelta(days=2))


def reconciliation(db: Database, day: date) -> list[KioskDay]:
    start, end, late = day_bounds(day)
    result = []
    with db.transaction() as tx:
        devices = tx.execute("SELECT device_id, location FROM devices ORDER BY device_id")
        for device in devices:
            rows = tx.execute("SELECT device_id, seq, txn_id, kind, at, body FROM journal_events WHERE device_id = ? "
                              "AND txn_id IS NOT NULL AND at >= ? AND at < ? ORDER BY seq",
                              (device["device_id"], start, late))
            txns = [t for t in transaction_money(rows).values() if start <= t.started_at < end]
            if txns:
                result.append(KioskDay(device["device_id"], device["location"], txns))
    return result


def lookup_transaction(db: Database, txn_id: str) -> tuple[list[dict[str, Any]], TxnMoney | None, list[dict[str, Any]]]:
    with db.transaction() as tx:
        rows = tx.execute("SELECT device_id, seq, txn_id, kind, at, body FROM journal_events WHERE txn_id = ? "
                          "ORDER BY device_id, seq", (txn_id,))
        issuances = tx.execute("SELECT issuance_number, cert_type, fee_yen, status, issued_at FROM issuances "
                               "WHERE transaction_id = ? ORDER BY position", (txn_id,))
    money = transaction_money(rows).get(txn_id)
    return [{**r, "body": _body(r)} for r in rows], money, issuances


def silent_devices(rows: list[KioskRow]) -> list[KioskRow]:
    return [r for r in rows if r.silent]


def to_jst_date(moment: datetime) -> date:
    return moment.astimezone(JST).date()


__all__ = ["JST", "KioskRow", "TxnMoney", "KioskDay", "fleet", "reconciliation", "lookup_transaction", "jst"]
