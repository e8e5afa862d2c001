"""`kiosk-sim`: run one device emulator. Each emulator lives in its own module with a ``main(argv)``.

    kiosk-sim card ...      virtual My Number card behind pcscd/vpcd
    kiosk-sim cash ...      ccTalk coin acceptor, note validator and hoppers on a pty
    kiosk-sim id003 ...     JCM ID-003 note validator on a pty
    kiosk-sim qr ...        PayPay-style QR payment provider over HTTP
    kiosk-sim escpos ...    ESC/POS receipt printer on TCP
"""
from __future__ import annotations

import importlib
import sys

EMULATORS = {
    "card": ("drivers.sim.jpki_card.cli", "virtual My Number card behind pcscd/vpcd"),
    "cash": ("drivers.sim.cctalk.cli", "ccTalk coin acceptor, note validator and hoppers on a pty"),
    "id003": ("drivers.sim.id003.cli", "JCM ID-003 note validator on a pty"),
    "qr": ("drivers.sim.qr_provider.cli", "PayPay-style QR payment provider over HTTP"),
    "escpos": ("drivers.sim.escpos_printer.cli", "ESC/POS receipt printer on TCP"),
}


def usage() -> str:
    lines = ["usage: kiosk-sim EMULATOR [options]", "", "emulators:"]
    lines += [f"  {name:<8} {what}" for name, (_, what) in EMULATORS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in EMULATORS:
        print(f"kiosk-sim: unknown emulator {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(EMULATORS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
