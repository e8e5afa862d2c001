"""Typed configuration: TOML files loaded into frozen dataclasses, validated at start.

A bad file is refused with ONE line naming the file, the key, what was expected and what was found:

    config/kiosk.toml: key 'timeouts.pin_entry': expected a number > 0, found -5

Each field documents itself (``doc`` metadata, repeated as comments in config/kiosk.toml). Device
sections (``[card]``, ``[cash]``, ``[qr]``, ``[document_printer]``, ``[receipt_printer]``,
``[cityhall]``) name a ``driver``; the remaining keys of the section are that driver's options, checked
against the options dataclass the driver registered (see kiosk.registry) when the composition root
builds it, with the same one-line errors.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

from kiosk.errors import ConfigError

T = TypeVar("T")

DEFAULT_KIOSK_CONFIG = "config/kiosk.toml"
DEFAULT_CITYHALL_CONFIG = "config/cityhall.toml"


def setting(default: Any = dataclasses.MISSING, *, doc: str, min: float | None = None,
            max: float | None = None, pattern: str | None = None) -> Any:
    """A documented config field. ``min``/``max`` bound numbers, ``pattern`` is a full-match regex."""
    meta = {"doc": doc, "min": min, "max": max, "pattern": pattern}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples / mappings for defaults of frozen config")
    return field(default=default, metadata=meta)


# --- the generic loader ------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return f"array of {len(value)}"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "a boolean"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return f"an array of {_type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(inner[0])
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (dict, Mapping) or tp is Mapping:
        return "a table"
    return str(tp)


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, found: str) -> typing.NoReturn:
        raise ConfigError(f"{self.source}: key '{key}': expected {expected}, found {found}",
                          file=self.source, key=key, expected=expected, found=found)

    def value(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        if origin in (types.UnionType, typing.Union):
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            return self.value(inner[0], raw, key, meta)
        if dataclasses.is_dataclass(tp):
            if not isinstance(raw, dict):
                self.fail(key, "a table", _describe(raw))
            return self.dataclass(tp, raw, key)
        if origin is Literal:
            choices = typing.get_args(tp)
            if raw not in choices or isinstance(raw, bool) != isinstance(choices[0], bool):
                self.fail(key, _type_name(tp), _describe(raw))
            return raw
        if origin in (tuple, list):
            if not isinstance(raw, list):
                self.fail(key, _type_name(tp), _describe(raw))
            item_tp = typing.get_args(tp)[0]
            return tuple(self.value(item_tp, item, f"{key}[{i}]", meta) for i, item in enumerate(raw))
        if origin in (dict, Mapping) or tp is Mapping:
            if not isinstance(raw, dict):
                self.fail(key, "a table", _describe(raw))
            args = typing.get_args(tp)
            value_tp = args[1] if args else Any
            if value_tp is Any:
                return types.MappingProxyType(dict(raw))
            return types.MappingProxyType({k: self.value(value_tp, v, f"{key}.{k}", meta) for k, v in raw.items()})
        if tp is bool:
            if not isinstance(raw, bool):
                self.fail(key, "a boolean", _describe(raw))
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                self.fail(key, self._bounded("an integer", meta), _describe(raw))
            self.check_bounds(raw, key, "an integer", meta)
            return raw
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.fail(key, self._bounded("a number", meta), _describe(raw))
            self.check_bounds(raw, key, "a number", meta)
            return float(raw)
        if tp is str:
            if not isinstance(raw, str):
                self.fail(key, "a string", _describe(raw))
            pattern = meta.get("pattern")
            if pattern and not re.fullmatch(pattern, raw):
                self.fail(key, f"a string matching {pattern}", _describe(raw))
            return raw
        if tp is Any:
            return raw
        raise TypeError(f"config type {tp!r} of {key} is not supported")

    @staticmethod
    def _bounded(name: str, meta: Mapping[str, Any]) -> str:
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and hi is not None:
            return f"{name} from {lo} to {hi}"
        if lo is not None:
            return f"{name} >= {lo}" if lo != 0 or name != "a number" else f"{name} >= 0"
        if hi is not None:
            return f"{name} <= {hi}"
        return name

    def check_bounds(self, raw: float, key: str, name: str, meta: Mapping[str, Any]) -> None:
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and raw < lo) or (hi is not None and raw > hi):
            self.fail(key, self._bounded(name, meta), _describe(raw))

    def dataclass(self, cls: type[T], raw: Mapping[str, Any], prefix: str) -> T:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        extra_key = getattr(cls, "__config_extra__", None)  # collects unknown keys (driver options)
        for key in raw:
            if key not in fields and extra_key is None:
                known = ", ".join(sorted(fields))
                self.fail(_join(prefix, key), f"one of the known keys ({known})", f"unknown key '{key}'")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            key = _join(prefix, name)
            if name == extra_key:
                kwargs[name] = types.MappingProxyType({k: v for k, v in raw.items() if k not in fields})
                continue
            if name in raw:
                kwargs[name] = self.value(hints[name], raw[name], key, f.metadata)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(key, f"{_type_name(hints[name])} (required)", "nothing")
        obj = cls(**kwargs)
        check = getattr(obj, "__config_check__", None)
        if check is not None:
            problem = check()
            if problem:
                sub_key, expected, found = problem
                self.fail(_join(prefix, sub_key), expected, found)
        return obj


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def load_dataclass(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build frozen dataclass ``cls`` from parsed TOML ``data``; ConfigError names file/key/expected/found."""
    return _Loader(source).dataclass(cls, data, prefix)


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: key '(file)': expected a readable TOML file, found no such file",
                          file=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: key '(syntax)': expected valid TOML, found {exc}", file=str(p)) from None


def resolve_path(explicit: str | None, env_var: str, default: str) -> str:
    """``--config`` beats the environment variable, which beats the default file."""
    return explicit or os.environ.get(env_var) or default


# --- the kiosk's own configuration ------------------------------------------------------------------

LANGUAGE = r"[a-z]{2}(_[A-Z]{2})?"


@dataclass(frozen=True)
class KioskSection:
    device_id: str = setting(doc="This kiosk's id at city hall (as registered with `cityhall device add`).",
                             pattern=r"[a-z0-9][a-z0-9-]{2,40}")
    city_name: str = setting(doc="City name printed on receipts.")
    location: str = setting(doc="Where the kiosk stands, printed on receipts and shown on the fleet page.")
    inquiry_phone: str = setting(doc="Phone number for questions, printed on receipts and error screens.")
    data_dir: str = setting("/var/lib/madoguchi", doc="Journal, keys and state; must survive reboots.")
    voucher_valid_days: int = setting(90, doc="Days a 返金引換券 can be redeemed at the counter after it is printed "
                                              "(the city's choice; printed on it).", min=1, max=3650)
    voucher_counter: str = setting("市役所の窓口", doc="Where a 返金引換券 is redeemed, printed on it.")
    languages: tuple[str, ...] = setting(("ja", "en", "zh", "ko", "vi", "pt"),
                                         doc="Languages offered on screen, first is the default.",
                                         pattern=LANGUAGE)
    technician_credential_hash: str = setting(
        "", doc="scrypt hash of the technician-mode credential (`kioskctl technician-password`); "
                "empty disables technician mode on screen.")
    screen_rotation: int = setting(0, doc="Turn the picture clockwise by 0, 90, 180 or 270 degrees (a panel mounted "
                                          "on its side or upside down); the kiosk session's compositor turns "
                                          "the touches with it.")

    def __config_check__(self) -> tuple[str, str, str] | None:
        if not self.languages:
            return ("languages", "at least one language", "an empty array")
        if self.screen_rotation not in (0, 90, 180, 270):
            return ("screen_rotation", "0, 90, 180 or 270", str(self.screen_rotation))
        return None


@dataclass(frozen=True)
class TimeoutsSection:
    """Seconds each step may last before the kiosk moves on (see kiosk.engine.states)."""

    card_reading: float = setting(15.0, doc="Reading the certificate off the card.", min=1)
    pin_entry: float = setting(60.0, doc="Resident typing the PIN.", min=5)
    authenticating: float = setting(20.0, doc="Card signature + city hall check.", min=1)
    remove_card: float = setting(60.0, doc="Waiting for the card to be taken off the reader.", min=5)
    choosing: float = setting(90.0, doc="Resident choosing certificates.", min=5)
    confirming: float = setting(60.0, doc="Resident confirming the fee.", min=5)
    paying: float = setting(180.0, doc="Resident paying (coins, notes or QR).", min=10)
    issuing: float = setting(30.0, doc="City hall issuing the documents.", min=1)
    printing: float = setting(180.0, doc="All documents printing.", min=10)
    receipt: float = setting(30.0, doc="Receipt printing.", min=1)
    done: float = setting(20.0, doc="'Take your documents' screen before returning to idle.", min=1)
    error: float = setting(30.0, doc="An error screen before returning to idle.", min=1)
    inactivity_warning: float = setting(20.0, doc="Seconds before a step's timeout when 'Are you still "
                                                  "there?' is shown.", min=0)


@dataclass(frozen=True)
class PaymentSection:
    methods: tuple[Literal["cash", "qr"], ...] = setting(("cash", "qr"), doc="Payment methods offered.")

    def __config_check__(self) -> tuple[str, str, str] | None:
        if not self.methods:
            return ("methods", "at least one payment method", "an empty array")
        return None


@dataclass(frozen=True)
class ServiceHoursSection:
    opens: str = setting("06:30", doc="Opening time, JST, HH:MM.", pattern=r"([01]\d|2[0-3]):[0-5]\d")
    closes: str = setting("23:00", doc="Closing time, JST, HH:MM.", pattern=r"([01]\d|2[0-3]):[0-5]\d|24:00")
    closed_dates: tuple[str, ...] = setting(("12-29", "12-30", "12-31", "01-01", "01-02", "01-03"),
                                            doc="Closed every year on these MM-DD dates.",
                                            pattern=r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
    maintenance_days: tuple[str, ...] = setting((), doc="Closed on these YYYY-MM-DD dates.",
                                                pattern=r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


@dataclass(frozen=True)
class DeviceSection:
    """A device role: which registered driver serves it, and that driver's own options."""

    __config_extra__ = "options"
    driver: str = setting(doc="Name of the registered driver serving this role.")
    options: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class SyncSection:
    batch_max_events: int = setting(500, doc="Most events per upload batch.", min=1, max=10000)
    batch_max_bytes: int = setting(512 * 1024, doc="Most bytes per upload batch.", min=1024)
    backoff_base: float = setting(1.0, doc="First retry delay, seconds (full-jitter exponential).", min=0.01)
    backoff_cap: float = setting(300.0, doc="Longest retry delay, seconds.", min=0.1)
    request_timeout: float = setting(10.0, doc="Seconds per upload request.", min=0.1)
    interval: float = setting(5.0, doc="Seconds between checks for new events when idle.", min=0.05)


@dataclass(frozen=True)
class KioskConfig:
    kiosk: KioskSection
    card: DeviceSection
    cityhall: DeviceSection
    document_printer: DeviceSection
    receipt_printer: DeviceSection
    cash: DeviceSection | None = None
    qr: DeviceSection | None = None
    payment: PaymentSection = PaymentSection()
    timeouts: TimeoutsSection = TimeoutsSection()
    service_hours: ServiceHoursSection = ServiceHoursSection()
    sync: SyncSection = SyncSection()
    source: str = field(default="", init=False, metadata={"doc": "the file this was loaded from"})

    def __config_check__(self) -> tuple[str, str, str] | None:
        for method in self.payment.methods:
            if getattr(self, method) is None:
                return ("payment.methods", f"a [{method}] section for method '{method}'", "none")
        return None

    @property
    def data_dir(self) -> Path:
        base = Path(self.kiosk.data_dir)
        if not base.is_absolute() and self.source:
            base = Path(self.source).resolve().parent.parent / base
        return base

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"


def load_kiosk_config(path: str | None = None) -> KioskConfig:
    """Load from ``path``, else $KIOSK_CONFIG, else config/kiosk.toml."""
    source = resolve_path(path, "KIOSK_CONFIG", DEFAULT_KIOSK_CONFIG)
    cfg = load_dataclass(KioskConfig, read_toml(source), source)
    object.__setattr__(cfg, "source", source)  # frozen, but where it came from is known only now
    return cfg
