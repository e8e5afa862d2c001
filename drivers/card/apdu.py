"""JPKI APDU codec: builds the few commands the kiosk sends and turns status words into typed errors.

Pure (no I/O): every function maps bytes to bytes or bytes to a value/exception, so it is tested on byte
transcripts (tests/unit/card/test_apdu_codec.py). The byte facts come from shared/docs/jpki-card.md §2.

Only the JPKI application and its user-authentication files are ever addressed here; the kiosk has no
builder for any other application or for the signature certificate/password files, on purpose.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from kiosk.errors import (
    CardCommandFailed,
    InvalidPinFormat,
    MalformedCardResponse,
    NotMyNumberCard,
    PinLocked,
    WrongPin,
)

JPKI_AID = bytes.fromhex("D392F000260100000001")
EF_AUTH_CERT = 0x000A  # user-authentication certificate, readable without PIN
EF_AUTH_KEY = 0x0017  # user-authentication private key (used by COMPUTE SIGNATURE)
EF_AUTH_PIN = 0x0018  # user-authentication PIN, 4 ASCII digits, 3 tries
AUTH_PIN_MAX_TRIES = 3  # a success resets the counter to this

SHORT_READ_MAX = 256  # Le 00 in a short APDU
CERT_HEADER_LENGTH = 4  # 30 82 HH LL
SIGNATURE_LENGTH = 256  # RSA-2048
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300D060960864801650304020105000420")

SW_OK = 0x9000
SW_NOT_FOUND = 0x6A82
SW_AUTH_BLOCKED = 0x6983
SW_DATA_NOT_USABLE = 0x6984
SW_SECURITY_NOT_SATISFIED = 0x6982
EXTENDED_REFUSED = (0x6700, 0x6A86, 0x6D00, 0x6E00)  # how a card without extended length answers one
LOCKED_STATUS_WORDS = (0x63C0, SW_AUTH_BLOCKED, SW_DATA_NOT_USABLE)

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_VERIFY = 0x20
INS_COMPUTE_SIGNATURE = 0x2A


@dataclass(frozen=True)
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None  # expected length; 256 is short Le 00; more is an extended Le (case 2 only)

    def to_bytes(self) -> bytes:
        out = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            if len(self.data) > 255:
                raise ValueError("the kiosk sends command data in short APDUs only")
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            if self.le > 256 and not self.data and self.le <= 65536:
                return out + b"\x00" + (self.le % 65536).to_bytes(2, "big")  # ISO 7816-4 extended Le, case 2E
            if not 1 <= self.le <= 256:
                raise ValueError(f"short Le must be 1..256, got {self.le}")
            out += bytes((self.le % 256,))
        return out

    def describe(self) -> str:
        """Hex for logs, with VERIFY data masked: a PIN never reaches a log line."""
        header = bytes((self.cla, self.ins, self.p1, self.p2)).hex(" ").upper()
        if self.ins == INS_VERIFY and self.data:
            return f"{header} {len(self.data):02X} " + " ".join(["**"] * len(self.data))
        rest = self.to_bytes()[4:].hex(" ").upper()
        return f"{header} {rest}".strip()


@dataclass(frozen=True)
class Response:
    data: bytes
    sw: int

    @property
    def sw_hex(self) -> str:
        return f"{self.sw:04X}"


# --- builders ----------------------------------------------------------------------------------------

def select_jpki_ap() -> Command:
    return Command(0x00, INS_SELECT, 0x04, 0x0C, JPKI_AID)


def select_ef(fid: int) -> Command:
    if fid not in (EF_AUTH_CERT, EF_AUTH_KEY, EF_AUTH_PIN):
        # The kiosk selects only its three user-authentication files (privacy rule, DESIGN.md).
        raise ValueError(f"EF {fid:04X} is not a user-authentication file")
    return Command(0x00, INS_SELECT, 0x02, 0x0C, fid.to_bytes(2, "big"))


def read_binary(offset: int, length: int) -> Command:
    if not 0 <= offset <= 0x7FFF:
        raise ValueError(f"READ BINARY offset {offset} does not fit 15 bits")
    return Command(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)


def pin_status() -> Command:
    """Empty VERIFY: asks for the remaining tries without spending one (answer 63 Cx)."""
    return Command(0x00, INS_VERIFY, 0x00, 0x80)


def validate_pin(pin: object) -> bytes:
    """The PIN as the card wants it (4 ASCII digits), or InvalidPinFormat; never echoes the PIN."""
    if not isinstance(pin, str) or len(pin) != 4 or not all("0" <= ch <= "9" for ch in pin):
        raise InvalidPinFormat("the PIN must be exactly 4 digits 0-9; nothing was sent to the card")
    return pin.encode("ascii")


def verify_pin(pin: str) -> Command:
    return Command(0x00, INS_VERIFY, 0x00, 0x80, validate_pin(pin))


def sha256_digest_info(data: bytes) -> bytes:
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(data).digest()


def compute_signature(digest_info: bytes) -> Command:
    return Command(0x80, INS_COMPUTE_SIGNATURE, 0x00, 0x80, digest_info, le=256)


# --- decoding ----------------------------------------------------------------------------------------

def parse_response(raw: bytes | list[int]) -> Response:
    raw = bytes(raw)
    if len(raw) < 2:
        raise MalformedCardResponse(f"card answered {len(raw)} byte(s), a response needs at least a status word")
    return Response(raw[:-2], int.from_bytes(raw[-2:], "big"))


def expect_ok(resp: Response, what: str) -> bytes:
    if resp.sw != SW_OK:
        raise CardCommandFailed(f"{what}: card answered SW {resp.sw_hex}", sw=resp.sw_hex)
    return resp.data


def check_select_ap(resp: Response) -> None:
    if resp.sw == SW_OK:
        return
    if resp.sw == SW_NOT_FOUND or resp.sw >> 8 in (0x6A, 0x6D, 0x6E):
        raise NotMyNumberCard(f"no JPKI application on this card (SELECT answered SW {resp.sw_hex})",
                              sw=resp.sw_hex)
    raise CardCommandFailed(f"SELECT JPKI application: card answered SW {resp.sw_hex}", sw=resp.sw_hex)


def decode_tries(resp: Response) -> int:
    """Remaining tries from an empty VERIFY (63 Cx); a locked PIN may also answer 69 83 / 69 84."""
    if resp.sw & 0xFFF0 == 0x63C0:
        return resp.sw & 0x0F
    if resp.sw in (SW_AUTH_BLOCKED, SW_DATA_NOT_USABLE):
        return 0
    raise CardCommandFailed(f"PIN status: card answered SW {resp.sw_hex} instead of 63 Cx", sw=resp.sw_hex)


def decode_verify(resp: Response) -> None:
    """None on success; WrongPin(tries_left) or PinLocked otherwise."""
    if resp.sw == SW_OK:
        return
    if resp.sw in LOCKED_STATUS_WORDS:
        raise PinLocked(f"the PIN is locked (card answered SW {resp.sw_hex}); "
                        "the resident must have it reset at the city hall counter", sw=resp.sw_hex)
    if resp.sw & 0xFFF0 == 0x63C0:
        raise WrongPin(resp.sw & 0x0F)
    raise CardCommandFailed(f"VERIFY: card answered SW {resp.sw_hex}", sw=resp.sw_hex)


def certificate_length(header: bytes) -> int:
    """Total DER length from the first 4 bytes (30 82 HH LL), as every JPKI client reads it."""
    if len(header) != CERT_HEADER_LENGTH or header[0] != 0x30 or header[1] != 0x82:
        raise MalformedCardResponse(f"certificate header {header.hex(' ').upper() or '(empty)'} is not "
                                    "a DER SEQUENCE with a 2-byte length (30 82 HH LL)")
    total = CERT_HEADER_LENGTH + int.from_bytes(header[2:4], "big")
    if total < 256 or total > 0x7FFF:
        raise MalformedCardResponse(f"certificate length {total} is not plausible for a JPKI certificate")
    return total


def read_plan(total: int, start: int = CERT_HEADER_LENGTH, chunk: int = SHORT_READ_MAX) -> list[tuple[int, int]]:
    """(offset, length) of the READ BINARYs that fetch bytes [start, total), ``chunk`` bytes at most each
    (256 = short APDUs; more only where reader and card take extended length, drivers/card/readers.py)."""
    if chunk < 1:
        raise ValueError(f"READ BINARY chunk must be at least 1 byte, got {chunk}")
    plan = []
    offset = start
    while offset < total:
        length = min(chunk, total - offset)
        plan.append((offset, length))
        offset += length
    return plan


def check_chunk(resp: Response, offset: int, length: int) -> bytes:
    data = expect_ok(resp, f"READ BINARY at offset {offset}")
    if len(data) != length:
        raise MalformedCardResponse(f"READ BINARY at offset {offset} returned {len(data)} bytes, asked for {length}")
    return data


@dataclass(frozen=True)
class CardAlgorithm:
    """How this card signs, read from its own certificate's key (never from a setting).

    RSA-2048: the card pads a SHA-256 DigestInfo (PKCS#1 v1.5) and answers 256 bytes (jpki-card.md §2.5).
    ECDSA P-384 (next-generation card): ASSUMED the same APDU with the bare SHA-384 hash as data, the
    answer r||s (96 bytes) or a DER SEQUENCE (docs/next-generation-card.md); either way the kiosk hands
    city hall DER.
    """

    name: str
    signature_length: int  # RSA: exact; ECDSA: the raw r||s length

    @property
    def is_ecdsa(self) -> bool:
        return self.name.startswith("ECDSA")

    def sign_input(self, data: bytes) -> bytes:
        if self.is_ecdsa:
            return hashlib.sha384(data).digest()
        return sha256_digest_info(data)


RSA_2048 = CardAlgorithm("RSA-2048/SHA-256", SIGNATURE_LENGTH)
ECDSA_P384 = CardAlgorithm("ECDSA P-384/SHA-384", 96)


def algorithm_of(certificate_der: bytes) -> CardAlgorithm:
    try:
        key = x509.load_der_x509_certificate(certificate_der).public_key()
    except ValueError:
        raise MalformedCardResponse("the user-authentication certificate is not DER X.509") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
        return RSA_2048
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return ECDSA_P384
    raise CardCommandFailed(f"the card's key ({type(key).__name__}, {getattr(key, 'key_size', '?')} bits) is "
                            "neither RSA-2048 nor ECDSA P-384; this kiosk cannot use it")


def ecdsa_signature_to_der(data: bytes, size: int) -> bytes:
    """A card's ECDSA signature as DER: raw r||s (2 × size bytes) or already a DER SEQUENCE."""
    if len(data) == 2 * size:
        r, s = int.from_bytes(data[:size], "big"), int.from_bytes(data[size:], "big")
        if r and s:
            return encode_dss_signature(r, s)
    try:
        r, s = decode_dss_signature(data)
    except ValueError:
        raise MalformedCardResponse(f"ECDSA signature of {len(data)} bytes is neither r||s ({2 * size} bytes) "
                                    "nor a DER SEQUENCE") from None
    if encode_dss_signature(r, s) != data or not (0 < r < 1 << (8 * size) and 0 < s < 1 << (8 * size)):
        raise MalformedCardResponse("ECDSA signature is not a canonical DER SEQUENCE of two integers")
    return data


def check_signature(resp: Response, algorithm: CardAlgorithm = RSA_2048) -> bytes:
    """The signature as city hall takes it: RSA bytes as they are, ECDSA as DER."""
    if resp.sw == SW_SECURITY_NOT_SATISFIED:
        raise CardCommandFailed("the card refused to sign: the PIN has not been verified in this session",
                                sw=resp.sw_hex)
    data = expect_ok(resp, "COMPUTE DIGITAL SIGNATURE")
    if algorithm.is_ecdsa:
        return ecdsa_signature_to_der(data, algorithm.signature_length // 2)
    if len(data) != algorithm.signature_length:
        raise MalformedCardResponse(f"signature is {len(data)} bytes, an RSA-2048 signature is {SIGNATURE_LENGTH}")
    return data
