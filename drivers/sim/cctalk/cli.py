"""`kiosk-sim cash`: coin acceptor (2), note validator (40) and hoppers (3, 4, ...) on one ccTalk pty."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading

from . import DEFAULT_HOPPERS, PtyBus, build_bus
from .control import CashSimController, ControlServer


def _hopper(text: str) -> tuple[int, int, int]:
    try:
        address, coin, count = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ADDRESS:COIN_YEN:COINS, e.g. 3:100:50, got {text!r}") from None
    return address, coin, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk-sim cash", description=__doc__)
    parser.add_argument("--link", help="also make this symlink to the pty (a stable path for the config)")
    parser.add_argument("--control", help="control socket path (default: in a new temp dir)")
    parser.add_argument("--no-echo", action="store_true", help="do not loop the host's bytes back")
    parser.add_argument("--crc", action="store_true", help="devices use the CRC-16 checksum variant")
    parser.add_argument("--no-notes", action="store_true", help="no note validator on the bus")
    parser.add_argument("--hopper", action="append", type=_hopper, metavar="ADDR:YEN:COINS",
                        help=f"a hopper (repeatable; default {' '.join(':'.join(map(str, h)) for h in DEFAULT_HOPPERS)})")
    parser.add_argument("--seconds-per-coin", type=float, default=0.05, help="hopper payout speed")
    parser.add_argument("--escrow-timeout", type=float, default=10.0, help="seconds before an escrowed note "
                        "goes back by itself")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    bus = build_bus(echo=not args.no_echo, crc=args.crc, notes=not args.no_notes,
                    hoppers=tuple(args.hopper or DEFAULT_HOPPERS), seconds_per_coin=args.seconds_per_coin,
                    escrow_timeout=args.escrow_timeout)
    control_path = args.control or os.path.join(tempfile.mkdtemp(prefix="cctalk-"), "control.sock")
    pty = PtyBus(bus, link=args.link).start()
    control = ControlServer(control_path, CashSimController(bus, pty)).start()
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
