"""JCM ID-003 note validator emulator on a pseudo-terminal.

    kiosk-sim id003 --link /tmp/id003 --control /tmp/id003.ctl

prints the pty path and control socket; script it with ``Id003SimClient`` (control.py).
"""
from __future__ import annotations

from .control import Id003SimClient, Id003SimController
from .device import JPY_CODES, SimId003Validator

__all__ = ["Id003SimClient", "Id003SimController", "JPY_CODES", "SimId003Validator"]
