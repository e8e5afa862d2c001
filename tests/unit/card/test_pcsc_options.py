"""The [card] section with driver = "pcsc": options are checked with one-line errors."""
from __future__ import annotations

import pytest


from drivers.card.pcsc import PcscCardReader, PcscOptions  # noqa: E402
from kiosk import registry  # noqa: E402
from kiosk.config import DeviceSection, load_dataclass  # noqa: E402
from kiosk.errors import ConfigError  # noqa: E402


def section(**options: object) -> DeviceSection:
    return load_dataclass(DeviceSection, {"driver": "pcsc", **options}, "demo.toml", "card")


def test_pcsc_driver_is_registered_and_builds() -> None:
    reader = registry.build("card", section(reader_pattern="^Virtual PCD 00 00$", apdu_timeout=2.5), "demo.toml")
    assert isinstance(reader, PcscCardReader)
    assert reader.options.apdu_timeout == 2.5 and reader.options.exclusive is True


@pytest.mark.parametrize("options, key", [
    ({"reader_pattern": "(["}, "card.reader_pattern"),
    ({"apdu_timeout": 0}, "card.apdu_timeout"),
    ({"poll_interval": "fast"}, "card.poll_interval"),
    ({"reder_pattern": "x"}, "card.reder_pattern"),
])
def test_bad_options_are_refused_naming_the_key(options: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        registry.build("card", section(**options), "demo.toml")
    assert f"demo.toml: key '{key}'" in str(err.value)


def test_defaults() -> None:
    options = PcscOptions()
    assert options.reader_pattern == "." and options.connect_attempts == 3
