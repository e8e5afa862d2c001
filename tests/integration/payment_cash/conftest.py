from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator

import pytest

from drivers.payment.cash import CashOptions, CashPayment
from drivers.sim.cctalk import CashSimClient
from tests.support.services import ManagedProcess
from tests.unit.payment_cash.fakes import RecordingLedger


@dataclass
class CashRig:
    """`kiosk-sim cash` in its own process on a pty, the production driver on pyserial, a recording ledger."""

    emulator: ManagedProcess
    sim: CashSimClient
    tty: str
    ledger: RecordingLedger
    cash: CashPayment | None = None

    def open_cash(self, **overrides: object) -> CashPayment:
        options = CashOptions(**{**dict(port=self.tty, poll_interval=0.02, reply_timeout=0.1, retries=3,
                                        seconds_per_coin=0.5, command_timeout=10.0, reconnect_interval=0.2),
                                 **overrides})  # type: ignore[arg-type]
        self.cash = CashPayment(options, self.ledger)
        assert self.cash.wait_ready(5), self.cash.available()
        return self.cash


def start_emulator(workdir: str, *extra: str) -> tuple[ManagedProcess, CashSimClient, str]:
    tty, control = os.path.join(workdir, "tty"), os.path.join(workdir, "control.sock")
    proc = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "cash", "--link", tty, "--control", control,
                           "--seconds-per-coin", "0.005", *extra], name="kiosk-sim-cash", log_dir=workdir,
                          cwd=os.getcwd())
    proc.start(ready=lambda: os.path.exists(control) and os.path.islink(tty), timeout=15)
    return proc, CashSimClient(control), tty


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[CashRig]:
    workdir = tempfile.mkdtemp(prefix="cash-")  # short: Unix socket paths are limited to ~100 bytes
    marker = request.node.get_closest_marker("emulator_args")
    proc, sim, tty = start_emulator(workdir, *(marker.args if marker else ()))
    rig = CashRig(emulator=proc, sim=sim, tty=tty, ledger=RecordingLedger())
    try:
        yield rig
    finally:
        if rig.cash is not None:
            rig.cash.close()
        sim.close()
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator_args(*args): extra `kiosk-sim cash` arguments for the rig fixture")
