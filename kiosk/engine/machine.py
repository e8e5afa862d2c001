"""The transaction engine: one state machine, one table of transitions, one thread.

Events (intents from the screen, device events, ticks) arrive on a queue and are handled one at a
time. Each state may have an enter hook (which does the state's work — card reads, city hall calls,
payment, printing — and names the next state), an exit hook, a timeout, and a row in TRANSITIONS
saying which events it accepts. Anything unexpected sends the engine to FAILSAFE, which stops taking
money, settles the transaction, and goes out of service.

Every state change of a transaction is journaled (with the state) BEFORE the state's work starts, so
crash recovery (kiosk.recovery) knows exactly where a crash left it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import queue
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from cryptography import x509

from kiosk.config import TimeoutsSection
from kiosk.engine import events as ev
from kiosk.engine.hours import ServiceHours
from kiosk.engine.states import MONEY_STATES, TIMEOUT_KEYS, WAITING_FOR_RESIDENT, State
from kiosk.engine.view import ErrorView, PaymentView, ViewState
from kiosk.errors import (CardExpired, CardRemoved, CityHallRejected, InvalidIntent, InvalidPinFormat,
                          JournalError, KioskError, LastTryNotConfirmed, MalformedCardResponse, PaymentDeclined,
                          PaymentError, PaymentExpired, PinLocked, WrongPin)
from kiosk.journal import DocumentRow, Journal
from kiosk.ports import (AuthResult, CardEvent, CardEventKind, CardReader, CardSession, CityHallClient, Clock,
                         DocumentPrinter, IssuedDocument, Order, OrderLine, PaymentProvider, PaymentState,
                         PaymentStatus, PrintedVoucher, Receipt, ReceiptLine, ReceiptPrinter, VoucherIssuer)
from kiosk.recovery import Settlement, StillInDoubt, recover_all

log = logging.getLogger("kiosk.engine")

HEALTH_CHECK_INTERVAL = 60.0  # seconds between health checks while idle
OUT_OF_SERVICE_RETRY = 10.0  # seconds between checks while out of service


class SystemClock:
    def monotonic(self) -> float:
        import time
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass
class EnginePorts:
    card: CardReader
    cityhall: CityHallClient
    payments: Mapping[str, PaymentProvider]
    document_printer: DocumentPrinter
    receipt_printer: ReceiptPrinter
    clock: Clock = field(default_factory=SystemClock)
    vouchers: VoucherIssuer | None = None  # required: signs the 返金引換券 (sync.voucher.KioskVoucherIssuer)


@dataclass
class _Txn:
    """What the engine holds in memory for the transaction in progress. Dropped whole at IDLE."""

    txn_id: str
    session: CardSession | None = None
    certificate: bytes = b""
    tries_left: int | None = None
    pin_entry_id: int = 1
    last_try_confirmed: bool = False
    wrong_pin: bool = False
    auth: AuthResult | None = None
    order: Order | None = None
    method: str | None = None
    payment_key: str | None = None
    payment: PaymentStatus | None = None
    exact_amount_only: bool = False
    documents: list[IssuedDocument] = field(default_factory=list)
    documents_printed: int = 0
    refund_yen: int = 0
    voucher_yen: int = 0
    voucher: PrintedVoucher | None = None
    receipt_printed: bool = False
    error: KioskError | None = None


def _error_view(exc: KioskError) -> ErrorView:
    return ErrorView(code=exc.code, key=exc.message_key, detail=exc.detail,
                     reason=str(getattr(exc, "reason", "")))


class Engine:
    def __init__(self, ports: EnginePorts, journal: Journal, timeouts: TimeoutsSection, *,
                 languages: tuple[str, ...] = ("ja", "en"), payment_methods: tuple[str, ...] = ("cash", "qr"),
                 service_hours: ServiceHours | None = None,
                 on_view: Callable[[ViewState], None] | None = None,
                 new_key: Callable[[], str] = lambda: uuid.uuid4().hex,
                 tick_interval: float = 0.25) -> None:
        self.ports = ports
        self.journal = journal
        self.timeouts = timeouts
        self.languages = languages
        self.language = languages[0]
        self.payment_methods = tuple(m for m in payment_methods if m in ports.payments)
        self.service_hours = service_hours
        self.on_view = on_view
        self.new_key = new_key
        self.tick_interval = tick_interval
        if ports.vouchers is None:
            raise ValueError("EnginePorts.vouchers is missing: without it money that cannot be paid back would "
                             "have no 返金引換券 (the composition root builds sync.voucher.KioskVoucherIssuer)")
        self.settlement = Settlement(journal, ports.payments, ports.document_printer, ports.vouchers, ports.clock,
                                     new_key=new_key)
        self.state = State.IDLE
        self.entered_at = ports.clock.monotonic()
        self.txn: _Txn | None = None
        self.card_present = False
        self.out_of_service_reason = ""
        self.service_off_requested: str | None = None
        self.last_health_check = float("-inf")
        self.last_error: KioskError | None = None  # shown on ERROR / OUT_OF_SERVICE screens
        self._queue: queue.Queue[object] = queue.Queue()
        self._view: ViewState | None = None

    # --- running ----------------------------------------------------------------------------------

    def submit(self, event: object) -> None:
        """Thread-safe: the UI and device threads call this."""
        self._queue.put(event)

    def card_event(self, event: CardEvent) -> None:
        mapping = {CardEventKind.PLACED: ev.CardPlaced(), CardEventKind.REMOVED: ev.CardRemoved(),
                   CardEventKind.READER_LOST: ev.ReaderLost(), CardEventKind.READER_BACK: ev.ReaderBack()}
        self.submit(mapping[event.kind])

    def start(self) -> None:
        """Recover unfinished transactions, then settle into IDLE (or OUT_OF_SERVICE)."""
        try:
            self.journal.check_at_start()
            recover_all(self.settlement)
        except StillInDoubt as exc:
            self.last_error = exc
            self._go(State.OUT_OF_SERVICE, reason="payment_in_doubt")
            return
        except JournalError as exc:
            self.last_error = exc
            self._go(State.OUT_OF_SERVICE, reason="journal")
            return
        self.card_present = self.ports.card.card_present()
        self._go(State.IDLE)

    def run(self, stop: threading.Event | None = None) -> None:
        self.ports.card.start_monitor(self.card_event)
        try:
            self.start()
            next_tick = self.ports.clock.monotonic()
            while stop is None or not stop.is_set():
                wait = max(0.0, next_tick - self.ports.clock.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    item = ev.Tick()
                if isinstance(item, ev.Stop):
                    break
                self.handle(item)
                if self.ports.clock.monotonic() >= next_tick:
                    if not isinstance(item, ev.Tick):
                        self.handle(ev.Tick())
                    next_tick = self.ports.clock.monotonic() + self.tick_interval
        finally:
            self.ports.card.stop_monitor()

    def drain(self) -> None:
        """Handle everything queued (tests and the headless demo drive the engine this way)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self.handle(item)

    # --- the table --------------------------------------------------------------------------------

    TRANSITIONS: dict[State, dict[type, str]] = {
        State.IDLE: {ev.CardPlaced: "_begin", ev.Tick: "_idle_tick"},
        State.CARD_READING: {},
        State.PIN_ENTRY: {ev.ConfirmLastTry: "_confirm_last_try", ev.EnterPin: "_verify_pin",
                          ev.CardRemoved: "_card_pulled", ev.Cancel: "_abandon"},
        State.AUTHENTICATING: {},
        State.REMOVE_CARD: {ev.CardRemoved: "_card_taken", ev.Cancel: "_abandon"},
        State.CHOOSING: {ev.ChooseOrder: "_choose", ev.Cancel: "_abandon"},
        State.CONFIRMING: {ev.ChoosePayment: "_pay", ev.Back: "_back_to_choosing", ev.Cancel: "_abandon"},
        State.PAYING: {ev.Tick: "_poll_payment", ev.Cancel: "_cancel_payment"},
        State.ISSUING: {},
        State.PRINTING: {},
        State.RECEIPT: {},
        State.DONE: {ev.Dismiss: "_to_idle", ev.CardPlaced: "_restart_with_card"},
        State.REFUNDING: {},
        State.ERROR: {ev.Dismiss: "_to_idle", ev.CardPlaced: "_restart_with_card"},
        State.OUT_OF_SERVICE: {ev.Tick: "_out_of_service_tick", ev.ServiceOn: "_service_on"},
        State.FAILSAFE: {},
    }

    ENTER_HOOKS: dict[State, str] = {
        State.IDLE: "_enter_idle",
        State.CARD_READING: "_enter_card_reading",
        State.AUTHENTICATING: "_enter_authenticating",
        State.REMOVE_CARD: "_enter_remove_card",
        State.CONFIRMING: "_enter_confirming",
        State.PAYING: "_enter_paying",
        State.ISSUING: "_enter_issuing",
        State.PRINTING: "_enter_printing",
        State.REFUNDING: "_enter_refunding",
        State.RECEIPT: "_enter_receipt",
        State.FAILSAFE: "_enter_failsafe",
    }

    EXIT_HOOKS: dict[State, str] = {
        State.PIN_ENTRY: "_exit_pin_entry",
        State.PRINTING: "_exit_printing",
    }

    # --- dispatch ---------------------------------------------------------------------------------

    def handle(self, event: object) -> None:
        try:
            self._handle(event)
        except JournalError as exc:
            self._journal_failed(exc)
        except Exception as exc:  # noqa: BLE001 — the failsafe exists for exactly this
            log.exception("unexpected error in %s handling %r; going to FAILSAFE", self.state.value, event)
            self.last_error = exc if isinstance(exc, KioskError) else KioskError(f"{type(exc).__name__}: {exc}")
            try:
                self.journal.append("failsafe", {"in_state": self.state.value, "error": type(exc).__name__,
                                                 "error_code": self.last_error.code},
                                    self.txn.txn_id if self.txn else None)
                self._go(State.FAILSAFE)
            except JournalError as jexc:
                self._journal_failed(jexc)
        self._emit_view()

    def _handle(self, event: object) -> None:
        if isinstance(event, ev.CardPlaced):
            self.card_present = True
        elif isinstance(event, ev.CardRemoved):
            self.card_present = False
        if isinstance(event, ev.SetLanguage):
            if event.language in self.languages:
                self.language = event.language
            return
        if isinstance(event, ev.Touch):
            if self.state in WAITING_FOR_RESIDENT and self.state is not State.PAYING:
                self.entered_at = self.ports.clock.monotonic()
            return
        if isinstance(event, ev.ServiceOff):
            self._service_off(event)
            return
        if isinstance(event, (ev.ReaderLost, ev.DeviceFault)):
            self._device_lost(event)
            return
        handler_name = self.TRANSITIONS[self.state].get(type(event))
        if handler_name is None:
            if isinstance(event, ev.Tick):
                self._check_timeout()
            elif isinstance(event, ev.Intent):
                log.info("ignoring %s in %s (a double tap or a stale screen)", type(event).__name__, self.state.value)
            return
        next_state = getattr(self, handler_name)(event)
        if next_state is not None:
            self._go(next_state)
        if isinstance(event, ev.Tick) and self.state is not State.IDLE:
            self._check_timeout()

    def _go(self, target: State, *, reason: str = "") -> None:
        """Leave the current state, journal the change, enter ``target``; follow enter hooks' results."""
        hops = 0
        while target is not None:
            hops += 1
            if hops > 32:
                raise RuntimeError(f"state machine loop near {target.value}")
            exit_hook = self.EXIT_HOOKS.get(self.state)
            if exit_hook:
                getattr(self, exit_hook)()
            previous, self.state = self.state, target
            self.entered_at = self.ports.clock.monotonic()
            if target is State.OUT_OF_SERVICE:
                self.out_of_service_reason = reason or self.out_of_service_reason or "fault"
            if self.txn is not None and target is not State.IDLE:
                self.journal.record(self.txn.txn_id, "txn.state", {"from": previous.value, "to": target.value},
                                    set={"state": target.value})
            elif target in (State.OUT_OF_SERVICE, State.FAILSAFE) and previous is not target:
                self.journal.append("kiosk.state", {"from": previous.value, "to": target.value,
                                                    "reason": self.out_of_service_reason,
                                                    "error_code": getattr(self.last_error, "code", 0)})
            self._emit_view()  # before the state's work, so "reading your card…" is on screen while it runs
            enter_hook = self.ENTER_HOOKS.get(target)
            target = getattr(self, enter_hook)() if enter_hook else None

    def _check_timeout(self) -> None:
        key = TIMEOUT_KEYS[self.state]
        if key is None:
            return
        if self.ports.clock.monotonic() - self.entered_at < getattr(self.timeouts, key):
            return
        log.info("timeout in %s after %.0f s", self.state.value, getattr(self.timeouts, key))
        if self.txn is not None:
            self.journal.append("timeout", {"state": self.state.value}, self.txn.txn_id)
        if self.state is State.PAYING:
            self._go(self._stop_payment("timeout"))
        elif self.state in (State.DONE, State.ERROR):
            self._go(State.IDLE)
        elif self.state in MONEY_STATES:
            raise RuntimeError(f"{self.state.value} overran its timeout")  # → FAILSAFE settles the money
        else:
            self._go(self._abandon(None))

    # --- helpers ----------------------------------------------------------------------------------

    def _fail_before_payment(self, exc: KioskError) -> State:
        """An error before any money was taken: close the transaction and tell the resident."""
        self.last_error = exc
        if self.txn is not None:
            self.journal.append("error", exc.as_dict(), self.txn.txn_id)
            self._close_session()
            self.journal.close_transaction(self.txn.txn_id, "abandoned", State.ERROR.value,
                                           {"error_code": exc.code})
            self.txn = None
        return State.ERROR

    def _close_session(self) -> None:
        if self.txn is not None and self.txn.session is not None:
            try:
                self.txn.session.close()
            except KioskError as exc:
                log.info("closing the card session: %s", exc)
            self.txn.session = None

    def _journal_failed(self, exc: JournalError) -> None:
        """Without a journal the kiosk must not carry on: stop taking money, go out of service."""
        log.critical("journal failure: %s", exc)
        self.last_error = exc
        if self.txn is not None and self.txn.payment_key and self.state is State.PAYING:
            provider = self.ports.payments.get(self.txn.method or "")
            try:
                if provider is not None:
                    provider.cancel(self.txn.payment_key)
            except Exception:  # noqa: BLE001 — best effort; recovery settles it at the next start
                log.exception("cancelling the payment after a journal failure")
        self._close_session()
        self.txn = None
        self.state = State.OUT_OF_SERVICE
        self.out_of_service_reason = "journal"
        self.entered_at = self.ports.clock.monotonic()

    # --- IDLE and health --------------------------------------------------------------------------

    def _enter_idle(self) -> State | None:
        self._close_session()
        self.txn = None
        if self.service_off_requested:
            return State.OUT_OF_SERVICE
        problem = self._health_problem()
        if problem is not None:
            self.last_error = problem
            self.out_of_service_reason = problem.message_key
            return State.OUT_OF_SERVICE
        self.last_error = None
        return None

    def _health_problem(self) -> KioskError | None:
        self.last_health_check = self.ports.clock.monotonic()
        try:
            self.ports.cityhall.ping()
            self.ports.document_printer.check_ready()
            self.ports.receipt_printer.check_ready()
        except KioskError as exc:
            log.warning("health check failed: %s", exc)
            return exc
        if not self.payment_methods:
            return KioskError("no payment method is available")
        return None

    def _idle_tick(self, _: ev.Tick) -> State | None:
        if self.ports.clock.monotonic() - self.last_health_check >= HEALTH_CHECK_INTERVAL:
            problem = self._health_problem()
            if problem is not None:
                self.last_error = problem
                return self._out_of_service(problem.message_key)
        return None

    def _out_of_service(self, reason: str) -> State:
        self.out_of_service_reason = reason
        return State.OUT_OF_SERVICE

    def _out_of_service_tick(self, _: ev.Tick) -> State | None:
        if self.service_off_requested:
            return None
        if self.ports.clock.monotonic() - self.entered_at < OUT_OF_SERVICE_RETRY:
            return None
        self.entered_at = self.ports.clock.monotonic()
        try:
            recover_all(self.settlement)
        except StillInDoubt as exc:
            self.last_error = exc
            return None
        if self._health_problem() is None:
            self.journal.append("kiosk.state", {"from": "OUT_OF_SERVICE", "to": "IDLE", "reason": "healthy again"})
            return State.IDLE
        return None

    def _service_off(self, event: ev.ServiceOff) -> None:
        self.service_off_requested = event.reason
        self.journal.append("service.off", {"reason": event.reason})
        if self.state is State.IDLE or self.state is State.OUT_OF_SERVICE:
            self._go(State.OUT_OF_SERVICE, reason=event.reason)
        # else: taken out of service when the current transaction ends (never mid-payment)

    def _service_on(self, _: ev.ServiceOn) -> State | None:
        self.service_off_requested = None
        self.journal.append("service.on", {})
        self.out_of_service_reason = ""
        return State.IDLE

    def _device_lost(self, event: object) -> None:
        detail = event.detail if isinstance(event, ev.DeviceFault) else "card reader lost"
        code = event.code if isinstance(event, ev.DeviceFault) else 201
        self.journal.append("device.fault", {"detail": detail, "code": code},
                            self.txn.txn_id if self.txn else None)
        if self.state is State.IDLE:
            self._go(self._out_of_service("device_fault"))
        # During a transaction the step that needs the device fails with its own typed error.

    # --- card, PIN, authentication ----------------------------------------------------------------

    def _begin(self, _: ev.CardPlaced) -> State | None:
        if self.service_hours is not None and not self.service_hours.is_open(self.ports.clock.now()):
            return None  # the idle screen shows the hours; the card is ignored
        txn_id = self.journal.begin_transaction(self.language, State.CARD_READING.value)
        self.txn = _Txn(txn_id)
        return State.CARD_READING

    def _restart_with_card(self, event: ev.CardPlaced) -> State | None:
        self._go(State.IDLE)
        if self.state is State.IDLE:
            return self._begin(event)
        return None

    def _enter_card_reading(self) -> State:
        assert self.txn is not None
        try:
            self.txn.session = self.ports.card.open_session()
            self.txn.certificate = self.txn.session.read_auth_certificate()
            not_after = x509.load_der_x509_certificate(self.txn.certificate).not_valid_after_utc
            if not_after < self.ports.clock.now():
                raise CardExpired(f"the card's authentication certificate expired on {not_after.date()}")
            self.ports.cityhall.ping()
            self.txn.tries_left = self.txn.session.pin_tries_left()
            if self.txn.tries_left == 0:
                raise PinLocked("the PIN is locked (no tries left)")
        except KioskError as exc:
            return self._fail_before_payment(exc)
        except ValueError as exc:  # not a certificate at all
            return self._fail_before_payment(MalformedCardResponse(f"the card's certificate is unreadable: {exc}"))
        self.journal.append("card.read", {"tries_left": self.txn.tries_left}, self.txn.txn_id)
        return State.PIN_ENTRY

    def _confirm_last_try(self, _: ev.ConfirmLastTry) -> None:
        assert self.txn is not None
        if self.txn.tries_left == 1:
            self.txn.last_try_confirmed = True
            self.journal.append("card.last_try_confirmed", {}, self.txn.txn_id)

    def _verify_pin(self, intent: ev.EnterPin) -> State | None:
        txn = self.txn
        assert txn is not None and txn.session is not None
        if intent.entry_id != txn.pin_entry_id:
            log.info("PIN entry %d already used; ignoring a repeated submission", intent.entry_id)
            return None
        if txn.tries_left == 1 and not txn.last_try_confirmed:
            return None  # the screen shows the last-try confirmation first
        txn.pin_entry_id += 1  # whatever happens next, this entry is spent: one VERIFY at most
        self.journal.append("card.verify.intent", {"entry": intent.entry_id}, txn.txn_id)
        try:
            txn.session.verify_pin(intent.pin, confirm_last_try=txn.tries_left == 1 and txn.last_try_confirmed)
        except WrongPin as exc:
            txn.tries_left, txn.wrong_pin, txn.last_try_confirmed = exc.tries_left, True, False
            self.journal.append("card.verify.outcome", {"ok": False, "tries_left": exc.tries_left}, txn.txn_id)
            if exc.tries_left == 0:
                return self._fail_before_payment(PinLocked("the PIN is now locked"))
            return None
        except (InvalidPinFormat, LastTryNotConfirmed) as exc:
            self.journal.append("card.verify.outcome", {"ok": False, "not_sent": exc.code}, txn.txn_id)
            txn.wrong_pin = False
            return None
        except KioskError as exc:
            self.journal.append("card.verify.outcome", {"ok": False, "error_code": exc.code}, txn.txn_id)
            return self._fail_before_payment(exc)
        self.journal.append("card.verify.outcome", {"ok": True}, txn.txn_id)
        return State.AUTHENTICATING

    def _exit_pin_entry(self) -> None:
        if self.txn is not None:
            self.txn.last_try_confirmed = False

    def _card_pulled(self, _: ev.CardRemoved) -> State:
        return self._fail_before_payment(CardRemoved("the card was taken off the reader before the PIN was checked"))

    def _enter_authenticating(self) -> State:
        txn = self.txn
        assert txn is not None and txn.session is not None
        try:
            challenge = self.ports.cityhall.challenge()
            signature = txn.session.sign(challenge.nonce)
            txn.auth = self.ports.cityhall.authenticate(challenge, txn.certificate, signature)
        except KioskError as exc:
            return self._fail_before_payment(exc)
        self.journal.append("auth.outcome", {"ok": True, "offers": [o.cert_type for o in txn.auth.offers]},
                            txn.txn_id)
        return State.REMOVE_CARD

    def _enter_remove_card(self) -> State | None:
        self._close_session()
        if self.txn is not None:
            self.txn.certificate = b""
        return None if self.card_present else State.CHOOSING

    def _card_taken(self, _: ev.CardRemoved) -> State:
        return State.CHOOSING

    def _abandon(self, _: object) -> State:
        if self.txn is not None:
            self._close_session()
            self.journal.close_transaction(self.txn.txn_id, "abandoned", State.IDLE.value,
                                           {"in_state": self.state.value})
            self.txn = None
        return State.IDLE

    def _to_idle(self, _: object) -> State:
        return State.IDLE

    # --- choosing and confirming ------------------------------------------------------------------

    def _choose(self, intent: ev.ChooseOrder) -> State | None:
        txn = self.txn
        assert txn is not None and txn.auth is not None
        try:
            order = validate_order(intent.lines, txn.auth)
        except InvalidIntent as exc:
            log.warning("order refused: %s", exc)
            return None
        txn.order = order
        self.journal.record(txn.txn_id, "order.chosen", {"lines": order_summary(order), "total": order.total_yen},
                            set={"order_json": json.dumps(order_summary(order)), "amount_due": order.total_yen})
        return State.CONFIRMING

    def _enter_confirming(self) -> State | None:
        assert self.txn is not None
        cash = self.ports.payments.get("cash")
        self.txn.exact_amount_only = False
        if cash is not None:
            try:
                status = cash.available()
                self.txn.exact_amount_only = bool(status and status.exact_amount_only)
            except KioskError as exc:
                log.warning("cash is not available: %s", exc)
        return None

    def _back_to_choosing(self, _: ev.Back) -> State:
        return State.CHOOSING

    # --- paying -----------------------------------------------------------------------------------

    def _pay(self, intent: ev.ChoosePayment) -> State | None:
        txn = self.txn
        assert txn is not None and txn.order is not None
        if intent.method not in self.payment_methods:
            log.warning("payment method %r is not offered", intent.method)
            return None
        if self.card_present:
            return None  # the screen asks to take the card first: no money while a card is on the reader
        try:  # a missing printer or city hall shows out of service BEFORE anyone pays
            self.ports.cityhall.ping()
            self.ports.document_printer.check_ready()
            self.ports.receipt_printer.check_ready()
        except KioskError as exc:
            return self._fail_before_payment(exc)
        txn.method = intent.method
        return State.PAYING

    def _enter_paying(self) -> State | None:
        txn = self.txn
        assert txn is not None and txn.order is not None and txn.method is not None
        provider = self.ports.payments[txn.method]
        txn.payment_key = self.new_key()
        # The idempotency key is journaled BEFORE the provider is called.
        self.journal.record(txn.txn_id, "payment.intent",
                            {"payment_key": txn.payment_key, "method": txn.method, "amount": txn.order.total_yen},
                            set={"payment_key": txn.payment_key, "method": txn.method})
        try:
            txn.payment = provider.start(txn.payment_key, txn.order.total_yen, txn.txn_id)
        except KioskError as exc:
            txn.error = exc
            return self._payment_failed(exc)
        return self._after_payment_status()

    def _poll_payment(self, _: ev.Tick) -> State | None:
        txn = self.txn
        assert txn is not None and txn.payment_key is not None and txn.method is not None
        try:
            txn.payment = self.ports.payments[txn.method].poll(txn.payment_key)
        except KioskError as exc:
            txn.error = exc
            return self._payment_failed(exc)
        return self._after_payment_status()

    def _after_payment_status(self) -> State | None:
        txn = self.txn
        assert txn is not None and txn.payment is not None
        status = txn.payment
        if status.state is PaymentState.PAID:
            self._journal_payment_outcome(status)
            return State.ISSUING
        if status.state in (PaymentState.FAILED, PaymentState.CANCELLED):
            self._journal_payment_outcome(status)
            txn.error = txn.error or (PaymentExpired(status.detail) if "expire" in status.detail
                                      else PaymentDeclined(status.detail or status.state.value))
            return self._settle_unpaid()
        return None

    def _journal_payment_outcome(self, status: PaymentStatus) -> None:
        assert self.txn is not None
        self.journal.append("payment.outcome",
                            {"state": status.state.value, "amount_in": status.amount_in,
                             "change_paid": status.change_paid, "returned": status.returned,
                             "unpaid_to_resident": status.unpaid_to_resident, "provider_ref": status.provider_ref},
                            self.txn.txn_id)

    def _payment_failed(self, exc: KioskError) -> State:
        """A device or provider error while paying: stop collecting, give back what was taken."""
        self.last_error = exc
        return self._stop_payment("error")

    def _cancel_payment(self, _: ev.Cancel) -> State:
        return self._stop_payment("cancelled by the resident")

    def _stop_payment(self, why: str) -> State:
        txn = self.txn
        assert txn is not None and txn.payment_key is not None and txn.method is not None
        try:
            status = self.ports.payments[txn.method].cancel(txn.payment_key)
            txn.payment = status
            self._journal_payment_outcome(status)
        except KioskError as exc:
            log.warning("cancelling payment %s (%s) failed: %s", txn.payment_key, why, exc)
            txn.error = txn.error or exc
        if txn.payment is not None and txn.payment.state is PaymentState.PAID:
            txn.error = txn.error or PaymentError(f"payment stopped ({why}) after it completed")
        return self._settle_unpaid()

    def _settle_unpaid(self) -> State:
        """No certificate will be issued for this payment: everything taken goes back."""
        assert self.txn is not None
        if self.journal.transaction(self.txn.txn_id).unmatched_yen > 0:
            return State.REFUNDING
        self.journal.close_transaction(self.txn.txn_id, "cancelled", State.IDLE.value)
        error, self.txn = self.txn.error, None
        if error is not None:
            self.last_error = error
            return State.ERROR
        return State.IDLE

    # --- issuing and printing ---------------------------------------------------------------------

    def _enter_issuing(self) -> State:
        txn = self.txn
        assert txn is not None and txn.order is not None and txn.auth is not None and txn.payment_key
        self.journal.append("issue.intent", {"lines": order_summary(txn.order)}, txn.txn_id)
        try:
            documents = self.ports.cityhall.issue(txn.auth.session_id, txn.order, txn.txn_id, txn.payment_key)
            check_documents(documents, txn.order)
        except KioskError as exc:
            txn.error = exc
            self.journal.append("issue.failed", exc.as_dict(), txn.txn_id)
            return State.REFUNDING
        txn.documents = list(documents)
        rows = [DocumentRow(txn.txn_id, d.document_id, d.issuance_number, d.cert_type, d.fee_yen, d.sha256,
                            f"{txn.txn_id}-doc{i + 1}", 0) for i, d in enumerate(documents)]
        self.journal.add_documents(txn.txn_id, rows, {"documents": [
            {"document_id": r.document_id, "issuance_number": r.issuance_number, "cert_type": r.cert_type,
             "fee": r.fee_yen, "sha256": r.sha256} for r in rows]})
        return State.PRINTING

    def _enter_printing(self) -> State:
        txn = self.txn
        assert txn is not None
        rows = {r.document_id: r for r in self.journal.documents(txn.txn_id)}
        for doc in txn.documents:
            row = rows[doc.document_id]
            if row.printed != 0:
                continue
            if txn.error is not None:  # an earlier document failed: the rest are not attempted
                self.journal.mark_document(txn.txn_id, doc.document_id, False, {"not_attempted": True})
                continue
            self.journal.append("print.intent", {"document_id": doc.document_id, "job_name": row.job_name},
                                txn.txn_id)
            try:
                self.ports.document_printer.print_document(doc.pdf, row.job_name)
            except KioskError as exc:
                txn.error = exc
                self.last_error = exc
                self.journal.mark_document(txn.txn_id, doc.document_id, False, {"error_code": exc.code})
                continue
            self.journal.mark_document(txn.txn_id, doc.document_id, True, {})
            txn.documents_printed += 1
            self._emit_view()
        if txn.error is not None or self.journal.transaction(txn.txn_id).unmatched_yen > 0:
            return State.REFUNDING  # a failed print, or change the hopper could not pay
        return State.RECEIPT

    def _exit_printing(self) -> None:
        if self.txn is not None:
            self.txn.documents = []  # no resident document stays in memory after printing

    def _enter_refunding(self) -> State:
        txn = self.txn
        assert txn is not None
        refunded, voucher_yen, voucher = self.settlement.refund_unmatched(txn.txn_id)
        txn.refund_yen += refunded
        txn.voucher_yen += voucher_yen
        txn.voucher = voucher or txn.voucher
        return State.RECEIPT

    def _enter_receipt(self) -> State:
        txn = self.txn
        assert txn is not None
        row = self.journal.transaction(txn.txn_id)
        order_lines = txn.order.lines if txn.order else ()
        printed_lines = tuple(ReceiptLine(f"cert.{line.cert_type}", line.copies, line.unit_fee_yen)
                              for line in order_lines) if row.docs_printed else ()
        receipt = Receipt(transaction_id=txn.txn_id, issued_at=self.ports.clock.now(), lines=printed_lines,
                          total_yen=row.fees_printed, paid_yen=row.money_in, change_yen=row.change_paid,
                          method=txn.method or "", refund_yen=row.refunded, voucher_yen=row.voucher,
                          voucher=txn.voucher, language=self.language)
        self.journal.append("receipt.intent", {}, txn.txn_id)
        try:
            for warning in self.ports.receipt_printer.check_ready():
                self.journal.append("device.warning", {"device": "receipt_printer", "warning": warning}, txn.txn_id)
            self.ports.receipt_printer.print_receipt(receipt)
            txn.receipt_printed = True
            self.journal.append("receipt.outcome", {"printed": True}, txn.txn_id)
        except KioskError as exc:
            log.warning("receipt for %s not printed: %s", txn.txn_id, exc)
            self.journal.append("receipt.outcome", {"printed": False, "error_code": exc.code}, txn.txn_id)
            if txn.voucher_yen:
                self.last_error = exc  # a voucher that could not be printed: staff must see the screen
        self.settlement.close(txn.txn_id)
        if txn.error is not None:
            self.last_error = txn.error
        return State.DONE

    # --- failsafe ---------------------------------------------------------------------------------

    def _enter_failsafe(self) -> State:
        """Stop taking money and settle the transaction exactly as crash recovery would."""
        txn = self.txn
        if txn is not None:
            self._close_session()
            row = self.journal.transaction(txn.txn_id)
            if not row.closed:
                try:
                    self.settlement.settle(row)
                except KioskError as exc:  # in doubt or unreachable: stays open, retried out of service
                    log.warning("failsafe: %s", exc)
            self.txn = None
        return self._out_of_service("failsafe")

    # --- view -------------------------------------------------------------------------------------

    def view(self) -> ViewState:
        base = ViewState(state=self.state.value, language=self.language,
                         in_service=self.state is not State.OUT_OF_SERVICE,
                         out_of_service_reason=self.out_of_service_reason if self.state is State.OUT_OF_SERVICE else "",
                         card_present=self.card_present)
        error = self.last_error if self.state in (State.ERROR, State.OUT_OF_SERVICE, State.DONE) else None
        if error is not None:
            base = dataclasses.replace(base, error=_error_view(error))
        txn = self.txn
        if txn is None or self.state in (State.IDLE, State.OUT_OF_SERVICE):
            return base
        payment = None
        if txn.payment is not None and self.state is State.PAYING:
            p = txn.payment
            seconds_left = None
            if p.expires_at is not None:
                seconds_left = max(0, int((p.expires_at - self.ports.clock.now()).total_seconds()))
            payment = PaymentView(method=txn.method or "", amount_due=p.amount_due, amount_in=p.amount_in,
                                  change_paid=p.change_paid, qr_payload=p.qr_payload, seconds_left=seconds_left,
                                  accepted_coins=p.accepted_coins, accepted_notes=p.accepted_notes,
                                  change_short=p.change_short)
        warning = None
        key = TIMEOUT_KEYS[self.state]
        if self.state in WAITING_FOR_RESIDENT and key is not None:
            left = getattr(self.timeouts, key) - (self.ports.clock.monotonic() - self.entered_at)
            if left <= self.timeouts.inactivity_warning:
                warning = max(0, int(left))
        return dataclasses.replace(
            base, txn_id=txn.txn_id, pin_tries_left=txn.tries_left, pin_entry_id=txn.pin_entry_id,
            last_try_confirm_needed=txn.tries_left == 1 and not txn.last_try_confirmed and self.state is State.PIN_ENTRY,
            wrong_pin=txn.wrong_pin, offers=txn.auth.offers if txn.auth else (),
            order=txn.order.lines if txn.order else (), total_yen=txn.order.total_yen if txn.order else 0,
            payment_methods=self.payment_methods, exact_amount_only=txn.exact_amount_only, payment=payment,
            documents_total=txn.order.document_count if txn.order else 0,
            documents_printed=txn.documents_printed, refund_yen=txn.refund_yen, voucher_yen=txn.voucher_yen,
            voucher_code=txn.txn_id if txn.voucher else "", receipt_printed=txn.receipt_printed,
            error=_error_view(txn.error) if txn.error is not None else base.error,
            warning_seconds_left=warning)

    def _emit_view(self) -> None:
        view = self.view()
        if view != self._view:
            self._view = view
            if self.on_view is not None:
                self.on_view(view)


def order_summary(order: Order) -> list[dict[str, Any]]:
    return [{"cert_type": line.cert_type, "copies": line.copies, "unit_fee": line.unit_fee_yen,
             "tax_year": line.tax_year, "options": list(line.options)} for line in order.lines]


def validate_order(lines: tuple[OrderLine, ...], auth: AuthResult) -> Order:
    """An order must ask only for what city hall offered this resident, at the fee it quoted."""
    if not lines:
        raise InvalidIntent("an order needs at least one certificate")
    offers = {o.cert_type: o for o in auth.offers}
    for line in lines:
        offer = offers.get(line.cert_type)
        if offer is None:
            raise InvalidIntent(f"{line.cert_type} is not offered to this resident")
        if line.unit_fee_yen != offer.fee_yen:
            raise InvalidIntent(f"{line.cert_type} costs {offer.fee_yen} yen, not {line.unit_fee_yen}")
        if not 1 <= line.copies <= offer.max_copies:
            raise InvalidIntent(f"{line.copies} copies of {line.cert_type}; 1 to {offer.max_copies} allowed")
        if offer.tax_years and line.tax_year not in offer.tax_years:
            raise InvalidIntent(f"tax year {line.tax_year} is not offered for {line.cert_type}")
        if not set(line.options) <= set(offer.options):
            raise InvalidIntent(f"options {sorted(set(line.options) - set(offer.options))} are not offered")
    return Order(tuple(lines))


def check_documents(documents: tuple[IssuedDocument, ...], order: Order) -> None:
    """What came back must be exactly what was ordered and paid for, byte-checked."""
    if len(documents) != order.document_count:
        raise CityHallRejected(f"city hall returned {len(documents)} documents for {order.document_count} ordered")
    if sum(d.fee_yen for d in documents) != order.total_yen:
        raise CityHallRejected("the documents' fees do not add up to the amount paid")
    for d in documents:
        if hashlib.sha256(d.pdf).hexdigest() != d.sha256:
            raise CityHallRejected(f"document {d.document_id} does not match its hash")
