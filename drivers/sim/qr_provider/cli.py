"""`kiosk-sim qr`: run the PayPay-style QR provider emulator on loopback until stopped.

    kiosk-sim qr --port 8765 --api-key demo-key --api-secret demo-secret [--auto-approve 3]
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from drivers.sim.qr_provider.server import serve


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kiosk-sim qr", description="PayPay-style QR payment provider emulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (keep it loopback)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0 picks a free one)")
    parser.add_argument("--api-key", default="demo-key", help="API key the kiosk signs with")
    parser.add_argument("--api-secret", default="demo-secret", help="its secret")
    parser.add_argument("--max-skew", type=int, default=120, help="seconds a request's time may be off")
    parser.add_argument("--auto-approve", type=float, metavar="SECONDS", default=None,
                        help="approve every payment this long after its QR code is created (demo)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        server = serve(args.host, args.port, {args.api_key: args.api_secret}, args.max_skew)
    except OSError as exc:
        print(f"kiosk-sim qr: cannot listen on {args.host}:{args.port}: {exc.strerror}; "
              f"pick another --port", file=sys.stderr)
        return 1
    if args.auto_approve is not None:
        server.provider.set_auto("approve", args.auto_approve)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"kiosk-sim qr: listening on http://{host}:{port} (control API under /_control/)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0
