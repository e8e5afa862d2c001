from __future__ import annotations

import re

from kiosk import errors
from kiosk.errors import KioskError, WrongPin, all_error_classes


def test_codes_are_unique_and_grouped_by_family() -> None:
    classes = all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    families = {"Config": 1, "Card": 2, "Pin": 2, "Payment": 3, "Coin": 3, "Hopper": 3, "Cash": 3, "Fraud": 3,
                "Refund": 3, "Printer": 4, "Paper": 4, "Toner": 4, "Cover": 4, "Print": 4, "Receipt": 4,
                "CityHall": 5, "Session": 5, "Device": 5, "Journal": 6}
    for cls in classes:
        for prefix, family in families.items():
            if cls.__name__.startswith(prefix) and cls.__module__ == "kiosk.errors":
                assert cls.code // 100 == family, cls


def test_every_error_has_a_message_key_and_a_first_line_for_people() -> None:
    for cls in all_error_classes():
        assert re.fullmatch(r"[a-z_]+", cls.message_key), cls
        assert cls.__doc__ and cls.__doc__.strip(), cls


def test_error_text_carries_its_code_and_no_pin() -> None:
    exc = WrongPin(2)
    assert str(exc) == "E206 wrong PIN, 2 tries left"
    assert exc.as_dict() == {"code": 206, "key": "wrong_pin", "detail": "wrong PIN, 2 tries left", "tries_left": 2}
    assert str(errors.PaperOut()) == "E401 The printer is out of paper."


def test_out_of_service_errors_are_marked() -> None:
    assert errors.JournalError.takes_out_of_service and errors.CoinJam.takes_out_of_service
    assert not errors.WrongPin.takes_out_of_service and issubclass(errors.WrongPin, KioskError)
