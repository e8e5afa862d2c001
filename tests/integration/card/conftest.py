from __future__ import annotations

import os
import queue
import tempfile
from typing import Iterator

import pytest

from tests.support.services import wait_until
from tests.support.pcsc import PcscStack, VirtualCard, shared_pcsc_stack, start_virtual_card



class Events:
    """Collects CardEvents from the driver's monitor thread."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.seen: list = []

    def __call__(self, event) -> None:
        self.queue.put(event)

    def wait_for(self, kind, timeout: float = 10.0):
        while True:
            try:
                event = self.queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {kind.value} event within {timeout} s; saw {[e.kind.value for e in self.seen]}")
            self.seen.append(event)
            if event.kind == kind:
                return event


@pytest.fixture(scope="session")
def pcsc() -> PcscStack:
    return shared_pcsc_stack()


@pytest.fixture(scope="session")
def pki_dir() -> str:
    return tempfile.mkdtemp(prefix="card-pki-")


@pytest.fixture(scope="session")
def virtual_card(pcsc: PcscStack, pki_dir: str) -> Iterator[VirtualCard]:
    assert os.environ.get("MADOGUCHI_APDU_LOG_DIR"), "the card guard plugin must be active (tests/conftest.py)"
    card = start_virtual_card(pcsc, pki_dir)  # logs to the guard's directory
    yield card
    card.stop()


def wait_reader_empty(stack: PcscStack) -> None:
    """pcscd polls the reader: wait until it too has seen the card go, so the next test starts clean."""
    from drivers.card.pcsc import PcscCardReader, PcscOptions

    probe = PcscCardReader(PcscOptions(reader_pattern=f"^{stack.reader}$"))
    wait_until(lambda: not probe.card_present(), 10, "pcscd to see the virtual card removed")


@pytest.fixture
def card(virtual_card: VirtualCard, pcsc: PcscStack):
    """The control of the virtual card, back to defaults and off the reader around each test."""
    control = virtual_card.control
    defaults = dict(blocked_sw="6984", locked_status_sw="63C0", not_jpki=0, apdu_latency_ms=0, sign_latency_ms=0,
                    max_message=0, ecdsa_der=0, atr="3BE000FF8131FE4514")
    control.clear_faults()
    control.remove()
    control.set(**defaults)
    wait_reader_empty(pcsc)
    yield control
    control.clear_faults()
    control.remove()
    control.set(**defaults)
    wait_reader_empty(pcsc)


def make_reader(pcsc: PcscStack, **options: object):
    from drivers.card.pcsc import PcscCardReader, PcscOptions

    return PcscCardReader(PcscOptions(reader_pattern=f"^{pcsc.reader}$", apdu_timeout=2.0, sign_timeout=5.0,
                                      poll_interval=0.1, connect_timeout=5.0, **options))  # type: ignore[arg-type]


@pytest.fixture
def reader(pcsc: PcscStack):
    r = make_reader(pcsc)
    yield r
    r.stop_monitor()


@pytest.fixture
def events(reader) -> Events:
    collected = Events()
    reader.start_monitor(collected)
    return collected


def last_log_entries(virtual_card: VirtualCard, n: int) -> list[dict]:
    import json

    status = virtual_card.control.status()
    with open(status["log"], encoding="utf-8") as fh:
        return [json.loads(line) for line in fh.read().splitlines()[-n:]]
