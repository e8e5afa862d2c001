"""The ONE composition root (this package): it imports the drivers (which register themselves), builds each device
role from config, and wires drivers, the journal, the engine, the screens and the uploader together.
Nothing else in kiosk/ imports drivers/, screens/ or sync/ (tests/unit/test_architecture.py).

    kiosk.compose          building devices and the engine from config (here)
    kiosk.compose.run      `kiosk run`: the appliance process (engine thread + Kivy UI, watchdog)
    kiosk.compose.sync     `kiosk sync`: the journal uploader process
    kiosk.compose.demo     `kiosk demo`: every device emulated, city hall local, then the kiosk
"""
from __future__ import annotations

import importlib
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kiosk import registry
from kiosk.config import KioskConfig, load_kiosk_config
from kiosk.engine import Engine, EnginePorts, ServiceHours, ViewState
from kiosk.journal import Journal
from kiosk.ports import CardReader, CityHallClient, DocumentPrinter, PaymentProvider, ReceiptPrinter, VoucherIssuer

log = logging.getLogger("kiosk.compose")

#: Modules whose import registers the drivers (see kiosk.registry).
DRIVER_MODULES = ("drivers.card.pcsc", "drivers.payment.cash.provider", "drivers.payment.qr", "drivers.printer",
                  "sync.issuance_client")


def import_drivers() -> None:
    for name in DRIVER_MODULES:
        importlib.import_module(name)


@dataclass(frozen=True)
class DriverContext:
    """What a driver factory may use besides its own options."""

    config: KioskConfig
    ledger: Journal
    data_dir: Path
    device_id: str


@dataclass
class Devices:
    card: CardReader
    cityhall: CityHallClient
    payments: dict[str, PaymentProvider]
    document_printer: DocumentPrinter
    receipt_printer: ReceiptPrinter
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            with suppress(Exception):
                close()


def open_journal(config: KioskConfig, *, readonly: bool = False) -> Journal:
    return Journal(config.journal_path, config.kiosk.device_id, readonly=readonly)


def check_config(config: KioskConfig) -> None:
    """Validate every device section against its driver's options (one-line ConfigError on failure)."""
    import_drivers()
    for role in registry.ROLES:
        section = getattr(config, role)
        if section is not None:
            registry.check(role, section, config.source)


def build_devices(config: KioskConfig, journal: Journal, roles: tuple[str, ...] = registry.ROLES) -> Devices:
    import_drivers()
    context = DriverContext(config, journal, config.data_dir, config.kiosk.device_id)
    built: dict[str, Any] = {}
    for role in roles:
        section = getattr(config, role)
        if section is None:
            continue
        built[role] = registry.build(role, section, config.source, context)
    payments = {m: built[m] for m in config.payment.methods if m in built}
    closers = [getattr(d, "close") for d in built.values() if callable(getattr(d, "close", None))]
    return Devices(built.get("card"), built.get("cityhall"), payments, built.get("document_printer"),  # type: ignore[arg-type]
                   built.get("receipt_printer"), closers)  # type: ignore[arg-type]


def build_engine(config: KioskConfig, on_view: Callable[[ViewState], None] | None = None) -> tuple[Engine, Devices]:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    journal = open_journal(config)
    devices = build_devices(config, journal)
    engine = Engine(EnginePorts(devices.card, devices.cityhall, devices.payments, devices.document_printer,
                                devices.receipt_printer, vouchers=build_voucher_issuer(config)), journal, config.timeouts,
                    languages=config.kiosk.languages, payment_methods=config.payment.methods,
                    service_hours=ServiceHours.from_config(config.service_hours), on_view=on_view)
    return engine, devices


def build_voucher_issuer(config: KioskConfig) -> VoucherIssuer:
    """返金引換券 are signed with the device key city hall enrolled (the [cityhall] section's key_path)."""
    from sync.issuance_client import device_identity
    from sync.voucher import KioskVoucherIssuer

    _, options = registry.check("cityhall", config.cityhall, config.source)
    device_id, key = device_identity(options, config.data_dir, config.kiosk.device_id)
    return KioskVoucherIssuer(key, device_id, config.kiosk.voucher_valid_days)


def load(path: str | None = None) -> KioskConfig:
    return load_kiosk_config(path)


def test_print_pages() -> Any:
    """The test page and test receipt `kioskctl test-print` sends (drivers/printer/testprint.py)."""
    from drivers.printer import testprint
    return testprint


def enroll_device_key(key_path: Path) -> str:
    """Create (mode 0600) or load the kiosk's Ed25519 key; the public key line for `cityhall device add`."""
    from sync.device_key import enroll
    return enroll(key_path)
