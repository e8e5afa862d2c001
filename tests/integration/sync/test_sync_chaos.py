"""Acceptance: 10,000 journal events from a kiosk reach city hall exactly once, in order, with the chain
intact — through a proxy injecting random network faults, while the kiosk keeps writing; and again
with the uploader SIGKILLed in the middle of batches and city hall restarted mid-run. The uploader is
the real `kiosk sync` process; city hall the real `cityhall serve` (SQLite and PostgreSQL)."""
from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TOTAL = 10_000


def assert_city_hall_holds_exactly(hall, kiosk) -> None:
    held = hall.store.events(kiosk.device_id)
    mine = kiosk.events()
    assert len(mine) == TOTAL
    assert [e.seq for e in held] == list(range(1, TOTAL + 1)), "missing, duplicated or reordered events"
    assert [e.to_wire() for e in held] == [e.to_wire() for e in mine]
    assert hall.store.verify_device_chain(kiosk.device_id) == TOTAL
    with hall.db.transaction() as tx:
        row = tx.one("SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d FROM journal_events WHERE device_id = ?",
                     (kiosk.device_id,))
    assert (int(row["n"]), int(row["d"])) == (TOTAL, TOTAL)


def wait_for_drain(hall, kiosk, uploader, timeout: float = 150) -> None:
    def drained() -> bool:
        assert uploader.alive(), f"the uploader died; its log:\n{uploader.tail()}"
        return hall.store.head(kiosk.device_id).last_seq == kiosk.journal.last_seq() == TOTAL

    wait_until(drained, timeout, "city hall to hold the whole journal", interval=0.25)


def test_ten_thousand_events_through_random_network_faults(sync_cityhall, new_kiosk):
    with FaultProxy(("127.0.0.1", sync_cityhall.port)) as proxy:
        proxy.random_faults({"pass": 5, "drop": 1, "reset": 1, "hang": 1, "slow": 1, "cut_response": 2}, seed=11)
        kiosk = new_kiosk(sync_cityhall, url=f"http://127.0.0.1:{proxy.port}")
        kiosk.write_config(batch_max_events=250, request_timeout=1.0)
        kiosk.fill(TOTAL - 3000)
        uploader = kiosk.uploader()
        writer = threading.Thread(target=kiosk.fill, args=(3000,))  # the kiosk keeps journaling meanwhile
        writer.start()
        writer.join(120)
        wait_for_drain(sync_cityhall, kiosk, uploader)
        # The uploader learns it too (through the same faulty network) and says so to kioskctl.
        wait_until(lambda: kiosk.status().get("backlog") == 0 and kiosk.status().get("acked_seq") == TOTAL, 30,
                   "the status file to show an empty backlog")
        counts = dict(proxy.counts)
    assert all(counts.get(fault, 0) > 0 for fault in ("drop", "reset", "hang", "slow", "cut_response")), counts
    assert_city_hall_holds_exactly(sync_cityhall, kiosk)
    assert kiosk.journal.acked_seq() == TOTAL
    uploader.stop()


def test_ten_thousand_events_with_uploader_sigkilled_mid_batch_and_cityhall_restarted(sync_cityhall, new_kiosk):
    with FaultProxy(("127.0.0.1", sync_cityhall.port), slow_chunk=4096, slow_delay=0.01) as proxy:
        proxy.random_faults({"pass": 3, "slow": 3, "cut_response": 1, "reset": 1}, seed=5)
        kiosk = new_kiosk(sync_cityhall, url=f"http://127.0.0.1:{proxy.port}")
        kiosk.write_config(batch_max_events=400, request_timeout=2.0)
        kiosk.fill(TOTAL)
        kills = 0
        uploader = kiosk.uploader()
        for round_number in range(4):
            # Wait until a batch is on the wire (its request started, no answer yet), then kill -9.
            wait_until(lambda: proxy.in_flight > 0, 30, "a batch in flight")
            uploader.signal(signal.SIGKILL)
            assert uploader.proc is not None
            uploader.proc.wait(10)
            kills += 1
            if round_number == 1:
                sync_cityhall.stop(kill=round_number % 2 == 1)  # city hall dies too, between two batches
                time.sleep(0.5)
                sync_cityhall.start()
            uploader = kiosk.uploader()
            time.sleep(0.3)
        held_before_last_run = sync_cityhall.store.head(kiosk.device_id).last_seq
        wait_for_drain(sync_cityhall, kiosk, uploader)
    assert kills == 4 and held_before_last_run < TOTAL
    assert_city_hall_holds_exactly(sync_cityhall, kiosk)
    uploader.stop()
