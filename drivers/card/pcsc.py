"""The ``pcsc`` card driver: kiosk.ports.CardReader over pyscard's low-level ``smartcard.scard`` API.

- Reader: the first PC/SC reader whose name matches ``reader_pattern`` (a regular expression).
- Presence monitor: a thread of our own (pyscard's CardMonitor dies silently when pcscd restarts). It
  waits in SCardGetStatusChange with a bounded timeout, reports PLACED / REMOVED, and on any context or
  reader failure (pcscd restarted or stopped, reader unplugged) reports READER_LOST, drops its context
  and re-establishes one every ``poll_interval`` until the reader is back (READER_BACK, then PLACED if
  a card is on it). An unexpected exception is logged and the loop goes on: the thread never dies
  silently; if it does die, ``monitor_alive()`` says so and ``start_monitor`` starts a fresh one.
- Session: one PC/SC context and card handle per placement, owned by a single worker thread so every
  call has a timeout even though SCardTransmit has none (a stuck call leaves the session unusable and
  the worker finishes or dies with the connection). The JPKI sequencing is in drivers/card/session.py.
"""
from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable

from smartcard import scard

from drivers.card import readers
from drivers.card.session import JpkiSession
from kiosk.config import setting
from kiosk.errors import CardRemoved, CardUnresponsive, ReaderMissing
from kiosk.ports import CardEvent, CardEventKind
from kiosk.registry import register

log = logging.getLogger("drivers.card")


def _code(hr: int) -> int:
    return hr & 0xFFFFFFFF


_CARD_GONE = {_code(c) for c in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD)}
_READER_GONE = {_code(c) for c in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED,
                                   scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_E_UNKNOWN_READER,
                                   scard.SCARD_E_INVALID_HANDLE, scard.SCARD_E_NO_READERS_AVAILABLE)}
_TIMEOUT = _code(scard.SCARD_E_TIMEOUT)
_CANCELLED = _code(scard.SCARD_E_CANCELLED)


def _message(hr: int) -> str:
    return f"{scard.SCardGetErrorMessage(hr)} (0x{_code(hr):08X})"


@dataclass(frozen=True)
class PcscOptions:
    reader_pattern: str = setting(".", doc="Regular expression searched in PC/SC reader names; the first "
                                           "matching reader is used (`pcsc_scan` or `opensc-tool -l` lists them).")
    connect_timeout: float = setting(5.0, doc="Seconds to connect to a card that was just placed.", min=0.1)
    apdu_timeout: float = setting(5.0, doc="Seconds one command may take before the card counts as unresponsive.",
                                  min=0.1)
    sign_timeout: float = setting(15.0, doc="Seconds the card may take to compute a signature.", min=0.1)
    poll_interval: float = setting(0.5, doc="Seconds between presence checks, and between attempts to reach "
                                            "pcscd / the reader again after it was lost.", min=0.05, max=10)
    removal_grace: float = setting(1.0, doc="Seconds to wait for pcscd to notice a card that vanished during a "
                                            "command (tells 'card removed' from 'bad answer').", min=0, max=10)
    connect_attempts: int = setting(3, doc="Connection attempts to a card that was just placed (a card still "
                                           "powering up refuses the first one).", min=1, max=10)
    exclusive: bool = setting(True, doc="Hold the card exclusively during a session, so no other program can "
                                        "interleave commands.")
    reader_profile: str = setting("auto", doc="The reader's limits (docs/card-readers.md): 'auto' picks them from "
                                              "the PC/SC reader name; or one of sony-rc-s300, acs-acr1252u, "
                                              "acs-acr39u, identiv-scr3310, vpcd, generic.")

    def __config_check__(self) -> tuple[str, str, str] | None:
        if self.reader_profile != "auto" and self.reader_profile not in readers.BY_KEY:
            return ("reader_profile", "auto or one of " + ", ".join(readers.BY_KEY), repr(self.reader_profile))
        if readers.BY_KEY.get(self.reader_profile, readers.GENERIC).supported is False:
            return ("reader_profile", "a reader pcscd can drive", f"{self.reader_profile} ({readers.BY_KEY[self.reader_profile].note})")
        try:
            re.compile(self.reader_pattern)
        except re.error as exc:
            return ("reader_pattern", "a regular expression", f"{self.reader_pattern!r} ({exc})")
        return None


def _establish() -> int:
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        raise ReaderMissing(f"cannot reach pcscd: {_message(hr)}. Is pcscd running? (`systemctl status pcscd`)")
    return ctx


def _release(ctx: int | None) -> None:
    if ctx is not None:
        try:
            scard.SCardReleaseContext(ctx)
        except Exception:  # noqa: BLE001 - a dead context cannot be released; nothing else to do
            pass


def _find_reader(ctx: int, pattern: re.Pattern[str]) -> str | None:
    hr, readers = scard.SCardListReaders(ctx, [])
    if _code(hr) in _READER_GONE or _code(hr) == _code(scard.SCARD_E_NO_READERS_AVAILABLE):
        return None
    if hr != scard.SCARD_S_SUCCESS:
        raise ReaderMissing(f"cannot list PC/SC readers: {_message(hr)}")
    return next((r for r in readers if pattern.search(r)), None)


class PcscTransport:
    """One card connection, every call run on one worker thread with a deadline."""

    def __init__(self, reader: str, options: PcscOptions) -> None:
        self.reader = reader
        self.options = options
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="card-io")
        self._ctx: int | None = None
        self._handle: int | None = None
        self._protocol = scard.SCARD_PROTOCOL_T1
        self._stuck = False
        self.atr = b""

    def _run(self, fn: Callable[[], Any], timeout: float, what: str) -> Any:
        if self._stuck:
            raise CardUnresponsive(f"an earlier card command never finished; {what} not sent")
        future = self._worker.submit(fn)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            self._stuck = True
            raise CardUnresponsive(f"the card did not answer {what} within {timeout:.1f} s; ask the resident "
                                   "to place the card again", timeout=timeout) from None

    def connect(self) -> "PcscTransport":
        def do() -> None:
            self._ctx = _establish()
            share = scard.SCARD_SHARE_EXCLUSIVE if self.options.exclusive else scard.SCARD_SHARE_SHARED
            last = 0
            for attempt in range(self.options.connect_attempts):
                hr, handle, protocol = scard.SCardConnect(self._ctx, self.reader, share,
                                                          scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
                if hr == scard.SCARD_S_SUCCESS:
                    self._handle, self._protocol = handle, protocol
                    hr, _name, _state, _proto, atr = scard.SCardStatus(handle)
                    self.atr = bytes(atr) if hr == scard.SCARD_S_SUCCESS else b""
                    return
                last = hr
                if _code(hr) in _CARD_GONE:
                    raise CardRemoved(f"no card on {self.reader}: {_message(hr)}")
                if _code(hr) in _READER_GONE:
                    raise ReaderMissing(f"reader {self.reader} went away: {_message(hr)}")
                if _code(hr) == _code(scard.SCARD_E_SHARING_VIOLATION):
                    raise CardUnresponsive(f"another program holds the card on {self.reader}")
                threading.Event().wait(min(0.2, self.options.poll_interval))  # card still powering up
            raise CardUnresponsive(f"could not connect to the card on {self.reader} after "
                                   f"{self.options.connect_attempts} attempts: {_message(last)}")

        try:
            self._run(do, self.options.connect_timeout, "the connection")
        except BaseException:
            self.close()
            raise
        return self

    def transmit(self, command: bytes, timeout: float) -> bytes:
        def do() -> bytes:
            hr, response = scard.SCardTransmit(self._handle, self._protocol, list(command))
            if hr != scard.SCARD_S_SUCCESS:
                if _code(hr) in _CARD_GONE:
                    raise CardRemoved(f"the card was taken off the reader during a command ({_message(hr)})")
                if _code(hr) in _READER_GONE:
                    raise ReaderMissing(f"the reader or pcscd went away during a command ({_message(hr)})")
                if self._absent_now():
                    raise CardRemoved(f"the card left the reader during a command ({_message(hr)})")
                raise CardUnresponsive(f"the card command failed: {_message(hr)}")
            return bytes(response)

        return self._run(do, timeout, f"command {command[:4].hex(' ').upper()}")

    def _absent_now(self) -> bool:
        """Wait up to removal_grace for pcscd to see the card gone (it polls the reader)."""
        states = [(self.reader, scard.SCARD_STATE_PRESENT)]
        hr, result = scard.SCardGetStatusChange(self._ctx, int(self.options.removal_grace * 1000), states)
        if _code(hr) in _READER_GONE:
            return True
        if hr not in (scard.SCARD_S_SUCCESS,) and _code(hr) != _TIMEOUT:
            return False
        if hr == scard.SCARD_S_SUCCESS:
            return not (result[0][1] & scard.SCARD_STATE_PRESENT)
        return False

    def card_gone(self) -> bool:
        try:
            return bool(self._run(self._absent_now, self.options.removal_grace + 2.0, "a presence check"))
        except CardUnresponsive:
            return False

    def close(self) -> None:
        handle, ctx = self._handle, self._ctx
        self._handle = self._ctx = None

        def do() -> None:
            if handle is not None:
                # Reset on the way out: the card forgets the verified PIN before anyone else uses it.
                scard.SCardDisconnect(handle, scard.SCARD_RESET_CARD)
            _release(ctx)

        if self._stuck:  # the worker is blocked inside pcscd; clean up when (if) it comes back
            self._worker.submit(do)
        else:
            try:
                self._run(do, 5.0, "disconnect")
            except CardUnresponsive:
                log.warning("card reader did not release the card within 5 s; continuing")
        self._worker.shutdown(wait=False)


class PresenceMonitor:
    """The driver's own presence thread (see module docstring)."""

    def __init__(self, pattern: re.Pattern[str], options: PcscOptions, on_event: Callable[[CardEvent], None]) -> None:
        self.pattern = pattern
        self.options = options
        self.on_event = on_event
        self._stop = threading.Event()
        self._ctx: int | None = None
        self._ctx_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="card-monitor", daemon=True)
        self.reader: str | None = None
        self.present = False

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._ctx_lock:
            if self._ctx is not None:
                scard.SCardCancel(self._ctx)
        self._thread.join(timeout)

    def _emit(self, kind: CardEventKind, reader: str) -> None:
        log.info("card monitor: %s on %s", kind.value, reader or "(no reader)")
        try:
            self.on_event(CardEvent(kind, reader))
        except Exception:  # noqa: BLE001 - a listener's bug must not stop card monitoring
            log.exception("card event listener failed on %s", kind.value)

    def _drop_context(self) -> None:
        with self._ctx_lock:
            ctx, self._ctx = self._ctx, None
        _release(ctx)

    def _run(self) -> None:
        lost: bool | None = None  # None: nothing reported yet
        state = scard.SCARD_STATE_UNAWARE
        events = -1
        while not self._stop.is_set():
            try:
                if self._ctx is None:
                    ctx = _establish()
                    with self._ctx_lock:
                        self._ctx = ctx
                if self.reader is None:
                    self.reader = _find_reader(self._ctx, self.pattern)
                    if self.reader is None:
                        raise ReaderMissing(f"no PC/SC reader matches {self.pattern.pattern!r}")
                    state, events = scard.SCARD_STATE_UNAWARE, -1
                    if lost:
                        self._emit(CardEventKind.READER_BACK, self.reader)
                    lost = False
                hr, result = scard.SCardGetStatusChange(self._ctx, int(self.options.poll_interval * 1000),
                                                        [(self.reader, state)])
                if _code(hr) in (_TIMEOUT, _CANCELLED):
                    continue
                if hr != scard.SCARD_S_SUCCESS:
                    raise ReaderMissing(f"lost the reader: {_message(hr)}")
                _, event_state, _atr = result[0]
                if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                    raise ReaderMissing(f"reader {self.reader} is unavailable")
                state = event_state & ~scard.SCARD_STATE_CHANGED
                present = bool(event_state & scard.SCARD_STATE_PRESENT) and not event_state & scard.SCARD_STATE_MUTE
                count = event_state >> 16
                if present and self.present and events >= 0 and count - events >= 2:
                    # removed and placed again between two polls: report both
                    self._emit(CardEventKind.REMOVED, self.reader)
                    self._emit(CardEventKind.PLACED, self.reader)
                elif present != self.present:
                    self.present = present
                    self._emit(CardEventKind.PLACED if present else CardEventKind.REMOVED, self.reader)
                events = count
            except ReaderMissing as exc:
                if not lost:
                    log.warning("card reader lost: %s; retrying every %.1f s", exc.detail, self.options.poll_interval)
                    self._emit(CardEventKind.READER_LOST, self.reader or "")
                    lost = True
                self.reader, self.present = None, False
                self._drop_context()
                self._stop.wait(self.options.poll_interval)
            except Exception:  # noqa: BLE001 - keep monitoring; say what happened
                log.exception("card monitor error; starting over")
                self.reader, self.present = None, False
                self._drop_context()
                self._stop.wait(self.options.poll_interval)
        self._drop_context()


class PcscCardReader:
    """kiosk.ports.CardReader for one PC/SC reader chosen by name pattern."""

    def __init__(self, options: PcscOptions) -> None:
        self.options = options
        self.pattern = re.compile(options.reader_pattern)  # validated by PcscOptions.__config_check__
        self._monitor: PresenceMonitor | None = None

    def start_monitor(self, on_event: Callable[[CardEvent], None]) -> None:
        if self._monitor is not None and self._monitor.alive():
            self._monitor.on_event = on_event
            return
        self._monitor = PresenceMonitor(self.pattern, self.options, on_event)
        self._monitor.start()

    def monitor_alive(self) -> bool:
        return self._monitor is not None and self._monitor.alive()

    def stop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()

    def reader_name(self) -> str:
        ctx = _establish()
        try:
            reader = _find_reader(ctx, self.pattern)
        finally:
            _release(ctx)
        if reader is None:
            unusable = "".join(f"; plugged in but unusable: {u}" for u in self.unusable_readers())
            raise ReaderMissing(f"no PC/SC reader matches {self.options.reader_pattern!r}; check the reader's "
                                "USB cable and `opensc-tool -l`" + unusable)
        return reader

    def card_present(self) -> bool:
        try:
            ctx = _establish()
        except ReaderMissing:
            return False
        try:
            reader = _find_reader(ctx, self.pattern)
            if reader is None:
                return False
            hr, result = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
            return hr == scard.SCARD_S_SUCCESS and bool(result[0][1] & scard.SCARD_STATE_PRESENT)
        finally:
            _release(ctx)

    def unusable_readers(self) -> list[str]:
        """Readers plugged in by USB that pcscd cannot drive (e.g. the Sony RC-S380), with what to do."""
        return [profile.describe() for profile in readers.unsupported_attached()]

    def profile(self, reader: str | None = None) -> readers.ReaderProfile:
        """The limits of the reader in use (config ``reader_profile``, or found from its name)."""
        return readers.profile_for(self.options.reader_profile, reader or self.reader_name())

    def open_session(self) -> JpkiSession:
        reader = self.reader_name()
        profile = self.profile(reader)
        transport = PcscTransport(reader, self.options).connect()
        chunk = profile.read_chunk(readers.card_advertises_extended_length(transport.atr))
        session = JpkiSession(transport, apdu_timeout=self.options.apdu_timeout, sign_timeout=self.options.sign_timeout,
                              read_chunk=chunk)
        try:
            return session.open()
        except BaseException:
            session.close()
            raise


@register("card", "pcsc", PcscOptions)
def build_pcsc_reader(options: PcscOptions, context: object = None) -> PcscCardReader:
    return PcscCardReader(options)
