"""City hall's journal ingest over loopback HTTP on SQLite and PostgreSQL: the idempotent happy path,
and one crafted negative test per attack or fault — gap, reorder, fork, bad signature, unknown device,
revoked device, replayed batch, oversized body, malformed event."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.journal import Journal
from sync.signing import new_nonce, sign_request
from sync.wire import build_batch, encode_batch, key_id

pytestmark = pytest.mark.integration

BATCHES = "/v1/journal/batches"


def alerts_for(hall, device_id: str) -> list[dict]:
    return [a for a in hall.store.alerts() if a["device_id"] == device_id]


def test_batches_are_stored_in_order_and_a_resend_gets_the_same_ack(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(8)
    events = kiosk.events()
    first = kiosk.send(events[:5])
    assert first.status_code == 200, first.text
    assert first.json() == {"last_seq": 5, "head_hash": events[4].hash}
    again = kiosk.send(events[:5])  # the response was lost; the uploader sends the same batch again
    assert again.status_code == 200 and again.content == first.content
    overlap = kiosk.send(events[3:])  # partly held already: only the new tail is stored
    assert overlap.status_code == 200 and overlap.json()["last_seq"] == 8
    stored = sync_cityhall.store.events(kiosk.device_id)
    assert [e.to_wire() for e in stored] == [e.to_wire() for e in events]
    assert sync_cityhall.store.verify_device_chain(kiosk.device_id) == 8
    heartbeat = kiosk.post("/v1/journal/heartbeat", json.dumps({"status": {"backlog": 3}}).encode())
    assert heartbeat.status_code == 200 and heartbeat.json()["last_seq"] == 8


def test_gap_is_refused_with_the_expected_sequence(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(8)
    events = kiosk.events()
    assert kiosk.send(events[:3]).status_code == 200
    answer = kiosk.send(events[5:])
    assert answer.status_code == 409
    body = answer.json()
    assert body["error"] == "sequence_gap" and body["expected_seq"] == 4 and body["last_seq"] == 3
    assert [e.seq for e in sync_cityhall.store.events(kiosk.device_id)] == [1, 2, 3]
    assert any(a["kind"] == "gap" for a in alerts_for(sync_cityhall, kiosk.device_id))


def test_reordered_events_are_refused(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(4)
    events = kiosk.events()
    # The manifest is signed over the reordered list as the uploader would (first/last/head of the list).
    reordered = [events[0], events[2], events[1], events[3]]
    answer = kiosk.send(reordered)
    assert answer.status_code == 422 and answer.json()["error"] == "sequence_order"
    assert sync_cityhall.store.events(kiosk.device_id) == []


def test_fork_same_sequence_different_content_is_409_and_an_alert(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(3)
    assert kiosk.send(kiosk.events()).status_code == 200
    # The same kiosk restored from an old image writes different events under the same numbers.
    other_dir = Path(tempfile.mkdtemp(prefix="fork-"))
    try:
        twin = Journal(other_dir / "journal.sqlite3", kiosk.device_id)
        for i in range(4):
            twin.append("receipt.intent", {"n": 100 + i})
        forked = twin.events()
        answer = kiosk.send(forked)
        assert answer.status_code == 409 and answer.json()["error"] == "fork" and answer.json()["seq"] == 1
        tail = kiosk.send(forked[3:])  # chaining a new event onto the other history is a fork too
        assert tail.status_code == 409 and tail.json()["error"] == "fork"
        twin.close()
    finally:
        shutil.rmtree(other_dir, ignore_errors=True)
    assert [e.hash for e in sync_cityhall.store.events(kiosk.device_id)] == [e.hash for e in kiosk.events()]
    assert any(a["kind"] == "fork" and a["seq"] == 1 for a in alerts_for(sync_cityhall, kiosk.device_id))


def test_bad_batch_signature_is_refused_and_alerted(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(2)
    forger = Ed25519PrivateKey.generate()

    def claim_the_device_key(batch: dict) -> None:
        batch["manifest"]["key_id"] = key_id(kiosk.key)

    # A valid request signature (stolen session) but a batch signed by another key.
    answer = kiosk.send(kiosk.events(), batch_key=forger, mutate=claim_the_device_key)
    assert answer.status_code == 401 and answer.json()["error"] == "bad_signature"
    assert any(a["kind"] == "bad_signature" for a in alerts_for(sync_cityhall, kiosk.device_id))
    # The request signature itself made with another key.
    answer = kiosk.send(kiosk.events(), key=forger)
    assert answer.status_code == 401 and answer.json()["reason"] == "bad_signature"
    assert sync_cityhall.store.events(kiosk.device_id) == []


def test_tampered_event_is_refused(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(3)

    def alter(batch: dict) -> None:
        batch["events"][1]["body"]["n"] = 999

    answer = kiosk.send(kiosk.events(), mutate=alter)
    assert answer.status_code == 422 and answer.json()["error"] == "chain_broken" and answer.json()["seq"] == 2


def test_unknown_device_is_refused(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(2)
    stranger = Ed25519PrivateKey.generate()
    answer = kiosk.post(BATCHES, encode_batch(build_batch(kiosk.events(), stranger)), key=stranger,
                        device_id="never-registered-kiosk")
    assert answer.status_code == 401 and answer.json()["reason"] == "unknown_device"
    assert any(a["kind"] == "unknown_device" for a in alerts_for(sync_cityhall, "never-registered-kiosk"))


def test_revoked_device_is_refused(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(4)
    assert kiosk.send(kiosk.events()[:2]).status_code == 200
    done = sync_cityhall.cli("device", "revoke", kiosk.device_id)
    assert done.returncode == 0, done.stderr
    answer = kiosk.send(kiosk.events()[2:])
    assert answer.status_code == 401 and answer.json()["reason"] == "device_revoked"
    assert [e.seq for e in sync_cityhall.store.events(kiosk.device_id)] == [1, 2]


def test_replayed_request_is_refused(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(2)
    body = encode_batch(build_batch(kiosk.events(), kiosk.key))
    headers = sign_request(kiosk.key, kiosk.device_id, "POST", BATCHES, body, int(time.time()), new_nonce())
    headers["Content-Type"] = "application/json"
    first = requests.post(sync_cityhall.url + BATCHES, data=body, headers=headers, timeout=10)
    assert first.status_code == 200
    replay = requests.post(sync_cityhall.url + BATCHES, data=body, headers=headers, timeout=10)
    assert replay.status_code == 401 and replay.json()["reason"] == "nonce_reused"
    assert any(a["kind"] == "nonce_reused" for a in alerts_for(sync_cityhall, kiosk.device_id))
    assert len(sync_cityhall.store.events(kiosk.device_id)) == 2


def test_oversized_body_is_413_json(sync_cityhall, new_kiosk):
    from cityhall.ingest import MAX_BATCH_BODY_BYTES

    kiosk = new_kiosk(sync_cityhall)
    body = b'{"v": 1, "pad": "' + b"x" * MAX_BATCH_BODY_BYTES + b'"}'
    answer = kiosk.post(BATCHES, body)
    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large" and answer.json()["limit"] == MAX_BATCH_BODY_BYTES


@pytest.mark.parametrize("breakage, error", [
    (lambda b: b["events"][0].pop("kind"), "malformed_event"),
    (lambda b: b["events"][0].__setitem__("seq", "1"), "malformed_event"),
    (lambda b: b["events"][0].__setitem__("at", "yesterday"), "malformed_event"),
    (lambda b: b["events"][0].__setitem__("body", [1, 2]), "malformed_event"),
    (lambda b: b.__setitem__("events", []), "malformed_batch"),
    (lambda b: b["manifest"].pop("head_hash"), "malformed_batch"),
])
def test_malformed_event_is_422_naming_it(sync_cityhall, new_kiosk, breakage, error):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.fill(2)
    answer = kiosk.send(kiosk.events(), mutate=breakage)
    assert answer.status_code == 422 and answer.json()["error"] == error, answer.text
    not_json = kiosk.post(BATCHES, b"{not json")
    assert not_json.status_code == 422 and not_json.json()["error"] == "malformed_batch"


# --- issue #19: strict wire schemas; each case used to be stored or to answer 500 ---------------------


@pytest.mark.parametrize("kind, body, field", [
    ("money.in", {"payment_key": "pk-1", "amount": "lots", "source": "coin 100"}, "events[0].body.amount"),
    ("money.in", {"payment_key": "pk-1", "amount": 2**63, "source": "coin 100"}, "body"),
    ("voucher.issued", {"amount": 300, "voucher_code": "V", "expires_at": "2026-13-45T99:99:99Z"},
     "events[0].body.expires_at"),
    ("made.up.kind", {}, "events[0].kind"),
])
def test_a_signed_event_of_bad_shape_is_422_naming_the_field_and_nothing_is_stored(sync_cityhall, new_kiosk, kind,
                                                                                    body, field):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.journal.append(kind, body)
    answer = kiosk.send(kiosk.events())
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field, answer.text
    assert sync_cityhall.store.events(kiosk.device_id) == []


@pytest.mark.parametrize("old, new, words", [
    (b'"amount":100', b'"amount":NaN', "NaN"),
    (b'"amount":100', b'"amount":Infinity', "Infinity"),
    (b'"amount":100', b'"amount":1e400', "too large"),
    (b'"source":"coin 100"', b'"source":"\\ud800"', "surrogate"),
])
def test_non_json_numbers_and_lone_surrogates_are_422(sync_cityhall, new_kiosk, old, new, words):
    kiosk = new_kiosk(sync_cityhall)
    kiosk.journal.append("money.in", {"payment_key": "pk-1", "amount": 100, "source": "coin 100"})
    raw = encode_batch(build_batch(kiosk.events(), kiosk.key))
    assert old in raw
    answer = kiosk.post(BATCHES, raw.replace(old, new))
    assert answer.status_code == 422 and words in answer.json()["detail"], answer.text
    assert sync_cityhall.store.events(kiosk.device_id) == []


def test_deep_json_is_422_before_it_is_parsed(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    answer = kiosk.post(BATCHES, b"[" * 4000 + b"]" * 4000)
    assert answer.status_code == 422 and "nested deeper" in answer.json()["detail"], answer.text


def test_a_timestamp_header_with_a_non_ascii_digit_is_401_not_500(sync_cityhall, new_kiosk):
    kiosk = new_kiosk(sync_cityhall)
    headers = sign_request(kiosk.key, kiosk.device_id, "POST", BATCHES, b"{}", int(time.time()), new_nonce())
    headers["X-Madoguchi-Timestamp"] = "17" + "\u00b2"  # '²': str.isdigit() says yes, int() says no
    answer = requests.post(sync_cityhall.url + BATCHES, data=b"{}",
                           headers={k: v.encode("utf-8") for k, v in headers.items()}, timeout=30)
    assert answer.status_code == 401 and answer.json()["reason"] == "malformed_headers", answer.text
