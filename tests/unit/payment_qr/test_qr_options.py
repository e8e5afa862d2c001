"""[qr] options for the paypay driver: validated with one-line errors, built through the registry with
the ledger from the composition root's context, the secret read from a file under the data dir."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.payment.qr import QrPayment
from kiosk.config import DeviceSection, load_dataclass
from kiosk.errors import ConfigError, PaymentProviderUnreachable
from kiosk.registry import build


@dataclass
class Context:
    ledger: object
    data_dir: Path


class NullLedger:
    def money_in(self, key: str, amount: int, source: str, ref: str = "") -> None: ...
    def money_out(self, key: str, amount: int, reason: str, ref: str = "") -> None: ...
    def alarm(self, key: str, code: int, detail: str, amount_at_risk: int = 0) -> None: ...


def section(**options: object) -> DeviceSection:
    return load_dataclass(DeviceSection, {"driver": "paypay", **options}, "kiosk.toml", prefix="qr")


def test_registry_builds_the_driver_with_a_secret_file_under_the_data_dir() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="qr-opt-"))
    (data_dir / "paypay.secret").write_text("s3cret\n")
    driver = build("qr", section(base_url="https://api.paypay.ne.jp", api_key="k", api_secret_file="paypay.secret"),
                   "kiosk.toml", Context(NullLedger(), data_dir))
    assert isinstance(driver, QrPayment) and driver.method == "qr"
    assert driver._secret == "s3cret"
    driver.close()


def test_missing_secret_file_says_where_it_looked() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="qr-opt-"))
    with pytest.raises(PaymentProviderUnreachable, match="paypay.secret"):
        build("qr", section(base_url="https://api.paypay.ne.jp", api_key="k", api_secret_file="paypay.secret"),
              "kiosk.toml", Context(NullLedger(), data_dir))


@pytest.mark.parametrize("options, message", [
    (dict(base_url="https://x.example", api_key="k"), "key 'qr.api_secret': expected exactly one of"),
    (dict(base_url="https://x.example", api_key="k", api_secret="a", api_secret_file="b"), "found both"),
    (dict(base_url="http://pay.example.com", api_key="k", api_secret="a"), "key 'qr.base_url': expected an https"),
    (dict(base_url="https://x.example", api_key="k", api_secret="a", read_timeout=0), "key 'qr.read_timeout'"),
    (dict(base_url="https://x.example", api_key="k", api_secret="a", attempts=0), "key 'qr.attempts'"),
    (dict(base_url="https://x.example", api_secret="a"), "key 'qr.api_key'"),
    (dict(base_url="https://x.example", api_key="k", api_secret="a", retries=2), "unknown key 'retries'"),
])
def test_bad_options_are_refused_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        build("qr", section(**options), "kiosk.toml", Context(NullLedger(), Path("/nonexistent")))
    assert "\n" not in str(refused.value) and "kiosk.toml" in str(refused.value)


def test_plain_http_is_allowed_only_to_a_loopback_emulator() -> None:
    for url in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        driver = build("qr", section(base_url=url, api_key="k", api_secret="s"), "kiosk.toml",
                       Context(NullLedger(), Path("/nonexistent")))
        driver.close()


def test_factory_without_a_ledger_is_a_wiring_error() -> None:
    with pytest.raises(TypeError, match="context.ledger"):
        build("qr", section(base_url="https://x.example", api_key="k", api_secret="s"), "kiosk.toml", object())
