"""The resident-registry adapter: how city hall finds the resident behind a card certificate.

Real cities plug their 住民基本台帳 system in behind ``ResidentRegistry``; the demo and the tests use
``JsonRegistry`` over config/demo-registry.json, an object keyed by the card certificate's CN whose
values are resident records (see /work/prompts shared interface: resident_id, status, name, kana,
birth_date, sex, address, moved_in, household_head, relationship, honseki, household[], tax{year: ...}).
No individual number (個人番号) exists anywhere in these records.
"""
from __future__ import annotations

import json
import os
import threading
import types
from pathlib import Path
from typing import Any, Mapping, Protocol

RESIDENT_STATUSES = ("active", "moved_out", "deceased", "protected")


class RegistryUnavailable(Exception):
    """The registry could not be read."""


class ResidentRegistry(Protocol):
    def find_by_card(self, card_id: str) -> Mapping[str, Any] | None:
        """The resident whose user-authentication certificate has CN ``card_id``, or None."""

    def find_by_resident_id(self, resident_id: str) -> Mapping[str, Any] | None: ...


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def validate_record(card_id: str, record: Mapping[str, Any]) -> str | None:
    """A problem with one record, or None."""
    for key in ("resident_id", "status", "name", "kana", "birth_date", "sex", "address", "household_head",
                "relationship", "honseki"):
        if not isinstance(record.get(key), str) or not record.get(key):
            return f"{card_id}: '{key}' must be a non-empty string"
    if record["status"] not in RESIDENT_STATUSES:
        return f"{card_id}: status must be one of {', '.join(RESIDENT_STATUSES)}"
    if not isinstance(record.get("household", []), (list, tuple)):
        return f"{card_id}: 'household' must be an array"
    tax = record.get("tax", {})
    if not isinstance(tax, Mapping):
        return f"{card_id}: 'tax' must be an object keyed by fiscal year"
    for year, entry in tax.items():
        if not str(year).isdigit():
            return f"{card_id}: tax year {year!r} is not a year"
        for field in ("income", "taxable_income", "municipal_tax", "prefectural_tax"):
            if not isinstance(entry.get(field), int) or entry[field] < 0:
                return f"{card_id}: tax.{year}.{field} must be a non-negative integer (yen)"
    return None


class JsonRegistry:
    """The demo registry file, re-read when it changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_card: Mapping[str, Mapping[str, Any]] = {}
        self._by_resident: Mapping[str, Mapping[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise RegistryUnavailable(f"registry {self.path} cannot be read: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RegistryUnavailable(f"registry {self.path} is not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise RegistryUnavailable(f"registry {self.path} must be an object keyed by card CN")
            by_card: dict[str, Mapping[str, Any]] = {}
            by_resident: dict[str, Mapping[str, Any]] = {}
            for card_id, record in data.items():
                problem = validate_record(card_id, record) if isinstance(record, dict) else f"{card_id}: not an object"
                if problem:
                    raise RegistryUnavailable(f"registry {self.path}: {problem}")
                frozen = _freeze(record)
                by_card[card_id] = frozen
                by_resident[record["resident_id"]] = frozen
            self._by_card, self._by_resident, self._stamp = by_card, by_resident, stamp

    def find_by_card(self, card_id: str) -> Mapping[str, Any] | None:
        self._load()
        return self._by_card.get(card_id)

    def find_by_resident_id(self, resident_id: str) -> Mapping[str, Any] | None:
        self._load()
        return self._by_resident.get(resident_id)

    def card_ids(self) -> list[str]:
        self._load()
        return sorted(self._by_card)


def open_registry(adapter: str, path: Path) -> ResidentRegistry:
    if adapter == "json":
        return JsonRegistry(path)
    raise RegistryUnavailable(f"unknown registry adapter {adapter!r}")
