"""Print the QR payment driver's latencies over loopback HTTP against the `kiosk-sim qr` emulator:
start → QR payload (sign, POST /v2/codes, decode) and one poll (GET payment details), as the engine sees
them through the payment port. Figures only, no asserts.

    .venv/bin/python bench/payment_qr.py [--rounds 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from drivers.payment.qr import QrOptions, QrPayment  # noqa: E402
from drivers.sim.qr_provider.control import QrProviderControl  # noqa: E402
from kiosk.config import load_dataclass  # noqa: E402
from tests.support.services import ManagedProcess, free_port  # noqa: E402

KEY, SECRET = "bench-key", "bench-secret"


class CountingLedger:
    def __init__(self) -> None:
        self.ins = 0

    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None:
        self.ins += 1

    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None: ...

    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None: ...


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (f"{name:<28} n={len(ms):<4} median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms   "
            f"max {ms[-1]:6.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    control = QrProviderControl(base_url)
    emulator = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "qr", "--port", str(port),
                               "--api-key", KEY, "--api-secret", SECRET],
                              name="kiosk-sim-qr", log_dir=tempfile.mkdtemp(prefix="qr-bench-"), cwd=str(REPO))
    emulator.start(ready=control.healthy)
    try:
        options = load_dataclass(QrOptions, {"base_url": base_url, "api_key": KEY, "api_secret": SECRET},
                                 "bench", prefix="qr")
        ledger = CountingLedger()
        driver = QrPayment(options, ledger, secret=SECRET)
        starts, polls_pending, polls_paid = [], [], []
        for _ in range(args.rounds):
            key = f"bench-{uuid.uuid4().hex[:16]}"
            t0 = time.perf_counter()
            status = driver.start(key, 300, "bench")
            starts.append(time.perf_counter() - t0)
            if not status.qr_payload:
                raise SystemExit(f"start gave no QR payload: {status}")
            t0 = time.perf_counter()
            driver.poll(key)
            polls_pending.append(time.perf_counter() - t0)
            control.approve(key)
            t0 = time.perf_counter()
            driver.poll(key)
            polls_paid.append(time.perf_counter() - t0)
        driver.close()
        print(f"QR payment over loopback HTTP ({args.rounds} payments, kiosk-sim qr, HMAC-signed requests)")
        print(summary("start -> QR payload", starts))
        print(summary("poll (pending)", polls_pending))
        print(summary("poll (paid, books money_in)", polls_paid))
        print(f"captures booked: {ledger.ins}")
    finally:
        control.close()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
