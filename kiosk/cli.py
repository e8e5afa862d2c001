"""`kiosk`: the appliance's own command.

    kiosk run [--config FILE] [--headless]   run the kiosk (engine + touch UI)
    kiosk demo [--config FILE]               everything emulated on this machine, then the kiosk
    kiosk sync [--config FILE]               the journal uploader (its own process / service)
    kiosk check-config [--config FILE]       validate a config file and every driver section

The config file is --config, else $KIOSK_CONFIG, else config/kiosk.toml. Technicians use `kioskctl`.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from kiosk.errors import KioskError

COMMANDS = {
    "run": ("kiosk.compose.run", "run the kiosk (engine + touch UI)"),
    "demo": ("kiosk.compose.demo", "run everything emulated on this machine, then the kiosk"),
    "sync": ("kiosk.compose.sync", "upload the journal to city hall"),
}


def kiosk_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    check = sub.add_parser("check-config", help="validate a config file and every driver section")
    check.add_argument("--config")
    words = sys.argv[1:] if argv is None else list(argv)
    if words and words[0] in COMMANDS:  # argparse's REMAINDER would drop leading options ("demo --config X")
        args = argparse.Namespace(command=words[0], args=words[1:])
    else:
        args = parser.parse_args(words)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "check-config":
            from kiosk.compose import check_config, load
            config = load(args.config)
            check_config(config)
            print(f"{config.source}: ok (device {config.kiosk.device_id}, data in {config.data_dir})")
            return 0
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.main(args.args) or 0)
    except KioskError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(kiosk_main())
