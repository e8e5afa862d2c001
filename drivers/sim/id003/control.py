"""Script the ID-003 emulator over the same JSON-lines control socket as the ccTalk one.

    state                          physical truth: status, stacked notes, returned, rejected
    insert_note value [series]     a resident feeds a note ("2004"/"2024"; 2000-yen: "2000")
    reject_next reason             the next note is rejected with this reason code (e.g. 0x71 = 113)
    jam [where]                    "acceptor" (0x45, default) or "stacker" (0x46)
    stacker_full / stacker_open    the cash box is full (0x43) / removed (0x44)
    cheat                          cheating detected (0x48)
    failure code                   device failure (0x49) with a failure code (e.g. 0xA6 = 166)
    clear                          a technician fixed the fault (the validator waits for a reset)
    power_cycle                    power lost and back (a note in escrow / being stacked stays inside)
    no_reply seconds               the validator answers nothing for that long
    drop_replies count             the next replies are lost
    garbage count                  stray bytes before each of the next replies
    unplug / replug                the cable is pulled / plugged back (a new pty behind the same link)
"""
from __future__ import annotations

from typing import Any

from drivers.payment.id003.codec import Status
from drivers.sim.cctalk.control import CashSimClient

from .device import SimId003Validator

_FAULTS = {"stacker_full": Status.STACKER_FULL, "stacker_open": Status.STACKER_OPEN, "cheat": Status.CHEATED}


class Id003SimController:
    def __init__(self, device: SimId003Validator, pty: Any = None) -> None:
        self.device = device
        self.pty = pty

    def execute(self, cmd: str, a: dict[str, Any]) -> Any:
        d = self.device
        if cmd == "state":
            return {"note": d.state_dict(), "in_yen": d.state_dict()["stacked_yen"]}
        if cmd == "insert_note":
            return d.insert_note(int(a["value"]), str(a.get("series", "2024" if int(a["value"]) != 2000 else "2000")))
        if cmd == "reject_next":
            d.reject_next = int(a["reason"])
        elif cmd == "jam":
            d.fault(Status.STACKER_JAM if a.get("where") == "stacker" else Status.ACCEPTOR_JAM)
        elif cmd in _FAULTS:
            d.fault(_FAULTS[cmd])
        elif cmd == "failure":
            d.fault(Status.FAILURE, bytes((int(a["code"]),)))
        elif cmd == "clear":
            d.clear_fault()
        elif cmd == "power_cycle":
            d.power_cycle()
        elif cmd == "no_reply":
            d.silent_until = d.clock() + float(a["seconds"])
        elif cmd == "drop_replies":
            d.drop_replies = int(a["count"])
        elif cmd == "garbage":
            d.garbage_replies = int(a["count"])
        elif cmd in ("unplug", "replug"):
            if self.pty is None:
                raise ValueError("this emulator is not behind a pty")
            return self.pty.unplug() if cmd == "unplug" else self.pty.replug()
        else:
            raise ValueError(f"unknown command {cmd!r}")
        return None


class Id003SimClient(CashSimClient):
    """Talk to a running ``kiosk-sim id003`` through its control socket."""

    def insert_note(self, value: int, series: str = "") -> str:  # type: ignore[override]
        return self.call("insert_note", value=value, **({"series": series} if series else {}))
