"""Alarms that reach staff: stored once (unique dedupe key), shown on the dashboard, acknowledged by a
clerk (who, when, note), and queued for the webhook in the same transaction that raises them.

Raised by ingest (from the projection's drafts: money at risk, payout in doubt, unmatched yen, card lock
warnings, device faults, paper low; and clock drift from the batch's ``sent_at``) and by ``sweep`` (a
kiosk silent for longer than the configured minutes). An alarm holds only ids, kinds, amounts and codes:
never a name, address, card number or free text from a resident.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from cityhall.counter.projection import AlarmDraft
from cityhall.storage import Database, Transaction, from_db_time, to_db_time

SEVERITY_ORDER = {"critical": 0, "warning": 1, "notice": 2}
#: Alarm kinds and the severity each is raised with (the catalog has alarm.kind.<kind> for each).
KINDS = ("money_at_risk", "payout_in_doubt", "unmatched_yen", "card_lock", "device_fault", "paper_low", "silent",
         "clock_drift")
#: Parameters an alarm may carry (anything else is dropped before storing: no free text leaves city hall).
ALLOWED_PARAMS = {"role", "code", "level", "txn", "count", "tries_left", "minutes", "seconds"}


@dataclass(frozen=True)
class Alarm:
    alarm_id: str
    device_id: str
    kind: str
    severity: str
    amount_yen: int
    params: dict[str, Any]
    seq: int | None
    raised_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_note: str | None

    @property
    def open(self) -> bool:
        return self.acknowledged_at is None


def _alarm(row: Mapping[str, Any]) -> Alarm:
    return Alarm(row["alarm_id"], row["device_id"], row["kind"], row["severity"], int(row["amount_yen"]),
                 json.loads(row["params"]), row["seq"], from_db_time(row["raised_at"]), row["acknowledged_by"],
                 from_db_time(row["acknowledged_at"]) if row["acknowledged_at"] else None, row["ack_note"])


def store(tx: Transaction, device_id: str, drafts: Iterable[AlarmDraft], now: datetime, webhook: bool) -> list[str]:
    """Insert the drafts not yet stored; queue a webhook message for each new one. Returns new alarm ids."""
    new: list[str] = []
    stamp = to_db_time(now)
    for draft in drafts:
        alarm_id = secrets.token_hex(8)
        params = {k: v for k, v in draft.params.items() if k in ALLOWED_PARAMS}
        tx.execute("INSERT INTO counter_alarms (alarm_id, dedupe_key, device_id, kind, severity, amount_yen, params, "
                   "seq, raised_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                   (alarm_id, draft.dedupe_key, device_id, draft.kind, draft.severity, draft.amount_yen,
                    json.dumps(params, sort_keys=True), draft.seq, stamp))
        if tx.rowcount:
            new.append(alarm_id)
            if webhook:
                tx.execute("INSERT INTO webhook_outbox (message_id, alarm_id, status, attempts, next_attempt_at, "
                           "created_at) VALUES (?, ?, 'pending', 0, ?, ?)", (secrets.token_hex(8), alarm_id, stamp, stamp))
    return new


def clock_drift(tx: Transaction, device_id: str, sent_at: Any, now: datetime, limit_seconds: int,
                webhook: bool) -> None:
    """Record the kiosk's clock offset from the batch's ``sent_at``; alarm (once a day) past the limit."""
    if not isinstance(sent_at, str):
        return
    try:
        sent = datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
    except ValueError:
        return
    if sent.tzinfo is None:
        return
    drift = int((sent - now).total_seconds())
    tx.execute("INSERT INTO kiosk_contact (device_id, clock_drift_seconds) VALUES (?, ?) ON CONFLICT (device_id) "
               "DO UPDATE SET clock_drift_seconds = excluded.clock_drift_seconds", (device_id, drift))
    if abs(drift) > limit_seconds:
        day = now.astimezone(timezone(timedelta(hours=9))).date().isoformat()
        store(tx, device_id, [AlarmDraft("clock_drift", "warning", f"{device_id}:clock_drift:{day}",
                                         to_db_time(now), params={"seconds": drift})], now, webhook)


class AlarmStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, *, open_only: bool = False, limit: int = 300) -> list[Alarm]:
        sql = "SELECT * FROM counter_alarms" + (" WHERE acknowledged_at IS NULL" if open_only else "") + \
              " ORDER BY raised_at DESC, alarm_id LIMIT ?"
        with self.db.transaction() as tx:
            alarms = [_alarm(r) for r in tx.execute(sql, (limit,))]
        return sorted(alarms, key=lambda a: (not a.open, SEVERITY_ORDER.get(a.severity, 9), -a.raised_at.timestamp()))

    def get(self, alarm_id: str) -> Alarm | None:
        with self.db.transaction() as tx:
            row = tx.one("SELECT * FROM counter_alarms WHERE alarm_id = ?", (alarm_id,))
        return _alarm(row) if row else None

    def acknowledge(self, tx: Transaction, alarm_id: str, username: str, note: str, now: datetime) -> bool:
        """True if this call acknowledged it; False if it was already acknowledged (or does not exist)."""
        tx.execute("UPDATE counter_alarms SET acknowledged_by = ?, acknowledged_at = ?, ack_note = ? "
                   "WHERE alarm_id = ? AND acknowledged_at IS NULL", (username, to_db_time(now), note[:500], alarm_id))
        return tx.rowcount == 1

    def sweep_silent(self, now: datetime, silent_after: timedelta, webhook: bool) -> list[str]:
        """Raise a ``silent`` alarm for each active kiosk not heard from for ``silent_after`` (once per silence)."""
        raised: list[str] = []
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT d.device_id, h.last_seen_at, c.silent_alarm_id FROM devices d "
                              "JOIN journal_heads h ON h.device_id = d.device_id "
                              "LEFT JOIN kiosk_contact c ON c.device_id = d.device_id "
                              "WHERE d.status = 'active' AND h.last_seen_at < ?", (to_db_time(now - silent_after),))
            for row in rows:
                minutes = int((now - from_db_time(row["last_seen_at"])).total_seconds() // 60)
                key = f"{row['device_id']}:silent:{row['last_seen_at']}"
                new = store(tx, row["device_id"], [AlarmDraft("silent", "warning", key, to_db_time(now),
                                                              params={"minutes": minutes})], now, webhook)
                if new:
                    tx.execute("INSERT INTO kiosk_contact (device_id, silent_alarm_id) VALUES (?, ?) "
                               "ON CONFLICT (device_id) DO UPDATE SET silent_alarm_id = excluded.silent_alarm_id",
                               (row["device_id"], new[0]))
                    raised += new
        return raised
