"""The fleet page's rows, read from the projection (never from the journal): three queries whatever the
journal's length, so the page costs the same on the first day and after a year.

Each row says, in the catalog's words: the kiosk's state (in service, paused, fault, silent for how
long), each device and the printers' paper, the cash float per denomination with its capacity, today's
certificates by type and takings by method, and the last sync.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cityhall.counter.projection import DEVICE_ROLES, JST
from cityhall.storage import Database, from_db_time

PAPER_ROLES = ("printer", "receipt_printer")
#: Reasons the engine gives for leaving service (the catalog has reason.<key>); anything else is a
#: technician's own words (kioskctl service off --reason) and is shown as written.
KNOWN_REASONS = {
    "maintenance": "maintenance", "journal": "journal", "payment_in_doubt": "payment_in_doubt", "failsafe": "failsafe",
    "device_fault": "device_fault", "fault": "fault", "safe_mode": "safe_mode", "technician": "technician",
    "OUT_OF_SERVICE": "fault", "FAILSAFE": "failsafe"}


def error_message_keys() -> dict[int, str]:
    """Kiosk error code → its catalog key (errors.po has error.<key>.title in every language)."""
    from kiosk import errors

    keys: dict[int, str] = {}
    stack: list[type] = [errors.KioskError]
    while stack:
        cls = stack.pop()
        keys.setdefault(int(cls.code), cls.message_key)
        stack.extend(cls.__subclasses__())
    return keys


@dataclass(frozen=True)
class Denomination:
    yen: int
    count: int
    capacity: int

    @property
    def fill_percent(self) -> int | None:
        return round(100 * self.count / self.capacity) if self.capacity else None


@dataclass
class FleetRow:
    device_id: str
    location: str
    revoked: bool
    state: str  # in_service | paused | fault | silent | unknown
    state_reason: str
    state_since: str | None
    silent_minutes: int | None
    devices: dict[str, dict[str, Any]]
    hopper: list[Denomination]
    stacker: list[Denomination]
    box: list[Denomination]
    box_yen: int
    last_emptied_at: str | None
    certificates: dict[str, dict[str, int]]
    takings: dict[str, int]
    last_seen_at: str | None
    last_stored_at: str | None
    last_seq: int
    backlog: int
    software_version: str
    clock_drift_seconds: int | None
    open_alarms: int = 0
    day: dict[str, int] = field(default_factory=dict)

    @property
    def reason_key(self) -> str | None:
        return KNOWN_REASONS.get(self.state_reason)

    def device(self, role: str) -> dict[str, Any]:
        return self.devices.get(role) or {"status": "unreported"}


def _denominations(part: dict[str, Any]) -> list[Denomination]:
    out = []
    for denom, value in part.items():
        if isinstance(value, dict):
            out.append(Denomination(int(denom), int(value.get("count", 0)), int(value.get("capacity", 0))))
        else:
            out.append(Denomination(int(denom), int(value), 0))
    return sorted(out, key=lambda d: -d.yen)


def fleet_rows(db: Database, now: datetime, silent_after: timedelta) -> list[FleetRow]:
    today = now.astimezone(JST).date().isoformat()
    with db.transaction() as tx:
        rows = tx.execute(
            "SELECT d.device_id, d.location, d.status, h.last_seen_at, h.updated_at, h.last_seq AS head_seq, "
            "h.backlog, h.software_version, p.mode, p.mode_reason, p.mode_since, p.devices, p.cash, "
            "p.last_emptied_at, c.clock_drift_seconds FROM devices d "
            "LEFT JOIN journal_heads h ON h.device_id = d.device_id "
            "LEFT JOIN kiosk_projection p ON p.device_id = d.device_id "
            "LEFT JOIN kiosk_contact c ON c.device_id = d.device_id ORDER BY d.device_id")
        days = {r["device_id"]: r for r in tx.execute("SELECT * FROM kiosk_day_projection WHERE day = ?", (today,))}
        alarms = {r["device_id"]: int(r["n"]) for r in tx.execute(
            "SELECT device_id, COUNT(*) AS n FROM counter_alarms WHERE acknowledged_at IS NULL GROUP BY device_id")}
    result = []
    for r in rows:
        cash = json.loads(r["cash"]) if r["cash"] else {}
        day = days.get(r["device_id"])
        certificates = json.loads(day["certificates"]) if day else {}
        counters = {k: int(day[k]) for k in day if isinstance(day[k], int)} if day else {}
        takings = {"cash": counters.get("cash_in", 0) - counters.get("change_out", 0) - counters.get("refund_cash", 0),
                   "qr": counters.get("qr_in", 0) - counters.get("refund_qr", 0)}
        last_seen = r["last_seen_at"]
        silent_minutes = None
        state = r["mode"] or "unknown"
        if r["status"] == "active" and (last_seen is None or from_db_time(last_seen) < now - silent_after):
            state = "silent"
            if last_seen is not None:
                silent_minutes = int((now - from_db_time(last_seen)).total_seconds() // 60)
        result.append(FleetRow(
            r["device_id"], r["location"], r["status"] != "active", state, r["mode_reason"] or "", r["mode_since"],
            silent_minutes, json.loads(r["devices"]) if r["devices"] else {}, _denominations(cash.get("hopper", {})),
            _denominations(cash.get("stacker", {})),
            _denominations({k: v for k, v in cash.get("box", {}).items() if int(k) < 1000}),
            int(cash.get("box_yen", 0)), r["last_emptied_at"], certificates, takings, last_seen, r["updated_at"],
            int(r["head_seq"] or 0), int(r["backlog"] or 0), r["software_version"] or "", r["clock_drift_seconds"],
            alarms.get(r["device_id"], 0), counters))
    return result


def duration_words(minutes: int | None) -> tuple[int, int] | None:
    """(hours, minutes) for the catalog's "N 時間 M 分" text."""
    if minutes is None:
        return None
    return divmod(minutes, 60)


__all__ = ["FleetRow", "Denomination", "fleet_rows", "error_message_keys", "DEVICE_ROLES", "PAPER_ROLES", "duration_words"]
