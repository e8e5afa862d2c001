from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator

import pytest

from drivers.payment.cash import CashOptions, CashPayment, HopperOptions, Id003Options
from drivers.sim.cctalk import CashSimClient
from drivers.sim.id003 import Id003SimClient
from tests.support.services import ManagedProcess
from tests.unit.payment_cash.fakes import RecordingLedger

ALL_NOTES = (1000, 2000, 5000, 10000)


@dataclass
class MixedRig:
    """ccTalk coins + hoppers (`kiosk-sim cash --no-notes`) and an ID-003 note validator (`kiosk-sim id003`),
    each in its own process on its own pty; the production cash driver on pyserial; a recording ledger."""

    coins: CashSimClient
    notes: Id003SimClient
    cctalk_tty: str
    id003_tty: str
    ledger: RecordingLedger
    processes: list[ManagedProcess]
    hoppers: tuple[HopperOptions, ...]
    cash: CashPayment | None = None

    def open_cash(self, hopper_float: dict[int, int] | None = None, **overrides: object) -> CashPayment:
        id003 = overrides.pop("id003", Id003Options(port=self.id003_tty, parity="none", reply_timeout=0.1,
                                                     reset_timeout=5.0))
        options = CashOptions(**{**dict(port=self.cctalk_tty, poll_interval=0.02, reply_timeout=0.1, retries=3,
                                        seconds_per_coin=0.5, command_timeout=10.0, reconnect_interval=0.2,
                                        reconnect_max=1.0, note_validator="id003", id003=id003,
                                        accepted_notes=ALL_NOTES, hopper_reset_settle=0.05,
                                        hoppers=self.hoppers),
                                 **overrides})  # type: ignore[arg-type]
        self.cash = CashPayment(options, self.ledger, hopper_float=hopper_float)
        assert self.cash.wait_ready(10), self.cash.available()
        return self.cash

    def physical_in(self) -> int:
        return int(self.coins.state()["in_yen"]) + int(self.notes.state()["in_yen"])

    def physical_out(self) -> int:
        return int(self.coins.state()["out_yen"])


def _start(workdir: str, name: str, *args: str) -> tuple[ManagedProcess, str, str]:
    tty, control = os.path.join(workdir, f"{name}.tty"), os.path.join(workdir, f"{name}.sock")
    proc = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", name, "--link", tty, "--control", control, *args],
                          name=f"kiosk-sim-{name}", log_dir=workdir, cwd=os.getcwd())
    proc.start(ready=lambda: os.path.exists(control) and os.path.islink(tty), timeout=15)
    return proc, tty, control


@pytest.fixture
def mixed(request: pytest.FixtureRequest) -> Iterator[MixedRig]:
    workdir = tempfile.mkdtemp(prefix="id003-")  # short: Unix socket paths are limited to ~100 bytes
    marker = request.node.get_closest_marker("hoppers")
    specs = marker.args if marker else ("3:100:50", "4:10:100")
    hopper_args = [a for spec in specs for a in ("--hopper", spec)]
    hoppers = tuple(HopperOptions(address=int(spec.split(":")[0]), coin_yen=int(spec.split(":")[1]))
                    for spec in specs)
    id003_marker = request.node.get_closest_marker("id003_args")
    cash_proc, cctalk_tty, cash_ctl = _start(workdir, "cash", "--no-notes", "--seconds-per-coin", "0.005",
                                             *hopper_args)
    note_proc, id003_tty, note_ctl = _start(workdir, "id003", "--speed", "4",
                                            *(id003_marker.args if id003_marker else ()))
    rig = MixedRig(CashSimClient(cash_ctl), Id003SimClient(note_ctl), cctalk_tty, id003_tty, RecordingLedger(),
                   [cash_proc, note_proc], hoppers)
    try:
        yield rig
    finally:
        if rig.cash is not None:
            rig.cash.close()
        rig.coins.close()
        rig.notes.close()
        for proc in rig.processes:
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hoppers(*specs): ADDR:YEN:COINS hoppers for the ccTalk emulator")
    config.addinivalue_line("markers", "id003_args(*args): extra `kiosk-sim id003` arguments")
