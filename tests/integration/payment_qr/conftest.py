"""The QR provider emulator (`kiosk-sim qr`) as its own process on a free loopback port, started once
per session; each test gets a reset emulator, a fresh ledger and a driver with short timeouts."""
from __future__ import annotations

import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from drivers.payment.qr import QrOptions, QrPayment
from drivers.sim.qr_provider.control import QrProviderControl
from kiosk.config import load_dataclass
from tests.support.services import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[3]
API_KEY, API_SECRET = "kiosk-test-key", "kiosk-test-secret"


@dataclass
class QrEmulator:
    base_url: str
    control: QrProviderControl
    process: ManagedProcess


@dataclass
class RecordingLedger:
    """Keeps every report as made (no de-duplication), so tests can count them."""

    ins: list[tuple[str, int, str, str]] = field(default_factory=list)
    outs: list[tuple[str, int, str, str]] = field(default_factory=list)
    alarms: list[tuple[str, int, str, int]] = field(default_factory=list)

    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None:
        self.ins.append((key, amount, source, ref))

    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None:
        self.outs.append((key, amount, reason, ref))

    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None:
        self.alarms.append((key, code, detail, amount_at_risk))


@pytest.fixture(scope="session")
def qr_emulator() -> Iterator[QrEmulator]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    control = QrProviderControl(base_url)
    process = ManagedProcess([sys.executable, "-m", "drivers.sim.cli", "qr", "--port", str(port),
                              "--api-key", API_KEY, "--api-secret", API_SECRET, "--verbose"],
                             name="kiosk-sim-qr", log_dir=tempfile.mkdtemp(prefix="qr-sim-"), cwd=str(REPO))
    process.start(ready=control.healthy, timeout=20)
    try:
        yield QrEmulator(base_url, control, process)
    finally:
        control.close()
        process.stop()


@pytest.fixture
def control(qr_emulator: QrEmulator) -> QrProviderControl:
    assert qr_emulator.process.alive(), f"QR emulator died; log:\n{qr_emulator.process.tail()}"
    qr_emulator.control.reset()
    return qr_emulator.control


@pytest.fixture
def ledger() -> RecordingLedger:
    return RecordingLedger()


def make_options(base_url: str, **overrides: object) -> QrOptions:
    raw = {"base_url": base_url, "api_key": API_KEY, "api_secret": API_SECRET, "connect_timeout": 1.0,
           "create_timeout": 1.0, "read_timeout": 1.0, "attempts": 3, "retry_backoff": 0.05}
    raw.update(overrides)
    return load_dataclass(QrOptions, raw, "tests/integration/payment_qr", prefix="qr")


@pytest.fixture
def qr(qr_emulator: QrEmulator, control: QrProviderControl, ledger: RecordingLedger) -> Iterator[QrPayment]:
    options = make_options(qr_emulator.base_url)
    driver = QrPayment(options, ledger, secret=API_SECRET)
    yield driver
    driver.close()


@pytest.fixture
def key() -> str:
    return f"tx-{uuid.uuid4().hex[:20]}"
