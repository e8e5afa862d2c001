"""Reader profiles (drivers/card/readers.py): USB ids, names and limits from the CCID driver's reader list
(docs/card-readers.md), and the ATR bit that says a card takes extended length."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from drivers.card import readers
from kiosk import registry
from kiosk.config import DeviceSection, load_dataclass
from kiosk.errors import ConfigError


def build_reader(**options: object):
    return registry.build("card", load_dataclass(DeviceSection, {"driver": "pcsc", **options}, "kiosk.toml", "card"),
                          "kiosk.toml")


def fake_sysfs(*ids: tuple[int, int]) -> str:
    root = Path(tempfile.mkdtemp(prefix="sysfs-"))
    for n, (vendor, product) in enumerate(ids):
        device = root / f"1-{n}"
        device.mkdir()
        (device / "idVendor").write_text(f"{vendor:04x}\n")
        (device / "idProduct").write_text(f"{product:04x}\n")
    (root / "usb1").mkdir()  # a hub entry without ids is skipped
    return str(root)


def test_rc_s380_is_recognised_by_usb_id_and_refused_with_what_to_do() -> None:
    """RC-S380 (054c:06c1 / 06c3) is not CCID: pcscd never lists it, so only sysfs can tell it is there."""
    root = fake_sysfs((0x054C, 0x06C1), (0x1D6B, 0x0002))
    [unusable] = readers.unsupported_attached(root)
    assert unusable.key == "sony-rc-s380"
    assert "not a CCID reader" in unusable.describe() and "RC-S300" in unusable.describe()


@pytest.mark.parametrize("ids, key", [((0x054C, 0x0DC9), "sony-rc-s300"), ((0x054C, 0x0DC8), "sony-rc-s300"),
                                      ((0x072F, 0x223E), "acs-acr1252u"), ((0x072F, 0xB100), "acs-acr39u"),
                                      ((0x04E6, 0x5116), "identiv-scr3310")])
def test_usb_ids_from_the_ccid_reader_list(ids: tuple[int, int], key: str) -> None:
    assert readers.by_usb_id(*ids).key == key
    assert readers.unsupported_attached(fake_sysfs(ids)) == []


@pytest.mark.parametrize("name, key", [
    ("SONY FeliCa Port/PaSoRi 4.0 00 00", "sony-rc-s300"),
    ("SONY FeliCa RC-S300/P 00 00", "sony-rc-s300"),
    ("ACS ACR1252 1S CL Reader [ACR1252 1S CL Reader(1)] 00 00", "acs-acr1252u"),
    ("ACS ACR39U ICC Reader 00 00", "acs-acr39u"),
    ("SCM Microsystems Inc. SCR 3310 [CCID Interface] 00 00", "identiv-scr3310"),
    ("Virtual PCD 00 00", "vpcd"),
    ("Some Other Reader 00 00", "generic"),
])
def test_profile_by_pcsc_reader_name(name: str, key: str) -> None:
    assert readers.profile_for("auto", name).key == key


def test_limits_give_the_read_chunk() -> None:
    """522-byte CCID messages carry 512-byte APDUs: 510 data bytes + SW per extended read; TPDU readers
    and cards without extended length read 256 bytes at a time."""
    rc_s300 = readers.BY_KEY["sony-rc-s300"]
    assert rc_s300.max_apdu == 512 and rc_s300.read_chunk(card_extended=True) == 510
    assert rc_s300.read_chunk(card_extended=False) == 256
    assert readers.BY_KEY["acs-acr39u"].read_chunk(card_extended=True) == 256
    assert readers.BY_KEY["identiv-scr3310"].read_chunk(card_extended=True) == 251  # 263-byte messages
    assert readers.BY_KEY["vpcd"].read_chunk(card_extended=True) == readers.EXTENDED_LE_MAX


@pytest.mark.parametrize("atr, extended", [
    ("3BDA13FF8131FB468012392F31C173C601C03B", True),   # JPKI (02): card capabilities 73 C6 01 C0
    ("3BC5FF8131FB458073C6010000", False),               # JPKI (03): third byte 00
    ("3BE000FF8131FE4514", False),                       # legacy: no historical bytes
    ("3B88800100000005E0B381A1007F", False),             # contactless, no card capabilities object
])
def test_card_capabilities_in_the_atr(atr: str, extended: bool) -> None:
    """jpki-card.md §1.1: the (02) ATR advertises extended Lc/Le in its compact-TLV card capabilities."""
    assert readers.card_advertises_extended_length(bytes.fromhex(atr)) is extended


def test_config_refuses_an_unknown_or_unusable_profile() -> None:
    with pytest.raises(ConfigError, match="card.reader_profile"):
        build_reader(reader_profile="sony-rc-s999")
    with pytest.raises(ConfigError, match="not a CCID reader"):
        build_reader(reader_profile="sony-rc-s380")
    assert build_reader(reader_profile="sony-rc-s300").profile("Virtual PCD 00 00").key == "sony-rc-s300"
    assert build_reader().profile("Virtual PCD 00 00").key == "vpcd"
