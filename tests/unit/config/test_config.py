"""Config errors: one line naming file, key, expected and found — a test per kind of mistake."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.compose import check_config
from kiosk.config import DEFAULT_KIOSK_CONFIG, KioskConfig, load_kiosk_config
from kiosk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
DEMO = (ROOT / "config" / "demo.toml").read_text()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        check_config(load_kiosk_config(path))
    message = str(info.value)
    assert "\n" not in message and path in message
    return message


def test_shipped_configs_load_and_every_driver_section_checks() -> None:
    for name in ("kiosk.toml", "demo.toml"):
        config = load_kiosk_config(str(ROOT / "config" / name))
        check_config(config)
        assert isinstance(config, KioskConfig)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_kiosk_config(write(tmp_path, DEMO))
    with pytest.raises(AttributeError):
        config.kiosk.device_id = "x"  # type: ignore[misc]


def test_unknown_key(tmp_path: Path) -> None:
    message = refused(tmp_path, DEMO.replace("[payment]\n", "[payment]\ncolour = 'red'\n"))
    assert "key 'payment.colour'" in message and "expected one of the known keys (methods)" in message
    assert "found unknown key 'colour'" in message


def test_unknown_key_in_a_driver_section(tmp_path: Path) -> None:
    message = refused(tmp_path, DEMO.replace('reader_pattern = "^Virtual PCD 00 00$"',
                                             'reader_pattern = "^Virtual PCD 00 00$"\nreader_patern = "x"'))
    assert "key 'card.reader_patern'" in message and "found unknown key 'reader_patern'" in message


def test_wrong_type(tmp_path: Path) -> None:
    message = refused(tmp_path, DEMO.replace("paying = 180.0", 'paying = "three minutes"'))
    assert "key 'timeouts.paying': expected a number >= 10, found string 'three minutes'" in message


def test_wrong_type_in_a_driver_section(tmp_path: Path) -> None:
    message = refused(tmp_path, DEMO.replace("port = 9100", 'port = "9100"'))
    assert "key 'receipt_printer.port'" in message and "found string '9100'" in message


def test_missing_required_key(tmp_path: Path) -> None:
    message = refused(tmp_path, DEMO.replace('device_id = "demo-kiosk-01"\n', ""))
    assert "key 'kiosk.device_id': expected a string (required), found nothing" in message


def test_missing_required_section(tmp_path: Path) -> None:
    text = DEMO.split("[card]")[0] + "[cityhall]" + DEMO.split("[cityhall]")[1]
    message = refused(tmp_path, text)
    assert "key 'card': expected a table (required), found nothing" in message


@pytest.mark.parametrize("old, new, key, expected, found", [
    ("paying = 180.0", "paying = -5", "timeouts.paying", "a number >= 10", "integer -5"),
    ('device_id = "demo-kiosk-01"', 'device_id = "Demo Kiosk!"', "kiosk.device_id", "a string matching",
     "string 'Demo Kiosk!'"),
    ('methods = ["cash", "qr"]', 'methods = ["cash", "bitcoin"]', "payment.methods[1]", "one of 'cash', 'qr'",
     "string 'bitcoin'"),
    ('methods = ["cash", "qr"]', "methods = []", "payment.methods", "at least one payment method",
     "an empty array"),
    ('driver = "pcsc"', 'driver = "nfc-magic"', "card.driver", "expected one of (pcsc)", "'nfc-magic'"),
])
def test_bad_value(tmp_path: Path, old: str, new: str, key: str, expected: str, found: str) -> None:
    assert old in DEMO
    message = refused(tmp_path, DEMO.replace(old, new, 1))
    assert f"key '{key}'" in message and expected in message and found in message


def test_method_without_its_section(tmp_path: Path) -> None:
    text = DEMO.split("[qr]")[0]
    message = refused(tmp_path, text)
    assert "key 'payment.methods': expected a [qr] section for method 'qr', found none" in message


def test_syntax_error(tmp_path: Path) -> None:
    message = refused(tmp_path, DEMO + "\n[kiosk\n")
    assert "key '(syntax)': expected valid TOML" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: key '\(file\)': expected a readable TOML file, "
                                          r"found no such file"):
        load_kiosk_config(str(tmp_path / "nope.toml"))


def test_flag_beats_environment_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write(tmp_path, DEMO.replace("demo-kiosk-01", "from-env-01"))
    monkeypatch.setenv("KIOSK_CONFIG", env_file)
    assert load_kiosk_config().kiosk.device_id == "from-env-01"
    assert load_kiosk_config(str(ROOT / "config" / "demo.toml")).kiosk.device_id == "demo-kiosk-01"
    monkeypatch.delenv("KIOSK_CONFIG")
    monkeypatch.chdir(ROOT)
    assert load_kiosk_config().source == DEFAULT_KIOSK_CONFIG


def test_the_kiosk_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, DEMO.replace("paying = 180.0", "paying = 1"))
    out = subprocess.run([sys.executable, "-m", "kiosk.cli", "check-config", "--config", path],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"kiosk: E101 {path}: key 'timeouts.paying': expected a number >= 10, found integer 1"]
