"""The alarm webhook sender: retries with backoff against a loopback receiver, then the dead-letter list;
the Slack and Teams bodies have the shapes those incoming webhooks take (docs/counter.md)."""
from __future__ import annotations

import shutil
import tempfile
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cityhall.config import CounterSection
from cityhall.counter import alarms
from cityhall.counter.projection import AlarmDraft
from cityhall.counter.webhook import WebhookSender, backoff, message_body
from cityhall.storage import Database, to_db_time

NOW = datetime(2026, 12, 4, 3, tzinfo=timezone.utc)


class Refuser(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_a_message_the_receiver_keeps_refusing_ends_in_the_dead_letter_list():
    folder = Path(tempfile.mkdtemp(prefix="hook-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = Database(f"sqlite:///{folder / 'ch.sqlite3'}")
    try:
        db.migrate()
        settings = CounterSection(webhook_url=f"http://127.0.0.1:{server.server_address[1]}/", webhook_attempts=3,
                                  webhook_backoff_seconds=10, webhook_backoff_cap_seconds=15)
        clock = [NOW.timestamp()]
        sender = WebhookSender(db, settings, lambda: clock[0])
        with db.transaction() as tx:
            tx.execute("INSERT INTO devices (device_id, public_key, status, created_at) VALUES ('k1', 'x', 'active', ?)",
                       (to_db_time(NOW),))
            (alarm_id,) = alarms.store(tx, "k1", [AlarmDraft("money_at_risk", "critical", "k1:x:1", to_db_time(NOW),
                                                             1, 500, {"code": 309, "name": "山田"})], NOW, True)
        assert sender.run_once() == 0 and Refuser.calls == 1
        assert sender.run_once() == 0 and Refuser.calls == 1  # not due yet: the backoff holds it back
        clock[0] += 10
        sender.run_once()
        clock[0] += 15  # 10 × 2 = 20 capped at 15
        sender.run_once()
        assert Refuser.calls == 3
        (dead,) = sender.dead_letters()
        assert dead["alarm_id"] == alarm_id and dead["attempts"] == 3 and "HTTP 500" in dead["last_error"]
        assert sender.requeue(dead["message_id"]) and not sender.dead_letters()
        stored = alarms.AlarmStore(db).get(alarm_id)
        assert stored is not None and "name" not in stored.params  # free text never stored, never sent
    finally:
        server.shutdown()
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_backoff_doubles_up_to_the_cap():
    assert [backoff(n, 5, 30) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


def test_slack_and_teams_bodies():
    alarm = alarms.Alarm("a1", "wako-01", "paper_low", "notice", 0, {"role": "receipt_printer"}, 3, NOW, None, None,
                         None)
    slack = message_body(alarm, "本庁舎 1階", "slack")
    assert set(slack) == {"text"} and "用紙が残りわずか" in slack["text"] and "wako-01" in slack["text"]
    teams = message_body(alarm, "本庁舎 1階", "teams")
    card = teams["attachments"][0]
    assert teams["type"] == "message" and card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["body"][0]["type"] == "TextBlock"
    generic = message_body(alarm, "本庁舎 1階", "generic")
    assert generic["kind"] == "paper_low" and generic["device_id"] == "wako-01"
