"""Host-side ccTalk device classes: coin acceptor, bill (note) validator, hopper.

Each turns headers into meaning for one device on the shared bus; none of them keeps money state
(that is drivers.payment.cash's job) beyond the event counter it must remember between polls.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from kiosk.errors import PaymentDeviceFault

from ..cash.devices import EscrowEmpty, NoteEvent, NoteEventKind, PollResult
from . import codec
from .codec import CoinEventKind, Header, HopperStatus
from .transport import CcTalkTransport, NakReceived

log = logging.getLogger(__name__)

JAPAN = "JP"


def _ascii(data: bytes) -> str:
    return data.decode("ascii", errors="replace").strip()


def _category_matches(found: str, expected: str) -> bool:
    """Spec examples disagree on exact strings ('Bill Validator' vs 'Bill Acceptor'): match leniently."""
    norm = found.lower().replace("_", " ")
    return any(word in norm for word in expected.lower().split("|"))


class _Device:
    category = ""

    def __init__(self, transport: CcTalkTransport, address: int) -> None:
        self.transport = transport
        self.address = address

    def request(self, header: int, data: bytes = b"", **kw: object) -> bytes:
        return self.transport.request(self.address, header, data, **kw)  # type: ignore[arg-type]

    def simple_poll(self) -> None:
        self.request(Header.SIMPLE_POLL)

    def check_category(self) -> str:
        found = _ascii(self.request(Header.REQUEST_EQUIPMENT_CATEGORY))
        if not _category_matches(found, self.category):
            raise PaymentDeviceFault(f"address {self.address} says it is a {found!r}, expected {self.category!r}; "
                                     f"check the device addresses in the [cash] section", address=self.address)
        return found

    def self_check(self) -> tuple[int, int]:
        data = self.request(Header.PERFORM_SELF_CHECK)
        return (data[0] if data else 0), (data[1] if len(data) > 1 else 0)


class _BufferedEventDevice(_Device):
    """A coin acceptor or note validator: credits and errors come from a 5-slot event buffer with a
    counter (header 229 / 159), and accepted types are chosen with the inhibit masks (231 + 228)."""

    buffer_header = 0

    def __init__(self, transport: CcTalkTransport, address: int) -> None:
        super().__init__(transport, address)
        self.last_counter: int | None = None

    def _accept_only(self, positions: set[int]) -> None:
        self.request(Header.MODIFY_INHIBIT_STATUS, codec.inhibit_masks(positions))
        self.request(Header.MODIFY_MASTER_INHIBIT, bytes((1 if positions else 0,)))

    def prime(self) -> None:
        """Remember the current counter: events from before the host started are history, not credit."""
        self.last_counter = codec.parse_event_buffer(self.request(self.buffer_header)).counter

    def _read_unread(self) -> codec.UnreadEvents | None:
        """The events since the last read (None on the very first read, which only primes the counter)."""
        buffer = codec.parse_event_buffer(self.request(self.buffer_header))
        if self.last_counter is None:
            self.last_counter = buffer.counter
            return None
        unread = codec.unread_events(self.last_counter, buffer)
        self.last_counter = buffer.counter
        return unread


@dataclass(frozen=True)
class CoinEvent:
    kind: CoinEventKind | None  # None: a credit
    position: int = 0
    value: int = 0  # yen, for credits; 0 when the position is not in the coin table
    code: int = 0
    text: str = ""


class CoinAcceptor(_BufferedEventDevice):
    category = "coin acceptor"
    buffer_header = Header.READ_BUFFERED_CREDIT

    def __init__(self, transport: CcTalkTransport, address: int = 2) -> None:
        super().__init__(transport, address)
        self.coin_table: dict[int, int] = {}  # position → yen

    def read_coin_table(self) -> dict[int, int]:
        table: dict[int, int] = {}
        for position in range(1, 17):
            coin = codec.parse_coin_id(self.request(Header.REQUEST_COIN_ID, bytes((position,))))
            if coin is not None and coin.country == JAPAN:
                table[position] = coin.value
        self.coin_table = table
        return table

    def set_accepting(self, values: set[int]) -> None:
        """Enable exactly the coin positions whose value is in ``values``; nothing at all when empty."""
        self._accept_only({p for p, v in self.coin_table.items() if v in values})

    def poll(self) -> PollResult:
        unread = self._read_unread()
        if unread is None:
            return PollResult((), 0, False)
        events = []
        for a, b in unread.events:
            if a:
                events.append(CoinEvent(kind=None, position=a, value=self.coin_table.get(a, 0), code=b))
            else:
                kind, text = codec.classify_coin_event(b)
                events.append(CoinEvent(kind=kind, code=b, text=text))
        return PollResult(tuple(events), unread.lost, unread.device_reset)


BillEvent = NoteEvent  # the ccTalk name for a note event


class NoteValidator(_BufferedEventDevice):
    category = "bill validator|bill acceptor"
    buffer_header = Header.READ_BUFFERED_BILL_EVENTS
    USE_STACKER = 1
    USE_ESCROW = 2

    def __init__(self, transport: CcTalkTransport, address: int = 40) -> None:
        super().__init__(transport, address)
        self.bill_table: dict[int, int] = {}  # bill type → yen

    def read_bill_table(self) -> dict[int, int]:
        scaling = codec.parse_scaling_factor(self.request(Header.REQUEST_COUNTRY_SCALING, JAPAN.encode()))
        factor, places = scaling or (1, 0)
        table: dict[int, int] = {}
        for bill_type in range(1, 17):
            bill = codec.parse_bill_id(self.request(Header.REQUEST_BILL_ID, bytes((bill_type,))))
            if bill is not None and bill.country == JAPAN:
                table[bill_type] = bill.value * factor // (10 ** places)
        self.bill_table = table
        return table

    def use_escrow(self) -> None:
        self.request(Header.MODIFY_BILL_OPERATING_MODE, bytes((self.USE_STACKER | self.USE_ESCROW,)))

    def set_accepting(self, values: set[int]) -> None:
        self._accept_only({t for t, v in self.bill_table.items() if v in values})

    def poll(self) -> PollResult:
        unread = self._read_unread()
        if unread is None:
            return PollResult((), 0, False)
        events = []
        for a, b in unread.events:
            if a:
                events.append(BillEvent(kind=None, bill_type=a, value=self.bill_table.get(a, 0), escrow=(b == 1)))
            else:
                kind, text = codec.classify_bill_event(b)
                events.append(BillEvent(kind=NoteEventKind(kind.value), code=b, text=text))
        return PollResult(tuple(events), unread.lost, unread.device_reset)

    def route(self, stack: bool) -> None:
        reply = self.request(Header.ROUTE_BILL,
                             bytes((codec.BILL_ROUTE_STACK if stack else codec.BILL_ROUTE_RETURN,)))
        if reply:
            reason = codec.BILL_ROUTE_ERRORS.get(reply[0], f"error {reply[0]}")
            if reply[0] == 254:  # nothing in escrow: already returned (escrow timeout) or never there
                raise EscrowEmpty(reason)
            raise PaymentDeviceFault(f"the note validator could not {'stack' if stack else 'return'} the note: "
                                     f"{reason}", address=self.address)


    def extend_escrow(self) -> None:
        reply = self.request(Header.ROUTE_BILL, bytes((codec.BILL_ROUTE_EXTEND_ESCROW,)))
        if reply and reply[0] == 254:
            raise EscrowEmpty(codec.BILL_ROUTE_ERRORS[254])


@dataclass(frozen=True)
class PayoutResult:
    requested: int
    paid: int  # coins
    unpaid: int
    flags: frozenset[str]
    accepted: bool  # False: the hopper refused or never took the command (nothing paid)


class Hopper(_Device):
    category = "payout"

    def __init__(self, transport: CcTalkTransport, address: int, coin_yen: int, *,
                 seconds_per_coin: float = 1.0, status_interval: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(transport, address)
        self.coin_yen = coin_yen
        self.seconds_per_coin = seconds_per_coin
        self.status_interval = status_interval
        self._sleep = sleep

    def enable(self, on: bool = True) -> None:
        self.request(Header.ENABLE_HOPPER, bytes((codec.HOPPER_ENABLE_CODE if on else 0,)))

    def status(self) -> HopperStatus:
        return codec.parse_hopper_status(self.request(Header.REQUEST_HOPPER_STATUS))

    def test(self) -> frozenset[str]:
        return codec.parse_test_hopper(self.request(Header.TEST_HOPPER))

    def level(self) -> codec.PayoutLevel:
        return codec.parse_payout_level(self.request(Header.REQUEST_PAYOUT_HIGH_LOW_STATUS))

    def reset(self, settle: float = 0.3) -> frozenset[str]:
        """Software reset (header 1): the only way to clear a hopper's fault flags ("must be cleared with
        a software reset prior to next payout", spec part 2 §3.90; Suzo-Happ Flow manual §7.3). The
        hopper comes back disabled and with its event counter at 0; a fault still physically present
        (a coin in the exit) is flagged again by its idle self-test, so the flags are read after
        ``settle`` seconds and returned."""
        self.request(Header.RESET_DEVICE)
        self._sleep(settle)
        return self.test()

    def emergency_stop(self) -> int:
        data = self.request(Header.EMERGENCY_STOP)
        return data[0] if data else 0

    def dispense(self, coins: int, on_paid: Callable[[int], None]) -> PayoutResult:
        """Pay ``coins`` coins, calling ``on_paid(n)`` as soon as the hopper reports n more coins out.

        The dispense command is never re-sent: when its reply is lost, the hopper's event counter
        tells whether it was taken (spec part 1 §12.1).
        """
        if not 1 <= coins <= 255:
            raise ValueError(f"a hopper pays 1..255 coins per command, asked {coins}")
        self.enable(True)
        before = self.status()
        try:
            self.request(Header.DISPENSE_HOPPER_COINS, bytes((coins,)), retries=0)
        except NakReceived:
            self._disable_quietly()
            return PayoutResult(coins, 0, coins, self._flags_quietly(), accepted=False)
        except PaymentDeviceFault:
            if self.status().counter == before.counter:
                log.warning("hopper %d: dispense reply lost and the counter did not move; nothing paid",
                            self.address)
                self._disable_quietly()
                return PayoutResult(coins, 0, coins, self._flags_quietly(), accepted=False)
            log.warning("hopper %d: dispense reply lost but the counter moved; following the payout", self.address)
        reported = 0
        deadline = time.monotonic() + self.seconds_per_coin * coins + 1.0
        while True:
            status = self.status()
            if status.paid > reported:
                on_paid(status.paid - reported)
                reported = status.paid
            if status.remaining == 0:
                unpaid = coins - reported
                break
            if time.monotonic() > deadline:
                left = self.emergency_stop()
                status = self.status()
                if status.paid > reported:
                    on_paid(status.paid - reported)
                    reported = status.paid
                unpaid = coins - reported
                log.error("hopper %d: payout of %d coins timed out, emergency stop left %d", self.address,
                          coins, left)
                break
            self._sleep(self.status_interval)
        self._disable_quietly()
        return PayoutResult(coins, reported, unpaid, self._flags_quietly(), accepted=True)

    def _disable_quietly(self) -> None:
        try:
            self.enable(False)
        except PaymentDeviceFault as exc:
            log.warning("hopper %d: could not disable after payout: %s", self.address, exc)

    def _flags_quietly(self) -> frozenset[str]:
        try:
            return self.test()
        except PaymentDeviceFault as exc:
            log.warning("hopper %d: test hopper failed: %s", self.address, exc)
            return frozenset({"no_reply"})
