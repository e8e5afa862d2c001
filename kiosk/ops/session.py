"""The kiosk's Wayland session: ``python -m kiosk.ops.session --config FILE`` becomes
``cage -d [-r ...] -- python -m kiosk.cli run --config FILE`` (kiosk.service's ExecStart).

cage is a single-application Wayland compositor: it shows one fullscreen program and ends when that
program ends, so a crash of the kiosk ends the session and systemd restarts it (kiosk.service
Restart=). Kivy's SDL2 window reaches cage through XWayland (cage starts it; DISPLAY is set for its
child). The rotation from ``[kiosk] screen_rotation`` is cage's ``-r`` (90° clockwise per flag):
the compositor turns the picture and the touch coordinates together, so the app needs no rotation of
its own and taps land where they are drawn.

The touch panel reaches Kivy through exactly one input provider (screens/environment.configure_kivy):
on a Pi the panel is seen both by mtdev and by hidinput, and with both enabled every tap counts twice.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys


def cage_argv(rotation: int, config_path: str, python: str = sys.executable) -> list[str]:
    """The argv the session execs: cage, its flags, then the kiosk."""
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"screen_rotation must be 0, 90, 180 or 270, not {rotation}")
    cage = shutil.which("cage") or "/usr/bin/cage"
    return [cage, "-d", *(["-r"] * (rotation // 90)), "--", python, "-m", "kiosk.cli", "run", "--config", config_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk-session", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.environ.get("KIOSK_CONFIG", "/etc/madoguchi/kiosk.toml"))
    args = parser.parse_args(argv)
    from kiosk.config import load_kiosk_config
    config = load_kiosk_config(args.config)
    command = cage_argv(config.kiosk.screen_rotation, args.config)
    os.execv(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
