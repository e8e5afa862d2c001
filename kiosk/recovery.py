"""Settling a transaction that did not finish: at start after a crash, and from the FAILSAFE state.

Every transaction not closed is reconciled by this table (state it was in → what happens). No money
is taken before PAYING, and every yen taken is matched by a printed certificate's fee, change, a
refund or a refund voucher before the transaction closes.

| state at the crash                  | action                                                            |
|-------------------------------------|-------------------------------------------------------------------|
| IDLE … CONFIRMING, ERROR            | close as abandoned (no payment was started)                        |
| PAYING, no payment intent           | close as abandoned                                                 |
| PAYING, intent journaled            | ask the provider with the SAME key: pending → cancel (money back); |
|                                     | paid → refund; unknown (provider unreachable) → stay open, retry   |
| ISSUING (paid, nothing printed)     | refund in full                                                     |
| PRINTING                            | ask the printer what became of each job: printed jobs count as     |
|                                     | delivered; the fees of the others are refunded                     |
| RECEIPT, DONE                       | close as completed (the receipt is not reprinted; journaled)       |
| REFUNDING                           | repeat the refund with the SAME refund key (idempotent)            |
| any, refund impossible              | a refund voucher for what could not be paid back, journaled        |

Issued-but-unprinted documents are refunded, not reprinted: the kiosk keeps no copy of a resident's
document, and printing one after a restart could leave it in the tray for the next person.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Mapping

from kiosk.errors import KioskError, PaymentProviderUnreachable
from kiosk.journal import Journal, TransactionRow
from kiosk.ports import (Clock, DocumentPrinter, PaymentProvider, PaymentState, PrintedVoucher, PrintOutcome,
                         VoucherIssuer)

log = logging.getLogger("kiosk.recovery")


class StillInDoubt(KioskError):
    """A payment's outcome could not be learned yet; the transaction stays open and is retried."""
    code = 710
    message_key = "internal"


@dataclass
class Settlement:
    """Money and print settlement shared by crash recovery and the engine's REFUNDING/FAILSAFE states."""

    journal: Journal
    payments: Mapping[str, PaymentProvider]
    document_printer: DocumentPrinter | None
    vouchers: VoucherIssuer
    clock: Clock
    new_key: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    print_wait_seconds: float = 30.0

    # --- pieces ---------------------------------------------------------------------------------------

    def resolve_payment(self, txn: TransactionRow) -> None:
        """For a transaction that was PAYING: learn the payment's fate with the same key; stop it if open."""
        provider = self.payments.get(txn.method or "")
        if txn.payment_key is None or provider is None:
            return
        status = provider.poll(txn.payment_key)
        if status.state is PaymentState.UNKNOWN:
            raise StillInDoubt(f"payment {txn.payment_key} of {txn.txn_id}: the provider could not say what "
                               "happened; the transaction stays open and is asked again later")
        if status.state is PaymentState.PENDING:
            status = provider.cancel(txn.payment_key)
        self.journal.record(txn.txn_id, "payment.outcome",
                            {"state": status.state.value, "amount_in": status.amount_in,
                             "change_paid": status.change_paid, "returned": status.returned,
                             "unpaid_to_resident": status.unpaid_to_resident, "recovered": True})

    def resolve_prints(self, txn: TransactionRow) -> None:
        """For documents with a print intent but no outcome, ask the printer (by job name) what happened."""
        for doc in self.journal.documents(txn.txn_id):
            if doc.printed != 0:
                continue
            outcome = PrintOutcome.NOT_FOUND
            if self.document_printer is not None:
                deadline = time.monotonic() + self.print_wait_seconds
                outcome = self.document_printer.job_outcome(doc.job_name)
                while outcome is PrintOutcome.IN_PROGRESS and time.monotonic() < deadline:
                    time.sleep(0.5)
                    outcome = self.document_printer.job_outcome(doc.job_name)
            self.journal.mark_document(txn.txn_id, doc.document_id, outcome is PrintOutcome.PRINTED,
                                       {"recovered": True, "printer_says": outcome.value})

    def pending_refund_key(self, txn_id: str) -> str | None:
        """A refund intent journaled without an outcome: its key must be reused, never a new one."""
        open_keys: dict[str, bool] = {}
        for ev in self.journal.events(txn_id=txn_id):
            if ev.kind == "refund.intent":
                open_keys[ev.body["refund_key"]] = True
            elif ev.kind == "refund.outcome":
                open_keys.pop(ev.body["refund_key"], None)
        return next(iter(open_keys), None)

    def refund_unmatched(self, txn_id: str) -> tuple[int, int, PrintedVoucher | None]:
        """Pay back every yen not matched by a printed fee or change. Returns (refunded, voucher yen, the
        返金引換券 for what could not be paid back or None)."""
        txn = self.journal.transaction(txn_id)
        amount = txn.unmatched_yen
        if amount <= 0:
            return 0, 0, None
        refunded_before = txn.refunded
        provider = self.payments.get(txn.method or "")
        refund_key = self.pending_refund_key(txn_id)
        if refund_key is None:
            refund_key = self.new_key()
            self.journal.record(txn_id, "refund.intent", {"refund_key": refund_key, "amount": amount},
                                set={"state": "REFUNDING"})
        error_code = 0
        if provider is not None and txn.payment_key is not None:
            try:
                result = provider.refund(txn.payment_key, refund_key, amount)
                log.info("refund %s of %s: %d yen back, %d unpaid", refund_key, txn_id, result.refunded, result.unpaid)
            except PaymentProviderUnreachable as exc:
                # The refund may or may not have happened: ask again later with the same key rather
                # than hand out a voucher that could pay the resident twice.
                raise StillInDoubt(f"refund {refund_key} of {txn_id}: no answer from the provider ({exc}); "
                                   "asked again with the same key until it answers") from exc
            except KioskError as exc:
                error_code = exc.code
                log.warning("refund %s of %s failed: %s; a voucher will be issued", refund_key, txn_id, exc)
        else:
            error_code = 309
        after = self.journal.transaction(txn_id)
        refunded = after.refunded - refunded_before
        self.journal.append("refund.outcome", {"refund_key": refund_key, "refunded": refunded,
                                               "error_code": error_code}, txn_id)
        remaining = after.unmatched_yen
        voucher = None
        if remaining > 0:
            voucher = self.vouchers.issue(txn_id, remaining, self.clock.now())
            self.journal.record_voucher(txn_id, remaining, voucher.code, voucher.expires_at)
        return refunded, max(remaining, 0), voucher

    # --- whole transactions ---------------------------------------------------------------------------

    def settle(self, txn: TransactionRow) -> str:
        """Bring an unfinished transaction to a closed, balanced outcome. Returns the outcome."""
        state = txn.state
        log.info("settling %s left in %s", txn.txn_id, state)
        if txn.payment_key is None and txn.money_in == 0:
            self.journal.close_transaction(txn.txn_id, "abandoned", "IDLE", {"recovered_from": state})
            return "abandoned"
        kinds = {e.kind for e in self.journal.events(txn_id=txn.txn_id)}
        if "payment.outcome" not in kinds:
            self.resolve_payment(txn)
        self.resolve_prints(txn)
        self.refund_unmatched(txn.txn_id)
        return self.close(txn.txn_id, recovered_from=state)

    def close(self, txn_id: str, recovered_from: str | None = None) -> str:
        txn = self.journal.transaction(txn_id)
        if txn.unmatched_yen != 0:
            raise KioskError(f"{txn_id} does not balance ({txn.unmatched_yen} yen unmatched); not closing it")
        if txn.voucher:
            outcome = "voucher"
        elif txn.docs_printed and txn.docs_printed == txn.docs_expected and not txn.refunded:
            outcome = "completed"
        elif txn.docs_printed:
            outcome = "partly_refunded"
        elif txn.money_in:
            outcome = "refunded"
        else:
            outcome = "abandoned"
        body = {"recovered_from": recovered_from} if recovered_from else {}
        self.journal.close_transaction(txn_id, outcome, "DONE" if txn.docs_printed else "IDLE", body)
        return outcome


def recover_all(settlement: Settlement) -> dict[str, str]:
    """Run at start: settle every open transaction. In-doubt payments stay open (raise at the end)."""
    results: dict[str, str] = {}
    in_doubt: list[str] = []
    for txn in settlement.journal.transactions(open_only=True):
        try:
            results[txn.txn_id] = settlement.settle(txn)
        except StillInDoubt as exc:
            log.warning("%s", exc)
            in_doubt.append(txn.txn_id)
    if results:
        settlement.journal.append("recovery.done", {"settled": results, "in_doubt": in_doubt})
    if in_doubt:
        raise StillInDoubt(f"{len(in_doubt)} transaction(s) with a payment in doubt: {', '.join(in_doubt)}")
    return results
