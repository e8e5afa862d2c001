"""Refund vouchers (返金引換券) at the counter: a clerk scans or types the code the kiosk printed, sees
the amount, the kiosk, when it was issued and why, and pays it out — exactly once.

The code is checked with sync.voucher.verify (the kiosk signed it with its device key, which city hall
knows from enrollment): a forged or altered code, an unknown kiosk, a code signed after its kiosk was
revoked, or an expired voucher is refused with its reason (an expired voucher's money is still owed:
the clerk sends the resident to the accounting section, docs/counter.md). The voucher's id is its
transaction id: a kiosk issues at most one voucher per transaction. "Exactly once" is the database's job: ``voucher_redemptions`` has the voucher
id as its primary key, so of two clerks clicking at the same instant one INSERT succeeds and the other
gets a conflict (on SQLite the write lock serialises them; on PostgreSQL the unique index does), and
the second clerk is told who redeemed it and when.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cityhall.counter import staff
from cityhall.counter.projection import JST
from cityhall.devices import DeviceStore
from cityhall.storage import Database, from_db_time, to_db_time
from sync import voucher as voucher_code


@dataclass
class VoucherCheck:
    ok: bool
    reason: str  # "" when ok; else forged, expired, unknown_kiosk, revoked_kiosk, already_redeemed, malformed
    voucher_id: str = ""
    device_id: str = ""
    location: str = ""
    amount_yen: int = 0
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    why: str = ""  # what the kiosk's journal says led to the voucher: "code.<n>" or "outcome.<outcome>"
    in_journal: bool = False
    detail: str = ""  # sync.voucher's sentence, for logs
    redeemed_by: str | None = None
    redeemed_at: datetime | None = None


class VoucherDesk:
    def __init__(self, db: Database, devices: DeviceStore) -> None:
        self.db = db
        self.devices = devices

    def _key(self, device_id: str) -> Any:
        device = self.devices.get(device_id)
        return device.key() if device is not None else None

    def check(self, code: str, now: datetime) -> VoucherCheck:
        result = voucher_code.verify(code, self._key, now)
        voucher = result.voucher
        if result.status is voucher_code.VoucherStatus.MALFORMED or voucher is None:
            return VoucherCheck(False, "malformed", detail=result.detail)
        device = self.devices.get(voucher.device_id)
        base: dict[str, Any] = dict(voucher_id=voucher.txn_id, device_id=voucher.device_id,
                                    amount_yen=voucher.amount_yen, issued_at=voucher.issued_at,
                                    expires_at=voucher.expires_at, detail=result.detail,
                                    location=device.location if device else "")
        if device is None:
            return VoucherCheck(False, "unknown_kiosk", **base)
        if result.status is voucher_code.VoucherStatus.FORGED:
            return VoucherCheck(False, "forged", **base)
        if not device.active and device.revoked_at is not None and voucher.issued_at > device.revoked_at:
            return VoucherCheck(False, "revoked_kiosk", **base)  # signed after the kiosk's key was withdrawn
        why, in_journal = self._why(voucher.device_id, voucher.txn_id)
        with self.db.transaction() as tx:
            done = tx.one("SELECT redeemed_by, redeemed_at FROM voucher_redemptions WHERE voucher_id = ?",
                          (voucher.txn_id,))
        if done:
            return VoucherCheck(False, "already_redeemed", **base, why=why, in_journal=in_journal,
                                redeemed_by=done["redeemed_by"], redeemed_at=from_db_time(done["redeemed_at"]))
        if result.status is voucher_code.VoucherStatus.EXPIRED:
            return VoucherCheck(False, "expired", **base, why=why, in_journal=in_journal)
        return VoucherCheck(True, "", **base, why=why, in_journal=in_journal)

    def _why(self, device_id: str, voucher_id: str) -> tuple[str, bool]:
        """The transaction's story from the journal: the alarm code before the voucher, else its outcome."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT kind, body FROM journal_events WHERE device_id = ? AND txn_id = ? ORDER BY seq",
                              (device_id, voucher_id))
        why, seen = "", False
        for row in rows:
            body = json.loads(row["body"])
            if row["kind"] == "voucher.issued":
                seen = True
            elif row["kind"] == "alarm" and body.get("code"):
                why = f"code.{int(body['code'])}"
            elif row["kind"] == "txn.closed" and not why:
                why = f"outcome.{body.get('outcome', '')}"
        return why, seen

    def redeem(self, code: str, username: str, now: datetime) -> VoucherCheck:
        check = self.check(code, now)
        if not check.ok:
            staff.record_now(self.db, now, username, "redeem_voucher.refused", check.voucher_id or code[:40],
                             reason=check.reason)
            return check
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO voucher_redemptions (voucher_id, code, device_id, amount_yen, issued_at, reason, "
                       "redeemed_by, redeemed_at, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (voucher_id) DO NOTHING",
                       (check.voucher_id, code, check.device_id, check.amount_yen, to_db_time(check.issued_at or now),
                        check.why, username, to_db_time(now), now.astimezone(JST).date().isoformat()))
            won = tx.rowcount == 1
            staff.record(tx, now, username, "redeem_voucher" if won else "redeem_voucher.refused", check.voucher_id,
                         amount_yen=check.amount_yen, device_id=check.device_id,
                         **({} if won else {"reason": "already_redeemed"}))
        if not won:
            return self.check(code, now)
        check.redeemed_by, check.redeemed_at = username, now
        return check

    def recent(self, day: date) -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT * FROM voucher_redemptions WHERE day = ? ORDER BY redeemed_at DESC",
                              (day.isoformat(),))
        return [{**r, "redeemed_at": from_db_time(r["redeemed_at"])} for r in rows]
