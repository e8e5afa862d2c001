"""A JPKI user-authentication session over any APDU transport (kiosk.ports.CardSession).

The sequencing lives here, apart from PC/SC, so it runs unchanged over pyscard (drivers/card/pcsc.py)
and over an in-process transport in unit tests. APDU budget of a whole authentication, for a
certificate of N bytes: SELECT AP, SELECT 000A, READ header, ceil((N-4)/256) READs, SELECT 0018, empty
VERIFY, VERIFY, SELECT 0017, SIGN — 15 for a real 1.6 KB one (shared/docs/jpki-card.md §6), which the
virtual card's certificates now match. The current EF and the tries count are remembered so nothing
is sent twice.

Rules kept here: the PIN is checked (4 ASCII digits) before anything is sent; with one try left the
caller must pass confirm_last_try=True; a VERIFY goes out at most once per call and is never retried;
the PIN is neither logged nor kept (only the Command object of the one VERIFY holds it, briefly).
"""
from __future__ import annotations

import logging
from typing import Protocol

from drivers.card import apdu
from kiosk.errors import (
    CardCommandFailed,
    CardError,
    CardRemoved,
    CardUnresponsive,
    LastTryNotConfirmed,
    MalformedCardResponse,
    PinLocked,
    ReaderMissing,
)

log = logging.getLogger("drivers.card")


class ApduTransport(Protocol):
    def transmit(self, command: bytes, timeout: float) -> bytes:
        """Send one APDU, return the raw response (data + SW). Raises CardRemoved, CardUnresponsive,
        ReaderMissing. Never retries."""

    def card_gone(self) -> bool:
        """True when the card has left the reader (asked after a response that makes no sense)."""

    def close(self) -> None: ...


class JpkiSession:
    def __init__(self, transport: ApduTransport, *, apdu_timeout: float = 5.0, sign_timeout: float = 15.0,
                 read_chunk: int = apdu.SHORT_READ_MAX) -> None:
        self._transport = transport
        self._read_chunk = read_chunk  # the reader profile's limit (drivers/card/readers.py)
        self._apdu_timeout = apdu_timeout
        self._sign_timeout = sign_timeout
        self._current_ef: int | None = None
        self._tries: int | None = None
        self._verified = False
        self._certificate: bytes | None = None
        self._broken: CardError | None = None
        self._closed = False
        self.apdu_count = 0

    # --- transport -----------------------------------------------------------------------------------
    def _exchange(self, command: apdu.Command, timeout: float | None = None) -> apdu.Response:
        if self._closed:
            raise CardRemoved("the card session is closed")
        if self._broken is not None:
            raise type(self._broken)(f"the card session is no longer usable after: {self._broken.detail}")
        self.apdu_count += 1
        try:
            raw = self._transport.transmit(command.to_bytes(), timeout or self._apdu_timeout)
            response = apdu.parse_response(raw)
        except MalformedCardResponse as exc:
            self._broken = CardRemoved("the card was taken off the reader during a command") \
                if self._transport.card_gone() else exc
            raise self._broken from None
        except (CardRemoved, CardUnresponsive, ReaderMissing) as exc:
            self._broken = exc
            raise
        log.debug("card APDU %s -> SW %s", command.describe(), response.sw_hex)
        return response

    def open(self) -> "JpkiSession":
        apdu.check_select_ap(self._exchange(apdu.select_jpki_ap()))
        return self

    def _select(self, fid: int) -> None:
        if self._current_ef == fid:
            return
        self._current_ef = None
        apdu.expect_ok(self._exchange(apdu.select_ef(fid)), f"SELECT EF {fid:04X}")
        self._current_ef = fid

    def _checked(self, fn, *args):  # type: ignore[no-untyped-def]
        """Run a decoder; a response that does not decode means the session cannot be trusted further."""
        try:
            return fn(*args)
        except MalformedCardResponse as exc:
            self._broken = CardRemoved("the card was taken off the reader during a command") \
                if self._transport.card_gone() else exc
            raise self._broken from None

    # --- kiosk.ports.CardSession ---------------------------------------------------------------------
    def read_auth_certificate(self) -> bytes:
        if self._certificate is not None:
            return self._certificate
        self._select(apdu.EF_AUTH_CERT)
        header = apdu.expect_ok(self._exchange(apdu.read_binary(0, apdu.CERT_HEADER_LENGTH)),
                                "READ BINARY certificate header")
        total = self._checked(apdu.certificate_length, header)
        parts = [header]
        offset = apdu.CERT_HEADER_LENGTH
        while offset < total:
            length = apdu.read_plan(total, offset, self._read_chunk)[0][1]
            response = self._exchange(apdu.read_binary(offset, length))
            if length > apdu.SHORT_READ_MAX and response.sw in apdu.EXTENDED_REFUSED:
                # the reader passed an extended Le but the card will not take it: short reads from here on
                log.info("card refused an extended READ BINARY (SW %s); reading 256 bytes at a time", response.sw_hex)
                self._read_chunk = apdu.SHORT_READ_MAX
                continue
            parts.append(self._checked(apdu.check_chunk, response, offset, length))
            offset += length
        self._certificate = b"".join(parts)
        return self._certificate

    def pin_tries_left(self) -> int:
        self._select(apdu.EF_AUTH_PIN)
        self._tries = apdu.decode_tries(self._exchange(apdu.pin_status()))
        return self._tries

    def verify_pin(self, pin: str, *, confirm_last_try: bool = False) -> None:
        apdu.validate_pin(pin)  # InvalidPinFormat before any I/O
        tries = self._tries if self._tries is not None else self.pin_tries_left()
        if tries == 0:
            raise PinLocked("the PIN is locked; nothing was sent. The resident must have it reset at the "
                            "city hall counter")
        if tries == 1 and not confirm_last_try:
            raise LastTryNotConfirmed("one PIN try left: the resident must confirm before the VERIFY is sent")
        self._select(apdu.EF_AUTH_PIN)
        command = apdu.verify_pin(pin)
        self._tries = None  # unknown until the card answers: a lost answer may or may not have cost a try
        try:
            response = self._exchange(command)
        finally:
            del command
        try:
            apdu.decode_verify(response)
        except PinLocked:
            self._tries = 0
            raise
        except CardError as exc:
            self._tries = getattr(exc, "tries_left", None)
            raise
        self._tries = apdu.AUTH_PIN_MAX_TRIES
        self._verified = True

    def sign(self, data: bytes) -> bytes:
        if not self._verified:
            raise CardCommandFailed("sign() needs a successful verify_pin() first; nothing was sent")
        algorithm = apdu.algorithm_of(self.read_auth_certificate())  # from the card's own certificate
        self._select(apdu.EF_AUTH_KEY)
        response = self._exchange(apdu.compute_signature(algorithm.sign_input(data)), self._sign_timeout)
        return self._checked(apdu.check_signature, response, algorithm)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()
