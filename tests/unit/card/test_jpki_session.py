"""JpkiSession's sequencing and PIN rules over an in-process transport to the virtual card's logic."""
from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from drivers.card.session import JpkiSession
from drivers.sim.jpki_card.card import CardOptions, VirtualJpkiCard
from kiosk.errors import (
    CardCommandFailed,
    CardRemoved,
    CardUnresponsive,
    InvalidPinFormat,
    LastTryNotConfirmed,
    MalformedCardResponse,
    NotMyNumberCard,
    PinLocked,
    WrongPin,
)


class InProcessTransport:
    """Hands APDUs straight to the card's logic; can fail one chosen command like a real link would."""

    def __init__(self, card: VirtualJpkiCard) -> None:
        self.card = card
        self.sent: list[bytes] = []
        self.fail_on_ins: int | None = None
        self.failure: Exception | None = None
        self.gone = False
        self.closed = False

    def transmit(self, command: bytes, timeout: float) -> bytes:
        self.sent.append(command)
        if self.fail_on_ins == command[1] and self.failure is not None:
            raise self.failure
        return self.card.process(command)

    def card_gone(self) -> bool:
        return self.gone

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def card(card_files) -> VirtualJpkiCard:
    return VirtualJpkiCard(card_files, pin="1234")


@pytest.fixture
def transport(card: VirtualJpkiCard) -> InProcessTransport:
    return InProcessTransport(card)


def verifies(count: list[bytes]) -> int:
    return sum(1 for c in count if c[1] == 0x20 and len(c) > 4)


def test_whole_authentication_in_fifteen_apdus(transport: InProcessTransport, card_files) -> None:
    session = JpkiSession(transport).open()
    cert = session.read_auth_certificate()
    assert cert == card_files.auth_cert
    assert session.pin_tries_left() == 3
    session.verify_pin("1234")
    signature = session.sign(b"city hall challenge")
    x509.load_der_x509_certificate(cert).public_key().verify(signature, b"city hall challenge",
                                                             padding.PKCS1v15(), hashes.SHA256())
    # a real-sized 1583-byte certificate (jpki-card.md §2.3, §6): SELECT AP, SELECT 000A, header,
    # 7 reads, SELECT 0018, status, VERIFY, SELECT 0017, SIGN
    assert len(cert) == 1583
    assert len(transport.sent) == 15 == session.apdu_count
    assert session.read_auth_certificate() == cert and len(transport.sent) == 15  # cached
    session.close()
    assert transport.closed


@pytest.mark.parametrize("pin", ["123", "12345", "abcd", "12 4", "１２３４"])
def test_bad_pin_format_sends_nothing(transport: InProcessTransport, pin: str) -> None:
    session = JpkiSession(transport).open()
    before = list(transport.sent)
    with pytest.raises(InvalidPinFormat):
        session.verify_pin(pin)
    assert transport.sent == before
    assert transport.card.pins["auth"].tries == 3


def test_wrong_pins_then_last_try_needs_confirmation(transport: InProcessTransport) -> None:
    session = JpkiSession(transport).open()
    with pytest.raises(WrongPin) as first:
        session.verify_pin("0000")
    with pytest.raises(WrongPin) as second:
        session.verify_pin("0000")
    assert (first.value.tries_left, second.value.tries_left) == (2, 1)
    sent = len(transport.sent)
    with pytest.raises(LastTryNotConfirmed):
        session.verify_pin("1234")
    assert len(transport.sent) == sent  # nothing sent
    session.verify_pin("1234", confirm_last_try=True)
    assert transport.card.pins["auth"].tries == 3


def test_third_wrong_pin_locks_and_then_nothing_is_sent(transport: InProcessTransport) -> None:
    session = JpkiSession(transport).open()
    for _ in range(2):
        with pytest.raises(WrongPin):
            session.verify_pin("9999")
    with pytest.raises(PinLocked):
        session.verify_pin("9999", confirm_last_try=True)
    sent = len(transport.sent)
    with pytest.raises(PinLocked):
        session.verify_pin("1234", confirm_last_try=True)
    assert len(transport.sent) == sent
    assert verifies(transport.sent) == 3


@pytest.mark.parametrize("blocked", ["6984", "6983", "63C0"])
def test_locked_card_answers_are_all_pin_locked(card_files, blocked: str) -> None:
    card = VirtualJpkiCard(card_files, options=CardOptions(blocked_sw=bytes.fromhex(blocked),
                                                           locked_status_sw=bytes.fromhex(blocked)))
    transport = InProcessTransport(card)
    session = JpkiSession(transport).open()
    assert session.pin_tries_left() == 3
    card.set_tries("auth", 0)  # locked behind the session's back: the card itself must say so
    with pytest.raises(PinLocked):
        session.verify_pin("1234")
    assert transport.sent[-1][1] == 0x20 and len(transport.sent[-1]) == 9
    assert JpkiSession(InProcessTransport(card)).open().pin_tries_left() == 0


def test_verify_is_sent_once_and_never_retried_after_a_transport_error(transport: InProcessTransport) -> None:
    session = JpkiSession(transport).open()
    session.pin_tries_left()
    transport.fail_on_ins, transport.failure = 0x20, CardUnresponsive("no answer")
    with pytest.raises(CardUnresponsive):
        session.verify_pin("1234")
    assert verifies(transport.sent) == 1
    with pytest.raises(CardUnresponsive):  # the session is spent: no second VERIFY, ever
        session.verify_pin("1234")
    assert verifies(transport.sent) == 1


def test_sign_before_verify_sends_nothing(transport: InProcessTransport) -> None:
    session = JpkiSession(transport).open()
    with pytest.raises(CardCommandFailed):
        session.sign(b"x")
    assert len(transport.sent) == 1


def test_not_a_jpki_card(card_files) -> None:
    card = VirtualJpkiCard(card_files, options=CardOptions(not_jpki=True))
    with pytest.raises(NotMyNumberCard):
        JpkiSession(InProcessTransport(card)).open()


def test_nonsense_answer_is_malformed_or_removed(transport: InProcessTransport) -> None:
    session = JpkiSession(transport).open()
    original = transport.card.process
    transport.card.process = lambda apdu: b"\x90"  # type: ignore[method-assign]
    with pytest.raises(MalformedCardResponse):
        session.read_auth_certificate()
    transport.card.process = original  # type: ignore[method-assign]
    with pytest.raises(MalformedCardResponse):  # spent
        session.pin_tries_left()
    other = JpkiSession(InProcessTransport(transport.card)).open()
    other._transport.card.process = lambda apdu: b""  # type: ignore[attr-defined]
    other._transport.gone = True  # type: ignore[attr-defined]
    with pytest.raises(CardRemoved):
        other.pin_tries_left()
