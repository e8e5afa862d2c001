"""The virtual My Number card's logic: one APDU in, one response out (no I/O).

Behaves as the emulator checklist of shared/docs/jpki-card.md §8 (rows referenced as "§8 #n"): the
JPKI application with the user-authentication certificate, its CA, key and PIN (3 tries, then locked),
the signature certificate/CA/key/password (5 tries; the certificate refuses READ BINARY before the
password), the card-face text application (so the kiosk's guard can be tested) and the visual one, and
ISO status words for everything else. The transport (vpcd) lives in drivers/sim/jpki_card/vpcd.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

CardKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

JPKI_AID = bytes.fromhex("D392F000260100000001")
TEXT_AID = bytes.fromhex("D3921000310001010408")  # 券面事項入力補助AP: the kiosk must never select it
VISUAL_AID = bytes.fromhex("D3921000310001010402")  # 券面事項確認AP
LEGACY_ATR = bytes.fromhex("3BE000FF8131FE4514")  # §1.1 legacy contact ATR, in OpenSC's table
TOKEN = b"JPKIAPICCTOKEN2".ljust(32, b" ")  # §8 #8, padded with spaces

AUTH_MAX_TRIES = 3
SIGN_MAX_TRIES = 5
TEXT_MAX_TRIES = 3
MAX_SIGN_INPUT = 245  # PKCS#1 v1.5 limit for a 2048-bit key (§8 #28)

MAX_AID_LENGTH = 16  # ISO 7816-4: a DF name (AID) is 1 to 16 bytes
SELECT_P2_ACCEPTED = (0x00, 0x0C)  # FCI wanted / no response data: what JPKI clients send (§2.2)

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_BAD_DATA = b"\x6A\x80"
SW_SECURITY = b"\x69\x82"
SW_NOT_ALLOWED_NO_EF = b"\x69\x86"
SW_INCOMPATIBLE_FILE = b"\x69\x81"
SW_NOT_FOUND = b"\x6A\x82"
SW_BAD_P1P2 = b"\x6A\x86"
SW_BAD_OFFSET = b"\x6B\x00"
SW_BAD_INS = b"\x6D\x00"
SW_BAD_CLA = b"\x6E\x00"


def _digits(length: int):  # noqa: ANN202 - a small predicate factory
    return lambda data: len(data) == length and all(0x30 <= b <= 0x39 for b in data)


def _sign_password(data: bytes) -> bool:
    """6-16 characters, A-Z and 0-9 only, at least one of each (jpki-card.md §2.4)."""
    return (6 <= len(data) <= 16 and all(0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A for b in data)
            and any(0x30 <= b <= 0x39 for b in data) and any(0x41 <= b <= 0x5A for b in data))


PIN_FORMATS = {"auth": _digits(4), "text": _digits(4), "sign": _sign_password}


def parse_sw(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(" ", ""))
    if len(raw) != 2:
        raise ValueError(f"a status word is 2 bytes, got {text!r}")
    return raw


@dataclass
class Pin:
    secret: bytes
    max_tries: int
    tries: int = -1

    def __post_init__(self) -> None:
        if self.tries < 0:
            self.tries = self.max_tries


@dataclass
class CardFiles:
    """What one card holds: certificates (DER), keys, PINs. Built from the test PKI by the simulator."""

    auth_cert: bytes
    auth_ca_cert: bytes
    auth_key: CardKey  # RSA-2048 on today's card, ECDSA P-384 on the next-generation one
    sign_cert: bytes
    sign_ca_cert: bytes
    sign_key: rsa.RSAPrivateKey
    individual_number: str = "000000000000"  # a 12-digit dummy: this is a test card


@dataclass
class CardOptions:
    blocked_sw: bytes = b"\x69\x84"  # answer to VERIFY with data once the PIN is locked (§8 #22)
    locked_status_sw: bytes = b"\x63\xC0"  # answer to the empty VERIFY once locked
    not_jpki: bool = False  # behave as some other card: every application select fails
    ecdsa_der: bool = False  # an ECDSA card answers r||s (the assumption) or, with this, a DER SEQUENCE


@dataclass
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # None = no Le; 256 / 65536 for 00 / 00 00


class LengthError(ValueError):
    pass


def parse_command(apdu: bytes) -> Command:
    """ISO 7816-4 cases 1-4, short and extended; raises LengthError on a malformed length."""
    if len(apdu) < 4:
        raise LengthError("shorter than a header")
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return Command(cla, ins, p1, p2, b"", body[0] or 256)
    if body[0] == 0 and len(body) >= 3:  # extended
        if len(body) == 3:
            return Command(cla, ins, p1, p2, b"", int.from_bytes(body[1:3], "big") or 65536)
        lc = int.from_bytes(body[1:3], "big")
        rest = body[3:]
        if lc == 0 or len(rest) not in (lc, lc + 2):
            raise LengthError("extended Lc does not match the data")
        le = (int.from_bytes(rest[lc:], "big") or 65536) if len(rest) == lc + 2 else None
        return Command(cla, ins, p1, p2, rest[:lc], le)
    lc = body[0]
    rest = body[1:]
    if lc == 0 or len(rest) not in (lc, lc + 1):
        raise LengthError("short Lc does not match the data")
    le = (rest[lc] or 256) if len(rest) == lc + 1 else None
    return Command(cla, ins, p1, p2, rest[:lc], le)


def pkcs1_type1_sign(key: rsa.RSAPrivateKey, digest_info: bytes) -> bytes:
    """What the card does: PKCS#1 v1.5 type-01 padding of the DigestInfo, then the raw RSA operation."""
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    k = (n.bit_length() + 7) // 8
    padded = b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info)) + b"\x00" + digest_info
    return pow(int.from_bytes(padded, "big"), d, n).to_bytes(k, "big")


@dataclass
class _Application:
    readable: dict[int, bytes]  # EF -> content, free to read
    protected: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # EF -> (content, PIN name)
    pins: dict[int, str] = field(default_factory=dict)  # PIN EF -> PIN name
    keys: dict[int, tuple[CardKey, str]] = field(default_factory=dict)  # key EF -> (key, PIN name)

    def has(self, fid: int) -> bool:
        return fid in self.readable or fid in self.protected or fid in self.pins or fid in self.keys


class VirtualJpkiCard:
    def __init__(self, files: CardFiles, *, pin: str = "1234", sign_password: str = "TEST1234",
                 text_pin: str = "1234", options: CardOptions | None = None) -> None:
        self.options = options or CardOptions()
        self.algorithm = "p384" if isinstance(files.auth_key, ec.EllipticCurvePrivateKey) else "rsa2048"
        self.pins = {
            "auth": Pin(pin.encode("ascii"), AUTH_MAX_TRIES),
            "sign": Pin(sign_password.encode("ascii"), SIGN_MAX_TRIES),
            "text": Pin(text_pin.encode("ascii"), TEXT_MAX_TRIES),
        }
        number = b"\xD0\x0C" + files.individual_number.encode("ascii") + b"\xFF\xFF\xFF"
        self.apps = {
            JPKI_AID: _Application(
                readable={0x0006: TOKEN, 0x000A: files.auth_cert, 0x000B: files.auth_ca_cert,
                          0x0002: files.sign_ca_cert},
                protected={0x0001: (files.sign_cert, "sign")},
                pins={0x0018: "auth", 0x001B: "sign"},
                keys={0x0017: (files.auth_key, "auth"), 0x001A: (files.sign_key, "sign")},
            ),
            TEXT_AID: _Application(readable={}, protected={0x0001: (number, "text")}, pins={0x0011: "text"}),
            VISUAL_AID: _Application(readable={}),
        }
        self.reset()

    # --- state -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Power off / reset / DF re-select: forget the current DF/EF and every verified PIN (§7)."""
        self.df: bytes | None = None
        self.ef: int | None = None
        self.verified: set[str] = set()

    def set_tries(self, name: str, tries: int) -> None:
        pin = self.pins[name]
        pin.tries = max(0, min(pin.max_tries, tries))

    # --- dispatch --------------------------------------------------------------------------------
    def process(self, apdu: bytes) -> bytes:
        try:
            cmd = parse_command(apdu)
        except LengthError:
            return SW_WRONG_LENGTH  # §8 #32
        if cmd.cla not in (0x00, 0x80):
            return SW_BAD_CLA  # §8 #31
        handler = {
            (0x00, 0xA4): self._select,
            (0x00, 0xB0): self._read_binary,
            (0x00, 0x20): self._verify,
            (0x00, 0x24): self._change_reference_data,
            (0x80, 0x2A): self._sign,
        }.get((cmd.cla, cmd.ins))
        if handler is None:
            return SW_BAD_INS  # §8 #30 (setcos GET DATA probe and anything else)
        return handler(cmd)

    def _app(self) -> _Application | None:
        return self.apps.get(self.df) if self.df is not None else None

    def _select(self, cmd: Command) -> bytes:
        if cmd.p1 not in (0x02, 0x04) or cmd.p2 not in SELECT_P2_ACCEPTED:
            return SW_BAD_P1P2  # §8 #11 (P1=09 does not work on the real card); P2 other than 00/0C
        if cmd.p1 == 0x04:  # by DF name (§8 #2-#6)
            if not cmd.data or len(cmd.data) > MAX_AID_LENGTH:
                return SW_WRONG_LENGTH
            if self.options.not_jpki or cmd.data not in self.apps:
                return SW_NOT_FOUND
            self.reset()
            self.df = cmd.data
            return SW_OK
        # P1=02: EF under the current DF (§8 #7, #9, #10)
        if len(cmd.data) != 2:
            return SW_WRONG_LENGTH
        app = self._app()
        fid = int.from_bytes(cmd.data, "big")
        if app is None or not app.has(fid):
            return SW_NOT_FOUND
        self.ef = fid
        return SW_OK

    def _read_binary(self, cmd: Command) -> bytes:
        if cmd.data or cmd.le is None:
            return SW_WRONG_LENGTH
        app = self._app()
        if cmd.p1 & 0x80:  # short EF identifier (§8 #16): P1 = 100x xxxx, SFI 1..30
            if cmd.p1 & 0x60 or not 1 <= cmd.p1 & 0x1F <= 30:
                return SW_BAD_P1P2
            fid, offset = cmd.p1 & 0x1F, cmd.p2
            if app is None or not app.has(fid):
                return SW_NOT_FOUND
            self.ef = fid
        else:
            offset = ((cmd.p1 << 8) | cmd.p2) & 0x7FFF
        if app is None or self.ef is None:
            return SW_NOT_ALLOWED_NO_EF
        if self.ef in app.readable:
            content = app.readable[self.ef]
        elif self.ef in app.protected:
            content, pin_name = app.protected[self.ef]
            if pin_name not in self.verified:
                return SW_SECURITY  # §8 #13: sign certificate before the password
        else:
            return SW_INCOMPATIBLE_FILE  # a PIN or key EF is current
        if offset >= len(content):
            return SW_BAD_OFFSET  # §8 #15
        return content[offset:offset + cmd.le] + SW_OK  # §8 #14: short return with 9000

    def _current_pin(self, p2: int) -> str | bytes:
        """The name of the PIN in the current EF (P2=80: "this EF's reference data"), or an error SW."""
        if p2 != 0x80:
            return SW_BAD_P1P2
        app = self._app()
        if app is None or self.ef is None or self.ef not in app.pins:
            return SW_NOT_ALLOWED_NO_EF  # §8 #23
        return app.pins[self.ef]

    def _verify(self, cmd: Command) -> bytes:
        if cmd.le is not None:
            return SW_WRONG_LENGTH  # VERIFY is case 1 or 3: no response data, so no Le
        name = self._current_pin(cmd.p2) if cmd.p1 == 0x00 else SW_BAD_P1P2
        if isinstance(name, bytes):
            return name
        pin = self.pins[name]
        if not cmd.data:  # status query (§8 #17, #18): never 9000, even after a success
            if pin.tries == 0:
                return self.options.locked_status_sw
            return bytes((0x63, 0xC0 | pin.tries))
        if pin.tries == 0:
            return self.options.blocked_sw  # §8 #22
        if cmd.data == pin.secret:  # §8 #19, #21
            pin.tries = pin.max_tries
            self.verified.add(name)
            return SW_OK
        pin.tries -= 1  # §8 #20
        self.verified.discard(name)
        return bytes((0x63, 0xC0 | pin.tries))

    def _change_reference_data(self, cmd: Command) -> bytes:
        name = self._current_pin(cmd.p2) if cmd.p1 == 0x01 else SW_BAD_P1P2
        if isinstance(name, bytes):
            return name
        if cmd.le is not None or not cmd.data:
            return SW_WRONG_LENGTH
        if name not in self.verified:
            return SW_SECURITY
        if not PIN_FORMATS[name](cmd.data):
            return SW_BAD_DATA  # a new PIN the card could never be unlocked with again
        self.pins[name].secret = cmd.data  # §8 #29
        return SW_OK

    def _sign(self, cmd: Command) -> bytes:
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return SW_BAD_P1P2
        if not cmd.data or len(cmd.data) > MAX_SIGN_INPUT:
            return SW_WRONG_LENGTH  # §8 #28
        if cmd.le is None:
            return SW_WRONG_LENGTH  # case 4: a signature comes back, so Le must be there
        app = self._app()
        if app is None or self.ef is None or self.ef not in app.keys:
            return SW_NOT_ALLOWED_NO_EF  # §8 #27
        key, pin_name = app.keys[self.ef]
        if pin_name not in self.verified:
            return SW_SECURITY  # §8 #26
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return self._sign_ecdsa(key, cmd)
        if cmd.le < key.key_size // 8:
            return SW_WRONG_LENGTH  # Le too small for the signature
        return pkcs1_type1_sign(key, cmd.data) + SW_OK  # §8 #24, #25

    def _sign_ecdsa(self, key: ec.EllipticCurvePrivateKey, cmd: Command) -> bytes:
        """ASSUMPTION (docs/next-generation-card.md): the same APDU with the bare SHA-384 hash as data."""
        size = (key.curve.key_size + 7) // 8
        if len(cmd.data) != size:
            return SW_WRONG_LENGTH  # only a hash of the curve's size is signed
        if cmd.le < 2 * size + (8 if self.options.ecdsa_der else 0):
            return SW_WRONG_LENGTH
        digest = hashes.SHA384() if size == 48 else hashes.SHA256()
        der = key.sign(cmd.data, ec.ECDSA(Prehashed(digest)))
        if self.options.ecdsa_der:
            return der + SW_OK
        r, s = decode_dss_signature(der)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big") + SW_OK
