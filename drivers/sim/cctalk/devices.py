"""Emulated ccTalk slaves: coin acceptor, bill (note) validator and hopper.

Each answers headers the way spec v4.7 describes (see /work/shared/docs/payment-printing.md §1 and the
checklist in §7.1) and keeps the physical truth the tests compare the kiosk's ledger with: yen in the
cash box, yen paid out, notes returned.
"""
from __future__ import annotations

import time
from typing import Callable

from drivers.payment.cctalk import codec
from drivers.payment.cctalk.codec import ChecksumMode, Header

NAK = object()  # handle() returns this to answer with header 5
SILENT = None  # unknown header: a real device does not answer at all

# Test hopper flags that "must be cleared with a software reset prior to next payout" (ccTalk spec
# part 2 §3.90 as quoted in Kosta-Git/cc-talk-rs cc_talk_core/src/common/hopper_flags.rs; Suzo-Happ
# Flow 18-ccTalk manual §7.3: "If any error flags are set ... issue a RESET command").
RESET_CLEARED_FLAGS = frozenset({"max_current_exceeded", "opto_blocked_idle", "opto_short_idle",
                                 "opto_blocked_payout", "opto_short_payout", "opto_fraud",
                                 "motor_reverse_limit", "inductive_coil_fault"})

COIN_IDS = ("JP001A", "JP005A", "JP010A", "JP050A", "JP100A", "JP500A", "JP500B")
BILL_IDS = ("JP1000A", "JP2000A", "JP5000A")


class SimDevice:
    category = ""
    product = "SIM"

    def __init__(self, address: int, clock: Callable[[], float] = time.monotonic,
                 mode: ChecksumMode = ChecksumMode.SIMPLE) -> None:
        self.address = address
        self.clock = clock
        self.mode = mode
        self.requests: list[int] = []  # headers received, for tests

    def handle(self, header: int, data: bytes) -> bytes | object | None:
        self.requests.append(header)
        if header == Header.SIMPLE_POLL:
            return b""
        if header == Header.REQUEST_EQUIPMENT_CATEGORY:
            return self.category.encode()
        if header == Header.REQUEST_MANUFACTURER_ID:
            return b"MDG"
        if header == Header.REQUEST_PRODUCT_CODE:
            return self.product.encode()
        if header == Header.REQUEST_SERIAL_NUMBER:
            return bytes((self.address, 0, 1))
        if header == Header.REQUEST_SOFTWARE_REVISION:
            return b"sim-1.0"
        if header == Header.REQUEST_COMMS_REVISION:
            return bytes((1, 4, 7))
        if header == Header.REQUEST_POLLING_PRIORITY:
            return bytes((2, 10))  # 10 × 10 ms
        return self.handle_specific(header, data)

    def handle_specific(self, header: int, data: bytes) -> bytes | object | None:
        return SILENT

    def tick(self) -> None:
        """Advance time-driven behaviour (payouts, escrow timeout)."""

    def state(self) -> dict[str, object]:
        return {"address": self.address, "category": self.category}


class _EventBufferMixin:
    def _init_events(self) -> None:
        self.counter = 0
        self.pairs: list[tuple[int, int]] = []  # newest first

    def push_event(self, a: int, b: int) -> None:
        self.counter = codec.next_event_counter(self.counter)
        self.pairs.insert(0, (a, b))
        del self.pairs[codec.EVENT_SLOTS:]

    def event_reply(self) -> bytes:
        return codec.build_event_buffer(self.counter, self.pairs)

    def handle_inhibits(self, header: int, data: bytes) -> bytes | None:
        """Headers 231/230 (per-type inhibit masks) and 228/227 (master inhibit), the same on both."""
        if header == Header.MODIFY_INHIBIT_STATUS and len(data) == 2:
            self.masks = bytes(data)
            return b""
        if header == Header.REQUEST_INHIBIT_STATUS:
            return self.masks
        if header == Header.MODIFY_MASTER_INHIBIT and len(data) == 1:
            self.master_enabled = bool(data[0] & 1)
            return b""
        if header == Header.REQUEST_MASTER_INHIBIT:
            return bytes((int(self.master_enabled),))
        return None


class SimCoinAcceptor(SimDevice, _EventBufferMixin):
    category = "Coin Acceptor"
    product = "SIM-COIN"

    def __init__(self, address: int = 2, **kw: object) -> None:
        super().__init__(address, **kw)  # type: ignore[arg-type]
        self.coin_ids = list(COIN_IDS) + ["......"] * (16 - len(COIN_IDS))
        self.masks = b"\x00\x00"
        self.master_enabled = False
        self.self_check_fault = (0, 0)
        self.cashbox_yen = 0  # coins that went in and were credited
        self.returned_yen = 0  # coins rejected back to the resident
        self._init_events()

    def positions_for(self, value: int) -> list[int]:
        return [i + 1 for i, cid in enumerate(self.coin_ids)
                if (c := codec.parse_coin_id(cid.encode())) is not None and c.value == value]

    def insert_coin(self, value: int) -> bool:
        """A resident drops a coin: credited if its position is enabled, else rejected as inhibited."""
        positions = self.positions_for(value)
        if not positions:
            self.returned_yen += value
            self.push_event(0, 1)  # reject coin
            return False
        enabled = codec.enabled_positions(self.masks) if self.master_enabled else set()
        for position in positions:
            if position in enabled:
                self.cashbox_yen += value
                self.push_event(position, 1)
                return True
        self.returned_yen += value
        self.push_event(0, 127 + positions[0])  # inhibited coin type n
        return False

    def lose_events(self, values: list[int]) -> None:
        """Coins go in faster than the host polls: the counter moves past what 5 slots can show."""
        for value in values:
            position = self.positions_for(value)[0]
            self.cashbox_yen += value
            self.push_event(position, 1)

    def error_event(self, code: int) -> None:
        self.push_event(0, code)

    def power_cycle(self) -> None:
        self.counter = 0
        self.pairs = []
        self.masks = b"\x00\x00"
        self.master_enabled = False

    def handle_specific(self, header: int, data: bytes) -> bytes | object | None:
        if header == Header.REQUEST_COIN_ID and len(data) == 1 and 1 <= data[0] <= 16:
            return self.coin_ids[data[0] - 1].encode()
        inhibit = self.handle_inhibits(header, data)
        if inhibit is not None:
            return inhibit
        if header == Header.READ_BUFFERED_CREDIT:
            return self.event_reply()
        if header == Header.REQUEST_STATUS:
            return b"\x00"
        if header == Header.PERFORM_SELF_CHECK:
            return bytes(self.self_check_fault)
        if header == Header.RESET_DEVICE:
            self.power_cycle()
            return b""
        return SILENT

    def state(self) -> dict[str, object]:
        return {**super().state(), "counter": self.counter, "cashbox_yen": self.cashbox_yen,
                "returned_yen": self.returned_yen, "master_enabled": self.master_enabled,
                "enabled_values": sorted({codec.parse_coin_id(self.coin_ids[p - 1].encode()).value  # type: ignore[union-attr]
                                          for p in codec.enabled_positions(self.masks)}) if self.master_enabled else []}


class SimNoteValidator(SimDevice, _EventBufferMixin):
    category = "Bill Validator"
    product = "SIM-NOTE"

    def __init__(self, address: int = 40, *, escrow_timeout: float = 10.0, stack_delay: float = 0.0,
                 **kw: object) -> None:
        super().__init__(address, **kw)  # type: ignore[arg-type]
        self.bill_ids = list(BILL_IDS) + ["......."] * (16 - len(BILL_IDS))
        self.masks = b"\x00\x00"
        self.master_enabled = False
        self.mode_mask = 0
        self.escrow_timeout = escrow_timeout
        self.stack_delay = stack_delay
        self.escrow_type = 0
        self.escrow_since = 0.0
        self.stacking: tuple[int, float] | None = None  # (bill type, when the credit is due)
        self.stacked_yen = 0
        self.notes_returned = 0
        self.notes_rejected = 0
        self._init_events()

    def value_of(self, bill_type: int) -> int:
        bill = codec.parse_bill_id(self.bill_ids[bill_type - 1].encode())
        return bill.value if bill else 0

    def insert_note(self, value: int) -> bool:
        types = [t for t in range(1, 17) if self.value_of(t) == value]
        enabled = codec.enabled_positions(self.masks) if self.master_enabled else set()
        if not types or self.escrow_type or self.stacking:
            self.notes_rejected += 1
            self.push_event(0, 2)
            return False
        if types[0] not in enabled:
            self.notes_rejected += 1
            self.push_event(0, 4)  # inhibited bill
            return False
        if self.mode_mask & 2:
            self.escrow_type = types[0]
            self.escrow_since = self.clock()
            self.push_event(types[0], 1)
        else:
            self.stacked_yen += value
            self.push_event(types[0], 0)
        return True

    def error_event(self, code: int) -> None:
        self.push_event(0, code)

    def tick(self) -> None:
        now = self.clock()
        if self.stacking and now >= self.stacking[1]:
            bill_type = self.stacking[0]
            self.stacking = None
            self.stacked_yen += self.value_of(bill_type)
            self.push_event(bill_type, 0)
        if self.escrow_type and now - self.escrow_since > self.escrow_timeout:
            self.escrow_type = 0
            self.notes_returned += 1
            self.push_event(0, 1)

    def handle_specific(self, header: int, data: bytes) -> bytes | object | None:
        if header == Header.REQUEST_BILL_ID and len(data) == 1 and 1 <= data[0] <= 16:
            return self.bill_ids[data[0] - 1].encode()
        if header == Header.REQUEST_COUNTRY_SCALING and len(data) == 2:
            return b"\x01\x00\x00" if data == b"JP" else b"\x00\x00\x00"
        if header == Header.MODIFY_BILL_OPERATING_MODE and len(data) == 1:
            self.mode_mask = data[0]
            return b""
        inhibit = self.handle_inhibits(header, data)
        if inhibit is not None:
            return inhibit
        if header == Header.READ_BUFFERED_BILL_EVENTS:
            self.tick()
            return self.event_reply()
        if header == Header.ROUTE_BILL and len(data) == 1:
            if data[0] == codec.BILL_ROUTE_EXTEND_ESCROW:
                self.escrow_since = self.clock()
                return b"" if self.escrow_type else b"\xfe"
            if not self.escrow_type:
                return b"\xfe"
            if data[0] == codec.BILL_ROUTE_STACK:
                self.stacking = (self.escrow_type, self.clock() + self.stack_delay)
                self.escrow_type = 0
                if self.stack_delay <= 0:
                    self.tick()
                return b""
            self.escrow_type = 0
            self.notes_returned += 1
            self.push_event(0, 1)
            return b""
        if header == Header.PERFORM_SELF_CHECK:
            return b"\x00"
        if header == Header.RESET_DEVICE:
            self.counter, self.pairs, self.masks, self.master_enabled = 0, [], b"\x00\x00", False
            return b""
        return SILENT

    def state(self) -> dict[str, object]:
        return {**super().state(), "counter": self.counter, "stacked_yen": self.stacked_yen,
                "notes_returned": self.notes_returned, "notes_rejected": self.notes_rejected,
                "escrow_yen": self.value_of(self.escrow_type) if self.escrow_type else 0,
                "master_enabled": self.master_enabled}


class SimHopper(SimDevice):
    category = "Payout"
    product = "SIM-HOPPER"

    def __init__(self, address: int = 3, coin_yen: int = 100, coins: int = 50, *, seconds_per_coin: float = 0.0,
                 low_level: int = 5, **kw: object) -> None:
        super().__init__(address, **kw)  # type: ignore[arg-type]
        self.coin_yen = coin_yen
        self.coins = coins
        self.seconds_per_coin = seconds_per_coin
        self.low_level = low_level
        self.enabled = False
        self.counter = 0
        self.remaining = 0
        self.paid = 0
        self.unpaid = 0
        self.flags: set[str] = set()
        self.lifetime = 0
        self.paid_out_yen = 0
        self.forced_low = False
        self.drop_next_dispense_reply = False
        self.dispense_refused = False
        self._next_coin_at = 0.0
        self._stalled_since: float | None = None
        self.jammed = False  # physical truth: a coin is stuck in the exit path
        self.flags.add("power_up")  # power has just been applied (cleared by a software reset)

    def fill(self, coins: int) -> None:
        self.coins = coins
        self.forced_low = False
        self.flags.discard("payout_timeout")

    def tick(self) -> None:
        now = self.clock()
        while self.remaining and now >= self._next_coin_at:
            if self.jammed:
                # The motor reverses to clear the jam until its limit, then the payout is aborted; the
                # flag stays set until a software reset (spec part 2 §3.90, Test hopper register 2 bit 4).
                self.unpaid, self.remaining = self.remaining, 0
                self.flags |= {"motor_reversed", "motor_reverse_limit"}
                return
            if self.coins <= 0:
                # An empty hopper turns its motor until the payout times out (about 3 coin times).
                if self._stalled_since is None:
                    self._stalled_since = now
                if now - self._stalled_since >= 3 * self.seconds_per_coin:
                    self.unpaid, self.remaining = self.remaining, 0
                    self.flags.add("payout_timeout")
                    self._stalled_since = None
                return
            self.coins -= 1
            self.paid += 1
            self.remaining -= 1
            self.lifetime += 1
            self.paid_out_yen += self.coin_yen
            self._next_coin_at = (self._next_coin_at or now) + self.seconds_per_coin
            if self.seconds_per_coin <= 0:
                self._next_coin_at = now

    def handle_specific(self, header: int, data: bytes) -> bytes | object | None:
        if header == Header.ENABLE_HOPPER and len(data) == 1:
            self.enabled = data[0] == codec.HOPPER_ENABLE_CODE
            return b""
        if header == Header.DISPENSE_HOPPER_COINS and data:
            count = data[-1]  # plain mode: [N]; security bytes, if any, precede it
            if not self.enabled or self.remaining or count == 0 or self.dispense_refused \
                    or self.flags & RESET_CLEARED_FLAGS:
                return NAK  # Suzo-Happ Flow manual §7.3: NAK while a fault flag is set or the exit is blocked
            self.counter = codec.next_event_counter(self.counter)
            self.remaining, self.paid, self.unpaid = count, 0, 0
            self.flags.discard("payout_timeout")
            self._next_coin_at = self.clock() + self.seconds_per_coin
            self._stalled_since = None
            self.tick()
            if self.drop_next_dispense_reply:
                self.drop_next_dispense_reply = False
                return SILENT
            return bytes((self.counter,))
        if header == Header.REQUEST_HOPPER_STATUS:
            self.tick()
            return bytes((self.counter, self.remaining, min(self.paid, 255), min(self.unpaid, 255)))
        if header == Header.TEST_HOPPER:
            return codec.build_test_hopper(self.flags | (set() if self.enabled else {"payout_disabled"}))
        if header == Header.EMERGENCY_STOP:
            left, self.remaining = self.remaining, 0
            self.unpaid = left
            return bytes((left,))
        if header == Header.REQUEST_HOPPER_DISPENSE_COUNT:
            return self.lifetime.to_bytes(3, "little")
        if header == Header.REQUEST_HOPPER_COIN:
            return f"JP{self.coin_yen:03d}A".encode()
        if header == Header.REQUEST_PAYOUT_HIGH_LOW_STATUS:
            below = self.forced_low or self.coins < self.low_level
            return bytes((16 | (1 if below else 0),))
        if header == Header.PERFORM_SELF_CHECK:
            return b"\x00"
        if header == Header.RESET_DEVICE:
            # A software reset clears the fault flags and the power-up flag; the hopper comes back
            # disabled (needs Enable hopper). A coin still stuck in the exit is seen again by the idle
            # opto test, so a jam that was not cleared shows up again as "path blocked during idle".
            self.enabled, self.counter, self.remaining = False, 0, 0
            self.flags -= RESET_CLEARED_FLAGS | {"power_up", "payout_timeout", "motor_reversed"}
            if self.jammed:
                self.flags.add("opto_blocked_idle")
            return b""
        return SILENT

    def state(self) -> dict[str, object]:
        return {**super().state(), "coin_yen": self.coin_yen, "coins": self.coins, "paid_out_yen": self.paid_out_yen,
                "remaining": self.remaining, "enabled": self.enabled, "counter": self.counter,
                "flags": sorted(self.flags)}
