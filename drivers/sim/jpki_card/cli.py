"""`kiosk-sim card`: the virtual My Number card behind pcscd/vpcd, and its test PKI.

    kiosk-sim card serve --pki DIR [--vpcd-port 35963] [--control-port 0] [--place CARD_ID]
    kiosk-sim card mint --pki DIR CARD_ID ...      make the TEST CA and these residents' card files
    kiosk-sim card ctl --control-port N COMMAND...  send one control command (e.g. `place ID`, `remove`)
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from drivers.sim.jpki_card.card import parse_sw


def _serve(args: argparse.Namespace) -> int:
    from drivers.sim.jpki_card.simulator import APDU_LOG_ENV, CardSimulator, ControlServer, Settings, execute

    settings = Settings(atr=bytes.fromhex(args.atr), apdu_latency=args.apdu_latency_ms / 1000,
                        sign_latency=args.sign_latency_ms / 1000)
    settings.options.blocked_sw = parse_sw(args.blocked_sw)
    settings.options.locked_status_sw = parse_sw(args.locked_status_sw)
    settings.options.not_jpki = args.not_jpki
    sim = CardSimulator(pki_dir=args.pki, vpcd_host=args.vpcd_host, vpcd_port=args.vpcd_port,
                        log_dir=args.apdu_log_dir or os.environ.get(APDU_LOG_ENV), settings=settings)
    server = ControlServer(sim, args.control_host, args.control_port)
    host, port = server.server_address[:2]
    print(f"virtual card: control on {host}:{port}, reader vpcd at {args.vpcd_host}:{args.vpcd_port}, "
          f"APDU log {sim.log.path or '(off)'}", flush=True)
    if args.place:
        print("virtual card: " + execute(sim, f"place {args.place}" + (f" pin={args.pin}" if args.pin else "")),
              flush=True)
    for fault in args.fault or ():
        print("virtual card: " + execute(sim, f"fault {fault}"), flush=True)

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        sim.shutdown()
        server.server_close()
    return 0


def _mint(args: argparse.Namespace) -> int:
    from drivers.sim.jpki_card.sign_pki import sign_credentials
    from drivers.sim.pki import TestPKI

    pki = TestPKI(args.pki)
    print(f"TEST user-authentication CA: {pki.ca_cert_path}")
    for card_id in args.card_ids:
        creds = pki.card(card_id)
        sign_credentials(args.pki, card_id)
        print(f"{card_id}: auth certificate serial {creds.serial}, {len(creds.cert_der)} bytes DER")
    return 0


def _ctl(args: argparse.Namespace) -> int:
    from drivers.sim.jpki_card.control import CardSimControl, CardSimError

    try:
        print(CardSimControl(args.control_port, args.control_host).command(" ".join(args.words)) or "ok")
    except (OSError, CardSimError) as exc:
        print(f"kiosk-sim card ctl: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk-sim card", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)

    serve = sub.add_parser("serve", help="run the virtual card and its control port")
    serve.add_argument("--pki", required=True, help="test PKI directory (made on first use)")
    serve.add_argument("--vpcd-host", default="127.0.0.1")
    serve.add_argument("--vpcd-port", type=int, default=35963, help="pcscd's vpcd port (reader.conf.d/vpcd)")
    serve.add_argument("--control-host", default="127.0.0.1")
    serve.add_argument("--control-port", type=int, default=0, help="0 picks a free port (printed)")
    serve.add_argument("--apdu-log-dir", help="where to write the APDU log (default $MADOGUCHI_APDU_LOG_DIR)")
    serve.add_argument("--place", metavar="CARD_ID", help="put this card on the reader at start")
    serve.add_argument("--pin", help="PIN of the card placed at start (default 1234)")
    serve.add_argument("--atr", default="3BE000FF8131FE4514", help="ATR in hex")
    serve.add_argument("--blocked-sw", default="6984", help="answer to VERIFY once locked: 6984, 6983 or 63C0")
    serve.add_argument("--locked-status-sw", default="63C0", help="answer to the empty VERIFY once locked")
    serve.add_argument("--not-jpki", action="store_true", help="behave as a card without the JPKI application")
    serve.add_argument("--apdu-latency-ms", type=float, default=0.0)
    serve.add_argument("--sign-latency-ms", type=float, default=0.0)
    serve.add_argument("--fault", action="append", metavar="SPEC",
                       help="arm a fault at start, e.g. 'pull ins=B0 skip=2' or 'corrupt mode=flip'")
    serve.set_defaults(run=_serve)

    mint = sub.add_parser("mint", help="make the TEST CA and per-resident card files")
    mint.add_argument("--pki", required=True)
    mint.add_argument("card_ids", nargs="+", metavar="CARD_ID", help="20-character identifiers")
    mint.set_defaults(run=_mint)

    ctl = sub.add_parser("ctl", help="send one command to a running virtual card")
    ctl.add_argument("--control-host", default="127.0.0.1")
    ctl.add_argument("--control-port", type=int, required=True)
    ctl.add_argument("words", nargs="+")
    ctl.set_defaults(run=_ctl)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
