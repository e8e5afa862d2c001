"""The refund voucher (返金引換券) code: signed by the kiosk, checked at city hall's counter.

When a kiosk cannot pay money back (the hopper is empty, a QR refund is refused) it prints a
返金引換券. The paper carries one code, as a QR and as text a clerk can type. The code is the voucher
itself: city hall's counter checks it offline with the kiosk's enrolled public key, before the journal
that records it has even been uploaded.

API (both ends; pure: callers pass the key, the clock and the key lookup)::

    issued = issue(device_key, "wako-honcho-01", "wako-honcho-01-000123", amount_yen=700,
                   issued_at=datetime.now(timezone.utc), valid_days=90)
    issued.code        # 'V1…' for the QR (QR alphanumeric mode: upper-case letters and digits only)
    issued.text        # the same code in groups of four with hyphens, for people
    issued.voucher     # Voucher(device_id, txn_id, amount_yen, issued_at, expires_at)

    check = verify(code_or_text, public_key_lookup, now)
    check.status       # VoucherStatus.GENUINE | FORGED | EXPIRED | MALFORMED
    check.voucher      # the decoded Voucher (None when MALFORMED)
    check.detail       # one sentence for the clerk

``public_key_lookup(device_id)`` returns the device's Ed25519PublicKey, or None for a device city hall
does not know (the code is then FORGED). EXPIRED means genuine but past ``expires_at``; the counter
decides what to do with it (the money is still owed: see docs/certificates.md). Redeeming once is the
counter's job (it records the voucher's ``txn_id``); verify() only says whether the paper is genuine.

Wire format (version 1), then Crockford base32 (no padding) with a leading ``V1``::

    byte 0      version (1)
    byte 1      n = length of the device id, then n ASCII bytes of the device id
    byte        m = length of the transaction-id suffix, then m ASCII bytes: the transaction id is
                device id + "-" + suffix when it starts that way (the kiosk's ids do), else the
                whole id with the flag bit 0x80 set in m
    3 bytes     amount in yen, big-endian (up to 16,777,215)
    4 bytes     issued at, seconds since the Unix epoch (UTC), big-endian
    2 bytes     valid days, big-endian (expires at issued + days, end of that day in Japan)
    64 bytes    Ed25519 signature over b"MADOGUCHI-VOUCHER-V1\\n" + the bytes above

The text form ends with one check character (Crockford's mod-37 check symbol, 0–9 A–Z without I L O U,
or * ~ $ = U), so a mistyped or swapped character is caught before any signature check. Crockford's decoding rules apply to typed
text: case is ignored, O reads as 0, I and L read as 1, hyphens and spaces are ignored.

The domain tag keeps a journal-batch or request signature from ever passing as a voucher.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.ports import PrintedVoucher

VOUCHER_NAME_JA = "返金引換券"
CODE_PREFIX = "V1"
SIGNATURE_TAG = b"MADOGUCHI-VOUCHER-V1\n"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
CHECK_SYMBOLS = ALPHABET + "*~$=U"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_VALUE.update({"O": 0, "I": 1, "L": 1})
_FULL_ID_FLAG = 0x80
_JST = ZoneInfo("Asia/Tokyo")
MAX_AMOUNT_YEN = 0xFFFFFF
MAX_VALID_DAYS = 0xFFFF
_SHORTEST = 1 + 2 + 1 + 3 + 4 + 2 + 64  # one-character device id, empty transaction suffix


class VoucherStatus(enum.Enum):
    GENUINE = "genuine"
    FORGED = "forged"      # decodes, but the signature does not verify with the device's key (or no such device)
    EXPIRED = "expired"    # genuine, past its expiry
    MALFORMED = "malformed"  # not a voucher code (typo, truncated, wrong check character, other QR)


@dataclass(frozen=True)
class Voucher:
    device_id: str
    txn_id: str
    amount_yen: int
    issued_at: datetime  # UTC
    valid_days: int

    @property
    def expires_at(self) -> datetime:
        """The end of the last valid day in Japan (23:59:59 JST), in UTC."""
        last_day = (self.issued_at.astimezone(_JST) + timedelta(days=self.valid_days)).date()
        return datetime.combine(last_day, time(23, 59, 59), _JST).astimezone(timezone.utc)


@dataclass(frozen=True)
class IssuedVoucher:
    voucher: Voucher
    code: str  # for the QR
    text: str  # for people: groups of four, then the check character

    @property
    def expires_at(self) -> datetime:
        return self.voucher.expires_at


@dataclass(frozen=True)
class VoucherCheck:
    status: VoucherStatus
    voucher: Voucher | None
    detail: str


class VoucherCodeError(ValueError):
    """Raised by decode() for text that is not a voucher code; the message says what is wrong."""


# --- base32 and the check character --------------------------------------------------------------------


def _b32encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    nbits = len(data) * 8
    chars = (nbits + 4) // 5
    bits <<= chars * 5 - nbits
    return "".join(ALPHABET[(bits >> (5 * (chars - 1 - i))) & 31] for i in range(chars))


def _b32decode(text: str) -> bytes:
    nbits = len(text) * 5
    nbytes = nbits // 8
    value = 0
    for ch in text:
        value = (value << 5) | _VALUE[ch]
    return (value >> (nbits - nbytes * 8)).to_bytes(nbytes, "big")


def check_character(code: str) -> str:
    """Crockford's check symbol: the code's value mod 37 (37 is prime, so every single wrong character
    and every swap of two neighbouring ones changes it); symbols 32–36 are * ~ $ = U."""
    remainder = 0
    for ch in code:
        remainder = (remainder * 32 + _VALUE[ch]) % 37
    return CHECK_SYMBOLS[remainder]


def group(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def normalise(text: str) -> str:
    """Upper-case, without hyphens or spaces; raises VoucherCodeError on a character no code has."""
    cleaned = "".join(text.split()).replace("-", "").upper()
    bad = sorted({ch for ch in cleaned if ch not in _VALUE})
    if bad:
        raise VoucherCodeError(f"a voucher code has only letters and digits; found {' '.join(bad)}")
    return "".join(ALPHABET[_VALUE[ch]] for ch in cleaned)


# --- encoding -------------------------------------------------------------------------------------------


def _payload(voucher: Voucher) -> bytes:
    device = voucher.device_id.encode("ascii")
    prefix = voucher.device_id + "-"
    if voucher.txn_id.startswith(prefix):
        txn, flag = voucher.txn_id[len(prefix):].encode("ascii"), 0
    else:
        txn, flag = voucher.txn_id.encode("ascii"), _FULL_ID_FLAG
    if not 0 < len(device) < 256 or len(txn) >= _FULL_ID_FLAG:
        raise ValueError("device id and transaction id must be 1–255 and 0–127 ASCII characters")
    issued = int(voucher.issued_at.timestamp())
    return (bytes([1, len(device)]) + device + bytes([len(txn) | flag]) + txn
            + voucher.amount_yen.to_bytes(3, "big") + struct.pack(">IH", issued, voucher.valid_days))


def issue(key: Ed25519PrivateKey, device_id: str, txn_id: str, amount_yen: int, issued_at: datetime,
          valid_days: int) -> IssuedVoucher:
    """The kiosk side: sign a voucher for ``amount_yen`` owed to the resident of ``txn_id``."""
    if not 0 < amount_yen <= MAX_AMOUNT_YEN:
        raise ValueError(f"a voucher is for 1 to {MAX_AMOUNT_YEN:,} yen, not {amount_yen}")
    if not 0 < valid_days <= MAX_VALID_DAYS:
        raise ValueError(f"a voucher is valid for 1 to {MAX_VALID_DAYS} days, not {valid_days}")
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    voucher = Voucher(device_id, txn_id, amount_yen,
                      datetime.fromtimestamp(int(issued_at.timestamp()), timezone.utc), valid_days)
    payload = _payload(voucher)
    code = CODE_PREFIX + _b32encode(payload + key.sign(SIGNATURE_TAG + payload))
    return IssuedVoucher(voucher, code, group(code) + "-" + check_character(code))


def decode(text: str) -> tuple[Voucher, bytes, bytes]:
    """(voucher, signed bytes, signature) from a QR code or typed text; VoucherCodeError otherwise.
    Typed text (it has hyphens or spaces) must end with its check character; the QR form has none."""
    typed = any(ch in text for ch in "- ")
    cleaned = "".join(text.split()).replace("-", "").upper()
    if not cleaned:
        raise VoucherCodeError("the code is empty: scan the QR or type the characters under it")
    if typed:
        code = normalise(cleaned[:-1])
        if not code or check_character(code) != cleaned[-1]:
            raise VoucherCodeError("the check character does not match: a character is mistyped or two are swapped")
    else:
        code = normalise(cleaned)
    if not code.startswith(CODE_PREFIX):
        raise VoucherCodeError(f"a {VOUCHER_NAME_JA} code starts with {CODE_PREFIX}")
    body = code[len(CODE_PREFIX):]
    raw = _b32decode(body)
    if len(raw) < _SHORTEST:
        raise VoucherCodeError("the code is too short: part of it is missing")
    if _b32encode(raw) != body:
        raise VoucherCodeError("the code's last character is not possible: check the last few characters")
    try:
        if raw[0] != 1:
            raise VoucherCodeError(f"voucher code version {raw[0]} is not known here")
        n = raw[1]
        device = raw[2:2 + n].decode("ascii")
        pos = 2 + n
        m = raw[pos]
        txn_len = m & ~_FULL_ID_FLAG
        txn_part = raw[pos + 1:pos + 1 + txn_len].decode("ascii")
        pos += 1 + txn_len
        amount = int.from_bytes(raw[pos:pos + 3], "big")
        issued, days = struct.unpack(">IH", raw[pos + 3:pos + 9])
        pos += 9
    except (IndexError, struct.error, UnicodeDecodeError):
        raise VoucherCodeError("the code is too short: part of it is missing") from None
    signature = raw[pos:]
    if len(signature) != 64:
        raise VoucherCodeError("the code's length is wrong: characters are missing or added")
    txn_id = txn_part if m & _FULL_ID_FLAG else f"{device}-{txn_part}"
    return Voucher(device, txn_id, amount, datetime.fromtimestamp(issued, timezone.utc), days), raw[:pos], signature


def verify(code: str, public_key_lookup: Callable[[str], Ed25519PublicKey | None], now: datetime) -> VoucherCheck:
    """The counter side: is this 返金引換券 genuine, forged, expired or not a voucher at all?"""
    try:
        voucher, signed, signature = decode(code)
    except VoucherCodeError as exc:
        return VoucherCheck(VoucherStatus.MALFORMED, None, f"not a {VOUCHER_NAME_JA} code: {exc}")
    key = public_key_lookup(voucher.device_id)
    if key is None:
        return VoucherCheck(VoucherStatus.FORGED, voucher,
                            f"kiosk {voucher.device_id} is not enrolled at city hall: the voucher cannot be genuine")
    try:
        key.verify(signature, SIGNATURE_TAG + signed)
    except InvalidSignature:
        return VoucherCheck(VoucherStatus.FORGED, voucher,
                            f"the signature does not match kiosk {voucher.device_id}'s key: the code was altered or forged")
    if now > voucher.expires_at:
        return VoucherCheck(VoucherStatus.EXPIRED, voucher,
                            f"genuine, but it expired on {voucher.expires_at.astimezone(_JST):%Y-%m-%d}")
    return VoucherCheck(VoucherStatus.GENUINE, voucher,
                        f"genuine: {voucher.amount_yen:,} yen for transaction {voucher.txn_id}")


class KioskVoucherIssuer:
    """kiosk.ports.VoucherIssuer: signs with the kiosk's device key (the one city hall enrolled)."""

    def __init__(self, key: Ed25519PrivateKey, device_id: str, valid_days: int) -> None:
        self.key = key
        self.device_id = device_id
        self.valid_days = valid_days

    def issue(self, txn_id: str, amount_yen: int, issued_at: datetime) -> PrintedVoucher:
        issued = issue(self.key, self.device_id, txn_id, amount_yen, issued_at, self.valid_days)
        return PrintedVoucher(code=issued.code, text=issued.text, expires_at=issued.expires_at)
