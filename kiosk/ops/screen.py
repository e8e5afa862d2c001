"""The screen on and off with the service hours (``kioskctl screen``, run every minute by
madoguchi-screen.timer).

The kiosk's panel is dark while the kiosk is closed (nights, closed dates, maintenance days) and lit a
little before it opens, so the idle screen is there when the first resident arrives. The switch is the
panel's backlight through sysfs: the Raspberry Pi 7-inch touch display's ``rpi_backlight`` (and DSI
panels with a ``backlight`` node) take ``bl_power`` 0 = on, 4 = off (FB_BLANK_UNBLANK /
FB_BLANK_POWERDOWN, Linux Documentation/ABI/stable/sysfs-class-backlight). Where there is no backlight
(an HDMI monitor, the system tests' container) the decision is still made and recorded, and said so.

The last decision is kept in ``<data_dir>/screen.json`` for `kioskctl status` and the technician.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kiosk.engine.hours import ServiceHours

BACKLIGHT_ROOT = Path("/sys/class/backlight")
BL_POWER_ON = "0"
BL_POWER_OFF = "4"
#: Light the screen this long before opening (the idle screen is up when the doors open).
WAKE_BEFORE = dt.timedelta(minutes=10)
STATE_FILE = "screen.json"


@dataclass(frozen=True)
class ScreenDecision:
    on: bool
    why: str


def decide(hours: ServiceHours, now: dt.datetime, forced: str | None = None) -> ScreenDecision:
    """``forced``: "on" / "off" from a technician; None follows the service hours."""
    if forced in ("on", "off"):
        return ScreenDecision(forced == "on", f"set {forced} by a technician")
    if hours.is_open(now):
        return ScreenDecision(True, "within service hours")
    opening = hours.next_opening(now)
    if opening - now <= WAKE_BEFORE:
        return ScreenDecision(True, f"opens at {opening:%H:%M} JST")
    return ScreenDecision(False, f"closed until {opening:%Y-%m-%d %H:%M} JST")


def backlights(root: Path = BACKLIGHT_ROOT) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "bl_power").exists())


def apply(decision: ScreenDecision, data_dir: Path, root: Path = BACKLIGHT_ROOT) -> dict[str, object]:
    """Switch every backlight found and record the decision. Returns what was done."""
    switched: list[str] = []
    errors: list[str] = []
    for device in backlights(root):
        try:
            (device / "bl_power").write_text(BL_POWER_ON if decision.on else BL_POWER_OFF)
            switched.append(device.name)
        except OSError as exc:
            errors.append(f"{device.name}: {exc.strerror}")
    record = {"on": decision.on, "why": decision.why, "backlights": switched, "errors": errors,
              "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    path = Path(data_dir) / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False))
    os.replace(tmp, path)
    return record


def last_decision(data_dir: Path) -> dict[str, object] | None:
    try:
        return json.loads((Path(data_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
