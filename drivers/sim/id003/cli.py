"""`kiosk-sim id003`: a JCM ID-003 note validator on a pty (9600 8E1 on a real line)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading

from drivers.sim.cctalk.bus import PtyBus
from drivers.sim.cctalk.control import ControlServer

from .control import Id003SimController
from .device import SimId003Validator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk-sim id003", description=__doc__)
    parser.add_argument("--link", help="also make this symlink to the pty (a stable path for the config)")
    parser.add_argument("--control", help="control socket path (default: in a new temp dir)")
    parser.add_argument("--escrow-timeout", type=float, default=10.0,
                        help="seconds before an escrowed note goes back by itself")
    parser.add_argument("--stacker-capacity", type=int, default=500)
    parser.add_argument("--no-2024", action="store_true", help="firmware without the 2024 note series")
    parser.add_argument("--speed", type=float, default=1.0, help="divide the mechanical times by this")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    device = SimId003Validator(escrow_timeout=args.escrow_timeout, stacker_capacity=args.stacker_capacity,
                               supports_2024=not args.no_2024, accept_time=0.05 / args.speed,
                               stack_time=0.1 / args.speed, return_time=0.1 / args.speed)
    control_path = args.control or os.path.join(tempfile.mkdtemp(prefix="id003-"), "control.sock")
    pty = PtyBus(device, link=args.link).start()  # type: ignore[arg-type]
    control = ControlServer(control_path, Id003SimController(device, pty)).start()  # type: ignore[arg-type]
    print(f"pty: {args.link or pty.path}", flush=True)
    print(f"pty-device: {pty.path}", flush=True)
    print(f"control: {control_path}", flush=True)
    print("ready", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    control.stop()
    pty.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
