"""Staff accounts and sessions for the dashboard.

Passwords are stored as scrypt hashes (``scrypt$N$r$p$salt$hash``, base64 parts); a session is a random
token in an HttpOnly, SameSite=Strict cookie, stored only as its SHA-256, with its own CSRF token that
every form posts back. Before login, the login form is protected by a double-submit CSRF cookie.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cityhall.counter.staff import ROLES, StaffError
from cityhall.storage import Database, from_db_time, to_db_time

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SESSION_TTL = timedelta(hours=8)
USERNAME_PATTERN = r"[a-z0-9][a-z0-9._-]{1,39}"
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()))


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"a staff password has at least {MIN_PASSWORD_LENGTH} characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StaffError(f"role {role!r} is not one of {', '.join(ROLES)}")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class StaffSession:
    username: str
    csrf_token: str
    expires_at: datetime
    role: str = "viewer"


class StaffStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, username: str, password: str, now: datetime, display_name: str = "", role: str = "viewer") -> None:
        if not re.fullmatch(USERNAME_PATTERN, username):
            raise StaffError(f"user name {username!r} must match {USERNAME_PATTERN}")
        _check_password_rules(password)
        _check_role(role)
        with self.db.transaction() as tx:
            if tx.one("SELECT username FROM staff_users WHERE username = ?", (username,)):
                raise StaffError(f"staff user {username} already exists")
            tx.execute("INSERT INTO staff_users (username, password_hash, display_name, created_at, role) "
                       "VALUES (?, ?, ?, ?, ?)", (username, hash_password(password), display_name, to_db_time(now), role))

    def list(self) -> list[dict]:
        with self.db.transaction() as tx:
            return tx.execute("SELECT username, display_name, role, created_at, disabled_at FROM staff_users "
                              "ORDER BY username")

    def set_role(self, username: str, role: str) -> None:
        _check_role(role)
        with self.db.transaction() as tx:
            tx.execute("UPDATE staff_users SET role = ? WHERE username = ?", (role, username))
            if not tx.rowcount:
                raise StaffError(f"no staff user {username}")

    def reset_password(self, username: str, password: str) -> None:
        """A new password; the account's open sessions end (whoever knew the old one is logged out)."""
        _check_password_rules(password)
        with self.db.transaction() as tx:
            tx.execute("UPDATE staff_users SET password_hash = ? WHERE username = ?", (hash_password(password), username))
            if not tx.rowcount:
                raise StaffError(f"no staff user {username}")
            tx.execute("DELETE FROM staff_sessions WHERE username = ?", (username,))

    def disable(self, username: str, now: datetime) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE staff_users SET disabled_at = ? WHERE username = ? AND disabled_at IS NULL",
                       (to_db_time(now), username))
            if not tx.rowcount:
                raise StaffError(f"no active staff user {username}")
            tx.execute("DELETE FROM staff_sessions WHERE username = ?", (username,))

    def login(self, username: str, password: str, now: datetime) -> tuple[str, StaffSession] | None:
        """A new session token when the credentials are right, else None (same cost either way)."""
        with self.db.transaction() as tx:
            row = tx.one("SELECT password_hash, disabled_at, role FROM staff_users WHERE username = ?", (username,))
        stored = row["password_hash"] if row else hash_password("not a user", salt=b"0" * 16)
        if not check_password(password, stored) or row is None or row["disabled_at"]:
            return None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        session = StaffSession(username, csrf, now + SESSION_TTL, row["role"])
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM staff_sessions WHERE expires_at < ?", (to_db_time(now),))
            tx.execute("INSERT INTO staff_sessions (token_hash, username, csrf_token, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?)", (_token_hash(token), username, csrf, to_db_time(now),
                                                  to_db_time(session.expires_at)))
        return token, session

    def session(self, token: str | None, now: datetime) -> StaffSession | None:
        if not token or len(token) > 100:
            return None
        with self.db.transaction() as tx:
            row = tx.one("SELECT s.username, s.csrf_token, s.expires_at, u.disabled_at, u.role FROM staff_sessions s "
                         "JOIN staff_users u ON u.username = s.username WHERE s.token_hash = ?", (_token_hash(token),))
        if row is None or row["disabled_at"] or from_db_time(row["expires_at"]) < now:
            return None
        return StaffSession(row["username"], row["csrf_token"], from_db_time(row["expires_at"]), row["role"])

    def logout(self, token: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM staff_sessions WHERE token_hash = ?", (_token_hash(token),))
