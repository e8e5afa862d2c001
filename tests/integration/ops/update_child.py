"""`kioskctl update` in a child process that SIGKILLs itself right after a named step (the kill -9 harness
for the updater). Usage: python -m tests.integration.ops.update_child ROOT PUBKEY JOURNAL DEVICE BUNDLE STEP"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from kiosk.ops.update import JournalGate, Layout, Updater


def main(argv: list[str]) -> int:
    root, public_key, journal, device_id, bundle, kill_step = argv

    def on_step(step: str, detail: str) -> None:
        print(step, flush=True)
        if step == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

    Updater(Layout(Path(root)), Path(public_key), gate=JournalGate(Path(journal), device_id), on_step=on_step,
            wait_interval=0.05).update(Path(bundle))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
