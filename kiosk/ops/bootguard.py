"""The release switch and update state, in the standard library only, plus the pre-start guard systemd
runs before every kiosk start (``ExecStartPre=+/usr/bin/python3 /opt/madoguchi/bin/madoguchi-bootguard``).

It must work even when the release it guards cannot import anything, so this file imports nothing of
the project; `kioskctl update` copies it to ``<root>/bin/madoguchi-bootguard`` at every update.

update-state.json (written to a temp file, fsynced, renamed, directory fsynced)::

    {"committed": "2026.10.0", "previous": "2026.09.1", "pending": null, "attempts": 0, "bad": []}

While an update is unconfirmed, ``pending`` names the release ``current`` points to. Each start counts
an attempt; after MAX_ATTEMPTS starts without the updater's commit, ``current`` goes back to
``previous`` and the pending release is marked bad — so a power cut or a killed `kioskctl update` can
never leave the kiosk on a release that does not come up.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

MAX_ATTEMPTS = 2
STATE_FILE = "update-state.json"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def empty_state() -> dict[str, Any]:
    return {"committed": None, "previous": None, "pending": None, "attempts": 0, "bad": []}


def load_state(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        return empty_state()
    except (OSError, ValueError):
        # A damaged state file must not stop the kiosk: fall back to what `current` says.
        return {**empty_state(), "committed": current_version(root)}
    return {**empty_state(), **data}


def save_state(root: Path, state: dict[str, Any]) -> None:
    write_atomically(root / STATE_FILE, json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")


def current_version(root: Path) -> str | None:
    try:
        target = os.readlink(root / "current")
    except OSError:
        return None
    return Path(target).name


def switch_current(root: Path, version: str) -> None:
    """Point ``current`` at releases/<version> by rename (never unlink + symlink: no window without one)."""
    if not (root / "releases" / version).is_dir():
        raise FileNotFoundError(f"release {version} is not installed in {root / 'releases'}")
    tmp = root / "current.new"
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(f"releases/{version}", tmp)
    os.replace(tmp, root / "current")
    fsync_dir(root)


def guard(root: Path, log: Any = None) -> str:
    """Count a start of a pending release; revert after too many. Returns what was decided."""
    say = log or (lambda text: print(f"madoguchi-bootguard: {text}", file=sys.stderr))
    state = load_state(root)
    current = current_version(root)
    pending = state.get("pending")
    if not pending or pending != current:
        return "nothing pending"
    state["attempts"] = int(state.get("attempts") or 0) + 1
    if state["attempts"] <= MAX_ATTEMPTS:
        save_state(root, state)
        say(f"release {pending} is on trial: start {state['attempts']} of {MAX_ATTEMPTS}")
        return f"trial {state['attempts']}"
    previous = state.get("previous")
    if previous and (root / "releases" / previous).is_dir():
        switch_current(root, previous)
        state.update(committed=previous, pending=None, attempts=0,
                     bad=sorted(set(state.get("bad") or []) | {pending}))
        save_state(root, state)
        say(f"release {pending} did not come up after {MAX_ATTEMPTS} starts: went back to {previous}")
        return f"reverted to {previous}"
    say(f"release {pending} keeps failing and there is no previous release to go back to")
    return "no previous release"


def give_up_pending(root: Path) -> str | None:
    """The kiosk hit its start limit (systemd OnFailure=): revert a pending release now. Returns the
    version gone back to, or None when nothing was pending."""
    state = load_state(root)
    pending, previous = state.get("pending"), state.get("previous")
    if not pending or pending != current_version(root) or not previous or not (root / "releases" / previous).is_dir():
        return None
    switch_current(root, previous)
    state.update(committed=previous, pending=None, attempts=0, bad=sorted(set(state.get("bad") or []) | {pending}))
    save_state(root, state)
    return previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madoguchi-bootguard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/opt/madoguchi", help="install root (holds releases/ and current)")
    parser.add_argument("--on-failure", action="store_true",
                        help="run from the out-of-service unit: revert a pending release and start the kiosk again")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        if not args.on_failure:
            guard(root)
            return 0
        reverted = give_up_pending(root)
        if reverted is None:
            print("madoguchi-bootguard: the kiosk failed and no update is pending: it stays out of service; "
                  "see `journalctl -u kiosk.service` and `kioskctl status`", file=sys.stderr)
            return 0
        print(f"madoguchi-bootguard: the pending release failed; went back to {reverted} and restart the kiosk",
              file=sys.stderr)
        import subprocess
        for argv_ in (["systemctl", "reset-failed", "kiosk.service"], ["systemctl", "start", "--no-block", "kiosk.service"]):
            subprocess.run(argv_, timeout=30, check=False)
    except OSError as exc:  # never block the start on the guard itself
        print(f"madoguchi-bootguard: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
