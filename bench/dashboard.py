"""Fleet page and daily book against a large fleet: 500 kiosks × 30 days of realistic journal events
(tests/support/journal_streams.py), stored and projected exactly as ingest does (journal_events rows +
cityhall.counter.projection.apply_events in one transaction per kiosk-day). After each checkpoint day it
prints the fleet page's p50/p95 (projection query + the real Jinja template in Japanese) and the time to
build the day's 日計 for all kiosks, so the growth with the number of days shows.

    .venv/bin/python bench/dashboard.py [--kiosks 500] [--days 30] [--per-day 6] [--url sqlite:///...]

Target: fleet page p95 < 200 ms and flat in the number of events.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cityhall.counter import daybook  # noqa: E402
from cityhall.counter.fleet import DEVICE_ROLES, PAPER_ROLES, error_message_keys, fleet_rows  # noqa: E402
from cityhall.counter.pages import fleet_page_rows  # noqa: E402
from cityhall.counter.projection import JST, apply_events  # noqa: E402
from cityhall.dashboard import _environment  # noqa: E402
from cityhall.storage import Database, to_db_time  # noqa: E402
from kiosk.i18n import catalog  # noqa: E402
from kiosk.journal.chain import GENESIS_HASH, canonical_json  # noqa: E402
from tests.support.journal_streams import chain_events, episode_events, realistic_day  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiosks", type=int, default=500)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=6, help="episodes (sales, faults, ...) per kiosk and day")
    ap.add_argument("--url", default="")
    ap.add_argument("--loads", type=int, default=40, help="fleet page loads per checkpoint")
    args = ap.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='benchdash-')) / 'ch.sqlite3'}"
    db = Database(url, timeout_seconds=60)
    db.migrate()
    rng = random.Random(15)
    start = datetime(2026, 11, 1, 0, tzinfo=timezone.utc)  # 09:00 JST
    now_stamp = to_db_time(start)
    kiosks = [f"bench-{i:03d}" for i in range(args.kiosks)]
    with db.transaction() as tx:
        for k in kiosks:
            tx.execute("INSERT INTO devices (device_id, public_key, label, location, status, created_at) "
                       "VALUES (?, ?, '', ?, 'active', ?)", (k, "x" * 44, f"庁舎 {k[-3:]}", now_stamp))
    heads = {k: (0, GENESIS_HASH) for k in kiosks}
    env = _environment()
    t = catalog("dashboard", "ja")
    te = catalog("errors", "ja")
    keys = error_message_keys()
    checkpoints = sorted({1, 2, 5, 10, 20, args.days} & set(range(1, args.days + 1)))
    total_events = 0
    print(f"{args.kiosks} kiosks, {args.per_day} episodes per kiosk-day, {db.describe()}")
    print(f"{'days':>4} {'events':>9} {'fleet p50 ms':>12} {'fleet p95 ms':>12} {'daybook ms':>10} {'ingest s':>8}")
    n = 0
    for day_index in range(args.days):
        began = time.perf_counter()
        day_start = start + timedelta(days=day_index)
        for k in kiosks:
            triples = []
            moment = day_start
            for name, cert, copies in realistic_day(rng, args.per_day):
                n += 1
                moment += timedelta(minutes=rng.randint(3, 60))
                for i, (txn, kind, body) in enumerate(episode_events(name, n, f"{k}-{n:07d}", ("juminhyo", "kazei", "hikazei")[cert], copies)):
                    triples.append((txn, kind, body, (moment + timedelta(seconds=i)).isoformat(timespec="microseconds")))
            seq, prev = heads[k]
            events = chain_events(k, triples, seq + 1, prev)
            with db.transaction() as tx:
                params: list = []
                for e in events:
                    params += [e.device_id, e.seq, e.txn_id, e.kind, e.at, canonical_json(dict(e.body)).decode(),
                               e.prev_hash, e.hash, now_stamp]
                for s0 in range(0, len(events), 200):
                    chunk = params[s0 * 9:(s0 + 200) * 9]
                    tx.execute("INSERT INTO journal_events (device_id, seq, txn_id, kind, at, body, prev_hash, hash, "
                               "received_at) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * (len(chunk) // 9)),
                               chunk)
                apply_events(tx, k, events, db.postgres)
                last = events[-1]
                tx.execute("INSERT INTO journal_heads (device_id, last_seq, head_hash, updated_at, last_seen_at) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq, "
                           "head_hash = excluded.head_hash, updated_at = excluded.updated_at, "
                           "last_seen_at = excluded.last_seen_at",
                           (k, last.seq, last.hash, to_db_time(day_start), to_db_time(day_start + timedelta(hours=9))))
            heads[k] = (events[-1].seq, events[-1].hash)
            total_events += len(events)
        ingest_seconds = time.perf_counter() - began
        if day_index + 1 not in checkpoints:
            continue
        now = day_start + timedelta(hours=10)
        timings = []
        for _ in range(args.loads):
            t0 = time.perf_counter()
            rows, pages = fleet_page_rows(fleet_rows(db, now, timedelta(minutes=15)), 1)  # all 500 read, 100 shown
            env.get_template("fleet.html").render(t=t, te=te, error_keys=keys, lang="ja", session=None, request=None,
                                                  prefix="/dashboard", path="/dashboard/", rows=rows, page=1,
                                                  pages=pages, roles=DEVICE_ROLES, paper_roles=PAPER_ROLES)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        t0 = time.perf_counter()
        daybook.build(db, now.astimezone(JST).date(), daybook.ALL)
        book_ms = (time.perf_counter() - t0) * 1000
        print(f"{day_index + 1:>4} {total_events:>9} {statistics.median(timings):>12.1f} {p95:>12.1f} {book_ms:>10.0f} "
              f"{ingest_seconds:>8.1f}", flush=True)
    db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
