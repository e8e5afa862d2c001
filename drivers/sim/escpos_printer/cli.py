"""`kiosk-sim escpos`: run the ESC/POS printer emulator in the foreground until SIGTERM / Ctrl-C.

    kiosk-sim escpos --port 9100 --control-port 9101 --out var/receipts
"""
from __future__ import annotations

import argparse
import signal
import threading

from drivers.sim.escpos_printer.server import EscposEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk-sim escpos", description="ESC/POS receipt printer emulator on TCP")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    parser.add_argument("--port", type=int, default=9100, help="printer port (0 picks a free one)")
    parser.add_argument("--control-port", type=int, default=0, help="JSON-lines control port (0 picks a free one)")
    parser.add_argument("--out", default="var/receipts", help="folder for receipt PNGs")
    parser.add_argument("--paper", choices=("ok", "near_end", "end"), default="ok", help="initial paper state")
    args = parser.parse_args(argv)
    emulator = EscposEmulator(args.out, host=args.host, port=args.port, control_port=args.control_port)
    emulator.state.paper = args.paper
    emulator.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"escpos emulator: printer {args.host}:{emulator.port} control {args.host}:{emulator.control_port} "
          f"receipts in {emulator.out_dir}", flush=True)
    while not done.wait(0.5):
        pass
    emulator.stop()
    return 0
