"""Property: whatever residents and devices do, every yen in is a fee kept, paid back, or recorded as owed.

money in (ledger) = fees kept + money out (ledger) + unpaid recorded (voucher alarms)
and the ledger matches the emulator's physical truth (cash box in, hoppers out), except coins the
coin acceptor's buffer lost, which are covered by a CashEventsLost alarm's amount at risk.
"""
from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from drivers.sim.cctalk import build_bus
from drivers.sim.cctalk.control import CashSimController
from kiosk.errors import CashEventsLost, KioskError
from kiosk.ports import PaymentState

from .conftest import make_cash
from .fakes import RecordingLedger

COIN = st.tuples(st.just("coin"), st.sampled_from([1, 5, 10, 50, 100, 500]))
OPS = st.one_of(
    st.tuples(st.just("start"), st.sampled_from([100, 200, 300, 350, 450, 600, 750, 1200])),
    COIN, COIN, COIN, COIN, COIN,  # residents mostly insert money; faults are the exception
    st.tuples(st.just("note"), st.just(1000)),
    st.tuples(st.just("note"), st.just(1000)),
    st.tuples(st.just("cancel"), st.none()),
    st.tuples(st.just("refund"), st.sampled_from([10, 100, 300])),
    st.tuples(st.just("hopper_empty"), st.sampled_from([3, 4])),
    st.tuples(st.just("hopper_fill"), st.sampled_from([3, 4])),
    st.tuples(st.just("drop_replies"), st.integers(1, 2)),
    st.tuples(st.just("bad_checksum"), st.integers(1, 2)),
    st.tuples(st.just("coin_error"), st.sampled_from([1, 2, 5, 14, 20, 36])),
    st.tuples(st.just("lose_events"), st.lists(st.sampled_from([10, 100, 500]), min_size=6, max_size=8)),
    st.tuples(st.just("reset_fault"), st.none()),
    st.tuples(st.just("wait"), st.none()),
)


PAYING_OPS = st.one_of(  # no device faults: long payments, change, hoppers running dry, refunds
    st.tuples(st.just("start"), st.sampled_from([100, 200, 300, 350, 450, 600, 750, 1200])),
    COIN, COIN, COIN,
    st.tuples(st.just("note"), st.just(1000)),
    st.tuples(st.just("cancel"), st.none()),
    st.tuples(st.just("refund"), st.sampled_from([10, 100, 300])),
    st.tuples(st.just("hopper_empty"), st.sampled_from([3, 4])),
    st.tuples(st.just("hopper_fill"), st.sampled_from([3, 4])),
    st.tuples(st.just("drop_replies"), st.integers(1, 2)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=30))
def test_every_yen_is_accounted_through_faults(ops: list[tuple[str, object]]) -> None:
    run_and_check(ops)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PAYING_OPS, min_size=1, max_size=40))
def test_every_yen_is_accounted_while_paying(ops: list[tuple[str, object]]) -> None:
    run_and_check(ops)


def run_and_check(ops: list[tuple[str, object]]) -> None:
    bus = build_bus(hoppers=((3, 100, 4), (4, 10, 12)))  # small hoppers: they run out in these runs
    sim = CashSimController(bus)
    ledger = RecordingLedger()
    cash = make_cash(bus, ledger)
    keys: list[str] = []
    refunds = 0
    lost_yen = 0
    try:
        for n, (op, arg) in enumerate(ops):
            with bus.lock:
                if op == "start":
                    try:
                        cash.start(f"k{n}", int(arg), "")  # type: ignore[arg-type]
                        keys.append(f"k{n}")
                    except KioskError:
                        pass  # another payment collecting, or out of service: refused before any money
                elif op == "coin":
                    sim.coin.insert_coin(int(arg))  # type: ignore[arg-type]
                elif op == "note":
                    sim.note.insert_note(int(arg))  # type: ignore[arg-type, union-attr]
                elif op == "cancel" and keys:
                    cash.cancel(keys[-1])
                elif op == "refund" and keys:
                    try:
                        result = cash.refund(keys[-1], f"r{n}", int(arg))  # type: ignore[arg-type]
                        refunds += result.refunded + result.unpaid
                    except KioskError:
                        pass  # not paid, or more than was kept
                elif op == "hopper_empty":
                    sim.hopper(int(arg)).coins = 0  # type: ignore[arg-type]
                elif op == "hopper_fill":
                    sim.hopper(int(arg)).fill(20)  # type: ignore[arg-type]
                elif op == "drop_replies":
                    bus.drop_replies = int(arg)  # type: ignore[arg-type]
                elif op == "bad_checksum":
                    bus.corrupt_replies = int(arg)  # type: ignore[arg-type]
                elif op == "coin_error":
                    sim.coin.error_event(int(arg))  # type: ignore[arg-type]
                elif op == "lose_events":
                    values = list(arg)  # type: ignore[call-overload]
                    sim.coin.lose_events(values)
                    lost_yen += sum(values[:-5])
                elif op == "reset_fault" and cash.fault is not None:
                    cash.reset_fault()
            for _ in range(2):
                cash.pump()
        for key in keys:
            cash.cancel(key)
        for _ in range(3):
            cash.pump()

        statuses = [cash.poll(k) for k in keys]
        for s in statuses:
            event(f"ended {s.state.value}" + (" with unpaid" if s.unpaid_to_resident else ""))
        if lost_yen:
            event("events lost")
        assert all(s.state is not PaymentState.PENDING for s in statuses)
        fees_kept = sum(s.amount_due for s in statuses if s.state is PaymentState.PAID) - refunds
        money_in, money_out, unpaid = ledger.total("in"), ledger.total("out"), ledger.unpaid()
        assert money_in == fees_kept + money_out + unpaid, ledger.rows
        # the ledger is the physical truth
        physical = sim.state()
        assert physical["out_yen"] == money_out
        assert physical["in_yen"] - money_in == lost_yen
        assert sum(a.amount for a in ledger.alarms(CashEventsLost.code)) >= lost_yen
        # and each payment's own figures agree with the ledger
        for s in statuses:
            assert ledger.total("in", s.key) == s.amount_in + _late_in(ledger, s.key)
            assert s.amount_in - (s.amount_due if s.state is PaymentState.PAID else 0) \
                == s.change_paid + s.returned + s.unpaid_to_resident - _late_in(ledger, s.key)
    finally:
        cash.close()


def _late_in(ledger: RecordingLedger, key: str) -> int:
    return sum(r.amount for r in ledger.rows if r.kind == "in" and r.key == key and "after the payment" in r.text)
