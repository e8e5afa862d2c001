"""The uploader's decisions, with an in-process fake city hall behind a fake requests session: full
jitter within its cap, Retry-After honoured, byte and count caps, rewinding to city hall's expected
sequence after a gap, asking city hall again after an unknown outcome, and the status it reports."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.journal import Journal
from sync.uploader import BATCH_PATH, Uploader, UploaderSettings, full_jitter
from sync.wire import decode_batch, verify_batch


class FakeResponse:
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.content = json.dumps(body).encode()
        self.headers = headers or {}

    def json(self) -> Any:
        return json.loads(self.content)


class FakeCityHall:
    """Holds events like city hall does; ``script`` lists failures to play before answering normally."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.public = key.public_key()
        self.held: list[int] = []
        self.head = "0" * 64
        self.script: list[Any] = []
        self.requests: list[tuple[str, int]] = []

    def post(self, url: str, data: bytes, headers: dict[str, str], timeout: Any, verify: Any) -> FakeResponse:
        path = url.split("127.0.0.1")[1]
        assert timeout == (3.0, 10.0)
        self.requests.append((path, len(data)))
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if step == "store-then-lose":  # city hall commits, the answer never arrives
                self._store(data)
                raise requests.ConnectionError("connection reset after the request was delivered")
            return step
        if path == BATCH_PATH:
            return self._store(data)
        return FakeResponse(200, {"last_seq": len(self.held), "head_hash": self.head})

    def _store(self, data: bytes) -> FakeResponse:
        batch = decode_batch(data)
        verify_batch(batch, batch.manifest.device_id, self.public)
        last = len(self.held)
        if batch.manifest.first_seq > last + 1:
            return FakeResponse(409, {"error": "sequence_gap", "expected_seq": last + 1, "last_seq": last})
        for event in batch.events:
            if event.seq > last:
                self.held.append(event.seq)
                self.head = event.hash
        return FakeResponse(200, {"last_seq": len(self.held), "head_hash": self.head})


@pytest.fixture
def setup(tmp_path: Path):  # noqa: ANN201
    key = Ed25519PrivateKey.generate()
    writer = Journal(tmp_path / "j.sqlite3", "unit-kiosk-01")
    for i in range(25):
        writer.append("receipt.intent", {"n": i, "pad": "x" * 200})
    hall = FakeCityHall(key)
    slept: list[float] = []

    def make(**settings: Any) -> Uploader:
        options = {"url": "http://127.0.0.1", "device_id": "unit-kiosk-01", "batch_max_events": 10,
                   "backoff_base": 1.0, "backoff_cap": 8.0, **settings}
        return Uploader(Journal(writer.path, "unit-kiosk-01", readonly=True), key, UploaderSettings(**options),
                        ack_journal=writer, status_path=tmp_path / "status.json", session=hall,  # type: ignore[arg-type]
                        rng=random.Random(1), sleep=lambda s: slept.append(s) or False)

    return make, hall, writer, slept, tmp_path


def test_full_jitter_stays_within_the_capped_exponential() -> None:
    rng = random.Random(3)
    for attempt in range(12):
        bound = min(5.0, 0.5 * 2 ** attempt)
        draws = [full_jitter(attempt, 0.5, 5.0, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in draws) and max(draws) > bound * 0.8


def test_batches_respect_the_count_and_byte_caps(setup) -> None:  # noqa: ANN001
    make, hall, writer, _, _ = setup
    assert [e.seq for e in make().next_batch(0)] == list(range(1, 11))
    small = make(batch_max_bytes=1024 + 3 * 400).next_batch(0)
    assert 1 <= len(small) <= 4


def test_drain_sends_everything_and_records_the_ack(setup) -> None:  # noqa: ANN001
    make, hall, writer, _, tmp_path = setup
    uploader = make()
    assert uploader.run(once=True) == 0
    assert hall.held == list(range(1, 26)) and writer.acked_seq() == 25
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["backlog"] == 0 and status["acked_seq"] == 25 and status["state"] == "synced"


def test_retry_after_is_honoured_and_failures_back_off(setup) -> None:  # noqa: ANN001
    make, hall, writer, slept, _ = setup
    hall.script = [FakeResponse(503, {"error": "not_ready"}, {"Retry-After": "7"}),
                   requests.ConnectTimeout("connect timed out")]
    assert make().run(once=True) == 0
    assert slept[0] >= 7.0 and slept[0] <= 8.0
    assert 0 <= slept[1] <= 2.0  # second attempt: uniform(0, min(cap, base * 2))
    assert hall.held == list(range(1, 26))


def test_lost_answer_after_commit_resumes_from_city_halls_head(setup) -> None:  # noqa: ANN001
    make, hall, writer, _, _ = setup
    hall.script = [FakeResponse(200, {"last_seq": 0, "head_hash": "0" * 64}), "store-then-lose"]
    assert make().run(once=True) == 0
    assert hall.held == list(range(1, 26))  # nothing stored twice: it asked where to resume
    paths = [p for p, _ in hall.requests]
    assert paths[:3] == ["/v1/journal/heartbeat", BATCH_PATH, "/v1/journal/heartbeat"]


def test_a_gap_rewinds_to_the_expected_sequence(setup) -> None:  # noqa: ANN001
    make, hall, writer, _, _ = setup
    uploader = make()
    writer.set_acked_seq(12)  # a stale local hint; city hall is the truth
    hall.script = [FakeResponse(200, {"last_seq": 12, "head_hash": "f" * 64})]
    uploader.heartbeat()
    hall.held = list(range(1, 6))  # city hall was restored from a backup holding only 1-5
    uploader.drain()
    assert hall.held == list(range(1, 26))


def test_a_refusal_is_not_retried_fast(setup) -> None:  # noqa: ANN001
    make, hall, writer, slept, _ = setup
    hall.script = [FakeResponse(200, {"last_seq": 0, "head_hash": "0" * 64}),
                   FakeResponse(401, {"error": "unauthenticated", "reason": "device_revoked"})]
    assert make().run(once=True) == 1
    assert hall.held == []
