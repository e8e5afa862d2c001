"""Drivers register here under a config name; the composition root builds them from config.

    [card]
    driver = "pcsc"            # → the factory registered as ("card", "pcsc")
    reader_pattern = "Virtual" # → checked against that driver's options dataclass

Registration happens when a driver module is imported (kiosk.compose imports drivers/), so the core
never imports a driver.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kiosk.config import DeviceSection, load_dataclass
from kiosk.errors import ConfigError

ROLES = ("card", "cityhall", "document_printer", "receipt_printer", "cash", "qr")


@dataclass(frozen=True)
class DriverEntry:
    role: str
    name: str
    options_cls: type
    factory: Callable[..., Any]  # factory(options, context) -> port implementation


_drivers: dict[tuple[str, str], DriverEntry] = {}


def register(role: str, name: str, options_cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if role not in ROLES:
        raise ValueError(f"unknown device role {role!r}; roles are {', '.join(ROLES)}")

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        _drivers[(role, name)] = DriverEntry(role, name, options_cls, factory)
        return factory

    return deco


def drivers_for(role: str) -> list[str]:
    return sorted(name for r, name in _drivers if r == role)


def check(role: str, section: DeviceSection, source: str) -> tuple[DriverEntry, Any]:
    """Validate the section's options against the driver's dataclass; return the entry and options."""
    entry = _drivers.get((role, section.driver))
    if entry is None:
        known = ", ".join(drivers_for(role)) or "none registered"
        raise ConfigError(f"{source}: key '{role}.driver': expected one of ({known}), found {section.driver!r}",
                          file=source, key=f"{role}.driver")
    return entry, load_dataclass(entry.options_cls, dict(section.options), source, prefix=role)


def build(role: str, section: DeviceSection, source: str, context: Any = None) -> Any:
    """Validate the section's options and build the driver."""
    entry, options = check(role, section, source)
    return entry.factory(options, context)
