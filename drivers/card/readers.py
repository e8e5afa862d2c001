"""Reader profiles: the PC/SC readers residents and cities actually buy, and what each can carry.

A profile is found by USB vendor:product id (read from sysfs, so a reader pcscd cannot drive — the
Sony RC-S380 — is still recognised and refused with a clear message) or by the PC/SC reader name.
The limits come from each reader's CCID class descriptor as recorded in the CCID driver's reader list
(LudovicRousseau/CCID ``readers/*.txt``): dwMaxCCIDMessageLength is a whole CCID message, 10 bytes of
header plus the APDU, in either direction. Sources and the unconfirmed list: docs/card-readers.md.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CCID_HEADER = 10
SHORT_READ_MAX = 256
EXTENDED_LE_MAX = 0x7FFF  # READ BINARY offsets are 15 bits; no file the kiosk reads comes near it


@dataclass(frozen=True)
class ReaderProfile:
    key: str
    model: str
    usb_ids: tuple[tuple[int, int], ...]
    name_pattern: str  # searched in the PC/SC reader name
    interface: str  # contactless | contact | both
    exchange: str  # CCID exchange level: "APDU (short + extended)", "TPDU", ...
    max_message: int  # CCID dwMaxCCIDMessageLength
    extended_length: bool
    supported: bool = True
    note: str = ""

    @property
    def max_apdu(self) -> int:
        """Largest command or response APDU (data + SW) one exchange can carry."""
        return self.max_message - CCID_HEADER

    def read_chunk(self, card_extended: bool) -> int:
        """Bytes per READ BINARY: short reads (256) unless reader and card both take extended length."""
        if self.extended_length and card_extended:
            return min(EXTENDED_LE_MAX, self.max_apdu - 2)
        return min(SHORT_READ_MAX, self.max_apdu - 2)

    def describe(self) -> str:
        if not self.supported:
            return f"{self.model}: NOT SUPPORTED — {self.note}"
        return (f"{self.model}: {self.interface}, CCID {self.exchange}, max message {self.max_message} bytes "
                f"(APDU ≤ {self.max_apdu}), extended length {'yes' if self.extended_length else 'no'}")


PROFILES = (
    ReaderProfile("sony-rc-s300", "Sony RC-S300 (PaSoRi 4.0)", ((0x054C, 0x0DC8), (0x054C, 0x0DC9)),
                  r"RC-S300|PaSoRi 4\.0", "contactless", "APDU (short + extended)", 522, True),
    ReaderProfile("acs-acr1252u", "ACS ACR1252U", ((0x072F, 0x223B), (0x072F, 0x223E)),
                  r"ACR1252", "contactless", "APDU (short + extended)", 522, True,
                  note="some ACR1252 Dual Reader firmware reports short APDUs only with 288-byte messages"),
    ReaderProfile("acs-acr39u", "ACS ACR39U", ((0x072F, 0xB100),),
                  r"ACR39U", "contact", "TPDU", 271, False),
    ReaderProfile("identiv-scr3310", "Identiv (SCM) SCR3310", ((0x04E6, 0x5116), (0x04E6, 0x511F)),
                  r"SCR ?3310", "contact", "TPDU", 263, False,
                  note="the 0x511F firmware reports 263 bytes (libccid works around it)"),
    ReaderProfile("sony-rc-s380", "Sony RC-S380 (PaSoRi)", ((0x054C, 0x06C1), (0x054C, 0x06C3)),
                  r"RC-S380", "contactless", "none (not CCID)", 0, False, supported=False,
                  note="the RC-S380 is not a CCID reader, so pcscd cannot use it; use a Sony RC-S300 or "
                       "another CCID reader (docs/card-readers.md)"),
    ReaderProfile("vpcd", "vsmartcard virtual reader (vpcd)", (), r"^Virtual PCD", "both",
                  "APDU (short + extended)", 65536 + CCID_HEADER, True,
                  note="tests and the demo only"),
)
GENERIC = ReaderProfile("generic", "unknown PC/SC reader", (), r".", "unknown", "unknown", 271, False,
                        note="not in the profile list: short APDUs only (always safe)")
BY_KEY = {p.key: p for p in (*PROFILES, GENERIC)}


def usb_devices(root: str | os.PathLike[str] = "/sys/bus/usb/devices") -> list[tuple[int, int]]:
    """(vendor, product) of every USB device sysfs lists; empty when there is no sysfs."""
    found = []
    for device in sorted(Path(root).glob("*")):
        try:
            found.append((int((device / "idVendor").read_text().strip(), 16),
                          int((device / "idProduct").read_text().strip(), 16)))
        except (OSError, ValueError):
            continue
    return found


def by_usb_id(vendor: int, product: int) -> ReaderProfile | None:
    return next((p for p in PROFILES if (vendor, product) in p.usb_ids), None)


def by_reader_name(name: str) -> ReaderProfile:
    return next((p for p in PROFILES if re.search(p.name_pattern, name)), GENERIC)


def profile_for(setting: str, reader_name: str) -> ReaderProfile:
    """The profile named in the config, or (``auto``) the one the PC/SC reader name matches."""
    if setting != "auto":
        return BY_KEY[setting]
    return by_reader_name(reader_name)


def unsupported_attached(root: str | os.PathLike[str] = "/sys/bus/usb/devices") -> list[ReaderProfile]:
    """Known readers plugged in that the kiosk cannot use (they never show up in pcscd)."""
    profiles = [by_usb_id(*ids) for ids in usb_devices(root)]
    return [p for p in profiles if p is not None and not p.supported]


def card_advertises_extended_length(atr: bytes) -> bool:
    """ISO 7816-4 card capabilities (compact-TLV tag 7x in the historical bytes), 3rd byte bit 0x40.

    The JPKI (02) ATR ``... 73 C6 01 C0`` sets it; the legacy ATR has no historical bytes (jpki-card.md §1.1).
    """
    historical = _historical_bytes(atr)
    if not historical or historical[0] != 0x80:
        return False
    i = 1
    while i < len(historical):
        tag, length = historical[i] >> 4, historical[i] & 0x0F
        value = historical[i + 1:i + 1 + length]
        if tag == 0x7 and length >= 3:
            return bool(value[2] & 0x40)
        i += 1 + length
    return False


def _historical_bytes(atr: bytes) -> bytes:
    if len(atr) < 2:
        return b""
    count = atr[1] & 0x0F
    y, i = atr[1] >> 4, 1  # i: the byte (T0, then TDk) whose high nibble says which interface bytes follow
    while True:
        i += bin(y).count("1")
        if not y & 0x8 or i >= len(atr):
            break
        y = atr[i] >> 4
    start = i + 1
    return atr[start:start + count]
