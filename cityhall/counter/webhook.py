"""The background webhook sender: posts each alarm's message from ``webhook_outbox`` to the configured
incoming webhook, retrying with exponential backoff; after ``webhook_attempts`` failed tries the message
is dead (the dashboard's alarm page lists the dead letters, and a clerk can queue one again).

Bodies (docs/counter.md has the sources):

    generic  {"source": "madoguchi", "alarm_id", "kind", "severity", "device_id", "raised_at",
              "amount_yen", "params", "text"}
    slack    {"text": ...}                                       Slack incoming webhook
    teams    {"type": "message", "attachments": [Adaptive Card]}  Teams Workflows "when a webhook
                                                                   request is received"

A message carries the kiosk id, the alarm kind, an amount and codes — never a resident's data (the
alarm holds none; ``message_body`` builds only from the alarm's fields, and a test checks it).
The same loop raises the ``silent`` alarms (a kiosk not heard from for too long).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import requests

from cityhall.config import CounterSection
from cityhall.counter.alarms import Alarm, AlarmStore
from cityhall.counter.projection import JST
from cityhall.storage import Database, StorageError, from_db_time, to_db_time
from kiosk.i18n import catalog

log = logging.getLogger("cityhall.counter.webhook")


def alarm_text(alarm: Alarm, location: str, lang: str = "ja") -> str:
    t = catalog("dashboard", lang)
    what = t("alarm.kind." + alarm.kind)
    amount = t("alarm.amount", yen=f"{alarm.amount_yen:,}") if alarm.amount_yen else ""
    when = alarm.raised_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return " ".join(p for p in (f"[{t('alarm.severity.' + alarm.severity)}]", what, amount,
                                f"{alarm.device_id} {location}".strip(), when) if p)


def message_body(alarm: Alarm, location: str, fmt: str) -> dict[str, Any]:
    text = alarm_text(alarm, location)
    if fmt == "slack":
        return {"text": text}
    if fmt == "teams":
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                        "version": "1.4", "body": [{"type": "TextBlock", "text": text, "wrap": True}]}}]}
    return {"source": "madoguchi", "alarm_id": alarm.alarm_id, "kind": alarm.kind, "severity": alarm.severity,
            "device_id": alarm.device_id, "location": location, "raised_at": to_db_time(alarm.raised_at),
            "amount_yen": alarm.amount_yen, "params": alarm.params, "text": text}


def backoff(attempts: int, base: float, cap: float) -> float:
    return min(cap, base * (2 ** max(0, attempts - 1)))


class WebhookSender:
    """One daemon thread; ``run_once`` is the loop's body (tests may call it directly)."""

    def __init__(self, db: Database, settings: CounterSection, clock: Callable[[], float]) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.alarms = AlarmStore(db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.session = requests.Session()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="counter-webhook", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except StorageError as exc:  # the database is away: try again next round, say so once per round
                log.warning("alarm sender: the database is unavailable (%s); retrying", exc)
            except Exception:  # the loop must outlive any one bad message; the traceback says which
                log.exception("alarm sender: unexpected error; it keeps running")
            self._stop.wait(self.settings.sweep_interval_seconds)

    def run_once(self) -> int:
        """Raise silent alarms, then send what is due; returns messages sent."""
        now = self.now()
        self.alarms.sweep_silent(now, timedelta(minutes=self.settings.silent_after_minutes),
                                 self.settings.webhook_enabled)
        if not self.settings.webhook_enabled:
            return 0
        with self.db.transaction() as tx:
            due = tx.execute("SELECT o.message_id, o.attempts, o.alarm_id, d.location FROM webhook_outbox o "
                             "JOIN counter_alarms a ON a.alarm_id = o.alarm_id "
                             "LEFT JOIN devices d ON d.device_id = a.device_id "
                             "WHERE o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.next_attempt_at "
                             "LIMIT 50", (to_db_time(now),))
        sent = 0
        for message in due:
            alarm = self.alarms.get(message["alarm_id"])
            if alarm is None:
                continue
            error = self._post(message_body(alarm, message["location"] or "", self.settings.webhook_format))
            sent += self._record(message["message_id"], int(message["attempts"]) + 1, error)
        return sent

    def _post(self, body: dict[str, Any]) -> str:
        try:
            answer = self.session.post(self.settings.webhook_url, json=body,
                                       timeout=self.settings.webhook_timeout_seconds)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= answer.status_code < 300:
            return ""
        return f"HTTP {answer.status_code}: {answer.text[:200]}"

    def _record(self, message_id: str, attempts: int, error: str) -> int:
        now = self.now()
        s = self.settings
        with self.db.transaction() as tx:
            if not error:
                tx.execute("UPDATE webhook_outbox SET status = 'sent', attempts = ?, done_at = ?, last_error = '' "
                           "WHERE message_id = ?", (attempts, to_db_time(now), message_id))
                return 1
            if attempts >= s.webhook_attempts:
                log.error("alarm message %s is dead after %d tries (last: %s); the alarms page lists it",
                          message_id, attempts, error)
                tx.execute("UPDATE webhook_outbox SET status = 'dead', attempts = ?, done_at = ?, last_error = ? "
                           "WHERE message_id = ?", (attempts, to_db_time(now), error, message_id))
                return 0
            delay = backoff(attempts, s.webhook_backoff_seconds, s.webhook_backoff_cap_seconds)
            log.warning("alarm message %s: try %d failed (%s); next in %.1f s", message_id, attempts, error, delay)
            tx.execute("UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? "
                       "WHERE message_id = ?", (attempts, to_db_time(now + timedelta(seconds=delay)), error, message_id))
        return 0

    def dead_letters(self) -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT o.*, a.kind, a.device_id FROM webhook_outbox o JOIN counter_alarms a "
                              "ON a.alarm_id = o.alarm_id WHERE o.status = 'dead' ORDER BY o.done_at DESC LIMIT 100")
        return [{**r, "done_at": from_db_time(r["done_at"]) if r["done_at"] else None} for r in rows]

    def requeue(self, message_id: str) -> bool:
        with self.db.transaction() as tx:
            tx.execute("UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, done_at = NULL "
                       "WHERE message_id = ? AND status = 'dead'", (to_db_time(self.now()), message_id))
            return tx.rowcount == 1
