"""Cash payment over ccTalk: coins in (address 2), 1000-yen notes in (address 40), change out (hoppers).

One owner thread talks to the bus: it polls the coin acceptor and the note validator every
``poll_interval`` seconds and runs the engine's commands (start, cancel, refund) between polls, so the
serial port has exactly one user. The engine's calls hand a command to that thread and wait at most
``command_timeout`` seconds; ``poll`` only reads state and never touches the bus.

Money rules:
- only the coins and notes in ``accepted_coins`` / ``accepted_notes`` are ever enabled, and only while
  a payment is collecting; a coin or note that would need change the hoppers cannot give is inhibited
  (that is what "exact amount only" means on screen);
- every credit and every coin paid out goes to the MoneyLedger the moment the device reports it;
- change, returns and refunds the hoppers cannot pay end as ``unpaid_to_resident`` / ``RefundResult.unpaid``
  (the engine prints a refund voucher) plus a ledger alarm with the amount;
- lost events (counter gap), jams, fraud and device faults take the cash provider out of service
  (``available()`` says why) until a technician calls ``reset_fault()`` or the kiosk restarts.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kiosk.errors import (CashEventsLost, CoinJam, FraudAttempt, HopperEmpty, KioskError, PaymentDeviceFault,
                          PaymentError, RefundFailed)
from kiosk.ports import MoneyLedger, PaymentState, PaymentStatus, RefundResult
from kiosk.registry import register

from ..cctalk.codec import ChecksumMode, CoinEventKind
from ..cctalk.devices import CoinAcceptor, CoinEvent, Hopper, NoteValidator
from ..cctalk.transport import BusyReceived, CcTalkTransport, NakReceived, SerialLike, open_serial
from ..id003.codec import Status as Id003Status
from ..id003.transport import Id003Transport
from ..id003.transport import SerialLike as Id003SerialLike
from ..id003.transport import open_serial as open_id003_serial
from ..id003.validator import Id003NoteValidator
from .devices import EscrowEmpty, NoteEvent, NoteEventKind, NoteValidatorDevice
from .options import CashOptions
from .rules import Payment, note_acceptable, plan_change

log = logging.getLogger(__name__)

IDLE_KEY = "cash-idle"  # ledger key for money that arrives while no payment is collecting
NOTE_STACK_TIMEOUT = 10.0  # seconds from "stack it" to the validator's credit event
ESCROW_EXTEND_EVERY = 5.0  # seconds between "keep holding the note" (154/255) while the resident adds coins
HOPPER_RECHECK_INTERVAL = 10.0  # seconds between level checks of a hopper believed empty


@dataclass
class _HopperSlot:
    device: Hopper
    usable: bool = True
    why_not: str = ""
    checked_at: float = 0.0


class CashPayment:
    """kiosk.ports.PaymentProvider for cash. See the module docstring for the rules it keeps."""

    method = "cash"

    def __init__(self, options: CashOptions, ledger: MoneyLedger, *,
                 open_port: Callable[[], SerialLike] | None = None, owner_thread: bool = True,
                 sleep: Callable[[float], None] = time.sleep,
                 open_note_port: Callable[[], Id003SerialLike] | None = None,
                 hopper_float: Mapping[int, int] | None = None) -> None:
        self.options = options
        self.ledger = ledger
        self._open_port = open_port or (lambda: open_serial(options.port, options.reply_timeout))
        self._open_note_port = open_note_port or (lambda: open_id003_serial(
            options.id003.port, options.id003.reply_timeout, options.id003.parity))
        self._note_transport: Id003Transport | None = None
        # Coins believed in each hopper (coin yen → coins), from the journal's cash book at start and
        # then from every payout; a coin missing here is not counted (assumed enough).
        self._float: dict[int, int] = dict(hopper_float or {})
        self._stacked_notes: dict[int, int] = {}  # notes stacked since start, by value
        self._sleep = sleep
        self._lock = threading.RLock()
        self._commands: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._stop = threading.Event()
        self._transport: CcTalkTransport | None = None
        self._acceptor: CoinAcceptor | None = None
        self._validator: NoteValidatorDevice | None = None
        self._hoppers: list[_HopperSlot] = []
        self._ready = False
        self._fault: KioskError | None = None
        self._bus_error = ""
        self._next_connect = 0.0
        self._connect_failures = 0
        self._payments: dict[str, Payment] = {}
        self._refunds: dict[str, RefundResult] = {}
        # Event counters survive a reconnect, so credits made while the bus was down are still read.
        self._saved_counters: dict[int, int] = {}
        self._current: Payment | None = None
        self._last_key = IDLE_KEY
        self._enabled: tuple[frozenset[int], frozenset[int]] | None = None
        self.polls = 0  # event polls done (bench and tests)
        self.last_credit_at = 0.0  # monotonic time a credit was last recorded
        self._thread: threading.Thread | None = None
        if owner_thread:
            self._thread = threading.Thread(target=self._run, name="cash-owner", daemon=True)
            self._thread.start()

    # --- the port (engine thread) ----------------------------------------------------------------------

    def available(self) -> PaymentStatus | None:
        with self._lock:
            if self._fault is not None:
                return PaymentStatus(key="", state=PaymentState.FAILED, amount_due=0,
                                     detail=f"E{self._fault.code} {self._fault.detail}")
            if not self._ready:
                return PaymentStatus(key="", state=PaymentState.FAILED, amount_due=0,
                                     detail=f"E{PaymentDeviceFault.code} cash devices not ready"
                                            + (f": {self._bus_error}" if self._bus_error else ""))
            step = self._smallest_step()
            if plan_change(step, self._held()) is None:
                return PaymentStatus(key="", state=PaymentState.PENDING, amount_due=0, exact_amount_only=True,
                                     detail="exact amount only: the hoppers cannot give change")
        return None

    def start(self, key: str, amount: int, description: str = "") -> PaymentStatus:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PaymentError(f"a cash payment needs a positive whole number of yen, got {amount!r}")
        with self._lock:
            known = self._payments.get(key)
            if known is not None:
                return known.status()
        try:
            return self._call(lambda: self._do_start(key, amount, description))
        except FutureTimeout:
            return self.poll(key)

    def poll(self, key: str) -> PaymentStatus:
        with self._lock:
            payment = self._payments.get(key)
            if payment is None:
                return PaymentStatus(key=key, state=PaymentState.UNKNOWN, amount_due=0,
                                     detail="no cash payment with this key in this process")
            return payment.status()

    def cancel(self, key: str) -> PaymentStatus:
        with self._lock:
            payment = self._payments.get(key)
            if payment is None:
                return PaymentStatus(key=key, state=PaymentState.UNKNOWN, amount_due=0,
                                     detail="no cash payment with this key in this process")
            if payment.state is not PaymentState.PENDING:
                return payment.status()
        try:
            return self._call(lambda: self._do_cancel(key))
        except FutureTimeout:
            return self.poll(key)  # still paying coins back; the engine polls until CANCELLED

    def refund(self, key: str, refund_key: str, amount: int) -> RefundResult:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PaymentError(f"a refund needs a positive whole number of yen, got {amount!r}")
        with self._lock:
            if refund_key in self._refunds:
                return self._refunds[refund_key]
        try:
            return self._call(lambda: self._do_refund(key, refund_key, amount))
        except FutureTimeout:
            raise PaymentDeviceFault(f"refund {refund_key} is still being paid out; ask again with the same "
                                     f"refund key for its result") from None

    # --- technician / lifecycle ----------------------------------------------------------------------

    @property
    def fault(self) -> KioskError | None:
        return self._fault

    def reset_fault(self) -> None:
        """A technician fixed the device: forget the fault and re-initialise the bus."""
        def do() -> None:
            with self._lock:
                current = self._current
                if current is not None and current.state is PaymentState.PENDING:
                    raise PaymentError(f"cash payment {current.key} is still collecting; cancel it first")
                self._fault = None
                self._ready = False
            self._drop_bus("technician reset")
            self._connect()
        self._call(do)

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=self.options.command_timeout)
            self._thread = None
        elif self._transport is not None:
            self._inhibit_all_quietly()
        self._drop_bus("closed")

    def pump(self) -> None:
        """One owner-loop step (commands are run inline): for callers that own the thread (tests, bench)."""
        if self._thread is not None:
            raise RuntimeError("pump() is for providers built with owner_thread=False")
        self._step()

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready or self._fault is not None:
                return self._ready
            if self._thread is None:
                self._step()
            else:
                time.sleep(0.01)
        return self._ready

    # --- owner thread --------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        if self._thread is None:
            return fn()
        self._ensure_owner_thread()
        fut: Future[Any] = Future()
        self._commands.put((fn, fut))
        try:
            return fut.result(timeout=self.options.command_timeout)
        except FutureTimeout:
            if fut.cancel():
                raise PaymentDeviceFault(f"the cash device thread did not take the command within "
                                         f"{self.options.command_timeout:.0f} s; nothing was done") from None
            raise  # it is running (paying coins out): the caller polls for the outcome

    def _run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            try:
                try:
                    fn, fut = self._commands.get(timeout=max(0.0, next_poll - time.monotonic()))
                except queue.Empty:
                    pass
                else:
                    self._run_command(fn, fut)
                    continue
                next_poll = time.monotonic() + self.options.poll_interval
                self._step_devices()
            except Exception:  # the only thread that can give money back must outlive any error
                log.exception("cash owner loop: unexpected error; dropping the bus and carrying on")
                self._drop_bus_quietly("unexpected error in the cash owner loop")
                self._schedule_reconnect()
        self._inhibit_all_quietly()

    def _ensure_owner_thread(self) -> None:
        """DESIGN habit 6: a device thread that died is reported and restarted by its owner."""
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            log.error("the cash owner thread had stopped; restarting it")
            self._drop_bus_quietly("cash owner thread restarted")
            self._thread = threading.Thread(target=self._run, name="cash-owner", daemon=True)
            self._thread.start()

    def _run_command(self, fn: Callable[[], Any], fut: Future[Any]) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed to the caller's thread, which raises it
            fut.set_exception(exc)

    def _step(self) -> None:
        self._step_devices()

    def _step_devices(self) -> None:
        try:
            if not self._ready:
                if self._fault is None and time.monotonic() >= self._next_connect:
                    self._connect()
                return
            self._poll_events()
            self._recheck_hoppers()
        except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
            self._bus_failed(exc)
        except Exception as exc:  # a bug must not kill the only thread that can give money back
            log.exception("cash owner loop: unexpected error")
            self._bus_failed(exc)

    def _schedule_reconnect(self) -> None:
        """Bounded exponential backoff: reconnect_interval, doubled per failure, at most reconnect_max."""
        o = self.options
        wait = min(o.reconnect_interval * (2 ** min(self._connect_failures, 16)), max(o.reconnect_max,
                                                                                     o.reconnect_interval))
        self._connect_failures += 1
        self._next_connect = time.monotonic() + wait

    def _drop_bus_quietly(self, why: str) -> None:
        try:
            self._drop_bus(why)
        except Exception:
            log.exception("dropping the cash bus failed")
            with self._lock:
                self._ready, self._transport, self._note_transport = False, None, None
                self._acceptor = self._validator = None
                self._hoppers = []

    def _connect(self) -> None:
        o = self.options
        try:
            port = self._open_port()
            transport = CcTalkTransport(port, echo=o.echo, mode=ChecksumMode(o.checksum),
                                        reply_timeout=o.reply_timeout, retries=o.retries, name="cash ccTalk")
            self._transport = transport
            acceptor = CoinAcceptor(transport, o.coin_acceptor_address)
            acceptor.check_category()
            acceptor.read_coin_table()
            acceptor.set_accepting(set())
            self._resume_counter(acceptor)
            validator: NoteValidatorDevice | None = None
            if o.note_validator == "cctalk" and o.note_validator_address:
                cctalk_validator = NoteValidator(transport, o.note_validator_address)
                cctalk_validator.check_category()
                cctalk_validator.read_bill_table()
                cctalk_validator.use_escrow()
                cctalk_validator.set_accepting(set())
                self._resume_counter(cctalk_validator)
                validator = cctalk_validator
            elif o.note_validator == "id003":
                validator = self._connect_id003()
            slots = []
            for h in o.hoppers:
                hopper = Hopper(transport, h.address, h.coin_yen, seconds_per_coin=o.seconds_per_coin,
                                status_interval=min(0.05, o.poll_interval), sleep=self._sleep)
                hopper.check_category()
                hopper.enable(False)
                slots.append(_HopperSlot(hopper))
        except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
            self._bus_error = str(exc)
            self._drop_bus_quietly(str(exc))
            self._schedule_reconnect()
            log.warning("cash devices not ready: %s; retrying in %.1f s", exc,
                        max(0.0, self._next_connect - time.monotonic()))
            return
        self._connect_failures = 0
        with self._lock:
            self._acceptor, self._validator, self._hoppers = acceptor, validator, slots
            self._enabled = None
            self._bus_error = ""
            self._ready = True
        for slot in slots:
            self._check_hopper(slot, reset_faults=True)
        missing = set(o.accepted_coins) - set(acceptor.coin_table.values())
        if missing:
            log.warning("coin acceptor has no coin position for %s yen; those coins cannot be taken", sorted(missing))
        log.info("cash devices ready: coins %s, notes %s, hoppers %s", sorted(set(acceptor.coin_table.values())),
                 sorted(set(validator.bill_table.values())) if validator else [],
                 [(s.device.address, s.device.coin_yen, s.usable) for s in slots])
        self._apply_enables()
        self._journal_float("devices ready")

    def _connect_id003(self) -> Id003NoteValidator:
        o = self.options.id003
        port = self._open_note_port()
        try:
            note_transport = Id003Transport(port, reply_timeout=o.reply_timeout, retries=o.retries,
                                            name="cash ID-003")
        except Exception as exc:
            port.close()  # or its exclusive lock keeps the next attempt out
            raise PaymentDeviceFault(f"cannot set up the ID-003 serial port {o.port}: {exc}") from exc
        self._note_transport = note_transport
        validator = Id003NoteValidator(note_transport, o.table(), reset_timeout=o.reset_timeout, sleep=self._sleep)
        found = validator.setup()
        if found is Id003Status.POWER_UP_BILL_IN_STACKER:
            # Power was lost while a note was going into the stacker: the reset finished stacking it and
            # no credit was (or will be) reported. The journal says so, with the largest note at risk.
            self._alarm(PaymentDeviceFault.code, "the note validator powered up with a note in its stacker: a "
                        "note was stacked without a credit when the power failed; count the cash box against "
                        "the ledger", max(self.options.accepted_notes, default=0))
        elif found is Id003Status.POWER_UP_BILL_IN_ACCEPTOR:
            log.warning("note validator powered up with a note in the acceptor: it gave the note back")
        log.info("ID-003 note validator ready (%s, found %s)", validator.version or "version unknown",
                 found.name.lower())
        return validator

    def _resume_counter(self, device: CoinAcceptor | NoteValidator) -> None:
        saved = self._saved_counters.get(device.address)
        if saved is None:
            device.prime()
        else:
            device.last_counter = saved

    def _drop_bus(self, why: str) -> None:
        with self._lock:
            for device in (self._acceptor, self._validator):
                if device is not None and device.last_counter is not None:
                    self._saved_counters[device.address] = device.last_counter
            self._ready = False
            transport, self._transport = self._transport, None
            note_transport, self._note_transport = self._note_transport, None
            self._acceptor = self._validator = None
            self._hoppers = []
        for t in (transport, note_transport):
            if t is not None:
                t.close()

    def _bus_failed(self, exc: BaseException) -> None:
        """The bus stopped answering or its port failed (a pulled cable): drop the handle first — nothing
        more can be said over it — then close the open payment with everything inserted owed to the
        resident (journaled as an alarm, so the engine prints a refund voucher), and reopen later."""
        log.error("cash bus failure: %s", exc)
        payment = self._current
        fault = exc if isinstance(exc, KioskError) else PaymentDeviceFault(f"cash device error: {exc}")
        self._drop_bus_quietly(str(exc))
        self._bus_error = str(exc)
        if payment is not None and payment.state is PaymentState.PENDING:
            self._abort(payment, fault, amount_at_risk=payment.note_stacking)
        self._schedule_reconnect()

    # --- commands (owner thread) -----------------------------------------------------------------------

    def _do_start(self, key: str, amount: int, description: str) -> PaymentStatus:
        with self._lock:
            if key in self._payments:
                return self._payments[key].status()
            if self._fault is not None:
                raise self._fault
            if not self._ready:
                raise PaymentDeviceFault(f"cash devices not ready: {self._bus_error or 'starting'}")
            current = self._current
            if current is not None and current.state is PaymentState.PENDING:
                raise PaymentError(f"cash payment {current.key} is still collecting; cancel it first")
            payment = Payment(key=key, amount_due=amount, detail=description)
            self._payments[key] = payment
            self._current = payment
            self._last_key = key
        log.info("cash payment %s: collecting %d yen", key, amount)
        self._apply_enables()
        return payment.status()

    def _do_cancel(self, key: str) -> PaymentStatus:
        payment = self._payments[key]
        if payment.state is not PaymentState.PENDING:
            return payment.status()
        payment.closing = True
        self._settle_inflight(payment)
        if payment.state is PaymentState.PENDING:
            self._give_back(payment, PaymentState.CANCELLED, "cancelled")
        return payment.status()

    def _do_refund(self, key: str, refund_key: str, amount: int) -> RefundResult:
        if refund_key in self._refunds:
            return self._refunds[refund_key]
        payment = self._payments.get(key)
        if payment is not None:
            if payment.state is not PaymentState.PAID:
                raise PaymentError(f"cash payment {key} is {payment.state.value}; only a paid payment is refunded")
            if amount > payment.amount_due - payment.refunded:
                raise PaymentError(f"refund of {amount} yen exceeds the {payment.amount_due - payment.refunded} "
                                   f"yen kept for {key}")
        if not self._ready:
            refunded = 0
        else:
            refunded = self._pay_out(key, amount, "refund")
        unpaid = amount - refunded
        if unpaid:
            self.ledger.alarm(key, RefundFailed.code, f"refund {refund_key}: {unpaid} of {amount} yen could not "
                              f"be paid from the hoppers; a refund voucher is due", amount_at_risk=unpaid)
        result = RefundResult(refund_key=refund_key, refunded=refunded, unpaid=unpaid)
        with self._lock:
            self._refunds[refund_key] = result
            if payment is not None:
                payment.refunded += amount
        return result

    # --- events ------------------------------------------------------------------------------------------

    def _poll_events(self) -> None:
        acceptor, validator = self._acceptor, self._validator
        assert acceptor is not None
        self.polls += 1
        coins = acceptor.poll()
        for event in coins.events:
            self._on_coin(event)
        if coins.lost or coins.device_reset:
            self._events_lost("coin acceptor", coins.lost, coins.device_reset, max(self.options.accepted_coins,
                                                                                    default=0))
            return
        if validator is not None and self._ready:
            notes = validator.poll()
            for event in notes.events:
                self._on_note(event)
            if notes.device_reset and isinstance(validator, Id003NoteValidator):
                # ID-003 keeps no event counter, so nothing was lost but the state: reopen and re-initialise
                # it; a note it was stacking is reported by its power-up status (see _connect_id003).
                raise PaymentDeviceFault("the note validator lost power or was reset")
            if notes.lost or notes.device_reset:
                self._events_lost("note validator", notes.lost, notes.device_reset,
                                  max(self.options.accepted_notes, default=0))
                return
        payment = self._current
        if payment is not None and payment.state is PaymentState.PENDING and not payment.closing:
            if payment.note_stacking and time.monotonic() - payment.note_stacking_since > NOTE_STACK_TIMEOUT:
                value, payment.note_stacking = payment.note_stacking, 0
                self._abort(payment, PaymentDeviceFault(f"the note validator did not confirm stacking a {value}-yen "
                                                        f"note within {NOTE_STACK_TIMEOUT:.0f} s"),
                            amount_at_risk=value)
            elif payment.amount_in >= payment.amount_due and not payment.note_stacking:
                self._complete(payment)
            else:
                self._stack_when_covered(payment)

    def _on_coin(self, event: CoinEvent) -> None:
        if event.kind is None:
            if event.value:
                self._credit(event.value, f"coin {event.value}")
            else:
                self._alarm(PaymentDeviceFault.code, f"coin acceptor credited position {event.position}, which is "
                            f"not in its coin table; a coin was kept without credit", max(self.options.accepted_coins))
            return
        kind = event.kind
        if kind in (CoinEventKind.NONE, CoinEventKind.REJECTED):
            log.debug("coin acceptor: %s (code %d)", event.text, event.code)
        elif kind is CoinEventKind.JAMMED:
            self._go_out_of_service(CoinJam(f"coin acceptor reports {event.text} (event code {event.code}); clear "
                                            f"the coin path, then reset the fault with kioskctl"),
                                    amount_at_risk=max(self.options.accepted_coins))
        elif kind is CoinEventKind.FRAUD:
            self._go_out_of_service(FraudAttempt(f"coin acceptor reports {event.text} (event code {event.code})"),
                                    amount_at_risk=0)
        elif kind is CoinEventKind.KEPT_WITHOUT_CREDIT:
            self._alarm(PaymentDeviceFault.code, f"coin acceptor reports {event.text} (event code {event.code}): "
                        f"a coin may have been kept without credit", max(self.options.accepted_coins))
        else:
            acceptor = self._acceptor
            fault, extra = acceptor.self_check() if acceptor is not None else (0, 0)
            if fault:
                self._go_out_of_service(PaymentDeviceFault(
                    f"coin acceptor reports {event.text} and self-check fault {fault} (extra {extra})"),
                    amount_at_risk=max(self.options.accepted_coins))
            else:
                log.warning("coin acceptor: %s (code %d); self-check OK", event.text, event.code)

    def _on_note(self, event: NoteEvent) -> None:
        validator = self._validator
        payment = self._current
        if event.kind is None:
            if event.escrow:
                self._decide_escrow(event)
                return
            if payment is not None and payment.note_stacking:
                payment.note_stacking = 0
            if payment is not None:
                payment.note_in_escrow = 0
            if event.value:
                with self._lock:
                    self._stacked_notes[event.value] = self._stacked_notes.get(event.value, 0) + 1
                self._credit(event.value, f"note {event.value}")
            else:
                self._alarm(PaymentDeviceFault.code, f"note validator stacked bill type {event.bill_type}, which is "
                            f"not in its bill table", max(self.options.accepted_notes, default=0))
            return
        kind = event.kind
        if kind is NoteEventKind.RETURNED:
            if payment is not None:
                payment.note_in_escrow = 0
                payment.note_stacking = 0
        elif kind in (NoteEventKind.STATUS, NoteEventKind.REJECTED):
            if event.code == 21:  # unknown bill type stacked: money in the box the kiosk cannot value
                self._alarm(PaymentDeviceFault.code, f"note validator: {event.text}",
                            max(self.options.accepted_notes, default=0))
            else:
                log.debug("note validator: %s (code %d)", event.text, event.code)
        elif kind is NoteEventKind.STACKER_FULL:
            log.error("note validator: stacker full; notes disabled until it is emptied")
            if validator is not None:
                self._validator = None
                try:
                    validator.set_accepting(set())
                except PaymentDeviceFault as exc:
                    log.warning("could not inhibit the note validator: %s", exc)
            self._alarm(PaymentDeviceFault.code, "note validator stacker full: empty it and reset the fault", 0)
        elif kind is NoteEventKind.FRAUD:
            self._go_out_of_service(FraudAttempt(f"note validator reports {event.text} (event code {event.code})"),
                                    amount_at_risk=0)
        else:
            at_risk = (payment.note_stacking or payment.note_in_escrow) if payment is not None else 0
            self._go_out_of_service(PaymentDeviceFault(f"note validator reports {event.text} "
                                                       f"(event code {event.code})"), amount_at_risk=at_risk)

    def _decide_escrow(self, event: NoteEvent) -> None:
        """Stack the note once it (with what is already in) covers the fee; until then hold it in escrow,
        so a resident who cancels gets the very same note back."""
        validator = self._validator
        payment = self._current
        assert validator is not None
        take = (payment is not None and payment.state is PaymentState.PENDING and not payment.closing
                and not payment.note_stacking and not payment.note_in_escrow
                and event.value in self.options.accepted_notes and self._acceptable(payment, event.value))
        if payment is not None and take:
            payment.note_in_escrow = event.value
            payment.note_escrow_extended = time.monotonic()
            log.info("cash payment %s: %d-yen note held in escrow", payment.key, event.value)
            self._stack_when_covered(payment)
            self._apply_enables()
            return
        if payment is not None and payment.state is PaymentState.PENDING and not payment.closing \
                and event.value in self.options.accepted_notes and not self._acceptable(payment, event.value):
            with self._lock:
                payment.notes_refused_for_change += 1  # the screen says why (not enough change)
            log.info("cash payment %s: %d-yen note given back: the change of %d yen cannot be paid from the "
                     "coins held %s", payment.key, event.value, event.value - payment.still_due, self._held())
        try:
            validator.route(stack=False)
            log.info("note validator: returned a %d-yen note from escrow", event.value)
        except EscrowEmpty:
            log.warning("note validator: escrow already empty when returning a %d-yen note", event.value)

    def _stack_when_covered(self, payment: Payment) -> None:
        validator = self._validator
        if not payment.note_in_escrow or validator is None:
            return
        if payment.amount_in + payment.note_in_escrow < payment.amount_due:
            if time.monotonic() - payment.note_escrow_extended > ESCROW_EXTEND_EVERY:
                try:
                    validator.extend_escrow()
                except EscrowEmpty:
                    log.warning("cash payment %s: the held note left escrow by itself", payment.key)
                    payment.note_in_escrow = 0
                    self._apply_enables()
                payment.note_escrow_extended = time.monotonic()
            return
        value = payment.note_in_escrow
        try:
            validator.route(stack=True)
        except EscrowEmpty:  # the validator gave it back by itself (escrow timeout)
            log.warning("cash payment %s: the %d-yen note left escrow before it was stacked", payment.key, value)
            payment.note_in_escrow = 0
            self._apply_enables()
            return
        payment.note_in_escrow = 0
        payment.note_stacking = value
        payment.note_stacking_since = time.monotonic()
        log.info("cash payment %s: stacking the %d-yen note", payment.key, value)

    def _credit(self, value: int, source: str) -> None:
        payment = self._current
        self.last_credit_at = time.monotonic()
        if payment is None or payment.state is not PaymentState.PENDING:
            # Inhibited devices should not credit, but a coin already in flight can: give it back.
            key = payment.key if payment is not None else IDLE_KEY
            self.ledger.money_in(key, value, f"{source} (after the payment closed)")
            paid = self._pay_out(key, value, "cancel_return")  # inserted after the payment closed
            if payment is not None:
                with self._lock:
                    payment.returned += paid
                    payment.unpaid += value - paid
            if value - paid:
                self.ledger.alarm(key, HopperEmpty.code, f"{value - paid} yen inserted after the payment closed "
                                  f"could not be given back; a refund voucher is due", amount_at_risk=value - paid)
            return
        self.ledger.money_in(payment.key, value, source)
        with self._lock:
            payment.amount_in += value
        log.info("cash payment %s: %s in, %d of %d yen", payment.key, source, payment.amount_in, payment.amount_due)
        if payment.closing:
            return
        if payment.amount_in >= payment.amount_due and not payment.note_stacking:
            self._complete(payment)
        else:
            self._stack_when_covered(payment)
            self._apply_enables()

    def _events_lost(self, device: str, lost: int, reset: bool, largest: int) -> None:
        if reset:
            detail = f"the {device} was reset or lost power; events since the last poll are unknown"
            at_risk = largest
        else:
            detail = f"the {device} reported {lost} event(s) the kiosk could not read (event counter gap)"
            at_risk = lost * largest
        payment = self._current
        if reset and (payment is None or payment.state is not PaymentState.PENDING):
            log.warning("%s while idle; re-initialising the cash devices", detail)
            self._drop_bus(detail)
            self._saved_counters.clear()
            return
        self._go_out_of_service(CashEventsLost(f"{detail}; up to {at_risk} yen may be unaccounted; count the cash "
                                               f"box against the ledger, then reset the fault"), amount_at_risk=at_risk)

    # --- closing a payment -------------------------------------------------------------------------------

    def _complete(self, payment: Payment) -> None:
        payment.closing = True
        self._inhibit_all_quietly()
        if payment.note_in_escrow:  # coins covered the fee while a note waited in escrow
            self._return_escrow(payment)
        change = payment.amount_in - payment.amount_due
        paid = self._pay_out(payment.key, change, "change", on_paid=lambda yen: self._add(payment, "change_paid", yen)) \
            if change else 0
        unpaid = change - paid
        if unpaid:
            self.ledger.alarm(payment.key, HopperEmpty.code, f"{unpaid} of {change} yen change could not be paid; "
                              f"a refund voucher is due", amount_at_risk=unpaid)
        with self._lock:
            payment.unpaid += unpaid
            payment.state = PaymentState.PAID
            payment.detail = f"change {payment.change_paid} yen" + (f", {unpaid} yen unpaid" if unpaid else "")
        log.info("cash payment %s: paid %d yen, change %d, unpaid %d", payment.key, payment.amount_due,
                 payment.change_paid, unpaid)
        self._apply_enables()

    def _give_back(self, payment: Payment, state: PaymentState, why: str) -> None:
        self._inhibit_all_quietly()
        self._return_escrow(payment)
        owed = payment.amount_in - payment.returned
        paid = self._pay_out(payment.key, owed, "cancel_return",
                             on_paid=lambda yen: self._add(payment, "returned", yen)) if owed else 0
        unpaid = owed - paid
        if unpaid:
            self.ledger.alarm(payment.key, RefundFailed.code, f"{unpaid} of {owed} yen could not be given back "
                              f"({why}); a refund voucher is due", amount_at_risk=unpaid)
        with self._lock:
            payment.unpaid += unpaid
            payment.state = state
            payment.detail = why
        log.info("cash payment %s: %s; returned %d yen, unpaid %d", payment.key, why, payment.returned, unpaid)

    def _settle_inflight(self, payment: Payment) -> None:
        """Before giving money back: stop intake, return an escrowed note, and read the credits in flight."""
        self._inhibit_all_quietly()
        self._return_escrow(payment)
        deadline = time.monotonic() + NOTE_STACK_TIMEOUT
        while True:
            try:
                self._poll_events()
            except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
                log.error("reading the last cash events failed: %s", exc)
                return
            if not payment.note_stacking or time.monotonic() > deadline or payment.state is not PaymentState.PENDING:
                return
            self._sleep(self.options.poll_interval)

    def _return_escrow(self, payment: Payment) -> None:
        validator = self._validator
        if validator is None or not self._ready:
            return
        try:
            validator.route(stack=False)
            log.info("cash payment %s: note in escrow returned", payment.key)
        except EscrowEmpty:
            pass
        except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
            log.error("could not return the escrowed note: %s", exc)
        payment.note_in_escrow = 0

    def _abort(self, payment: Payment, error: KioskError, amount_at_risk: int) -> None:
        payment.closing = True
        with self._lock:
            payment.detail = f"E{error.code} {error.detail}"
        if self._ready:
            self._give_back(payment, PaymentState.CANCELLED, f"E{error.code} {error.detail}")
        else:
            owed = payment.amount_in - payment.returned
            if owed:
                self.ledger.alarm(payment.key, RefundFailed.code, f"{owed} yen could not be given back "
                                  f"(E{error.code}); a refund voucher is due", amount_at_risk=owed)
            with self._lock:
                payment.unpaid += owed
                payment.state = PaymentState.CANCELLED

    def _go_out_of_service(self, error: KioskError, amount_at_risk: int) -> None:
        payment = self._current
        key = payment.key if payment is not None else self._last_key
        log.error("cash out of service: %s", error)
        self.ledger.alarm(key, error.code, error.detail, amount_at_risk=amount_at_risk)
        with self._lock:
            self._fault = error
        self._inhibit_all_quietly()
        if payment is not None and payment.state is PaymentState.PENDING:
            self._abort(payment, error, amount_at_risk=0)

    def _alarm(self, code: int, detail: str, amount_at_risk: int) -> None:
        payment = self._current
        key = payment.key if payment is not None else self._last_key
        log.error("cash alarm E%d: %s (%d yen at risk)", code, detail, amount_at_risk)
        self.ledger.alarm(key, code, detail, amount_at_risk=amount_at_risk)

    def _add(self, payment: Payment, attr: str, yen: int) -> None:
        with self._lock:
            setattr(payment, attr, getattr(payment, attr) + yen)

    # --- money out -------------------------------------------------------------------------------------

    def _pay_out(self, key: str, amount: int, reason: str, on_paid: Callable[[int], None] | None = None) -> int:
        """Pay ``amount`` yen from the hoppers, largest coins first; return the yen actually paid.

        ``reason`` is the ledger's: "change", "refund" or "cancel_return"."""
        remaining = amount
        for slot in sorted(self._hoppers, key=lambda s: -s.device.coin_yen):
            coin = slot.device.coin_yen
            while slot.usable and remaining >= coin:
                coins = min(remaining // coin, 255)
                if coin in self._float:  # never ask a hopper for more coins than the book says it holds
                    coins = min(coins, self._float[coin])
                    if coins <= 0:
                        break

                def paid_now(n: int, coin: int = coin) -> None:
                    self.ledger.money_out(key, n * coin, reason)
                    if coin in self._float:
                        with self._lock:
                            self._float[coin] = max(0, self._float[coin] - n)
                    if on_paid is not None:
                        on_paid(n * coin)

                try:
                    result = slot.device.dispense(coins, paid_now)
                except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
                    self._hopper_unusable(slot, f"no answer during payout: {exc}")
                    break
                remaining -= result.paid * coin
                if result.paid < coins or not result.accepted:
                    if result.accepted and "payout_timeout" in result.flags:
                        with self._lock:
                            self._float[coin] = 0  # it ran dry: whatever the book said, it is empty now
                    why = ("refused the payout" if not result.accepted else
                           f"paid {result.paid} of {coins} coins") + (f" ({', '.join(sorted(result.flags))})"
                                                                       if result.flags else "")
                    self._hopper_unusable(slot, why)
        if amount:
            self._journal_float(f"payout ({reason})")
        return amount - remaining

    # --- the float (coins in each hopper, notes in the stacker) ---------------------------------------

    def record_refill(self, coin_yen: int, coins: int) -> None:
        """A technician put ``coins`` coins into the ``coin_yen`` hopper (the journal's cash.refill)."""
        with self._lock:
            if coin_yen in self._float:
                self._float[coin_yen] += coins
            else:
                self._float[coin_yen] = coins
        self._enabled = None  # more change: more notes may be taken
        self._journal_float("refill")

    def float_status(self) -> dict[str, Any]:
        """The cash float for kioskctl status and the journal (body of a ``cash.float`` event)."""
        with self._lock:
            hoppers = [{"address": s.device.address, "coin_yen": s.device.coin_yen,
                        "coins": self._float.get(s.device.coin_yen), "capacity": self._capacity(s.device.address),
                        "usable": s.usable, "why_not": s.why_not} for s in self._hoppers]
            if not hoppers:
                hoppers = [{"address": h.address, "coin_yen": h.coin_yen, "coins": self._float.get(h.coin_yen),
                            "capacity": h.capacity, "usable": False, "why_not": "bus not connected"}
                           for h in self.options.hoppers]
            notes = dict(sorted(self._stacked_notes.items()))
        return {"hoppers": hoppers,
                "stacker": {"notes": {str(v): n for v, n in notes.items()}, "yen": sum(v * n for v, n in notes.items()),
                            "capacity": self.options.id003.stacker_capacity
                            if self.options.note_validator == "id003" else None},
                "accepted_coins": list(self.options.accepted_coins), "accepted_notes": list(self.options.accepted_notes)}

    def _capacity(self, address: int) -> int | None:
        return next((h.capacity for h in self.options.hoppers if h.address == address), None)

    def _journal_float(self, why: str) -> None:
        record = getattr(self.ledger, "cash_float", None)
        if record is None:
            return
        try:
            record({**self.float_status(), "why": why})
        except Exception:  # the float is information; a failure to journal it must not stop a payout
            log.exception("could not journal the cash float")

    def _hopper_unusable(self, slot: _HopperSlot, why: str) -> None:
        with self._lock:
            slot.usable = False
            slot.why_not = why
            slot.checked_at = time.monotonic()
        log.error("hopper %d (%d yen) out of use: %s", slot.device.address, slot.device.coin_yen, why)
        self._enabled = None  # what can be accepted has changed

    def _check_hopper(self, slot: _HopperSlot, reset_faults: bool = False) -> None:
        """A hopper is usable when it answers, reports no fault flag and (if it has one) its low sensor
        is not showing empty after a short payout.

        With ``reset_faults`` (bus (re)connected: the service restarted or a technician reset the
        fault) a hopper showing fault flags gets a software reset, the only thing that clears them
        (spec part 2 §3.90); a fault that is still physically there is flagged again and the hopper
        stays out of use."""
        try:
            flags = slot.device.test() - {"payout_disabled", "power_up"}
            if reset_faults and flags & self._fault_flags():
                log.warning("hopper %d (%d yen) shows %s; resetting it to clear the flags", slot.device.address,
                            slot.device.coin_yen, sorted(flags))
                flags = slot.device.reset(self.options.hopper_reset_settle) - {"payout_disabled", "power_up"}
            level = slot.device.level()
        except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
            self._hopper_unusable(slot, f"no answer: {exc}")
            return
        slot.checked_at = time.monotonic()
        if flags & (set(self._fault_flags())):
            self._hopper_unusable(slot, f"fault flags {sorted(flags)}")
        elif level.low_sensor_fitted and level.below_low and slot.why_not:
            pass  # was short before and still below the low level: still empty
        else:
            if not slot.usable:
                log.info("hopper %d (%d yen) back in use", slot.device.address, slot.device.coin_yen)
                self._enabled = None
            slot.usable, slot.why_not = True, ""
            if level.low_sensor_fitted and level.below_low:
                log.warning("hopper %d (%d yen) is low", slot.device.address, slot.device.coin_yen)

    @staticmethod
    def _fault_flags() -> frozenset[str]:
        from ..cctalk.codec import HOPPER_FAULT_FLAGS, HOPPER_FRAUD_FLAGS
        return (HOPPER_FAULT_FLAGS | HOPPER_FRAUD_FLAGS) - {"payout_timeout"}

    def _recheck_hoppers(self) -> None:
        payment = self._current
        if payment is not None and payment.state is PaymentState.PENDING:
            return
        now = time.monotonic()
        for slot in self._hoppers:
            if not slot.usable and now - slot.checked_at > HOPPER_RECHECK_INTERVAL:
                self._check_hopper(slot)

    # --- what to accept ----------------------------------------------------------------------------------

    def _held(self) -> dict[int, int | None]:
        """Coins the usable hoppers hold, by value (None: not counted, assume enough)."""
        held: dict[int, int | None] = {}
        for slot in self._hoppers:
            if slot.usable:
                coin = slot.device.coin_yen
                held[coin] = self._float.get(coin) if coin in self._float else None
        return held

    def _smallest_step(self) -> int:
        return min(list(self.options.accepted_coins) + list(self.options.accepted_notes))

    def _acceptable(self, payment: Payment, value: int) -> bool:
        return note_acceptable(payment, value, self._held())

    def _apply_enables(self) -> None:
        payment = self._current
        coins: frozenset[int] = frozenset()
        notes: frozenset[int] = frozenset()
        if payment is not None and payment.state is PaymentState.PENDING and not payment.closing \
                and self._fault is None:
            coins = frozenset(v for v in self.options.accepted_coins if self._acceptable(payment, v))
            notes = frozenset(v for v in self.options.accepted_notes if self._acceptable(payment, v)
                              and not payment.note_in_escrow and not payment.note_stacking)
            shown_notes = notes if self._validator is not None else frozenset()  # none fitted, or stacker full
            with self._lock:
                payment.exact_amount_only = (coins != frozenset(self.options.accepted_coins)
                                             or notes != frozenset(self.options.accepted_notes))
                if not payment.note_in_escrow and not payment.note_stacking:
                    payment.accepting = (tuple(sorted(coins)), tuple(sorted(shown_notes)))
        if (coins, notes) == self._enabled:
            return
        if self._acceptor is not None:
            self._acceptor.set_accepting(set(coins))
        if self._validator is not None:
            self._validator.set_accepting(set(notes))
        self._enabled = (coins, notes)

    def _inhibit_all_quietly(self) -> None:
        for device in (self._acceptor, self._validator):
            if device is None:
                continue
            try:
                device.set_accepting(set())
            except (PaymentDeviceFault, NakReceived, BusyReceived) as exc:
                log.error("could not inhibit %s at address %d: %s", type(device).__name__, device.address, exc)
        self._enabled = (frozenset(), frozenset())


@register("cash", "cctalk", CashOptions)
def build_cash(options: CashOptions, context: Any) -> CashPayment:
    ledger = getattr(context, "ledger", None)
    if ledger is None:
        raise PaymentError("the cash driver needs context.ledger (a kiosk.ports.MoneyLedger) to record money")
    return CashPayment(options, ledger)
