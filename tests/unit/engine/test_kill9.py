"""The kill -9 harness: the engine runs in a child process (tests/support/crash_child.py) that is
SIGKILLed after every journaled step in turn, after every change in the outside world in turn, and
at random moments; a fresh process then starts on the same files and runs recovery. After each
restart: PRAGMA integrity_check is ok, the hash chain is intact, and the invariants hold — every yen
in is matched by a printed certificate, change, a refund or a voucher (in the journal AND in the
world's own records), no VERIFY was sent without its journaled intent (so never twice for one
entry), the card was off the reader whenever a payment started, and no PIN is in the journal.

MADOGUCHI_KILL9_RUNS sets the number of random-point runs (default 200).
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kiosk.journal import Journal
from tests.fakes import GOOD_PIN, World
from tests.support.crash_child import SCENARIOS

ROOT = Path(__file__).resolve().parents[3]
RANDOM_RUNS = int(os.environ.get("MADOGUCHI_KILL9_RUNS", "200"))
STEPWISE_SCENARIOS = ("cash", "qr_voucher", "cash_short_change", "cash_jam")


def child(directory: Path, *args: str, timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.support.crash_child", str(directory), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def run_to_end(directory: Path, *args: str) -> tuple[int, dict[str, object] | None]:
    proc = child(directory, *args)
    out, _ = proc.communicate(timeout=120)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return proc.returncode, (json.loads(last) if last.startswith("{") else None)


def check_after_recovery(directory: Path) -> None:
    rc, summary = run_to_end(directory, "recover")
    assert rc == 0 and summary is not None, f"recovery run failed in {directory}"
    raw = sqlite3.connect(directory / "journal.sqlite3")
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    journal = Journal(directory / "journal.sqlite3", "k-crash-01", readonly=True)
    try:
        journal.verify_chain()
        txns = journal.transactions()
        assert all(t.closed for t in txns), [t for t in txns if not t.closed]
        assert all(t.unmatched_yen == 0 for t in txns), txns
        world = World(directory / "world.json")
        vouchers = sum(t.voucher for t in txns)
        assert world.money_in() == world.fees_in_tray() + world.money_back() + vouchers, (world.data, txns)
        verify_intents = sum(1 for e in journal.events() if e.kind == "card.verify.intent")
        assert len(world.data["verify_calls"]) <= verify_intents
        assert not any(world.data["card_present_at_payment_start"])
        standalone_pin = re.compile(rf"(?<![0-9A-Za-z]){GOOD_PIN}(?![0-9A-Za-z])")  # not inside a random key
        assert not any(standalone_pin.search(json.dumps(e.body)) for e in journal.events())
    finally:
        journal.close()


def counts(scenario: str) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as d:
        rc, summary = run_to_end(Path(d), scenario)
        assert rc == 0 and summary is not None
        return {"commits": int(summary["commits"]), "saves": int(summary["saves"])}  # type: ignore[arg-type]


def kill_at(scenario: str, option: str, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="madoguchi-kill9-") as d:
        rc, _ = run_to_end(Path(d), scenario, option, str(n))
        assert rc == -signal.SIGKILL, f"{scenario} {option} {n}: expected to be killed, exited {rc}"
        check_after_recovery(Path(d))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", STEPWISE_SCENARIOS)
def test_sigkill_after_every_journaled_step_and_world_change(scenario: str) -> None:
    total = counts(scenario)
    jobs = [("--kill-after-commit", n) for n in range(1, total["commits"] + 1)]
    jobs += [("--kill-after-world-save", n) for n in range(1, total["saves"] + 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(kill_at, scenario, option, n) for option, n in jobs]:
            future.result()


def kill_randomly(seed: int) -> None:
    rnd = random.Random(seed)
    scenario = rnd.choice(SCENARIOS)
    with tempfile.TemporaryDirectory(prefix="madoguchi-kill9-") as d:
        proc = child(Path(d), scenario)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rnd.uniform(0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        check_after_recovery(Path(d))


@pytest.mark.slow
def test_sigkill_at_random_moments() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(kill_randomly, seed) for seed in range(RANDOM_RUNS)]:
            future.result()
