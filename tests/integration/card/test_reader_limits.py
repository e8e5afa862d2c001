"""The card driver within a reader's limits, through pcscd: the virtual card refuses (breaks the link on)
any command or response longer than a CCID message of ``max_message`` bytes can carry, as a real reader
fails the transfer. Sony RC-S300: dwMaxCCIDMessageLength 522 (docs/card-readers.md)."""
from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from drivers.sim.pki import TestPKI
from kiosk.errors import CardError
from kiosk.ports import CardEventKind
from tests.integration.card.conftest import last_log_entries, make_reader

pytestmark = pytest.mark.integration

CARD = "READERCARD0000000001"
ATR_EXTENDED = "3BDA13FF8131FB468012392F31C173C601C03B"  # JPKI (02): advertises extended Lc/Le


def authenticate(reader) -> tuple[bytes, bytes, int]:
    session = reader.open_session()
    try:
        cert = session.read_auth_certificate()
        session.verify_pin("1234")
        signature = session.sign(b"challenge")
    finally:
        session.close()
    return cert, signature, session.apdu_count


@pytest.mark.parametrize("atr, reads", [(ATR_EXTENDED, 4), ("3BE000FF8131FE4514", 7)])
def test_rc_s300_sized_reader(card, events, pcsc, pki_dir, virtual_card, atr: str, reads: int) -> None:
    """With 522-byte messages the driver reads 510 bytes per extended READ (card says it can) or 256 per
    short READ (legacy ATR); every response fits in 512 bytes and the signature still verifies."""
    card.set(max_message=522, atr=atr)
    card.place(CARD, pin="1234")
    card.set(tries=3)
    events.wait_for(CardEventKind.PLACED)
    reader = make_reader(pcsc, reader_profile="sony-rc-s300")
    cert, signature, count = authenticate(reader)
    assert cert == TestPKI(pki_dir).card(CARD).cert_der and len(cert) == 1583
    x509.load_der_x509_certificate(cert).public_key().verify(signature, b"challenge", padding.PKCS1v15(),
                                                             hashes.SHA256())
    log = last_log_entries(virtual_card, count)
    assert all(entry["rlen"] <= 512 and len(entry["apdu"]) // 2 <= 512 for entry in log)
    assert not any("reader refused" in entry.get("note", "") for entry in log)
    body_reads = [e for e in log if e["apdu"].startswith("00B0") and e["apdu"] != "00B0000004"]
    assert len(body_reads) == reads
    assert count == 8 + reads  # SELECT AP, SELECT 000A, header, reads, SELECT 0018, status, VERIFY, SELECT 0017, SIGN


def test_the_cap_is_real_a_reader_profile_that_overreaches_fails(card, events, pcsc, virtual_card) -> None:
    """The same 522-byte reader believed to be vpcd (64 KB messages): one extended READ of the whole
    certificate is too big for the reader, the link breaks and the driver reports a card error."""
    card.set(max_message=522, atr=ATR_EXTENDED)
    card.place(CARD, pin="1234")
    events.wait_for(CardEventKind.PLACED)
    reader = make_reader(pcsc, reader_profile="vpcd")
    with pytest.raises(CardError):
        session = reader.open_session()
        try:
            session.read_auth_certificate()
        finally:
            session.close()
    assert any("reader refused: response of 1581 bytes" in e.get("note", "") for e in last_log_entries(virtual_card, 5))
