"""The JPKI APDU codec on byte transcripts (shared/docs/jpki-card.md §2, §8 'minimal kiosk happy path')."""
from __future__ import annotations

import hashlib

import pytest

from drivers.card import apdu
from kiosk.errors import (
    CardCommandFailed,
    InvalidPinFormat,
    MalformedCardResponse,
    NotMyNumberCard,
    PinLocked,
    WrongPin,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_happy_path_commands_match_the_reference_transcript() -> None:
    assert apdu.select_jpki_ap().to_bytes() == h("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01")
    assert apdu.select_ef(apdu.EF_AUTH_PIN).to_bytes() == h("00 A4 02 0C 02 00 18")
    assert apdu.pin_status().to_bytes() == h("00 20 00 80")
    assert apdu.verify_pin("1234").to_bytes() == h("00 20 00 80 04 31 32 33 34")
    assert apdu.select_ef(apdu.EF_AUTH_CERT).to_bytes() == h("00 A4 02 0C 02 00 0A")
    assert apdu.read_binary(0, 4).to_bytes() == h("00 B0 00 00 04")
    assert apdu.read_binary(4, 256).to_bytes() == h("00 B0 00 04 00")
    assert apdu.read_binary(0x0304, 0x4E).to_bytes() == h("00 B0 03 04 4E")
    assert apdu.select_ef(apdu.EF_AUTH_KEY).to_bytes() == h("00 A4 02 0C 02 00 17")
    digest_info = apdu.sha256_digest_info(b"challenge")
    assert digest_info == h("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20") + hashlib.sha256(b"challenge").digest()
    assert apdu.compute_signature(digest_info).to_bytes() == h("80 2A 00 80 33") + digest_info + h("00")


@pytest.mark.parametrize("fid", [0x0001, 0x001B, 0x001A, 0x0002, 0x0011])
def test_no_builder_for_files_the_kiosk_must_not_touch(fid: int) -> None:
    with pytest.raises(ValueError):
        apdu.select_ef(fid)


@pytest.mark.parametrize("pin", ["123", "12345", "12a4", "１２３４", "", " 123", "12.4", None, 1234])
def test_pin_format_is_refused_before_anything_is_built(pin: object) -> None:
    with pytest.raises(InvalidPinFormat) as err:
        apdu.validate_pin(pin)
    assert str(pin) not in err.value.detail or pin in ("", None)


def test_verify_is_masked_in_log_text() -> None:
    text = apdu.verify_pin("4321").describe()
    assert text == "00 20 00 80 04 ** ** ** **"
    assert "34" not in text[12:] and "4321" not in text


def test_response_parsing_and_status_words() -> None:
    assert apdu.parse_response(h("30 82 03 4E 90 00")) == apdu.Response(h("30 82 03 4E"), 0x9000)
    for raw in (b"", b"\x90"):
        with pytest.raises(MalformedCardResponse):
            apdu.parse_response(raw)


@pytest.mark.parametrize("sw, tries", [("63 C3", 3), ("63 C2", 2), ("63 C1", 1), ("63 C0", 0), ("69 84", 0), ("69 83", 0)])
def test_pin_status_decoding(sw: str, tries: int) -> None:
    assert apdu.decode_tries(apdu.parse_response(h(sw))) == tries


def test_pin_status_never_accepts_9000() -> None:
    with pytest.raises(CardCommandFailed):
        apdu.decode_tries(apdu.parse_response(h("90 00")))


@pytest.mark.parametrize("sw, left", [("63 C2", 2), ("63 C1", 1)])
def test_wrong_pin_carries_tries_left(sw: str, left: int) -> None:
    with pytest.raises(WrongPin) as err:
        apdu.decode_verify(apdu.parse_response(h(sw)))
    assert err.value.tries_left == left and err.value.code == 206


@pytest.mark.parametrize("sw", ["69 84", "69 83", "63 C0"])
def test_each_locked_status_word_is_pin_locked(sw: str) -> None:
    with pytest.raises(PinLocked):
        apdu.decode_verify(apdu.parse_response(h(sw)))


def test_verify_success_and_unexpected_sw() -> None:
    assert apdu.decode_verify(apdu.parse_response(h("90 00"))) is None
    with pytest.raises(CardCommandFailed):
        apdu.decode_verify(apdu.parse_response(h("6A 82")))


@pytest.mark.parametrize("sw", ["6A 82", "6D 00", "6E 00"])
def test_missing_jpki_application_is_not_my_number_card(sw: str) -> None:
    with pytest.raises(NotMyNumberCard):
        apdu.check_select_ap(apdu.parse_response(h(sw)))


def test_certificate_header_and_read_plan() -> None:
    assert apdu.certificate_length(h("30 82 03 4D")) == 0x34D + 4
    assert apdu.read_plan(0x351) == [(4, 256), (260, 256), (516, 256), (772, 77)]
    for bad in (h("31 82 03 4D"), h("30 81 FF 00"), h("30 82 00 10"), h("30 82")):
        with pytest.raises(MalformedCardResponse):
            apdu.certificate_length(bad)


def test_chunk_and_signature_checks() -> None:
    assert apdu.check_chunk(apdu.parse_response(b"\x01" * 10 + h("90 00")), 4, 10) == b"\x01" * 10
    with pytest.raises(MalformedCardResponse):
        apdu.check_chunk(apdu.parse_response(b"\x01" * 9 + h("90 00")), 4, 10)
    with pytest.raises(CardCommandFailed):
        apdu.check_chunk(apdu.parse_response(h("6B 00")), 4, 10)
    assert len(apdu.check_signature(apdu.parse_response(b"\x05" * 256 + h("90 00")))) == 256
    with pytest.raises(MalformedCardResponse):
        apdu.check_signature(apdu.parse_response(b"\x05" * 255 + h("90 00")))
    with pytest.raises(CardCommandFailed):
        apdu.check_signature(apdu.parse_response(h("69 82")))
