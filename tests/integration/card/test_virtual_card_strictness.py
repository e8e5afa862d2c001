"""The virtual card refuses what a real JPKI card refuses, seen through pcscd (raw APDUs over the
production transport). Each test names the fact it checks: ISO/IEC 7816-4's status words (6700 wrong
length, 6A80 incorrect parameters in the data field, 6A86 incorrect parameters P1-P2) applied to the
JPKI commands of shared/docs/jpki-card.md §2 — sources and what is unconfirmed: docs/virtual-card.md."""
from __future__ import annotations

import pytest

from drivers.card.pcsc import PcscOptions, PcscTransport
from kiosk.ports import CardEventKind

pytestmark = pytest.mark.integration

CARD = "STRICTCARD0000000001"
SELECT_AP = "00A4040C0AD392F000260100000001"
SELECT_PIN = "00A4020C020018"
SELECT_KEY = "00A4020C020017"
VERIFY_1234 = "002000800431323334"
DIGEST_INFO = "3031300D060960864801650304020105000420" + "11" * 32


@pytest.fixture
def raw(card, events, pcsc):
    card.place(CARD, pin="1234")
    card.set(tries=3)
    events.wait_for(CardEventKind.PLACED)
    transport = PcscTransport(pcsc.reader, PcscOptions(reader_pattern=".")).connect()

    def send(hex_apdu: str) -> str:
        return transport.transmit(bytes.fromhex(hex_apdu), 5.0)[-2:].hex().upper()

    yield send
    transport.close()


def test_sign_without_le_is_wrong_length(raw) -> None:
    """COMPUTE DIGITAL SIGNATURE is case 4 (jpki-card.md §2.5): without Le the card answers 6700."""
    assert [raw(SELECT_AP), raw(SELECT_PIN), raw(VERIFY_1234), raw(SELECT_KEY)] == ["9000"] * 4
    assert raw("802A008033" + DIGEST_INFO) == "6700"
    assert raw("802A008033" + DIGEST_INFO + "10") == "6700"  # Le 16 < a 256-byte signature
    assert raw("802A008033" + DIGEST_INFO + "00") == "9000"


def test_verify_with_le_is_wrong_length(raw) -> None:
    """VERIFY is case 1 (status) or case 3 (PIN): an Le field makes it 6700, and costs no try."""
    assert [raw(SELECT_AP), raw(SELECT_PIN)] == ["9000"] * 2
    assert raw(VERIFY_1234 + "00") == "6700"
    assert raw("0020008000") == "6700"  # an "empty VERIFY" sent as case 2
    assert raw("00200080") == "63C3"


@pytest.mark.parametrize("p2", ["04", "08", "02", "0D"])
def test_select_with_another_p2_is_incorrect_p1_p2(raw, p2: str) -> None:
    """JPKI clients select with P2=0C (or 00, FCI): FCP (04), FMD (08) and the rest answer 6A86."""
    assert raw(f"00A404{p2}0AD392F000260100000001") == "6A86"
    assert raw(SELECT_AP) == "9000"
    assert raw(f"00A402{p2}020018") == "6A86"


def test_aid_longer_than_16_bytes_is_wrong_length(raw) -> None:
    """ISO 7816-4: a DF name is at most 16 bytes; a 17-byte one is a wrong Lc (6700), not 'not found'."""
    assert raw("00A4040C11" + "D392F000260100000001" + "00" * 7) == "6700"
    assert raw("00A4040C10" + "D392F000260100000001" + "00" * 6) == "6A82"  # 16 bytes: a valid, unknown AID


def test_read_binary_by_sfi_zero_is_incorrect_p1_p2(raw) -> None:
    """READ BINARY with P1 = 1000 0000: SFI 0 does not exist (1..30), so 6A86, not 6A82."""
    assert raw(SELECT_AP) == "9000"
    assert raw("00B0800004") == "6A86"
    assert raw("00B0E00004") == "6A86"  # b7-b6 must be 00 when b8 is set
    assert raw("00B08A0004") == "9000"  # SFI 0A = EF 000A, the user-authentication certificate


@pytest.mark.parametrize("new_pin", ["123A", "12 4", "123", "12345", "３４５６"])
def test_change_reference_data_rejects_a_pin_that_is_not_4_digits(raw, new_pin: str) -> None:
    """CHANGE REFERENCE DATA of the 利用者証明用 PIN takes 4 ASCII digits; anything else is 6A80."""
    assert [raw(SELECT_AP), raw(SELECT_PIN), raw(VERIFY_1234)] == ["9000"] * 3
    data = new_pin.encode("utf-8").hex().upper()
    assert raw(f"00240180{len(new_pin.encode()):02X}{data}") == "6A80"
    assert raw(VERIFY_1234) == "9000"  # the PIN did not change


def test_change_reference_data_with_four_digits_works(raw) -> None:
    assert [raw(SELECT_AP), raw(SELECT_PIN), raw(VERIFY_1234)] == ["9000"] * 3
    assert raw("002401800435363738") == "9000"
    assert raw("002000800435363738") == "9000"
    assert raw("002401800431323334") == "9000"  # back to 1234 for the next test
