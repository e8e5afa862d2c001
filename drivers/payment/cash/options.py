"""The [cash] section: which bus each cash device is on, and the money rules' settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kiosk.config import setting

from .rules import JAPANESE_COINS, JAPANESE_NOTES

# Default JPY escrow codes of an ID-003 validator — UNCONFIRMED (firmware specific, see
# docs/protocols/id003.md); the installer checks them against the validator's software sheet.
DEFAULT_ID003_ESCROW_CODES = ((0x61, 1000), (0x62, 2000), (0x63, 5000), (0x64, 10000))


@dataclass(frozen=True)
class HopperOptions:
    address: int = setting(doc="ccTalk address of this hopper (3, then 4-10).", min=3, max=10)
    coin_yen: int = setting(doc="The coin this hopper pays, in yen (10, 50, 100 or 500).")
    capacity: int = setting(1000, doc="Coins this hopper holds when full (for the float shown to staff).", min=1)


@dataclass(frozen=True)
class EscrowCode:
    code: int = setting(doc="Escrow code the validator reports (0x61-0x68, written as a number).", min=0x61, max=0x68)
    yen: int = setting(doc="The note it stands for, in yen.")


@dataclass(frozen=True)
class Id003Options:
    port: str = setting("/dev/madoguchi-id003", doc="Serial port of the ID-003 note validator (9600 8E1).")
    parity: Literal["even", "none"] = setting("even", doc="Line parity: 'even' as ID-003 requires (8E1); 'none' "
                                                        "only for the emulator's pseudo-terminal, which "
                                                        "carries no parity.")
    reply_timeout: float = setting(0.2, doc="Seconds to wait for the validator's reply.", min=0.01, max=5.0)
    retries: int = setting(3, doc="Re-sends of a frame after silence or a bad CRC.", min=0, max=5)
    escrow_codes: tuple[EscrowCode, ...] = setting(
        tuple(EscrowCode(code=c, yen=y) for c, y in DEFAULT_ID003_ESCROW_CODES),
        doc="Escrow code → note value ([[cash.id003.escrow_codes]] code, yen); UNCONFIRMED defaults "
            "0x61=1000, 0x62=2000, 0x63=5000, 0x64=10000 — check the validator's software sheet.")
    reset_timeout: float = setting(10.0, doc="Seconds the validator may take to initialise after a reset.",
                                   min=0.1, max=60.0)
    stacker_capacity: int = setting(500, doc="Notes the stacker (cash box) holds.", min=1)

    def table(self) -> dict[int, int]:
        return {e.code: e.yen for e in self.escrow_codes}


@dataclass(frozen=True)
class CashOptions:
    port: str = setting("/dev/ttyUSB0", doc="Serial port of the ccTalk bus (prefer /dev/serial/by-id/...).")
    echo: bool = setting(True, doc="The interface loops sent bytes back (single-wire ccTalk); false for "
                                   "interfaces that remove the echo themselves.")
    checksum: Literal["simple", "crc16"] = setting("simple", doc="ccTalk checksum: 8-bit 'simple' or 'crc16'.")
    coin_acceptor_address: int = setting(2, doc="ccTalk address of the coin acceptor.", min=2, max=17)
    note_validator: Literal["cctalk", "id003", "none"] = setting(
        "cctalk", doc="Bus of the note validator: 'cctalk' (on the coin bus, note_validator_address), "
                      "'id003' (JCM ID-003 on its own port, [cash.id003]) or 'none'.")
    note_validator_address: int = setting(40, doc="ccTalk address of the note validator; 0 = none fitted.",
                                          min=0, max=47)
    id003: Id003Options = setting(Id003Options(), doc="The ID-003 note validator ([cash.id003]).")
    hoppers: tuple[HopperOptions, ...] = setting(
        (HopperOptions(address=3, coin_yen=100), HopperOptions(address=4, coin_yen=10)),
        doc="Change hoppers ([[cash.hoppers]] address, coin_yen); none = exact amount only.")
    accepted_coins: tuple[int, ...] = setting((10, 50, 100, 500), doc="Coins accepted, yen.")
    accepted_notes: tuple[int, ...] = setting((1000,), doc="Notes accepted, yen (1000, 2000, 5000, 10000).")
    poll_interval: float = setting(0.1, doc="Seconds between event polls (spec: 0.1-0.2).", min=0.005, max=1.0)
    reply_timeout: float = setting(0.2, doc="Seconds to wait for a device's reply.", min=0.01, max=5.0)
    retries: int = setting(3, doc="Re-sends of a command after silence or a bad checksum (never for payout).",
                           min=0, max=5)
    seconds_per_coin: float = setting(1.0, doc="Hopper payout time allowed per coin before emergency stop.",
                                      min=0.05, max=10.0)
    command_timeout: float = setting(20.0, doc="Seconds start/cancel/refund wait for the cash thread.",
                                     min=0.5, max=120.0)
    reconnect_interval: float = setting(2.0, doc="Seconds before the first attempt to reopen a lost bus; "
                                                 "doubles after each failure up to reconnect_max.", min=0.1)
    reconnect_max: float = setting(30.0, doc="Longest wait between attempts to reopen a lost bus.", min=0.1)
    hopper_reset_settle: float = setting(0.5, doc="Seconds a hopper needs after a software reset before its "
                                                  "flags are read again.", min=0.0, max=5.0)

    @property
    def has_notes(self) -> bool:
        return self.note_validator == "id003" or (self.note_validator == "cctalk" and self.note_validator_address > 0)

    def __config_check__(self) -> tuple[str, str, str] | None:
        for coin in self.accepted_coins:
            if coin not in JAPANESE_COINS:
                return ("accepted_coins", f"yen coins from {JAPANESE_COINS}", str(coin))
        for note in self.accepted_notes:
            if note not in JAPANESE_NOTES:
                return ("accepted_notes", f"yen notes from {JAPANESE_NOTES}", str(note))
        addresses = [h.address for h in self.hoppers]
        if len(set(addresses)) != len(addresses):
            return ("hoppers", "distinct hopper addresses", str(addresses))
        for i, hopper in enumerate(self.hoppers):
            if hopper.coin_yen not in JAPANESE_COINS:
                return (f"hoppers[{i}].coin_yen", f"a yen coin from {JAPANESE_COINS}", str(hopper.coin_yen))
        for i, entry in enumerate(self.id003.escrow_codes):
            if entry.yen not in JAPANESE_NOTES:
                return (f"id003.escrow_codes[{i}].yen", f"a yen note from {JAPANESE_NOTES}", str(entry.yen))
        if not self.accepted_coins and not self.accepted_notes:
            return ("accepted_coins", "at least one coin or note accepted", "none")
        return None
