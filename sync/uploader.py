"""The journal uploader (`kiosk sync`, its own process): sends every journal event to city hall exactly
once in effect — at-least-once delivery, city hall dedupes on (device, seq) — in signed batches.

Where it starts: city hall's answer is the truth. At start and after any refusal it asks city hall
(heartbeat) for the highest sequence held and sends from the next one; a 409 ``sequence_gap`` names
the sequence to send from. So a restart, a SIGKILL in the middle of a batch, a lost response after
city hall committed, or a city hall restored from backup all end in the same place.

Where the acknowledgement is kept: in the journal's own meta (``Journal.set_acked_seq``) through a
second, writable Journal that is used for nothing else. One tiny IMMEDIATE transaction per
acknowledged batch is all it writes; in exchange every reader of the journal (kioskctl's status, the
"refuse re-imaging while the outbox is not empty" check) sees the unsynced count from the journal
itself, with no second file that could disagree with it. Events are read through a read-only Journal
(WAL lets it read while the kiosk writes).

Backlog size and age, the last success and the last error go to a small JSON status file (atomic
replace) that kioskctl reads, and to the log.

Retries: every request has a connect and a read timeout; failures back off with full jitter,
``sleep = uniform(0, min(cap, base · 2^attempt))``, and a ``Retry-After`` from city hall is honoured.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.errors import JournalError
from kiosk.journal import Event, Journal
from sync.signing import new_nonce, sign_request
from sync.wire import MAX_BATCH_EVENTS, build_batch, encode_batch, event_wire_size

log = logging.getLogger("sync.uploader")

BATCH_PATH = "/v1/journal/batches"
HEARTBEAT_PATH = "/v1/journal/heartbeat"
#: Bytes of a batch besides its events (manifest, signature, status), kept free under the byte cap.
BATCH_OVERHEAD = 1024


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("madoguchi")
    except Exception:  # not installed as a distribution (a checkout): say so rather than guess
        return "source"


@dataclass(frozen=True)
class UploaderSettings:
    url: str
    device_id: str
    batch_max_events: int = 500
    batch_max_bytes: int = 512 * 1024
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    request_timeout: float = 10.0
    connect_timeout: float = 3.0
    interval: float = 5.0
    heartbeat_interval: float = 60.0
    verify: str | bool = True


class Refused(Exception):
    """City hall answered, but not with an acknowledgement. ``retry_after`` from its header, if any."""

    def __init__(self, status: int, error: str, detail: str, body: dict[str, Any],
                 retry_after: float | None = None) -> None:
        self.status, self.error, self.detail, self.body, self.retry_after = status, error, detail, body, retry_after
        super().__init__(f"city hall answered {status} {error}: {detail}")


class Unreachable(Exception):
    """No answer: connection refused, reset, timed out, or a response cut short. The outcome of a batch
    that was sent is unknown — never assume it was stored or lost; ask city hall's head instead."""


@dataclass
class UploaderStatus:
    device_id: str
    state: str = "starting"          # starting | synced | sending | offline | refused
    last_seq: int = 0                # newest event in the kiosk journal
    acked_seq: int = 0               # what city hall says it holds
    backlog: int = 0
    oldest_unsent_at: str | None = None
    backlog_age_seconds: float = 0.0
    last_success_at: str | None = None
    last_error: str = ""
    next_attempt_in: float = 0.0
    updated_at: str = ""
    sent_batches: int = 0
    sent_events: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("extra")
        return d


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 62))))


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            moment = dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return None
        return max(0.0, (moment - dt.datetime.now(dt.timezone.utc)).total_seconds())
    return None


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Uploader:
    def __init__(self, journal: Journal, key: Ed25519PrivateKey, settings: UploaderSettings, *,
                 ack_journal: Journal | Callable[[], Journal] | None = None, status_path: Path | None = None,
                 session: requests.Session | None = None, rng: random.Random | None = None,
                 sleep: Callable[[float], bool] | None = None, clock: Callable[[], float] = time.time) -> None:
        if not journal.readonly:
            raise ValueError("the uploader reads the journal through a read-only connection")
        self.journal = journal
        self.key = key
        self.settings = settings
        # Opened lazily and retried: opening a writable journal while the kiosk is mid-write can meet
        # "database is locked" (schema check), which must not stop the uploader.
        self._ack_journal = ack_journal
        self.status_path = status_path
        self.session = session or requests.Session()
        self.rng = rng or random.Random()
        self.stop_event = threading.Event()
        self._sleep = sleep or (lambda seconds: self.stop_event.wait(seconds))
        self.clock = clock
        self.base_url = settings.url.rstrip("/")
        self.max_bytes = settings.batch_max_bytes
        self.acked: int | None = None  # unknown until city hall answered
        self.status = UploaderStatus(settings.device_id)
        self.version = software_version()

    # --- one request ----------------------------------------------------------------------------------

    def _post(self, path: str, body: bytes) -> dict[str, Any]:
        headers = sign_request(self.key, self.settings.device_id, "POST", path, body, int(self.clock()), new_nonce())
        headers["Content-Type"] = "application/json"
        try:
            response = self.session.post(self.base_url + path, data=body, headers=headers,
                                         timeout=(self.settings.connect_timeout, self.settings.request_timeout),
                                         verify=self.settings.verify)
            payload = response.json() if response.content else {}
        except (requests.RequestException, ValueError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(payload, dict):
            raise Unreachable(f"city hall answered {response.status_code} with a body that is not a JSON object")
        if response.status_code == 200:
            return payload
        raise Refused(response.status_code, str(payload.get("error", "")), str(payload.get("detail", "")), payload,
                      _retry_after(response))

    def _status_report(self) -> dict[str, Any]:
        return {"backlog": self.status.backlog, "oldest_unsent_at": self.status.oldest_unsent_at,
                "software_version": self.version, "last_seq": self.status.last_seq,
                "sent_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}

    def _accept_ack(self, answer: dict[str, Any]) -> int:
        last = answer.get("last_seq")
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            raise Unreachable(f"city hall's answer has no valid last_seq: {answer!r:.200}")
        previous, self.acked = self.acked, last
        if last > self.journal.last_seq():
            log.error("city hall holds seq %d but this kiosk's journal ends at %d: was the journal restored from "
                      "an old image? New events will be refused as a fork; call city hall's administrator",
                      last, self.journal.last_seq())
        if last != previous and self._ack_journal is not None:
            try:
                if not isinstance(self._ack_journal, Journal):
                    self._ack_journal = self._ack_journal()
                self._ack_journal.set_acked_seq(last)
            except JournalError as exc:  # the ack is a hint for readers; city hall stays the truth
                log.warning("could not record the acknowledged seq %d in the journal: %s", last, exc)
        self.status.acked_seq = last
        self.status.last_success_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return last

    def heartbeat(self) -> int:
        """Tell city hall our status; learn the highest sequence it holds."""
        self._refresh_backlog()
        answer = self._post(HEARTBEAT_PATH, json.dumps({"status": self._status_report()}).encode())
        return self._accept_ack(answer)

    # --- batches --------------------------------------------------------------------------------------

    def next_batch(self, after_seq: int) -> list[Event]:
        """Consecutive unsent events after ``after_seq``, within the count and byte caps (at least one)."""
        events = self.journal.events(after_seq=after_seq, limit=min(self.settings.batch_max_events, MAX_BATCH_EVENTS))
        budget = self.max_bytes - BATCH_OVERHEAD
        size, taken = 0, []
        for event in events:
            size += event_wire_size(event)
            if taken and size > budget:
                break
            taken.append(event)
        return taken

    def send_batch(self, events: list[Event]) -> int:
        self._refresh_backlog()
        body = encode_batch(build_batch(events, self.key, self._status_report()))
        try:
            answer = self._post(BATCH_PATH, body)
        except Refused as exc:
            if exc.status == 413:
                limit = exc.body.get("limit")
                smaller = min(self.max_bytes // 2, int(limit) if isinstance(limit, int) else self.max_bytes)
                self.max_bytes = max(4096, smaller)
                log.warning("city hall refused a %d-byte batch as too large; batches are now at most %d bytes",
                            len(body), self.max_bytes)
            raise
        acked = self._accept_ack(answer)
        self.status.sent_batches += 1
        self.status.sent_events += len(events)
        return acked

    def drain(self) -> int:
        """Send until city hall holds everything the journal had; returns the acknowledged seq."""
        if self.acked is None:
            self.heartbeat()
        assert self.acked is not None
        while not self.stop_event.is_set():
            events = self.next_batch(self.acked)
            if not events:
                break
            self.status.state = "sending"
            try:
                self.send_batch(events)
            except Refused as exc:
                if exc.status == 409 and exc.error == "sequence_gap" and isinstance(exc.body.get("expected_seq"), int):
                    log.info("city hall expects seq %d; resending from there", exc.body["expected_seq"])
                    self.acked = exc.body["expected_seq"] - 1
                    continue
                raise
        self._refresh_backlog()
        return self.acked

    # --- the loop -------------------------------------------------------------------------------------

    def _refresh_backlog(self) -> None:
        last = self.journal.last_seq()
        acked = self.acked if self.acked is not None else self.journal.acked_seq()
        first_unsent = self.journal.event_at(acked + 1) if last > acked else None
        self.status.last_seq = last
        self.status.backlog = max(0, last - acked)
        self.status.oldest_unsent_at = first_unsent.at if first_unsent else None
        oldest = _parse_time(self.status.oldest_unsent_at)
        self.status.backlog_age_seconds = round(max(0.0, self.clock() - oldest.timestamp()), 1) if oldest else 0.0

    def write_status(self) -> None:
        self.status.updated_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if self.status_path is None:
            return
        tmp = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.status.as_dict(), indent=1), encoding="utf-8")
            os.replace(tmp, self.status_path)
        except OSError as exc:
            log.warning("cannot write the sync status file %s: %s", self.status_path, exc)

    def run(self, *, once: bool = False) -> int:
        """Loop until stopped (``once``: until the backlog is drained; returns 0, or 1 on giving up)."""
        attempt = 0
        last_heartbeat = 0.0
        while not self.stop_event.is_set():
            delay = self.settings.interval
            try:
                if self.acked is None or self.clock() - last_heartbeat >= self.settings.heartbeat_interval:
                    self.heartbeat()
                    last_heartbeat = self.clock()
                self.drain()
                attempt = 0
                self.status.state, self.status.last_error = "synced", ""
                if self.status.backlog:
                    delay = 0.0
                log.debug("journal synced to seq %s", self.acked)
                if once and not self.status.backlog:
                    self.write_status()
                    return 0
            except (Unreachable, Refused) as exc:
                refused = isinstance(exc, Refused)
                self.status.state = "refused" if refused else "offline"
                self.status.last_error = str(exc)[:300]
                if refused and exc.status in (401, 403, 409, 422):
                    # Not a network problem: city hall must be told, or the kiosk fixed. Ask again slowly.
                    delay = self.settings.backoff_cap
                    self.acked = None
                    log.error("journal upload refused (%s); retrying in %.0f s. Check `cityhall device list` and "
                              "the alerts page of the dashboard", exc, delay)
                    if once:
                        self.write_status()
                        return 1
                else:
                    delay = full_jitter(attempt, self.settings.backoff_base, self.settings.backoff_cap, self.rng)
                    if refused and exc.retry_after is not None:
                        delay = min(self.settings.backoff_cap, max(delay, exc.retry_after))
                    attempt += 1
                    if isinstance(exc, Unreachable):
                        self.acked = None  # a batch may have landed: ask city hall where it is
                    log.warning("journal upload failed (%s); backlog %d events, oldest %s; retry %d in %.2f s",
                                exc, self.status.backlog, self.status.oldest_unsent_at or "-", attempt, delay)
                if once and attempt > 50:
                    self.write_status()
                    return 1
            except JournalError as exc:
                self.status.state, self.status.last_error = "journal_error", str(exc)[:300]
                delay = self.settings.backoff_cap
                log.error("cannot read the journal: %s", exc)
            self.status.next_attempt_in = round(delay, 2)
            self.write_status()
            if delay > 0 and self._sleep(delay):
                break
        self.write_status()
        return 0

    def stop(self) -> None:
        self.stop_event.set()
