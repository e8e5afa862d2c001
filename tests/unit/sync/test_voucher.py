"""The 返金引換券 code (sync/voucher.py): what the kiosk signs, the counter verifies."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.voucher import (ALPHABET, CHECK_SYMBOLS, KioskVoucherIssuer, VoucherStatus, check_character, decode, issue, verify)

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
ISSUED_AT = datetime(2026, 12, 4, 14, 30, 5, tzinfo=timezone.utc)  # 23:30 JST
DEVICE = "wako-honcho-01"
TXN = "wako-honcho-01-000123"


def keys(device: str):
    return KEY.public_key() if device == DEVICE else None


def voucher(**kw):
    args = dict(key=KEY, device_id=DEVICE, txn_id=TXN, amount_yen=700, issued_at=ISSUED_AT, valid_days=90)
    args.update(kw)
    return issue(**args)


def test_genuine_from_qr_and_from_typed_text_round_trip_every_field():
    issued = voucher()
    for form in (issued.code, issued.text, issued.text.lower(), issued.text.replace("-", " ")):
        check = verify(form, keys, ISSUED_AT + timedelta(days=1))
        assert check.status is VoucherStatus.GENUINE, check.detail
        v = check.voucher
        assert (v.device_id, v.txn_id, v.amount_yen, v.issued_at, v.valid_days) == (DEVICE, TXN, 700, ISSUED_AT, 90)


def test_expiry_is_the_end_of_the_last_day_in_japan():
    issued = voucher()
    # issued 2026-12-04 23:30 JST + 90 days = 2027-03-04; valid through 23:59:59 JST that day
    assert issued.expires_at == datetime(2027, 3, 4, 14, 59, 59, tzinfo=timezone.utc)
    assert verify(issued.code, keys, issued.expires_at).status is VoucherStatus.GENUINE
    late = verify(issued.code, keys, issued.expires_at + timedelta(seconds=1))
    assert late.status is VoucherStatus.EXPIRED and late.voucher.amount_yen == 700


def test_a_changed_amount_or_another_kiosks_key_is_forged():
    issued = voucher()
    forged = voucher(amount_yen=7000, key=OTHER_KEY)
    assert verify(forged.code, keys, ISSUED_AT).status is VoucherStatus.FORGED
    # splice the 7,000-yen payload onto the genuine 700-yen signature
    payload_chars = len(issued.code) - 103  # 64-byte signature ≈ 102.4 base32 characters
    spliced = forged.code[:payload_chars] + issued.code[payload_chars:]
    assert verify(spliced, keys, ISSUED_AT).status in (VoucherStatus.FORGED, VoucherStatus.MALFORMED)
    unknown = voucher(device_id="kawa-99", txn_id="kawa-99-000001")
    check = verify(unknown.code, keys, ISSUED_AT)
    assert check.status is VoucherStatus.FORGED and "not enrolled" in check.detail


def test_the_check_character_catches_one_wrong_character_and_neighbour_swaps():
    text = voucher().text
    chars = [i for i, ch in enumerate(text) if ch != "-"][2:-1]
    for i in chars[::7]:
        wrong = ALPHABET[(ALPHABET.index(text[i]) + 1) % 32]
        check = verify(text[:i] + wrong + text[i + 1:], keys, ISSUED_AT)
        assert check.status is VoucherStatus.MALFORMED and "check character" in check.detail
    for i, j in zip(chars, chars[1:]):
        if j == i + 1 and text[i] != text[j]:
            swapped = text[:i] + text[j] + text[i] + text[j + 1:]
            assert verify(swapped, keys, ISSUED_AT).status is VoucherStatus.MALFORMED


@pytest.mark.parametrize("text, says", [("", "empty"), ("hello world", "check character"),
                                        ("V1AB", "too short"), ("X" * 40, "starts with V1"),
                                        ("V1-ÄÖ", "only letters and digits")])
def test_malformed_input_gets_a_specific_reason(text, says):
    check = verify(text, keys, ISSUED_AT)
    assert check.status is VoucherStatus.MALFORMED and says in check.detail, check.detail


def test_truncated_qr_code_is_malformed():
    code = voucher().code
    assert verify(code[:-5], keys, ISSUED_AT).status is VoucherStatus.MALFORMED


def test_the_code_fits_a_qr_in_alphanumeric_mode_and_typed_groups_of_four():
    issued = voucher()
    qr = segno.make(issued.code, error="m")
    assert qr.mode == "alphanumeric" and qr.version <= 8
    groups = issued.text.split("-")
    assert all(len(g) == 4 for g in groups[:-2]) and len(groups[-1]) == 1
    assert groups[-1] == check_character(issued.code) and groups[-1] in CHECK_SYMBOLS


def test_a_transaction_id_of_another_shape_is_carried_whole():
    issued = voucher(txn_id="manual/2026-12-04/1")
    assert decode(issued.code)[0].txn_id == "manual/2026-12-04/1"


@pytest.mark.parametrize("amount, days", [(0, 90), (-1, 90), (16_777_216, 90), (100, 0)])
def test_out_of_range_vouchers_are_refused_when_issued(amount, days):
    with pytest.raises(ValueError):
        voucher(amount_yen=amount, valid_days=days)


def test_kiosk_issuer_is_the_engine_port():
    from kiosk.ports import VoucherIssuer

    issuer = KioskVoucherIssuer(KEY, DEVICE, 30)
    assert isinstance(issuer, VoucherIssuer)
    printed = issuer.issue(TXN, 300, ISSUED_AT)
    assert verify(printed.text, keys, ISSUED_AT).voucher.valid_days == 30
    assert printed.expires_at == datetime(2027, 1, 3, 14, 59, 59, tzinfo=timezone.utc)
