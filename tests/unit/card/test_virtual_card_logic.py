"""The virtual card's logic against shared/docs/jpki-card.md §8 (row numbers in the test names)."""
from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from drivers.card.apdu import sha256_digest_info
from drivers.sim.jpki_card.card import TEXT_AID, CardOptions, VirtualJpkiCard
from drivers.sim.jpki_card.simulator import corrupt, mask_apdu


@pytest.fixture
def card(card_files) -> VirtualJpkiCard:
    return VirtualJpkiCard(card_files, pin="1234", sign_password="ABC123")


def run(card: VirtualJpkiCard, hex_apdu: str) -> str:
    return card.process(bytes.fromhex(hex_apdu.replace(" ", ""))).hex().upper()


SELECT_JPKI = "00A4040C0AD392F000260100000001"


def test_rows_2_7_8_token(card: VirtualJpkiCard) -> None:
    assert run(card, SELECT_JPKI) == "9000"
    assert run(card, "00A4020C020006") == "9000"
    assert bytes.fromhex(run(card, "00B0000020")[:-4]) == b"JPKIAPICCTOKEN2" + b" " * 17


def test_rows_3_4_5_6_other_applications(card: VirtualJpkiCard) -> None:
    assert run(card, "00A4040C0A" + TEXT_AID.hex()) == "9000"
    assert run(card, "00A4040C0AD3921000310001010402") == "9000"
    assert run(card, "00A404000AD392F00026010000000100") == "9000"
    for probe in ("00A4040006A00000000101", "00A404000762760100FF0000", "00A4040006D27600012401"):
        assert run(card, probe) == "6A82"


def test_rows_9_to_15_files_and_reads(card: VirtualJpkiCard, card_files) -> None:
    run(card, SELECT_JPKI)
    for fid in ("000A", "000B", "0001", "0002", "0017", "0018", "001A", "001B"):
        assert run(card, "00A4020C02" + fid) == "9000", fid
    assert run(card, "00A4020C020005") == "6A82"
    assert run(card, "00A4090C020005") == "6A86"
    run(card, "00A4020C02000A")
    size = len(card_files.auth_cert)
    assert run(card, "00B0000004") == card_files.auth_cert[:4].hex().upper() + "9000"
    assert run(card, "00B0000400")[:-4] == card_files.auth_cert[4:260].hex().upper()
    last = (size // 256) * 256
    assert run(card, f"00B0{last:04X}00") == card_files.auth_cert[last:].hex().upper() + "9000"  # short + 9000
    assert run(card, f"00B0{size:04X}10") == "6B00"
    assert run(card, "00B000000000" + "00")[:-4] == card_files.auth_cert.hex().upper()  # extended Le
    run(card, "00A4020C020001")
    assert run(card, "00B0000004") == "6982"  # row 13


def test_row_16_sfi_read(card: VirtualJpkiCard, card_files) -> None:
    run(card, SELECT_JPKI)
    assert run(card, "00B08A00000000")[:-4] == card_files.auth_cert.hex().upper()


def test_rows_17_to_22_pins(card: VirtualJpkiCard) -> None:
    run(card, SELECT_JPKI)
    run(card, "00A4020C020018")
    assert run(card, "00200080") == "63C3"
    assert run(card, "002000800431323334") == "9000"
    assert run(card, "00200080") == "63C3"  # never 9000
    assert run(card, "002000800430303030") == "63C2"
    assert run(card, "002000800430303030") == "63C1"
    assert run(card, "002000800430303030") == "63C0"
    assert run(card, "002000800431323334") == "6984"  # locked: even the right PIN
    run(card, "00A4020C02001B")
    assert run(card, "00200080") == "63C5"
    assert run(card, "0020008006" + b"ABC123".hex()) == "9000"


def test_row_22_locked_sw_is_configurable(card_files) -> None:
    card = VirtualJpkiCard(card_files, options=CardOptions(blocked_sw=b"\x69\x83"))
    run(card, SELECT_JPKI)
    run(card, "00A4020C020018")
    card.set_tries("auth", 0)
    assert run(card, "002000800431323334") == "6983"


def test_rows_23_to_28_signing(card: VirtualJpkiCard, card_files) -> None:
    run(card, SELECT_JPKI)
    di = sha256_digest_info(b"nonce").hex()
    run(card, "00A4020C02000A")
    assert run(card, "00200080") == "6986"  # row 23
    assert run(card, "802A008033" + di + "00") == "6986"  # row 27
    run(card, "00A4020C020017")
    assert run(card, "802A008033" + di + "00") == "6982"  # row 26
    run(card, "00A4020C020018")
    run(card, "002000800431323334")
    run(card, "00A4020C020017")
    assert run(card, "802A0080F6" + "00" * 246 + "00") == "6700"  # row 28
    sig = bytes.fromhex(run(card, "802A008033" + di + "00")[:-4])
    x509.load_der_x509_certificate(card_files.auth_cert).public_key().verify(sig, b"nonce", padding.PKCS1v15(),
                                                                             hashes.SHA256())
    run(card, SELECT_JPKI)  # DF re-select forgets the PIN
    run(card, "00A4020C020017")
    assert run(card, "802A008033" + di + "00") == "6982"


def test_row_29_change_pin(card: VirtualJpkiCard) -> None:
    run(card, SELECT_JPKI)
    run(card, "00A4020C020018")
    assert run(card, "002401800439393939") == "6982"
    run(card, "002000800431323334")
    assert run(card, "002401800439393939") == "9000"
    assert run(card, "002000800439393939") == "9000"


def test_rows_30_31_32_iso_errors(card: VirtualJpkiCard) -> None:
    assert run(card, "00CADF3005") == "6D00"
    assert run(card, "A0A4040C0AD392F000260100000001") == "6E00"
    assert run(card, "00A4040C0BD392F000260100000001") == "6700"
    assert run(card, "00A4") == "6700"


def test_row_33_text_application(card: VirtualJpkiCard) -> None:
    run(card, "00A4040C0A" + TEXT_AID.hex())
    assert run(card, "00A4020C020011") == "9000"
    assert run(card, "002000800431323334") == "9000"
    assert run(card, "00A4020C020001") == "9000"
    answer = run(card, "00B0000011")
    assert answer.startswith("D00C") and answer.endswith("9000") and len(answer) == (17 + 2) * 2


def test_reset_forgets_everything(card: VirtualJpkiCard) -> None:
    run(card, SELECT_JPKI)
    run(card, "00A4020C020018")
    run(card, "002000800431323334")
    card.reset()
    assert run(card, "00A4020C020017") == "6A82"  # no DF selected after reset


def test_log_masks_pins_and_corruption_modes() -> None:
    assert mask_apdu(bytes.fromhex("002000800431323334")) == "0020008004********"
    assert mask_apdu(bytes.fromhex("00A4020C020018")) == "00A4020C020018"
    response = bytes.fromhex("3082034D9000")
    assert corrupt(response, "truncate") == b"\x30"
    assert corrupt(response, "flip") == bytes.fromhex("CF82034D9000")
    assert corrupt(response, "short") == bytes.fromhex("3082039000")
