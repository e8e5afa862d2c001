"""Card authentication phase through the real stack (pcsc driver → pcscd → vpcd → virtual card).

Prints, at zero latency and with a contactless model (20 ms per APDU, 300 ms per signature): APDU count,
bytes exchanged and wall time of the kiosk's authentication (read certificate, read tries, verify, sign),
next to OpenSC reading the same certificate from the same virtual card (`pkcs15-tool --read-certificate`),
and the ratio. APDUs are counted from the virtual card's own log, not from the driver.

    .venv/bin/python bench/card.py [--runs N]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.pcsc import shared_pcsc_stack, start_virtual_card  # noqa: E402
from tests.support.services import wait_until  # noqa: E402

CARD_ID = "BENCHCARD00000000001"
MODELS = (("zero latency", 0, 0), ("contactless model (20 ms/APDU, 300 ms/signature)", 20, 300))


def log_entries(path: str) -> list[dict]:
    if not Path(path).exists():  # nothing sent yet
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def exchanged(entries: list[dict]) -> tuple[int, int]:
    apdu_bytes = sum(len(e["apdu"]) // 2 for e in entries)
    return len(entries), apdu_bytes + sum(e.get("rlen", 0) for e in entries)


def kiosk_auth(reader) -> None:
    session = reader.open_session()
    try:
        session.read_auth_certificate()
        session.pin_tries_left()
        session.verify_pin("1234")
        session.sign(b"benchmark challenge from city hall")
    finally:
        session.close()


def opensc_read(reader_index: str) -> None:
    subprocess.run(["pkcs15-tool", "--reader", reader_index, "--read-certificate", "01"], check=True,
                   capture_output=True, timeout=120)


def measure(fn, log_path: str, runs: int) -> tuple[int, int, float]:
    times = []
    counts = (0, 0)
    for _ in range(runs):
        before = len(log_entries(log_path))
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
        counts = exchanged(log_entries(log_path)[before:])
    return counts[0], counts[1], sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per zero-latency figure (median shown)")
    args = parser.parse_args(argv)

    stack = shared_pcsc_stack()
    from drivers.card.pcsc import PcscCardReader, PcscOptions

    card = start_virtual_card(stack, tempfile.mkdtemp(prefix="bench-pki-"),
                              log_dir=tempfile.mkdtemp(prefix="bench-apdu-"), name="bench-card")
    try:
        control = card.control
        control.place(CARD_ID, pin="1234")
        log_path = control.status()["log"]
        reader = PcscCardReader(PcscOptions(reader_pattern=f"^{stack.reader}$"))
        wait_until(reader.card_present, 10, "pcscd to see the virtual card")
        opensc = shutil.which("pkcs15-tool") is not None
        index = "0"
        if opensc:
            listing = subprocess.run(["opensc-tool", "--list-readers"], capture_output=True, text=True, timeout=30).stdout
            index = next((line.split()[0] for line in listing.splitlines() if line.rstrip().endswith(stack.reader)), "0")
        print(f"card authentication phase, {CARD_ID}, pcscd {'private namespace' if stack.isolated else 'shared'}")
        worst_ratio_ok = True
        for label, apdu_ms, sign_ms in MODELS:
            control.set(apdu_latency_ms=apdu_ms, sign_latency_ms=sign_ms)
            runs = args.runs if apdu_ms == 0 else 1
            n, nbytes, secs = measure(lambda: kiosk_auth(reader), log_path, runs)
            print(f"\n[{label}]")
            print(f"  kiosk  (read cert + tries + verify + sign): {n:3d} APDUs  {nbytes:6d} bytes  {secs * 1000:8.1f} ms")
            if opensc:
                on, obytes, osecs = measure(lambda: opensc_read(index), log_path, runs)
                print(f"  OpenSC (read certificate only)            : {on:3d} APDUs  {obytes:6d} bytes  {osecs * 1000:8.1f} ms")
                print(f"  ratio kiosk/OpenSC: APDUs {n / on:.2f}  time {secs / osecs:.2f}")
                budget = on + 4
                ok = n <= budget
                worst_ratio_ok &= ok
                print(f"  budget (OpenSC cert read + 4 for verify/sign): {budget} APDUs -> {'within' if ok else 'OVER'}")
            else:
                print("  OpenSC not installed (Debian package opensc): no comparison")
        control.set(apdu_latency_ms=0, sign_latency_ms=0)
        print(f"\nAPDU budget {'met' if worst_ratio_ok else 'NOT met'}")
    finally:
        card.stop()
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
