"""The production QR driver over real HTTP on loopback against the `kiosk-sim qr` emulator process:
approve, decline, expire, cancel, lost and slow answers resolved with the same key (one charge, counted
in the emulator's own records), refunds after a later failure, reconciliation, authentication."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from drivers.payment.qr import QrPayment, codec
from drivers.sim.qr_provider.control import QrProviderControl
from kiosk.errors import PaymentError, PaymentProviderUnreachable, RefundFailed
from kiosk.ports import PaymentState
from tests.support.services import free_port

from .conftest import API_KEY, QrEmulator, RecordingLedger, make_options

pytestmark = pytest.mark.integration

FEE = 300
JST = timezone(timedelta(hours=9))


def captures(control: QrProviderControl, key: str) -> list[dict]:
    return [t for t in control.records()["transactions"] if t["merchantPaymentId"] == key and t["kind"] == "capture"]


def payments(control: QrProviderControl, key: str) -> list[dict]:
    return [p for p in control.records()["payments"] if p["merchant_payment_id"] == key]


def test_approved_payment_is_paid_and_recorded_once(qr: QrPayment, control: QrProviderControl,
                                                    ledger: RecordingLedger, key: str) -> None:
    started = qr.start(key, FEE, "住民票の写し 1通")
    assert started.state is PaymentState.PENDING
    assert started.qr_payload.endswith(control.payment(key)["code_id"])
    assert started.expires_at is not None and started.expires_at > datetime.now(timezone.utc)
    assert qr.poll(key).state is PaymentState.PENDING

    control.approve(key)
    paid = qr.poll(key)
    again = qr.poll(key)

    assert (paid.state, paid.amount_due, paid.amount_in) == (PaymentState.PAID, FEE, FEE)
    assert again.state is PaymentState.PAID
    assert paid.provider_ref == control.payment(key)["payment_id"]
    assert len(ledger.ins) == 1 and ledger.ins[0][:3] == (key, FEE, "qr")
    assert ledger.outs == []
    assert len(captures(control, key)) == 1


def test_declined_payment_fails_with_the_declined_code_and_takes_nothing(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.decline(key)
    status = qr.poll(key)
    assert status.state is PaymentState.FAILED
    assert status.detail.startswith("E301")
    assert status.amount_in == 0 and ledger.ins == [] and captures(control, key) == []


def test_expired_code_fails_with_the_expired_code(qr: QrPayment, control: QrProviderControl,
                                                  ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.expire(key)
    status = qr.poll(key)
    assert status.state is PaymentState.FAILED
    assert status.detail.startswith("E302")
    assert ledger.ins == []
    with pytest.raises(RuntimeError, match="EXPIRED"):
        control.approve(key)  # a resident scanning late cannot pay any more


def test_cancel_before_payment_withdraws_the_code(qr: QrPayment, control: QrProviderControl,
                                                  ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    status = qr.cancel(key)
    assert status.state is PaymentState.CANCELLED and status.returned == 0
    with pytest.raises(RuntimeError, match="CANCELED"):
        control.approve(key)
    assert qr.cancel(key).state is PaymentState.CANCELLED  # cancelling twice is harmless
    assert ledger.ins == [] and ledger.outs == []


def test_cancel_racing_a_payment_gives_the_money_back_and_books_both(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.approve(key)  # the resident paid just as the kiosk gave up
    status = qr.cancel(key)
    assert (status.state, status.returned) == (PaymentState.CANCELLED, FEE)
    assert [(k, a, r) for k, a, r, _ in ledger.ins] == [(key, FEE, "qr")]
    assert [(k, a, r) for k, a, r, _ in ledger.outs] == [(key, FEE, "cancel_return")]
    kinds = sorted(t["kind"] for t in control.records()["transactions"] if t["merchantPaymentId"] == key)
    assert kinds == ["cancel", "capture"]


def test_lost_create_answer_is_retried_with_the_same_key_one_payment(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    control.fault("create", "drop")  # the provider creates the code, the answer never arrives
    started = qr.start(key, FEE, "fee")
    assert started.state is PaymentState.PENDING and started.qr_payload
    [record] = payments(control, key)
    assert record["create_requests"] == 2
    control.approve(key)
    assert qr.poll(key).state is PaymentState.PAID
    assert len(captures(control, key)) == 1 and len(ledger.ins) == 1


def test_every_create_answer_lost_is_unknown_then_resolved_by_poll_with_one_charge(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    control.fault("create", "drop", times=3)
    started = qr.start(key, FEE, "fee")
    assert started.state is PaymentState.UNKNOWN
    assert started.detail.startswith("E307")

    resolved = qr.poll(key)  # same key: the provider's payment is found, its code fetched again
    assert resolved.state is PaymentState.PENDING and resolved.qr_payload
    control.approve(key)
    assert qr.poll(key).state is PaymentState.PAID

    assert len(payments(control, key)) == 1
    assert len(captures(control, key)) == 1
    assert len(ledger.ins) == 1


def test_lost_poll_answer_after_payment_is_unknown_then_paid_once(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.approve(key)
    control.fault("details", "drop", times=3)
    assert qr.poll(key).state is PaymentState.UNKNOWN
    assert ledger.ins == []
    assert qr.poll(key).state is PaymentState.PAID
    assert qr.poll(key).state is PaymentState.PAID
    assert len(ledger.ins) == 1 and len(captures(control, key)) == 1


def test_slow_create_answer_times_out_and_the_retry_finds_the_same_payment(
        qr: QrPayment, control: QrProviderControl, key: str) -> None:
    control.fault("create", "delay", seconds=1.6)  # longer than the driver's 1 s read timeout
    t0 = time.monotonic()
    started = qr.start(key, FEE, "fee")
    assert time.monotonic() - t0 < 4.0  # bounded: one timeout plus a quick retry, never a hang
    assert started.state is PaymentState.PENDING
    assert len(payments(control, key)) == 1


def test_server_error_before_processing_is_retried(qr: QrPayment, control: QrProviderControl, key: str) -> None:
    control.fault("create", "error", status=503, times=2)
    assert qr.start(key, FEE, "fee").state is PaymentState.PENDING
    assert control.records()["requests"]["create"] == 3
    assert payments(control, key)[0]["create_requests"] == 1


def test_refund_after_a_later_failure_survives_a_lost_answer_and_is_idempotent(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.approve(key)
    assert qr.poll(key).state is PaymentState.PAID
    # printing failed: the engine refunds; the provider commits the refund and its answer is lost
    control.fault("refund", "drop", times=3)
    result = qr.refund(key, f"{key}-r1", FEE)
    assert (result.refunded, result.unpaid) == (FEE, 0)
    again = qr.refund(key, f"{key}-r1", FEE)  # the engine asks again after a crash: same answer
    assert again == result

    refunds = [r for r in control.records()["refunds"] if r["merchant_payment_id"] == key]
    assert len(refunds) == 1 and refunds[0]["status"] == "COMPLETED"
    assert [(k, a, r) for k, a, r, _ in ledger.outs] == [(key, FEE, "refund")]
    assert control.payment(key)["status"] == "REFUNDED"


def test_refund_refused_by_the_provider_is_refund_failed(qr: QrPayment, control: QrProviderControl,
                                                         ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.approve(key)
    control.decline_refunds()
    with pytest.raises(RefundFailed) as failed:
        qr.refund(key, f"{key}-r1", FEE)
    assert failed.value.code == 309 and failed.value.context["unpaid"] == FEE
    assert ledger.outs == []


def test_refund_of_a_payment_that_never_captured_gives_nothing_back(
        qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.decline(key)
    assert qr.refund(key, f"{key}-r1", FEE).refunded == 0
    assert ledger.outs == [] and control.records()["refunds"] == []


def test_reconcile_lists_the_days_captures_and_refunds(qr: QrPayment, control: QrProviderControl, key: str) -> None:
    qr.start(key, FEE, "fee")
    control.approve(key)
    qr.poll(key)
    qr.refund(key, f"{key}-r1", 100)
    today = datetime.now(JST).date()
    mine = [r for r in qr.reconcile(today) if r.merchant_payment_id == key]
    assert [(r.kind, r.amount) for r in mine] == [("capture", FEE), ("refund", 100)]
    assert mine[1].merchant_refund_id == f"{key}-r1"
    assert qr.reconcile(today - timedelta(days=1)) == []


def test_wrong_secret_is_refused_and_reported_as_a_credentials_problem(
        qr_emulator: QrEmulator, control: QrProviderControl, ledger: RecordingLedger, key: str) -> None:
    driver = QrPayment(make_options(qr_emulator.base_url), ledger, secret="not-the-secret")
    try:
        problem = driver.available()
        assert problem is not None and "credentials" in problem.detail
        with pytest.raises(PaymentProviderUnreachable, match="credentials"):
            driver.start(key, FEE, "fee")
        assert payments(control, key) == []
    finally:
        driver.close()


def test_available_when_the_provider_answers(qr: QrPayment, control: QrProviderControl) -> None:
    assert qr.available() is None


def test_unreachable_provider_creates_nothing_and_polls_unknown(ledger: RecordingLedger, key: str) -> None:
    driver = QrPayment(make_options(f"http://127.0.0.1:{free_port()}", attempts=2), ledger, secret="s")
    try:
        assert driver.available() is not None
        with pytest.raises(PaymentProviderUnreachable, match="no payment was created"):
            driver.start(key, FEE, "fee")
        assert driver.poll(key).state is PaymentState.UNKNOWN
    finally:
        driver.close()


def test_replayed_signed_request_is_refused(qr_emulator: QrEmulator, control: QrProviderControl) -> None:
    path = "/v2/codes/payments/tx-replay"
    header = codec.auth_header(API_KEY, "kiosk-test-secret", "GET", path, None, "fixed-nonce", int(time.time()))
    first = requests.get(qr_emulator.base_url + path, headers={"Authorization": header}, timeout=5)
    second = requests.get(qr_emulator.base_url + path, headers={"Authorization": header}, timeout=5)
    assert codec.decode_envelope(first.status_code, first.content).result.code == codec.DYNAMIC_QR_PAYMENT_NOT_FOUND
    assert second.status_code == 401
    assert "replayed" in codec.decode_envelope(401, second.content).result.message


def test_resident_approving_after_a_delay_is_seen_by_polling(qr: QrPayment, control: QrProviderControl,
                                                             ledger: RecordingLedger, key: str) -> None:
    control.auto("approve", after=0.3)  # what `kiosk-sim qr --auto-approve 0.3` does for the demo
    assert qr.start(key, FEE, "fee").state is PaymentState.PENDING
    assert qr.poll(key).state is PaymentState.PENDING
    deadline = time.monotonic() + 5
    while (status := qr.poll(key)).state is PaymentState.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status.state is PaymentState.PAID and len(ledger.ins) == 1


def test_a_key_reused_for_another_amount_is_refused_without_a_second_payment(
        qr_emulator: QrEmulator, qr: QrPayment, control: QrProviderControl, ledger: RecordingLedger,
        key: str) -> None:
    qr.start(key, FEE, "fee")
    other = QrPayment(make_options(qr_emulator.base_url), ledger, secret="kiosk-test-secret")
    try:
        with pytest.raises(PaymentError, match="another amount"):
            other.start(key, FEE + 100, "fee")
    finally:
        other.close()
    [record] = payments(control, key)
    assert (record["amount"], record["status"]) == (FEE, "CREATED")
