"""Cash polling cost and coin-to-engine latency, printed (no asserts).

Runs `kiosk-sim cash` in its own process on a pty and the production CashPayment (owner thread,
pyserial) in this one, then prints:
  - the CPU share this process spends while the owner thread polls idle at the configured interval;
  - the latency from a coin entering the emulator to CashPayment.poll() showing it.

    .venv/bin/python bench/payment.py [--interval 0.1] [--seconds 5] [--coins 20]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from drivers.payment.cash import CashOptions, CashPayment  # noqa: E402
from drivers.sim.cctalk import CashSimClient  # noqa: E402


class NullLedger:
    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None: ...

    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None: ...

    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None: ...


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=CashOptions().poll_interval, help="poll interval, s")
    parser.add_argument("--seconds", type=float, default=5.0, help="idle measurement length")
    parser.add_argument("--coins", type=int, default=20, help="coins for the latency measurement")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="cashbench-")
    tty, control = os.path.join(workdir, "tty"), os.path.join(workdir, "control.sock")
    emulator = subprocess.Popen([sys.executable, "-m", "drivers.sim.cli", "cash", "--link", tty, "--control", control,
                                 "--seconds-per-coin", "0.005"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    cash = None
    try:
        deadline = time.monotonic() + 15
        while not (os.path.exists(control) and os.path.islink(tty)):
            if time.monotonic() > deadline or emulator.poll() is not None:
                print("emulator did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
        cash = CashPayment(CashOptions(port=tty, poll_interval=args.interval), NullLedger())
        if not cash.wait_ready(10):
            print(f"cash devices not ready: {cash.available()}", file=sys.stderr)
            return 1
        sim = CashSimClient(control)

        polls0, cpu0, wall0 = cash.polls, time.process_time(), time.monotonic()
        time.sleep(args.seconds)
        cpu, wall, polls = time.process_time() - cpu0, time.monotonic() - wall0, cash.polls - polls0
        print(f"poll interval             {args.interval * 1000:.0f} ms (serial on a pty, echo on)")
        print(f"event polls               {polls} in {wall:.1f} s ({polls / wall:.1f}/s)")
        print(f"CPU share of polling      {100 * cpu / wall:.2f} % of one core "
              f"({1000 * cpu / max(polls, 1):.2f} ms CPU per poll)")

        latencies = []
        # 100-yen coins, so that cancelling gives them all back from the 100-yen hopper
        cash.start("bench", 100 * args.coins + 10, "bench")
        for _ in range(args.coins):
            time.sleep(random.uniform(0, args.interval))  # land anywhere in the poll cycle
            before = cash.poll("bench").amount_in
            t0 = time.monotonic()
            sim.insert_coin(100)
            while cash.poll("bench").amount_in == before:
                if time.monotonic() - t0 > 5:
                    print("a coin was not seen within 5 s", file=sys.stderr)
                    return 1
                time.sleep(0.0005)
            latencies.append(time.monotonic() - t0)
        cash.cancel("bench")
        ms = sorted(1000 * x for x in latencies)
        print(f"coin → poll() latency     median {statistics.median(ms):.1f} ms, "
              f"p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} coins")
        sim.close()
        return 0
    finally:
        if cash is not None:
            cash.close()
        emulator.terminate()
        emulator.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
