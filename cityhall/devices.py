"""Kiosk devices known to city hall: their Ed25519 public keys and whether they may still talk to us,
and the replay guard on their request nonces."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cityhall.storage import Database, from_db_time, to_db_time
from sync.device_key import parse_public_key, public_key_text
from sync.signing import DEVICE_ID_PATTERN


class DeviceRegistryError(Exception):
    """A device operation was refused (duplicate id, unknown device, bad key)."""


@dataclass(frozen=True)
class Device:
    device_id: str
    public_key: str
    label: str
    location: str
    status: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def key(self) -> Ed25519PublicKey:
        return parse_public_key(self.public_key)


def _device(row: dict) -> Device:
    return Device(row["device_id"], row["public_key"], row["label"], row["location"], row["status"],
                  from_db_time(row["created_at"]), from_db_time(row["revoked_at"]) if row["revoked_at"] else None)


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, device_id: str, public_key: str, now: datetime, *, label: str = "", location: str = "") -> Device:
        if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
            raise DeviceRegistryError(f"device id {device_id!r} must match {DEVICE_ID_PATTERN} "
                                      "(lower-case letters, digits, '-')")
        try:
            normalised = public_key_text(parse_public_key(public_key))
        except ValueError as exc:
            raise DeviceRegistryError(str(exc)) from None
        with self.db.transaction() as tx:
            existing = tx.one("SELECT device_id, status FROM devices WHERE device_id = ?", (device_id,))
            if existing:
                raise DeviceRegistryError(f"device {device_id} is already registered ({existing['status']}); "
                                          "a revoked id is never reused — pick a new id")
            tx.execute("INSERT INTO devices (device_id, public_key, label, location, status, created_at) "
                       "VALUES (?, ?, ?, ?, 'active', ?)", (device_id, normalised, label, location, to_db_time(now)))
        device = self.get(device_id)
        assert device is not None
        return device

    def get(self, device_id: str) -> Device | None:
        with self.db.transaction() as tx:
            row = tx.one("SELECT * FROM devices WHERE device_id = ?", (device_id,))
        return _device(row) if row else None

    def list(self) -> list[Device]:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT * FROM devices ORDER BY device_id")
        return [_device(r) for r in rows]

    def revoke(self, device_id: str, now: datetime) -> Device:
        with self.db.transaction() as tx:
            tx.execute("UPDATE devices SET status = 'revoked', revoked_at = ? WHERE device_id = ? AND status = 'active'",
                       (to_db_time(now), device_id))
            changed = tx.rowcount
            row = tx.one("SELECT * FROM devices WHERE device_id = ?", (device_id,))
        if row is None:
            raise DeviceRegistryError(f"no device {device_id} is registered (see `cityhall device list`)")
        if not changed:
            raise DeviceRegistryError(f"device {device_id} was already revoked")
        return _device(row)

    def remember_nonce(self, device_id: str, nonce: str, now: datetime, keep: timedelta) -> bool:
        """Record a request nonce; False when this device used it before (a replay). Nonces older than
        ``keep`` are forgotten: requests that old fail the timestamp check anyway."""
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO request_nonces (device_id, nonce, seen_at) VALUES (?, ?, ?) "
                       "ON CONFLICT DO NOTHING", (device_id, nonce, to_db_time(now)))
            fresh = tx.rowcount == 1
            if fresh and nonce[:2] == "00":  # prune now and then (1 request in 256), not on every request
                tx.execute("DELETE FROM request_nonces WHERE seen_at < ?", (to_db_time(now - keep),))
        return fresh
