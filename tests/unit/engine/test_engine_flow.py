"""Engine transitions, one test per path, against in-process fakes."""
from __future__ import annotations

from sync.voucher import VoucherStatus, verify

import dataclasses

import pytest

from kiosk.config import TimeoutsSection
from kiosk.engine import events as ev
from kiosk.engine.states import TIMEOUT_KEYS, State
from kiosk.ports import OrderLine
from tests.unit.engine.conftest import Rig, make_rig

ONE_JUMINHYO = (OrderLine("juminhyo", 1, 300),)


def finish_cash(rig: Rig, key: str, coins: list[int]) -> None:
    for coin in coins:
        rig.cash.insert(key, coin)
        rig.tick()


def test_cash_happy_path_gives_change_certificate_and_receipt(rig: Rig) -> None:
    key = rig.to_paying("cash")
    assert rig.view.payment is not None and rig.view.payment.amount_due == 300
    finish_cash(rig, key, [500])
    assert rig.state == "DONE"
    txn = rig.journal.transactions()[0]
    assert (txn.outcome, txn.money_in, txn.change_paid, txn.fees_printed) == ("completed", 500, 200, 300)
    assert len(rig.world.data["tray"]) == 1 and rig.world.data["receipts"][0]["total"] == 300
    rig.send(ev.Dismiss())
    assert rig.state == "IDLE" and not rig.view.holds_transaction_data()
    rig.balanced()


def test_qr_happy_path(rig: Rig) -> None:
    key = rig.to_paying("qr")
    assert rig.view.payment.qr_payload.endswith(key)
    rig.tick()
    assert rig.state == "PAYING"
    rig.qr.approve(key)
    rig.tick()
    assert rig.state == "DONE"
    assert rig.journal.transactions()[0].outcome == "completed"
    rig.balanced()


def test_several_documents_are_all_printed(rig: Rig) -> None:
    lines = (OrderLine("juminhyo", 2, 300), OrderLine("kazei", 1, 300, tax_year=2025))
    key = rig.to_paying("cash", lines)
    finish_cash(rig, key, [500, 500])
    assert rig.state == "DONE"
    assert len(rig.world.data["tray"]) == 3
    assert rig.journal.transactions()[0].docs_printed == 3
    rig.balanced()


def test_wrong_pin_twice_then_right(rig: Rig) -> None:
    rig.place_card()
    assert rig.view.pin_tries_left == 3
    rig.pin("1111")
    assert (rig.state, rig.view.pin_tries_left, rig.view.wrong_pin) == ("PIN_ENTRY", 2, True)
    rig.pin("2222")
    assert rig.view.pin_tries_left == 1 and rig.view.last_try_confirm_needed
    rig.send(ev.ConfirmLastTry())
    rig.pin()
    assert rig.state == "REMOVE_CARD"
    assert len(rig.world.data["verify_calls"]) == 3


def test_last_try_needs_confirmation_before_any_verify(rig: Rig) -> None:
    rig.world.data["card"]["tries"] = 1
    rig.place_card()
    assert rig.view.last_try_confirm_needed
    rig.pin()
    assert rig.state == "PIN_ENTRY" and rig.world.data["verify_calls"] == []
    rig.send(ev.ConfirmLastTry())
    assert not rig.view.last_try_confirm_needed
    rig.pin()
    assert rig.state == "REMOVE_CARD" and len(rig.world.data["verify_calls"]) == 1


def test_repeated_submission_of_one_pin_entry_sends_one_verify(rig: Rig) -> None:
    rig.place_card()
    entry = rig.view.pin_entry_id
    rig.send(ev.EnterPin("1111", entry))
    rig.send(ev.EnterPin("1111", entry))  # a double tap on OK
    assert len(rig.world.data["verify_calls"]) == 1 and rig.view.pin_tries_left == 2


def test_bad_pin_format_costs_no_try(rig: Rig) -> None:
    rig.place_card()
    rig.pin("12a4")
    assert rig.state == "PIN_ENTRY" and rig.world.data["verify_calls"] == [] and rig.view.pin_tries_left == 3


def test_three_wrong_pins_lock_the_card(rig: Rig) -> None:
    rig.place_card()
    rig.pin("1111")
    rig.pin("1112")
    rig.send(ev.ConfirmLastTry())
    rig.pin("1113")
    assert rig.state == "ERROR" and rig.view.error.key == "pin_locked"
    assert not rig.view.holds_transaction_data()


def test_locked_card_is_refused_before_the_pin_pad(rig: Rig) -> None:
    rig.world.data["card"]["tries"] = 0
    rig.place_card()
    assert rig.state == "ERROR" and rig.view.error.code == 207


@pytest.mark.parametrize("step, state_after", [("read", "ERROR"), ("tries", "ERROR"), ("sign", "ERROR")])
def test_card_pulled_mid_command(rig: Rig, step: str, state_after: str) -> None:
    rig.world.data["card"]["pull_on"] = step
    rig.place_card()
    if step == "sign":
        rig.pin()
    assert rig.state == state_after and rig.view.error.key == "card_removed"
    assert rig.journal.transactions()[0].outcome == "abandoned"


def test_card_pulled_at_the_pin_pad(rig: Rig) -> None:
    rig.place_card()
    rig.remove_card()
    assert rig.state == "ERROR" and rig.view.error.code == 202


@pytest.mark.parametrize("fault, key", [("not_jpki", "not_my_number_card"), ("reader_missing", "reader_missing")])
def test_unusable_card_or_reader(rig: Rig, fault: str, key: str) -> None:
    rig.world.set_fault(fault)
    rig.place_card()
    assert rig.state == "ERROR" and rig.view.error.key == key


def test_expired_card_is_refused(rig: Rig) -> None:
    rig.world.data["card"]["expired"] = True
    rig.place_card()
    assert rig.state == "ERROR" and rig.view.error.key == "card_expired"


def test_city_hall_refusal_shows_the_reason(rig: Rig) -> None:
    rig.world.set_fault("refuse", "moved_out")
    rig.place_card()
    rig.pin()
    assert rig.state == "ERROR" and rig.view.error.reason == "moved_out"


def test_city_hall_unreachable_before_pin_then_out_of_service(rig: Rig) -> None:
    rig.world.set_fault("cityhall_down")
    rig.place_card()
    assert rig.state == "ERROR" and rig.view.error.key == "cityhall_unreachable"
    assert rig.world.data["verify_calls"] == []
    rig.send(ev.Dismiss())
    assert rig.state == "OUT_OF_SERVICE"
    rig.world.set_fault("cityhall_down", False)
    rig.tick(11)
    assert rig.state == "IDLE"


def test_card_must_leave_the_reader_before_payment(rig: Rig) -> None:
    rig.place_card()
    rig.pin()
    assert rig.state == "REMOVE_CARD"
    rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    assert rig.state == "REMOVE_CARD"
    rig.remove_card()
    rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    rig.place_card()  # put back while confirming
    rig.send(ev.ChoosePayment("cash"))
    assert rig.state == "CONFIRMING"
    rig.remove_card()
    rig.send(ev.ChoosePayment("cash"))
    assert rig.state == "PAYING"
    assert rig.world.data["card_present_at_payment_start"] == [False]


@pytest.mark.parametrize("lines", [
    (OrderLine("hikazei", 1, 300),),  # not offered to this resident
    (OrderLine("juminhyo", 1, 200),),  # wrong fee
    (OrderLine("juminhyo", 9, 300),),  # too many copies
    (OrderLine("kazei", 1, 300, tax_year=2019),),  # year not offered
    (OrderLine("juminhyo", 1, 300, options=("with_mynumber",)),),  # option not offered
    (),
])
def test_orders_city_hall_did_not_offer_are_refused(rig: Rig, lines: tuple[OrderLine, ...]) -> None:
    rig.to_choosing()
    rig.send(ev.ChooseOrder(lines))
    assert rig.state == "CHOOSING"


def test_back_from_confirming(rig: Rig) -> None:
    rig.to_choosing()
    rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    rig.send(ev.Back())
    assert rig.state == "CHOOSING"


@pytest.mark.parametrize("where", ["PIN_ENTRY", "REMOVE_CARD", "CHOOSING", "CONFIRMING"])
def test_cancel_before_payment_returns_to_idle_with_nothing_kept(rig: Rig, where: str) -> None:
    rig.place_card()
    if where != "PIN_ENTRY":
        rig.pin()
    if where in ("CHOOSING", "CONFIRMING"):
        rig.remove_card()
    if where == "CONFIRMING":
        rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    assert rig.state == where
    rig.send(ev.Cancel())
    assert rig.state == "IDLE" and not rig.view.holds_transaction_data()
    assert rig.journal.transactions()[0].outcome == "abandoned"


def test_cancel_during_payment_returns_the_coins(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.cash.insert(key, 100)
    rig.tick()
    assert rig.view.payment.amount_in == 100
    rig.send(ev.Cancel())
    assert rig.state == "IDLE"
    txn = rig.journal.transactions()[0]
    assert (txn.outcome, txn.money_in, txn.refunded) == ("cancelled", 100, 100)
    rig.balanced()


def test_qr_declined(rig: Rig) -> None:
    key = rig.to_paying("qr")
    rig.qr.decline(key)
    rig.tick()
    assert rig.state == "ERROR" and rig.view.error.key == "payment_declined"
    rig.balanced()


def test_provider_unreachable_at_start(rig: Rig) -> None:
    rig.to_choosing()
    rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    rig.world.set_fault("provider_unreachable")
    rig.send(ev.ChoosePayment("qr"))
    assert rig.state == "ERROR" and rig.view.error.key == "payment_provider_unreachable"
    rig.balanced()


def test_issuance_failure_after_payment_refunds(rig: Rig) -> None:
    key = rig.to_paying("qr")
    rig.world.set_fault("issue_fails")
    rig.qr.approve(key)
    rig.tick()
    assert rig.state == "DONE"
    assert rig.view.refund_yen == 300 and rig.view.error.key == "cityhall_rejected"
    txn = rig.journal.transactions()[0]
    assert (txn.outcome, txn.refunded) == ("refunded", 300)
    assert rig.world.data["receipts"][0]["refund"] == 300
    rig.balanced()


def test_paper_jam_on_the_second_document_refunds_only_it(rig: Rig) -> None:
    key = rig.to_paying("cash", (OrderLine("juminhyo", 2, 300),))
    rig.cash.insert(key, 500)
    rig.world.data["faults"]["jam_next_print"] = False
    original = rig.printer.print_document

    def jam_second(pdf: bytes, job_name: str) -> None:
        if job_name.endswith("doc2"):
            rig.world.set_fault("jam_next_print")
        original(pdf, job_name)

    rig.printer.print_document = jam_second  # type: ignore[method-assign]
    rig.cash.insert(key, 100)
    rig.tick()
    assert rig.state == "DONE" and rig.view.error.key == "paper_jam"
    txn = rig.journal.transactions()[0]
    assert (txn.outcome, txn.docs_printed, txn.fees_printed, txn.refunded) == ("partly_refunded", 1, 300, 300)
    rig.balanced()


def test_refund_impossible_gives_a_voucher(rig: Rig) -> None:
    key = rig.to_paying("qr")
    rig.world.set_fault("issue_fails")
    rig.world.set_fault("refund_fails")
    rig.qr.approve(key)
    rig.tick()
    txn = rig.journal.transactions()[0]
    assert (txn.outcome, txn.voucher) == ("voucher", 300)
    receipt = rig.world.data["receipts"][0]
    assert rig.view.voucher_code == txn.txn_id and receipt["voucher"] == 300
    # the printed 返金引換券 carries a code signed with the kiosk's key, for exactly what is owed
    issuer = rig.engine.settlement.vouchers
    check = verify(receipt["voucher_code"], lambda device: issuer.key.public_key(), rig.clock.now())
    assert check.status is VoucherStatus.GENUINE
    assert (check.voucher.txn_id, check.voucher.amount_yen) == (txn.txn_id, 300)
    issued = next(e for e in rig.journal.events() if e.kind == "voucher.issued")
    assert issued.body["voucher_code"] == receipt["voucher_code"] and issued.body["amount"] == 300
    rig.balanced()


def test_hopper_empty_for_change_gives_a_voucher(rig: Rig) -> None:
    rig.world.data["hopper"] = 100
    key = rig.to_paying("cash")
    finish_cash(rig, key, [500])
    txn = rig.journal.transactions()[0]
    assert rig.state == "DONE" and rig.view.voucher_yen == 100
    assert (txn.change_paid, txn.voucher, txn.outcome) == (100, 100, "voucher")
    assert not any(e.kind == "failsafe" for e in rig.journal.events())
    rig.balanced()


def test_receipt_printer_failure_does_not_undo_a_completed_sale(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.world.set_fault("receipt_paper_out")
    rig.cash.insert(key, 300)
    rig.tick()
    assert rig.state == "DONE" and rig.journal.transactions()[0].outcome == "completed"
    kinds = [e.body for e in rig.journal.events() if e.kind == "receipt.outcome"]
    assert kinds == [{"printed": False, "error_code": 401}]


def test_receipt_paper_near_end_is_journaled(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.world.set_fault("receipt_near_end")
    rig.cash.insert(key, 300)
    rig.tick()
    assert any(e.kind == "device.warning" and e.body["warning"] == "paper_near_end" for e in rig.journal.events())


# --- timeouts -------------------------------------------------------------------------------------

def test_every_state_has_a_timeout_rule() -> None:
    for state in State:
        key = TIMEOUT_KEYS[state]
        assert key is None or hasattr(TimeoutsSection(), key)


@pytest.mark.parametrize("where", ["PIN_ENTRY", "REMOVE_CARD", "CHOOSING", "CONFIRMING"])
def test_walking_away_before_payment_times_out_to_an_empty_idle(rig: Rig, where: str) -> None:
    rig.place_card()
    if where != "PIN_ENTRY":
        rig.pin()
    if where in ("CHOOSING", "CONFIRMING"):
        rig.remove_card()
    if where == "CONFIRMING":
        rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    limit = getattr(rig.engine.timeouts, TIMEOUT_KEYS[State(where)])
    rig.tick(limit - rig.engine.timeouts.inactivity_warning + 1)
    assert rig.state == where and rig.view.warning_seconds_left is not None
    rig.send(ev.Touch())
    assert rig.view.warning_seconds_left is None
    rig.tick(limit + 1)
    assert rig.state == "IDLE" and not rig.view.holds_transaction_data()
    assert rig.journal.transactions()[0].outcome == "abandoned"


def test_walking_away_during_payment_returns_the_money(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.cash.insert(key, 100)
    rig.tick()
    rig.tick(rig.engine.timeouts.paying + 1)
    assert rig.state == "IDLE" and not rig.view.holds_transaction_data()
    assert rig.journal.transactions()[0].refunded == 100
    rig.balanced()


@pytest.mark.parametrize("where", ["DONE", "ERROR"])
def test_result_screens_time_out(rig: Rig, where: str) -> None:
    if where == "DONE":
        key = rig.to_paying("cash")
        finish_cash(rig, key, [300])
    else:
        rig.world.set_fault("not_jpki")
        rig.place_card()
    assert rig.state == where
    rig.tick(getattr(rig.engine.timeouts, TIMEOUT_KEYS[State(where)]) + 1)
    assert rig.state == "IDLE" and not rig.view.holds_transaction_data() and rig.view.error is None


def test_a_money_state_that_overruns_goes_to_failsafe_and_settles(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.cash.insert(key, 300)
    rig.engine.state = State.ISSUING  # as if issuing had hung past its timeout
    rig.tick(rig.engine.timeouts.issuing + 1)
    assert rig.state == "OUT_OF_SERVICE" and rig.view.out_of_service_reason == "failsafe"
    assert rig.journal.transactions()[0].closed
    rig.balanced()


# --- failsafe, journal, service --------------------------------------------------------------------

def test_unexpected_exception_goes_to_failsafe_and_refunds(rig: Rig) -> None:
    key = rig.to_paying("cash")

    def broken(*_: object) -> None:
        raise RuntimeError("driver bug")

    rig.printer.print_document = broken  # type: ignore[method-assign]
    rig.cash.insert(key, 500)
    rig.tick()
    assert rig.state == "OUT_OF_SERVICE"
    txn = rig.journal.transactions()[0]
    assert txn.closed and txn.refunded == 300 and txn.change_paid == 200
    assert [e.body["in_state"] for e in rig.journal.events() if e.kind == "failsafe"] == ["PRINTING"]
    assert any(e.kind == "txn.state" and e.body["to"] == "FAILSAFE" for e in rig.journal.events())
    rig.balanced()


def test_journal_failure_takes_the_kiosk_out_of_service(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.errors import JournalError
    rig.place_card()

    def fail(*_: object, **__: object) -> None:
        raise JournalError("disk I/O error")

    monkeypatch.setattr(rig.journal, "append", fail)
    rig.pin()
    assert rig.state == "OUT_OF_SERVICE" and rig.view.out_of_service_reason == "journal"
    assert not rig.view.holds_transaction_data()


def test_service_off_and_on(rig: Rig) -> None:
    rig.send(ev.ServiceOff("cleaning"))
    assert rig.state == "OUT_OF_SERVICE" and rig.view.out_of_service_reason == "cleaning"
    rig.tick(60)
    assert rig.state == "OUT_OF_SERVICE"
    rig.send(ev.ServiceOn())
    assert rig.state == "IDLE"


def test_service_off_waits_for_the_transaction_in_progress(rig: Rig) -> None:
    key = rig.to_paying("cash")
    rig.send(ev.ServiceOff())
    assert rig.state == "PAYING"
    finish_cash(rig, key, [300])
    rig.send(ev.Dismiss())
    assert rig.state == "OUT_OF_SERVICE"


def test_printer_out_of_paper_shows_out_of_service_before_payment(rig: Rig) -> None:
    rig.to_choosing()
    rig.send(ev.ChooseOrder(ONE_JUMINHYO))
    rig.world.set_fault("paper_out")
    rig.send(ev.ChoosePayment("cash"))
    assert rig.state == "ERROR" and rig.view.error.key == "paper_out"
    assert rig.world.data["payments"] == {}
    rig.send(ev.Dismiss())
    assert rig.state == "OUT_OF_SERVICE"


def test_idle_health_check_finds_a_fault(rig: Rig) -> None:
    rig.world.set_fault("paper_out")
    rig.tick(61)
    assert rig.state == "OUT_OF_SERVICE"


def test_reader_lost_at_idle(rig: Rig) -> None:
    rig.send(ev.ReaderLost())
    assert rig.state == "OUT_OF_SERVICE"


def test_closed_hours_ignore_cards(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kiosk.config import ServiceHoursSection
    from kiosk.engine import ServiceHours
    rig = make_rig(tmp_path)
    rig.engine.service_hours = ServiceHours.from_config(ServiceHoursSection(opens="20:00", closes="21:00"))
    rig.place_card()
    assert rig.state == "IDLE" and rig.journal.transactions() == []
    rig.engine.service_hours = ServiceHours.from_config(ServiceHoursSection())
    rig.card.remove()
    rig.place_card()
    assert rig.state == "PIN_ENTRY"


def test_language_can_change_on_every_screen(rig: Rig) -> None:
    rig.send(ev.SetLanguage("en"))
    rig.place_card()
    assert rig.view.language == "en"
    rig.send(ev.SetLanguage("xx"))
    assert rig.view.language == "en"


def test_view_states_are_immutable(rig: Rig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        rig.view.state = "DONE"  # type: ignore[misc]


def test_pin_never_reaches_the_journal_or_a_repr(rig: Rig) -> None:
    rig.place_card()
    rig.pin("9517")
    rig.pin()
    assert "9517" not in repr(ev.EnterPin("9517", 1))
    for e in rig.journal.events():
        assert "9517" not in str(e.body) and "4821" not in str(e.body)


def test_each_working_state_is_on_screen_while_its_work_runs(rig: Rig) -> None:
    rig.to_paying("cash", (OrderLine("juminhyo", 1, 300),))
    rig.cash.insert(rig.journal.transaction(rig.view.txn_id).payment_key, 300)
    rig.tick()
    shown = [v.state for v in rig.views]
    for state in ("CARD_READING", "AUTHENTICATING", "ISSUING", "PRINTING", "RECEIPT", "DONE"):
        assert state in shown
    assert shown.index("CARD_READING") < shown.index("PIN_ENTRY") < shown.index("AUTHENTICATING")


def test_result_screens_get_no_inactivity_warning(rig: Rig) -> None:
    key = rig.to_paying("cash")
    finish_cash(rig, key, [300])
    assert rig.state == "DONE" and rig.view.warning_seconds_left is None
