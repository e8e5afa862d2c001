"""The counter's projection: kept by ingest in the same transaction as the events, and recomputed from
the journal by ``rebuild`` — both must give the same rows however the events were split into batches."""
from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityhall.counter import projection
from cityhall.devices import DeviceStore
from cityhall.ingest import JournalStore
from cityhall.storage import Database
from sync.device_key import public_key_text
from sync.wire import build_batch, encode_batch
from tests.support.journal_streams import EPISODES, chain_events, stream, utc

NOW = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)


def _world() -> tuple[Database, JournalStore, Path]:
    folder = Path(tempfile.mkdtemp(prefix="proj-"))
    db = Database(f"sqlite:///{folder / 'ch.sqlite3'}")
    db.migrate()
    return db, JournalStore(db), folder


def _ingest(store: JournalStore, device, key, events, cuts: list[int]) -> None:  # noqa: ANN001
    bounds = sorted({0, len(events), *[c % (len(events) + 1) for c in cuts]})
    for start, end in zip(bounds, bounds[1:]):
        if end > start:
            store.ingest(device, encode_batch(build_batch(events[start:end], key, {"sent_at": NOW.isoformat()})), NOW)


episodes = st.lists(st.tuples(st.sampled_from(EPISODES), st.integers(0, 2), st.integers(1, 3)), min_size=1,
                    max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episodes=episodes, cuts=st.lists(st.integers(0, 400), max_size=6),
       spacing=st.integers(1, 400))
def test_rebuild_from_the_journal_equals_the_projection_kept_by_ingest(episodes, cuts, spacing):
    db, store, folder = _world()
    try:
        key = Ed25519PrivateKey.generate()
        device = DeviceStore(db).add("kiosk-a", public_key_text(key), NOW)
        # spacing in minutes: large values spread the stream over several JST days
        events = chain_events("kiosk-a", stream("kiosk-a", episodes, utc(2026, 12, 1, 13),
                                                timedelta(minutes=spacing)))
        _ingest(store, device, key, events, cuts)
        incremental = projection.snapshot(db)
        assert incremental["kiosk_projection"][0]["last_seq"] == len(events)
        projection.rebuild(db)
        assert projection.snapshot(db) == incremental
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_day_rows_count_certificates_takings_change_and_the_emptying():
    db, store, folder = _world()
    try:
        key = Ed25519PrivateKey.generate()
        device = DeviceStore(db).add("kiosk-b", public_key_text(key), NOW)
        # 2026-12-01 00:00 UTC is 09:00 JST on the 1st
        events = chain_events("kiosk-b", stream("kiosk-b", [("cash_sale_change", 0, 1), ("qr_sale", 1, 2),
                                                            ("print_failed_refund", 2, 1), ("emptied", 0, 1),
                                                            ("voucher", 0, 1)], utc(2026, 12, 1)))
        _ingest(store, device, key, events, [7, 19])
        rows = projection.snapshot(db)
        (day,) = rows["kiosk_day_projection"]
        assert day["day"] == "2026-12-01"
        assert day["transactions"] == 4
        assert day["cash_in"] == 1000 + 300 + 500 and day["qr_in"] == 600
        assert day["change_out"] == 700 and day["refund_cash"] == 300
        assert day["vouchers_issued"] == 1 and day["vouchers_issued_yen"] == 500
        assert day["emptyings"] == 1 and day["emptied_counted"] == 2300
        assert day["unmatched_yen"] == 0
        import json

        assert json.loads(day["certificates"]) == {"juminhyo": {"count": 1, "yen": 300},
                                                   "kazei": {"count": 2, "yen": 600}}
        kiosk = rows["kiosk_projection"][0]
        cash = json.loads(kiosk["cash"])
        assert cash["box_yen"] == 500  # only the voucher sale's coin since the emptying
        assert kiosk["mode"] == "in_service"
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_an_unbalanced_transaction_and_a_fault_raise_alarms_once():
    db, store, folder = _world()
    try:
        key = Ed25519PrivateKey.generate()
        device = DeviceStore(db).add("kiosk-c", public_key_text(key), NOW)
        triples = stream("kiosk-c", [("fault_recovery", 0, 1)], utc(2026, 12, 1))
        at = triples[-1][3]
        triples += [("t1", "txn.started", {"state": "CARD_READING", "language": "ja"}, at),
                    ("t1", "money.in", {"payment_key": "k", "amount": 300, "source": "coin 100", "ref": ""}, at),
                    ("t1", "txn.closed", {"outcome": "completed"}, at)]
        events = chain_events("kiosk-c", triples)
        _ingest(store, device, key, events, [])
        _ingest(store, device, key, events, [])  # an identical re-send raises nothing new
        with db.transaction() as tx:
            kinds = sorted(r["kind"] for r in tx.execute("SELECT kind FROM counter_alarms"))
            day = tx.one("SELECT unmatched_yen FROM kiosk_day_projection")
        assert kinds == ["device_fault", "unmatched_yen"]
        assert day["unmatched_yen"] == 300
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_fleet_page_lists_kiosks_that_need_someone_first_one_page_at_a_time():
    from types import SimpleNamespace

    from cityhall.counter.pages import FLEET_PAGE_ROWS, fleet_page_rows

    rows = [SimpleNamespace(device_id=f"k{i:03d}", state="in_service", open_alarms=0) for i in range(250)]
    rows[200].state, rows[7].open_alarms = "silent", 2
    first, pages = fleet_page_rows(rows, 1)
    assert pages == 3 and len(first) == FLEET_PAGE_ROWS
    assert [r.device_id for r in first[:2]] == ["k007", "k200"]
    last, _ = fleet_page_rows(rows, 99)  # past the end: the last page
    assert len(last) == 50
