"""Staff roles and the append-only audit log.

    viewer  sees every page
    clerk   also redeems vouchers, acknowledges alarms, signs a day off and enters corrections
    admin   also manages staff accounts and devices (revocation)

Every staff action — done or refused — is one row in ``staff_audit``; the database refuses to update or
delete a row (triggers on both back ends), so the log can only grow.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cityhall.storage import Database, Transaction, from_db_time, to_db_time

ROLES = ("viewer", "clerk", "admin")
CLERK_ACTIONS = frozenset({"redeem_voucher", "acknowledge_alarm", "sign_off_day", "correct_day"})
ADMIN_ACTIONS = frozenset({"manage_staff", "revoke_device"})
ROLE_ACTIONS: dict[str, frozenset[str]] = {"viewer": frozenset(), "clerk": CLERK_ACTIONS,
                                           "admin": CLERK_ACTIONS | ADMIN_ACTIONS}


class StaffError(Exception):
    """A staff-account operation was refused (bad name, short password, duplicate, unknown role)."""


def may(role: str, action: str) -> bool:
    return action in ROLE_ACTIONS.get(role, frozenset())


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    username: str
    action: str
    target: str
    detail: dict[str, Any]


def record(tx: Transaction, now: datetime, username: str, action: str, target: str = "",
           **detail: Any) -> None:
    """One audit row, in the caller's transaction (so the action and its record commit together)."""
    audit_id = to_db_time(now) + "-" + secrets.token_hex(4)
    tx.execute("INSERT INTO staff_audit (audit_id, at, username, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
               (audit_id, to_db_time(now), username, action, target[:200],
                json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)[:2000]))


def record_now(db: Database, now: datetime, username: str, action: str, target: str = "", **detail: Any) -> None:
    with db.transaction() as tx:
        record(tx, now, username, action, target, **detail)


def entries(db: Database, limit: int = 500, username: str | None = None) -> list[AuditEntry]:
    sql = "SELECT * FROM staff_audit" + (" WHERE username = ?" if username else "") + " ORDER BY audit_id DESC LIMIT ?"
    with db.transaction() as tx:
        rows = tx.execute(sql, (username, limit) if username else (limit,))
    return [AuditEntry(from_db_time(r["at"]), r["username"], r["action"], r["target"], json.loads(r["detail"]))
            for r in rows]
