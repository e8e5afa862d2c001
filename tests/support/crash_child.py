"""The kiosk engine in a child process, for the kill -9 harness (tests/unit/engine/test_kill9.py).

    python -m tests.support.crash_child DIR SCENARIO [--kill-after-commit N | --kill-after-world-save N]

It opens DIR/journal.sqlite3 and the outside world DIR/world.json (in-process fakes whose state is
saved atomically after every change, as a real provider or printer keeps its own), runs crash
recovery as the kiosk does at start, prints "READY", then plays SCENARIO. With a kill option it
SIGKILLs itself right after the Nth journal commit or world change — every journaled step in turn.
SCENARIO "recover" only recovers. At the end it prints the counts as JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Iterator

from kiosk.config import TimeoutsSection
from kiosk.engine import Engine, EnginePorts
from kiosk.engine import events as ev
from kiosk.journal import Journal
from kiosk.ports import OrderLine
from tests.fakes import (voucher_issuer, GOOD_PIN, FakeCardReader, FakeCash, FakeCityHall, FakeClock, FakeDocumentPrinter, FakeQr,
                         FakeReceiptPrinter, World)

SCENARIOS = ("cash", "qr", "cash_jam", "qr_voucher", "cash_cancel", "cash_short_change", "wrong_pin_then_cash")


class Killer:
    def __init__(self, commits: int | None, saves: int | None) -> None:
        self.kill_commit, self.kill_save = commits, saves
        self.commits = self.saves = 0

    def committed(self) -> None:
        self.commits += 1
        if self.commits == self.kill_commit:
            os.kill(os.getpid(), signal.SIGKILL)

    def saved(self) -> None:
        self.saves += 1
        if self.saves == self.kill_save:
            os.kill(os.getpid(), signal.SIGKILL)


class KillingJournal(Journal):
    killer: Killer

    @contextlib.contextmanager
    def _write(self) -> Iterator[object]:
        with super()._write() as conn:
            yield conn
        self.killer.committed()


class KillingWorld(World):
    killer: Killer | None = None

    def save(self) -> None:
        super().save()
        if self.killer is not None:
            self.killer.saved()


def play(scenario: str, engine: Engine, card: FakeCardReader, cash: FakeCash, qr: FakeQr, world: World,
         clock: FakeClock) -> None:
    def send(e: object) -> None:
        engine.handle(e)

    def tick() -> None:
        clock.advance(0.25)
        engine.handle(ev.Tick())

    card.place()
    engine.drain()
    if scenario == "wrong_pin_then_cash":
        send(ev.EnterPin("0000", engine.view().pin_entry_id))
    send(ev.EnterPin(GOOD_PIN, engine.view().pin_entry_id))
    card.remove()
    engine.drain()
    send(ev.ChooseOrder((OrderLine("juminhyo", 2, 300), OrderLine("kazei", 1, 300, tax_year=2025))))
    method = "qr" if scenario.startswith("qr") else "cash"
    if scenario == "cash_jam":
        world.data["faults"]["jam_next_print"] = True
    if scenario == "qr_voucher":
        world.data["faults"].update({"issue_fails": True, "refund_fails": True})
    if scenario == "cash_short_change":
        world.data["hopper"] = 50
    send(ev.ChoosePayment(method))
    key = engine.journal.transaction(engine.view().txn_id).payment_key
    if method == "qr":
        tick()
        qr.approve(key)
        tick()
    elif scenario == "cash_cancel":
        cash.insert(key, 500)
        tick()
        send(ev.Cancel())
    else:
        for coin in (500, 100, 1000):
            cash.insert(key, coin)
            tick()
    send(ev.Dismiss())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("scenario", choices=SCENARIOS + ("recover",))
    ap.add_argument("--kill-after-commit", type=int)
    ap.add_argument("--kill-after-world-save", type=int)
    args = ap.parse_args()
    d = Path(args.dir)
    killer = Killer(args.kill_after_commit, args.kill_after_world_save)
    world = KillingWorld(d / "world.json")
    journal = KillingJournal(d / "journal.sqlite3", "k-crash-01")
    journal.killer = killer
    clock = FakeClock()
    card, cash, qr = FakeCardReader(world), FakeCash(world, journal), FakeQr(world, journal)
    engine = Engine(EnginePorts(card, FakeCityHall(world), {"cash": cash, "qr": qr}, FakeDocumentPrinter(world),
                                FakeReceiptPrinter(world), clock, voucher_issuer()), journal, TimeoutsSection())
    card.start_monitor(engine.card_event)
    engine.start()  # crash recovery, exactly as at a real start
    world.killer = killer
    print("READY", flush=True)
    if args.scenario != "recover":
        play(args.scenario, engine, card, cash, qr, world, clock)
    print(json.dumps({"commits": killer.commits, "saves": killer.saves, "state": engine.state.value}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
