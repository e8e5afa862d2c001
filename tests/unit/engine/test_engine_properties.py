"""A Hypothesis state machine drives the engine with random intents, device faults, timeouts and
crashes, and checks the invariants after every step:

- every yen in is matched by a printed certificate, change, a refund or a voucher (journal and world);
- no VERIFY is sent twice for one PIN entry;
- whenever the kiosk is idle (after a timeout, a cancel, an error) the view holds no transaction data;
- the card is off the reader whenever a payment starts.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kiosk.engine import events as ev
from kiosk.ports import OrderLine
from tests.fakes import GOOD_PIN
from tests.unit.engine.conftest import Rig, make_rig
from tests.unit.engine.test_recovery import Crash, restart

EXAMPLES = int(os.environ.get("MADOGUCHI_HYPOTHESIS_EXAMPLES", "120"))

FAULTS = ["paper_out", "jam_next_print", "issue_fails", "refund_fails", "cityhall_down", "provider_unreachable",
          "receipt_paper_out", "receipt_near_end", "refuse", "not_jpki"]
CRASH_POINTS = [("printer", "print_document", False), ("printer", "print_document", True),
                ("cityhall", "issue", False), ("cityhall", "issue", True), ("cash", "poll", False),
                ("qr", "poll", False), ("qr", "refund", True), ("cash", "refund", True), ("cash", "cancel", True),
                ("receipts", "print_receipt", False)]
LINES = st.lists(st.sampled_from([OrderLine("juminhyo", 1, 300), OrderLine("juminhyo", 2, 300),
                                  OrderLine("kazei", 1, 300, tax_year=2025), OrderLine("kazei", 1, 300, tax_year=2024),
                                  OrderLine("juminhyo", 1, 300, options=("with_household",))]),
                 min_size=1, max_size=2, unique_by=lambda line: line.cert_type)


class KioskMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="madoguchi-hyp-"))
        self.rig: Rig = make_rig(self.dir)
        self.armed: tuple[str, str, bool] | None = None

    def teardown(self) -> None:
        self.rig.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- plumbing ---------------------------------------------------------------------------------
    def _run(self, action) -> None:  # type: ignore[no-untyped-def]
        try:
            action()
        except Crash:
            self.armed = None
            self.rig = restart(self.rig)

    def _arm(self) -> None:
        if self.armed is None:
            return
        name, method, after = self.armed
        target = getattr(self.rig, name)
        original = getattr(type(target), method).__get__(target)

        def crashing(*args, **kwargs):  # type: ignore[no-untyped-def]
            setattr(target, method, original)
            if after:
                original(*args, **kwargs)
            raise Crash(method)

        setattr(target, method, crashing)

    def send(self, event: object) -> None:
        self._arm()
        self._run(lambda: self.rig.send(event))

    @property
    def key(self) -> str | None:
        txn = self.rig.view.txn_id
        return self.rig.journal.transaction(txn).payment_key if txn else None

    # --- the resident -----------------------------------------------------------------------------
    @rule()
    def place_card(self) -> None:
        if not self.rig.world.data["card"]["present"]:
            self._arm()
            self._run(self.rig.place_card)

    @rule()
    def remove_card(self) -> None:
        if self.rig.world.data["card"]["present"]:
            self._arm()
            self._run(self.rig.remove_card)

    @rule(correct=st.booleans(), repeat=st.booleans())
    def enter_pin(self, correct: bool, repeat: bool) -> None:
        entry = self.rig.view.pin_entry_id
        before = len(self.rig.world.data["verify_calls"])
        intent = ev.EnterPin(GOOD_PIN if correct else "0000", entry)
        self.send(intent)
        after_first = len(self.rig.world.data["verify_calls"])
        assert after_first - before <= 1
        if repeat:  # a double tap: the same entry again must never reach the card
            self.send(intent)
            assert len(self.rig.world.data["verify_calls"]) == after_first

    @rule()
    def confirm_last_try(self) -> None:
        self.send(ev.ConfirmLastTry())

    @rule(lines=LINES)
    def choose(self, lines: list[OrderLine]) -> None:
        self.send(ev.ChooseOrder(tuple(lines)))

    @rule(method=st.sampled_from(["cash", "qr"]))
    def pay_with(self, method: str) -> None:
        self.send(ev.ChoosePayment(method))

    @precondition(lambda self: self.rig.state == "PAYING")
    @rule(amount=st.sampled_from([10, 50, 100, 500, 1000]))
    def insert_money(self, amount: int) -> None:
        key = self.key
        if key:
            self._arm()
            self._run(lambda: self.rig.cash.insert(key, amount))

    @precondition(lambda self: self.rig.state == "PAYING")
    @rule(approve=st.booleans())
    def qr_result(self, approve: bool) -> None:
        key = self.key
        if key:
            self._run(lambda: (self.rig.qr.approve if approve else self.rig.qr.decline)(key))

    @rule(intent=st.sampled_from([ev.Cancel(), ev.Back(), ev.Dismiss(), ev.Touch(), ev.SetLanguage("en")]))
    def other_intent(self, intent: object) -> None:
        self.send(intent)

    @rule(seconds=st.sampled_from([0.25, 1, 15, 45, 100, 200]))
    def time_passes(self, seconds: float) -> None:
        self._arm()
        self._run(lambda: self.rig.tick(seconds))

    RESIDENT = dict(steps=st.integers(1, 30), method=st.sampled_from(["cash", "qr"]), lines=LINES,
                    coins=st.lists(st.sampled_from([100, 500, 1000]), min_size=1, max_size=3), fix=st.booleans())

    @initialize(**RESIDENT)
    def a_resident_starts(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """Every run begins with part of an ordinary transaction, so runs reach payment and printing."""
        self.resident_goes_on(**kwargs)

    @rule(**RESIDENT)
    def resident_goes_on(self, steps: int, method: str, lines: list[OrderLine], coins: list[int], fix: bool) -> None:
        """The usual next step for the screen shown, so that long runs reach payment and printing."""
        for _ in range(steps):
            state = self.rig.state
            if state == "IDLE":
                if self.rig.world.data["card"]["present"]:
                    self.remove_card()
                self.place_card()
            elif state == "PIN_ENTRY":
                if self.rig.view.last_try_confirm_needed:
                    self.confirm_last_try()
                self.enter_pin(correct=True, repeat=False)
            elif state == "REMOVE_CARD":
                self.remove_card()
            elif state == "CHOOSING":
                self.choose(lines)
            elif state == "CONFIRMING":
                if self.rig.world.data["card"]["present"]:
                    self.remove_card()
                self.pay_with(method)
            elif state == "PAYING":
                payment = self.rig.view.payment
                if payment is not None and payment.method == "qr":
                    self.qr_result(True)
                else:
                    for coin in coins:
                        self.insert_money(coin)
                self.time_passes(0.25)
            elif state in ("DONE", "ERROR"):
                self.send(ev.Dismiss())
            else:
                if fix:
                    self.technician_clears_faults()
                self.time_passes(15)

    # --- the world --------------------------------------------------------------------------------
    @rule(fault=st.sampled_from(FAULTS), on=st.booleans())
    def fault(self, fault: str, on: bool) -> None:
        self.rig.world.set_fault(fault, ("moved_out" if fault == "refuse" else True) if on else False)

    @rule()
    def technician_clears_faults(self) -> None:
        for name in list(self.rig.world.data["faults"]):
            self.rig.world.set_fault(name, False)

    @rule(coins=st.sampled_from([0, 100, 1000, 100_000]))
    def hopper(self, coins: int) -> None:
        self.rig.world.data["hopper"] = coins

    @rule(point=st.sampled_from(CRASH_POINTS))
    def crash_at(self, point: tuple[str, str, bool]) -> None:
        self.armed = point

    @rule()
    def crash_now(self) -> None:
        self.rig = restart(self.rig)

    # --- invariants -------------------------------------------------------------------------------
    @invariant()
    def money_is_matched(self) -> None:
        event(f"reached {self.rig.state}")
        txns = self.rig.journal.transactions()
        for txn in txns:
            if txn.closed:
                assert txn.unmatched_yen == 0, txn
        if all(t.closed for t in txns):
            world = self.rig.world
            vouchers = sum(t.voucher for t in txns)
            assert world.money_in() == world.fees_in_tray() + world.money_back() + vouchers

    @invariant()
    def idle_screens_hold_no_transaction_data(self) -> None:
        view = self.rig.view
        if view.state in ("IDLE", "OUT_OF_SERVICE", "ERROR"):
            assert not view.holds_transaction_data(), view

    @invariant()
    def card_is_off_the_reader_when_payment_starts(self) -> None:
        assert not any(self.rig.world.data["card_present_at_payment_start"])

    @invariant()
    def no_unexpected_errors(self) -> None:
        """The fakes raise only typed errors; FAILSAFE would mean the engine mishandled one."""
        assert not [e for e in self.rig.journal.events(after_seq=self.rig.journal.last_seq() - 5)
                    if e.kind == "failsafe"]

    @invariant()
    def documents_only_for_paid_transactions(self) -> None:
        assert self.rig.world.fees_in_tray() <= self.rig.world.money_in()


KioskMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=50, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestKioskProperties = KioskMachine.TestCase
