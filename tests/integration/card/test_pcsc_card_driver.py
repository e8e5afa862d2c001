"""The production pcsc driver through real pcscd + vpcd against the virtual My Number card."""
from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from drivers.sim.pki import TestPKI
from kiosk.errors import (
    CardRemoved,
    CardUnresponsive,
    LastTryNotConfirmed,
    MalformedCardResponse,
    NotMyNumberCard,
    PinLocked,
    ReaderMissing,
    WrongPin,
)
from kiosk.ports import CardEventKind, CardReader, CardSession
from tests.integration.card.conftest import last_log_entries

pytestmark = pytest.mark.integration

HAPPY = "INTEGCARD00000000001"
PINS = "INTEGCARD00000000002"
LOCK = "INTEGCARD00000000003"


def place(card, events, card_id: str, *, tries: int = 3) -> None:
    card.place(card_id, pin="1234")
    card.set(tries=tries)
    events.wait_for(CardEventKind.PLACED)


def test_happy_path_signature_verifies_against_the_certificate_read(card, reader, events, pki_dir) -> None:
    assert isinstance(reader, CardReader)
    place(card, events, HAPPY)
    assert reader.card_present()
    session = reader.open_session()
    assert isinstance(session, CardSession)
    try:
        certificate = session.read_auth_certificate()
        assert certificate == TestPKI(pki_dir).card(HAPPY).cert_der
        assert session.pin_tries_left() == 3
        session.verify_pin("1234")
        challenge = b"city hall nonce 0123456789"
        signature = session.sign(challenge)
    finally:
        session.close()
    cert = x509.load_der_x509_certificate(certificate)
    cert.public_key().verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
    assert cert.subject.rfc4514_string() == f"C=JP,CN={HAPPY}"
    assert session.apdu_count <= 15


def test_insert_and_remove_events(card, reader, events) -> None:
    place(card, events, HAPPY)
    card.remove()
    assert events.wait_for(CardEventKind.REMOVED).reader.startswith("Virtual PCD")
    assert not reader.card_present()
    card.place(HAPPY)
    events.wait_for(CardEventKind.PLACED)
    with pytest.raises(CardRemoved):
        card.remove()
        events.wait_for(CardEventKind.REMOVED)
        reader.open_session()


def test_wrong_pin_counts_down_and_the_last_try_needs_confirmation(card, reader, events, virtual_card) -> None:
    place(card, events, PINS)
    session = reader.open_session()
    try:
        assert session.pin_tries_left() == 3
        with pytest.raises(WrongPin) as first:
            session.verify_pin("0000")
        with pytest.raises(WrongPin) as second:
            session.verify_pin("9999")
        assert (first.value.tries_left, second.value.tries_left) == (2, 1)
        sent = card.status()["apdus"]
        with pytest.raises(LastTryNotConfirmed):
            session.verify_pin("1234")
        assert card.status()["apdus"] == sent  # nothing reached the card
        session.verify_pin("1234", confirm_last_try=True)
        assert session.pin_tries_left() == 3
    finally:
        session.close()
    verifies = [e for e in last_log_entries(virtual_card, 8) if e["apdu"].startswith("0020008004")]
    assert all("3" not in e["apdu"][10:] for e in verifies)  # the card's log never holds a PIN either


@pytest.mark.parametrize("locked_sw", ["6984", "6983", "63C0"])
def test_three_wrong_pins_lock_with_each_locked_status_word(card, reader, events, virtual_card, locked_sw) -> None:
    card.set(blocked_sw=locked_sw, locked_status_sw=locked_sw)
    place(card, events, LOCK)
    session = reader.open_session()
    try:
        with pytest.raises(WrongPin):
            session.verify_pin("0000")
        with pytest.raises(WrongPin):
            session.verify_pin("0000")
        with pytest.raises(PinLocked):
            session.verify_pin("0000", confirm_last_try=True)
        assert card.status()["auth_tries"] == 0
    finally:
        session.close()
    session = reader.open_session()  # a new session on the locked card: status query answers locked_sw
    try:
        assert session.pin_tries_left() == 0
        sent = card.status()["apdus"]
        with pytest.raises(PinLocked):
            session.verify_pin("1234", confirm_last_try=True)
        assert card.status()["apdus"] == sent  # known locked: no VERIFY sent
    finally:
        session.close()
    card.set(tries=1)
    session = reader.open_session()  # the card itself answers locked_sw to a VERIFY with data
    try:
        assert session.pin_tries_left() == 1
        card.set(tries=0)
        with pytest.raises(PinLocked):
            session.verify_pin("1234", confirm_last_try=True)
    finally:
        session.close()
    assert last_log_entries(virtual_card, 1)[0]["sw"] == locked_sw


def test_card_pulled_mid_read(card, reader, events) -> None:
    place(card, events, HAPPY)
    session = reader.open_session()
    card.fault("pull", ins=0xB0, skip=2)  # header, first chunk, then gone
    with pytest.raises(CardRemoved):
        session.read_auth_certificate()
    events.wait_for(CardEventKind.REMOVED)
    with pytest.raises(CardRemoved):
        session.pin_tries_left()  # a spent session sends nothing
    session.close()


def test_card_pulled_mid_sign(card, reader, events) -> None:
    place(card, events, HAPPY)
    session = reader.open_session()
    session.verify_pin("1234")
    card.fault("pull", ins=0x2A)
    with pytest.raises(CardRemoved):
        session.sign(b"challenge")
    events.wait_for(CardEventKind.REMOVED)
    session.close()


def test_not_a_my_number_card(card, reader, events) -> None:
    card.set(not_jpki=1)
    place(card, events, HAPPY)
    with pytest.raises(NotMyNumberCard):
        reader.open_session()


@pytest.mark.parametrize("mode, ins, skip", [("flip", 0xB0, 0), ("short", 0xB0, 1), ("truncate", 0xA4, 0)])
def test_corrupted_response_is_a_typed_error(card, reader, events, mode, ins, skip) -> None:
    place(card, events, HAPPY)
    session = reader.open_session()
    card.fault("corrupt", ins=ins, skip=skip, mode=mode)
    with pytest.raises(MalformedCardResponse):
        session.read_auth_certificate()
    session.close()


def test_stalled_card_is_unresponsive_and_verify_is_not_resent(card, reader, events, virtual_card) -> None:
    place(card, events, HAPPY)
    session = reader.open_session()
    assert session.pin_tries_left() == 3
    card.fault("stall", ins=0x20)
    started = time.monotonic()
    with pytest.raises(CardUnresponsive):
        session.verify_pin("1234")
    assert time.monotonic() - started < 2.0 + 1.5  # apdu_timeout of the fixture, plus slack
    with pytest.raises(CardUnresponsive):
        session.verify_pin("1234")
    card.remove()  # releases the stalled command
    session.close()
    entries = last_log_entries(virtual_card, 3)
    assert sum(1 for e in entries if e["apdu"].startswith("0020008004")) == 1


def test_reader_missing(pcsc) -> None:
    from drivers.card.pcsc import PcscCardReader, PcscOptions
    from tests.integration.card.conftest import Events

    missing = PcscCardReader(PcscOptions(reader_pattern="^No Such Reader$", poll_interval=0.1))
    with pytest.raises(ReaderMissing):
        missing.open_session()
    assert not missing.card_present()
    events = Events()
    missing.start_monitor(events)
    try:
        events.wait_for(CardEventKind.READER_LOST, timeout=5)
    finally:
        missing.stop_monitor()


def test_pcscd_restarted_while_idle_monitor_recovers(card, reader, events, pcsc) -> None:
    place(card, events, HAPPY)
    pcsc.restart()
    events.wait_for(CardEventKind.READER_LOST)
    events.wait_for(CardEventKind.READER_BACK)
    events.wait_for(CardEventKind.PLACED)
    assert reader.monitor_alive()
    session = reader.open_session()
    try:
        assert len(session.read_auth_certificate()) > 256
    finally:
        session.close()
    card.remove()
    events.wait_for(CardEventKind.REMOVED)
