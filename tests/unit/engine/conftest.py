from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kiosk.config import TimeoutsSection
from kiosk.engine import Engine, EnginePorts, ViewState
from kiosk.engine import events as ev
from kiosk.journal import Journal
from kiosk.ports import OrderLine
from tests.fakes import (voucher_issuer, GOOD_PIN, FakeCardReader, FakeCash, FakeCityHall, FakeClock, FakeDocumentPrinter, FakeQr,
                         FakeReceiptPrinter, World)


@dataclass
class Rig:
    """An engine wired to in-process fakes, driven synchronously."""

    world: World
    journal: Journal
    clock: FakeClock
    card: FakeCardReader
    cityhall: FakeCityHall
    cash: FakeCash
    qr: FakeQr
    printer: FakeDocumentPrinter
    receipts: FakeReceiptPrinter
    engine: Engine
    views: list[ViewState] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.engine.state.value

    @property
    def view(self) -> ViewState:
        return self.engine.view()

    def send(self, event: object) -> None:
        self.engine.handle(event)

    def tick(self, seconds: float = 0.25) -> None:
        self.clock.advance(seconds)
        self.engine.handle(ev.Tick())

    def place_card(self) -> None:
        self.card.place()
        self.engine.drain()

    def remove_card(self) -> None:
        self.card.remove()
        self.engine.drain()

    def pin(self, pin: str = GOOD_PIN) -> None:
        self.send(ev.EnterPin(pin, self.view.pin_entry_id))

    def to_choosing(self) -> None:
        self.place_card()
        assert self.state == "PIN_ENTRY", self.view
        self.pin()
        assert self.state == "REMOVE_CARD", self.view
        self.remove_card()
        assert self.state == "CHOOSING"

    def to_paying(self, method: str = "cash", lines: tuple[OrderLine, ...] | None = None) -> str:
        self.to_choosing()
        self.send(ev.ChooseOrder(lines or (OrderLine("juminhyo", 1, 300),)))
        assert self.state == "CONFIRMING", self.view
        self.send(ev.ChoosePayment(method))
        assert self.state == "PAYING", self.view
        key = self.journal.transaction(self.view.txn_id).payment_key
        assert key
        return key

    def balanced(self) -> None:
        """Every yen in is matched, in the journal and in the world."""
        for txn in self.journal.transactions():
            assert txn.unmatched_yen == 0, txn
        vouchers = sum(t.voucher for t in self.journal.transactions())
        assert self.world.money_in() == self.world.fees_in_tray() + self.world.money_back() + vouchers


def make_rig(tmp_path: Path, *, world_path: Path | None = None, timeouts: TimeoutsSection | None = None,
             methods: tuple[str, ...] = ("cash", "qr")) -> Rig:
    world = World(world_path)
    journal = Journal(tmp_path / "journal.sqlite3", "k-test-01")
    clock = FakeClock()
    card, cityhall = FakeCardReader(world), FakeCityHall(world)
    cash, qr = FakeCash(world, journal), FakeQr(world, journal)
    printer, receipts = FakeDocumentPrinter(world), FakeReceiptPrinter(world)
    views: list[ViewState] = []
    keys = iter(f"key{n:04d}" for n in range(1, 100000))
    engine = Engine(EnginePorts(card, cityhall, {"cash": cash, "qr": qr}, printer, receipts, clock, voucher_issuer()), journal,
                    timeouts or TimeoutsSection(), payment_methods=methods, on_view=views.append,
                    new_key=lambda: next(keys))
    card.start_monitor(engine.card_event)
    rig = Rig(world, journal, clock, card, cityhall, cash, qr, printer, receipts, engine, views)
    engine.start()
    return rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)
