"""Defence in depth (issue #19): a malformed row that an older city hall stored must not make every
dashboard page answer 500 — one event ``money.in {amount: "lots"}`` or ``at: "2026-13-45T99:99:99Z"`` did."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from cityhall.dashboard import _environment, views

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
BAD_ROWS = [
    {"device_id": "k1", "seq": 1, "txn_id": "k1-000001", "kind": "txn.started", "at": "2026-13-45T99:99:99Z",
     "body": json.dumps({"state": "IDLE"})},
    {"device_id": "k1", "seq": 2, "txn_id": "k1-000001", "kind": "money.in", "at": "2026-12-04T01:00:00+00:00",
     "body": json.dumps({"payment_key": "pk", "amount": "lots", "source": "coin"})},
    {"device_id": "k1", "seq": 3, "txn_id": "k1-000001", "kind": "issue.outcome", "at": "2026-12-04T01:00:00+00:00",
     "body": json.dumps({"documents": [{"document_id": "d", "fee": "300"}, "not a doc"]})},
    {"device_id": "k1", "seq": 4, "txn_id": "k1-000001", "kind": "device.fault", "at": "not a time",
     "body": "[1, 2]"},
    {"device_id": "k1", "seq": 5, "txn_id": "k1-000001", "kind": "money.out", "at": "2026-12-04T01:00:00+00:00",
     "body": "{broken json"},
]


def test_money_views_count_a_bad_amount_as_nothing() -> None:
    money = views.transaction_money(BAD_ROWS)["k1-000001"]
    assert money.cash_in == 0 and money.fees_printed == 0
    row = views.kiosk_row({"device_id": "k1", "location": "", "status": "active"}, None, BAD_ROWS, NOW)
    assert row.cash_in_box == 0


def test_templates_render_bad_values() -> None:
    env = _environment()
    assert env.from_string("{{ v | jst }}").render(v="2026-13-45T99:99:99Z") == "2026-13-45T99:99:99Z"
    assert env.from_string("{{ v | yen }}").render(v="lots") == "lots"
    assert env.from_string("{{ v | yen }}").render(v=1200) == "1,200"
