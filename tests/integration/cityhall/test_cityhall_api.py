"""The city hall API over loopback HTTP, on SQLite and PostgreSQL: every endpoint, every refusal
reason, every 4xx. Kiosk-side calls go through the production client (sync.issuance_client)."""
from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

from cityhall.storage import to_db_time
from datetime import datetime, timedelta, timezone
from kiosk.errors import CardExpired, CardRefused, CityHallRejected, CityHallUnreachable, DeviceNotEnrolled, \
    SessionExpired
from kiosk.ports import Order, OrderLine
from tests.integration.cityhall.conftest import MAX_BODY, REVOKED_CARD, UNREGISTERED_CARD, sign_challenge

pytestmark = pytest.mark.integration


def _past() -> str:
    return to_db_time(datetime.now(timezone.utc) - timedelta(minutes=5))


# --- device authentication (401) ------------------------------------------------------------------------

def test_ping_answers_an_enrolled_device(kiosk_device):
    kiosk_device.client().ping()
    answer = kiosk_device.signed("GET", "/v1/ping")
    assert answer.status_code == 200 and answer.json()["device_id"] == kiosk_device.device_id


def test_unknown_device_is_refused(cityhall_server):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.integration.cityhall.conftest import KioskDevice

    stranger = KioskDevice("kiosk-never-enrolled", Ed25519PrivateKey.generate(), cityhall_server)
    answer = stranger.signed("GET", "/v1/ping")
    assert answer.status_code == 401
    assert answer.json()["reason"] == "unknown_device"
    with pytest.raises(DeviceNotEnrolled):
        stranger.client().ping()


def test_revoked_device_is_refused_after_cli_revoke(cityhall_server, kiosk_device):
    kiosk_device.client().ping()
    done = cityhall_server.cli("device", "revoke", kiosk_device.device_id)
    assert done.returncode == 0, done.stderr
    answer = kiosk_device.signed("GET", "/v1/ping")
    assert answer.status_code == 401 and answer.json()["reason"] == "device_revoked"
    with pytest.raises(DeviceNotEnrolled):
        kiosk_device.client().ping()


def test_bad_signature_is_refused(kiosk_device):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    answer = kiosk_device.post_json("/v1/challenges", {}, key=Ed25519PrivateKey.generate())
    assert answer.status_code == 401 and answer.json()["reason"] == "bad_signature"


def test_body_not_matching_its_signed_hash_is_refused(kiosk_device):
    answer = kiosk_device.signed("POST", "/v1/challenges", b"{}", signed_body=b'{"x": 1}')
    assert answer.status_code == 401 and answer.json()["reason"] == "body_mismatch"


def test_signature_for_another_path_is_refused(kiosk_device):
    from sync.signing import new_nonce, sign_request

    headers = sign_request(kiosk_device.key, kiosk_device.device_id, "GET", "/v1/ping", b"", int(time.time()),
                           new_nonce())
    answer = requests.post(kiosk_device.server.url + "/v1/challenges", headers=headers, timeout=10)
    assert answer.status_code == 401 and answer.json()["reason"] == "bad_signature"


def test_stale_timestamp_is_refused(kiosk_device):
    answer = kiosk_device.signed("GET", "/v1/ping", timestamp=int(time.time()) - 3600)
    assert answer.status_code == 401 and answer.json()["reason"] == "stale_timestamp"
    answer = kiosk_device.signed("GET", "/v1/ping", timestamp=int(time.time()) + 3600)
    assert answer.status_code == 401 and answer.json()["reason"] == "stale_timestamp"


def test_reused_nonce_is_refused(kiosk_device):
    nonce = "0123456789abcdef" * 2
    first = kiosk_device.signed("GET", "/v1/ping", nonce=nonce)
    assert first.status_code == 200
    replay = kiosk_device.signed("GET", "/v1/ping", nonce=nonce)
    assert replay.status_code == 401 and replay.json()["reason"] == "nonce_reused"


def test_unsigned_and_malformed_headers_are_refused(kiosk_device):
    answer = requests.get(kiosk_device.server.url + "/v1/ping", timeout=10)
    assert answer.status_code == 401 and answer.json()["reason"] == "missing_headers"
    answer = kiosk_device.signed("GET", "/v1/ping", headers={"X-Madoguchi-Nonce": "not-hex"})
    assert answer.status_code == 401 and answer.json()["reason"] == "malformed_headers"


# --- sizes (413) and content (422) ----------------------------------------------------------------------

def test_oversized_body_is_refused_before_authentication(kiosk_device):
    big = json.dumps({"pad": "x" * (MAX_BODY + 10)}).encode()
    answer = kiosk_device.signed("POST", "/v1/challenges", big)
    assert answer.status_code == 413 and answer.json()["limit"] == MAX_BODY
    unsigned = requests.post(kiosk_device.server.url + "/v1/issuances", data=big, timeout=10)
    assert unsigned.status_code == 413


def test_oversized_chunked_body_without_length_is_refused(kiosk_device):
    def chunks():
        for _ in range(MAX_BODY // 1024 + 4):
            yield b"x" * 1024

    answer = requests.post(kiosk_device.server.url + "/v1/challenges", data=chunks(), timeout=10)
    assert answer.status_code == 413


@pytest.mark.parametrize("path, payload, field", [
    ("/v1/sessions", b"{not json", "body"),
    ("/v1/sessions", b"[]", "body"),
    ("/v1/sessions", json.dumps({"certificate": "QUJD" * 8, "signature": "QUJD" * 8}).encode(), "challenge_id"),
    ("/v1/sessions", json.dumps({"challenge_id": "abcdefgh1234", "certificate": "QUJD" * 8,
                                 "signature": "QUJD" * 8, "extra": 1}).encode(), "extra"),
    ("/v1/sessions", json.dumps({"challenge_id": "abcdefgh1234", "certificate": "!!!!" * 8,
                                 "signature": "QUJD" * 8}).encode(), "certificate"),
    ("/v1/issuances", json.dumps({"session_id": "s" * 20, "transaction_id": "t1", "payment_ref": "p1",
                                  "order": {"lines": [{"cert_type": "juminhyo", "copies": "two",
                                                       "unit_fee_yen": 300}]}}).encode(), "order.lines.0.copies"),
    ("/v1/issuances", json.dumps({"session_id": "s" * 20, "transaction_id": "t1", "payment_ref": "p1",
                                  "order": {"lines": [{"cert_type": "koseki", "copies": 1,
                                                       "unit_fee_yen": 300}]}}).encode(), "order.lines.0.cert_type"),
    ("/v1/issuances", json.dumps({"session_id": "s" * 20, "transaction_id": "t 1", "payment_ref": "p1",
                                  "order": {"lines": [{"cert_type": "juminhyo", "copies": 1,
                                                       "unit_fee_yen": 300}]}}).encode(), "transaction_id"),
    ("/v1/issuances", json.dumps({"session_id": "s" * 20, "transaction_id": "t1", "payment_ref": "p1",
                                  "order": {"lines": []}}).encode(), "order.lines"),
])
def test_malformed_bodies_are_422_naming_the_field(kiosk_device, path, payload, field):
    answer = kiosk_device.signed("POST", path, payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field


def test_signature_not_base64_is_422(kiosk_device, cityhall_server):
    card = cityhall_server.world.card(cityhall_server.world.cards_with_status("active")[0])
    challenge = kiosk_device.post_json("/v1/challenges", {}).json()
    answer = kiosk_device.post_json("/v1/sessions", {"challenge_id": challenge["challenge_id"],
                                                     "certificate": base64.b64encode(card.cert_der).decode(),
                                                     "signature": "%%%%" * 10})
    assert answer.status_code == 422 and answer.json()["field"] == "signature"


# --- challenge ------------------------------------------------------------------------------------------

def test_challenges_are_fresh_and_short_lived(kiosk_device):
    client = kiosk_device.client()
    first, second = client.challenge(), client.challenge()
    assert first.challenge_id != second.challenge_id and first.nonce != second.nonce
    assert len(first.nonce) == 32
    answer = kiosk_device.post_json("/v1/challenges", {}).json()
    expires = datetime.fromisoformat(answer["expires_at"])
    assert timedelta(0) < expires - datetime.now(timezone.utc) <= timedelta(seconds=31)


def test_challenge_is_single_use(kiosk_device, cityhall_server):
    card = cityhall_server.world.card(cityhall_server.world.cards_with_status("active")[0])
    client = kiosk_device.client()
    challenge = client.challenge()
    signature = sign_challenge(card, challenge.nonce)
    client.authenticate(challenge, card.cert_der, signature)
    with pytest.raises(SessionExpired):
        client.authenticate(challenge, card.cert_der, signature)


def test_challenge_is_bound_to_its_device(kiosk_device, cityhall_server):
    card = cityhall_server.world.card(cityhall_server.world.cards_with_status("active")[0])
    challenge = kiosk_device.client().challenge()
    other = cityhall_server.add_device().client()
    with pytest.raises(SessionExpired):
        other.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
    kiosk_device.client().authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))


def test_expired_challenge_is_refused(kiosk_device, cityhall_server):
    card = cityhall_server.world.card(cityhall_server.world.cards_with_status("active")[0])
    client = kiosk_device.client()
    challenge = client.challenge()
    with cityhall_server.db.transaction() as tx:
        tx.execute("UPDATE challenges SET expires_at = ? WHERE challenge_id = ?", (_past(), challenge.challenge_id))
    with pytest.raises(SessionExpired):
        client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))


# --- authenticate: offers and every refusal reason ------------------------------------------------------

def test_authentication_answers_offers_and_fees(kiosk_device, cityhall_server):
    world = cityhall_server.world
    # 和光 太郎 is taxed both years; his son is a minor without tax records; 広沢 恵子 is untaxed.
    taxed = next(cn for cn, r in world.registry.items() if r["name"] == "和光 太郎")
    minor = next(cn for cn, r in world.registry.items() if r["name"] == "和光 一郎")
    untaxed = next(cn for cn, r in world.registry.items() if r["name"] == "広沢 恵子")
    client = kiosk_device.client()

    def offers(cn):
        challenge = client.challenge()
        card = world.card(cn)
        result = client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
        assert result.expires_at is not None and result.expires_at > datetime.now(timezone.utc)
        return {o.cert_type: o for o in result.offers}

    o = offers(taxed)
    assert set(o) == {"juminhyo", "kazei"}
    assert (o["juminhyo"].fee_yen, o["kazei"].fee_yen) == (300, 350)
    assert o["kazei"].tax_years == (2026, 2025)
    assert set(o["juminhyo"].options) >= {"with_household", "with_honseki"}
    assert set(offers(minor)) == {"juminhyo"}
    o = offers(untaxed)
    assert set(o) == {"juminhyo", "kazei", "hikazei"} and o["hikazei"].fee_yen == 200
    assert o["hikazei"].tax_years == (2026, 2025)


@pytest.mark.parametrize("status", ["moved_out", "deceased", "protected"])
def test_residents_who_may_not_use_the_kiosk_are_refused(kiosk_device, cityhall_server, status):
    world = cityhall_server.world
    card = world.card(world.cards_with_status(status)[0])
    client = kiosk_device.client()
    challenge = client.challenge()
    with pytest.raises(CardRefused) as refused:
        client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
    assert refused.value.reason == status


def _refusal(kiosk_device, card, signature_card=None):
    client = kiosk_device.client()
    challenge = client.challenge()
    return client.authenticate(challenge, card.cert_der, sign_challenge(signature_card or card, challenge.nonce))


def test_revoked_card_is_refused(kiosk_device, cityhall_server):
    with pytest.raises(CardRefused) as refused:
        _refusal(kiosk_device, cityhall_server.world.card(REVOKED_CARD))
    assert refused.value.reason == "certificate_revoked"


def test_expired_card_is_refused(kiosk_device, cityhall_server):
    world = cityhall_server.world
    with pytest.raises(CardExpired):
        _refusal(kiosk_device, world.card(world.cards_with_status("active")[0], expired=True))


def test_card_without_resident_is_unknown(kiosk_device, cityhall_server):
    with pytest.raises(CardRefused) as refused:
        _refusal(kiosk_device, cityhall_server.world.card(UNREGISTERED_CARD))
    assert refused.value.reason == "unknown_card"


def test_card_from_an_untrusted_ca_is_unknown(kiosk_device, cityhall_server):
    world = cityhall_server.world
    with pytest.raises(CardRefused) as refused:
        _refusal(kiosk_device, world.rogue.card(world.cards_with_status("active")[0]))
    assert refused.value.reason == "unknown_card"


def test_signature_by_another_card_is_refused(kiosk_device, cityhall_server):
    world = cityhall_server.world
    a, b = world.cards_with_status("active")[:2]
    with pytest.raises(CardRefused) as refused:
        _refusal(kiosk_device, world.card(a), signature_card=world.card(b))
    assert refused.value.reason == "bad_signature"


# --- issue ----------------------------------------------------------------------------------------------

def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=30,
                          check=True).stdout
    return "".join(text.split())  # pdftotext may drop the space inside a name: compare without any


def test_issue_returns_the_residents_documents(kiosk_device, cityhall_server, tmp_path):
    world = cityhall_server.world
    cn = next(cn for cn, r in world.registry.items() if r["name"] == "広沢 恵子")
    card = world.card(cn)
    client = kiosk_device.client()
    challenge = client.challenge()
    session = client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
    order = Order((OrderLine("juminhyo", 2, 300, None, ("with_household", "with_honseki")),
                   OrderLine("kazei", 1, 350, 2026), OrderLine("hikazei", 1, 200, 2025)))
    documents = client.issue(session.session_id, order, "txn-issue-1", "cash-1")
    assert [d.cert_type for d in documents] == ["juminhyo", "juminhyo", "kazei", "hikazei"]
    assert [d.fee_yen for d in documents] == [300, 300, 350, 200]
    assert len({d.issuance_number for d in documents}) == 4
    for document in documents:
        text = _pdftotext(document.pdf, tmp_path)
        assert "広沢恵子" in text and document.issuance_number in text
        record = requests.get(f"{cityhall_server.url}/v1/issuances/{document.issuance_number}", timeout=10).json()
        assert record["sha256"] == document.sha256 and record["status"] == "issued"
        assert record["device_id"] == kiosk_device.device_id
        assert "name" not in record and "address" not in record
    assert "広沢誠" in _pdftotext(documents[0].pdf, tmp_path)  # 世帯全員
    assert "広沢誠" not in _pdftotext(documents[2].pdf, tmp_path)


def _session(kiosk_device, cn):
    card = kiosk_device.server.world.card(cn)
    client = kiosk_device.client()
    challenge = client.challenge()
    return client, client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))


def test_order_outside_the_offers_is_422(kiosk_device, cityhall_server):
    world = cityhall_server.world
    taxed = next(cn for cn, r in world.registry.items() if r["name"] == "和光 太郎")
    client, session = _session(kiosk_device, taxed)
    cases = [(OrderLine("hikazei", 1, 200, 2026), "order.lines.0.cert_type"),
             (OrderLine("kazei", 1, 350, 2019), "order.lines.0.tax_year"),
             (OrderLine("juminhyo", 1, 100), "order.lines.0.unit_fee_yen"),
             (OrderLine("juminhyo", 6, 300), "order.lines.0.copies"),
             (OrderLine("juminhyo", 1, 300, None, ("with_mynumber",)), "order.lines.0.options")]
    for i, (line, field) in enumerate(cases):
        with pytest.raises(CityHallRejected) as rejected:
            client.issue(session.session_id, Order((line,)), f"txn-bad-{i}", "p")
        assert rejected.value.context["status"] == 422 and rejected.value.context["field"] == field


def test_unknown_expired_and_foreign_sessions_are_refused(kiosk_device, cityhall_server):
    world = cityhall_server.world
    client, session = _session(kiosk_device, world.cards_with_status("active")[0])
    order = Order((OrderLine("juminhyo", 1, 300),))
    with pytest.raises(SessionExpired):
        client.issue("x" * 43, order, "txn-s-1", "p")
    other = cityhall_server.add_device().client()
    with pytest.raises(SessionExpired):
        other.issue(session.session_id, order, "txn-s-2", "p")
    with cityhall_server.db.transaction() as tx:
        tx.execute("UPDATE sessions SET expires_at = ? WHERE device_id = ?", (_past(), kiosk_device.device_id))
    with pytest.raises(SessionExpired):
        client.issue(session.session_id, order, "txn-s-3", "p")
    with cityhall_server.db.transaction() as tx:
        assert tx.one("SELECT COUNT(*) AS n FROM issuance_requests WHERE transaction_id LIKE 'txn-s-%'")["n"] == 0


def test_same_transaction_id_with_another_order_is_409(kiosk_device, cityhall_server):
    client, session = _session(kiosk_device, cityhall_server.world.cards_with_status("active")[0])
    client.issue(session.session_id, Order((OrderLine("juminhyo", 1, 300),)), "txn-409", "p")
    with pytest.raises(CityHallRejected) as rejected:
        client.issue(session.session_id, Order((OrderLine("juminhyo", 2, 300),)), "txn-409", "p")
    assert rejected.value.context["status"] == 409
    answer = kiosk_device.post_json("/v1/issuances", {
        "session_id": session.session_id, "transaction_id": "txn-409", "payment_ref": "p",
        "order": {"lines": [{"cert_type": "juminhyo", "copies": 2, "unit_fee_yen": 300}]}})
    assert answer.status_code == 409 and answer.json()["error"] == "transaction_conflict"


def test_issue_reaches_a_stopped_city_hall_as_unreachable(cityhall_server, kiosk_device):
    from sync.issuance_client import HttpCityHallClient
    from tests.support.services import free_port

    client = HttpCityHallClient(f"http://127.0.0.1:{free_port()}", kiosk_device.device_id, kiosk_device.key,
                                retries=1, retry_delay=0.01, connect_timeout=0.5)
    with pytest.raises(CityHallUnreachable):
        client.ping()
    with pytest.raises(CityHallUnreachable):
        client.issue("s" * 20, Order((OrderLine("juminhyo", 1, 300),)), "txn-u", "p")


# --- lookup, verification, OpenAPI --------------------------------------------------------------------

def test_lookup_of_unknown_issuance_is_404(cityhall_server):
    answer = requests.get(f"{cityhall_server.url}/v1/issuances/11229-2026-99999999", timeout=10)
    assert answer.status_code == 404 and answer.json()["error"] == "unknown_issuance"


def test_verify_endpoint_accepts_genuine_and_rejects_altered(kiosk_device, cityhall_server):
    client, session = _session(kiosk_device, cityhall_server.world.cards_with_status("active")[0])
    (document,) = client.issue(session.session_id, Order((OrderLine("juminhyo", 1, 300),)), "txn-verify", "p")
    answer = requests.post(f"{cityhall_server.url}/verify", data=document.pdf,
                           headers={"Content-Type": "application/pdf"}, timeout=30).json()
    assert answer["genuine"] is True and answer["issuance_number"] == document.issuance_number
    answer = requests.post(f"{cityhall_server.url}/verify", files={"file": ("c.pdf", document.pdf)}, timeout=30).json()
    assert answer["genuine"] is True
    altered = bytearray(document.pdf)
    altered[len(altered) // 3] ^= 0x01
    answer = requests.post(f"{cityhall_server.url}/verify", data=bytes(altered), timeout=30).json()
    assert answer["genuine"] is False and answer["reason"] == "altered"
    forged_qr = requests.get(f"{cityhall_server.url}/verify", params={"qr": "MDG1|k|x|juminhyo|AA|BB"}, timeout=10)
    assert forged_qr.json()["genuine"] is False and forged_qr.json()["reason"] == "qr_malformed"
    page = requests.get(f"{cityhall_server.url}/verify", timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    assert requests.post(f"{cityhall_server.url}/verify", data=b"hello", timeout=10).status_code == 422


def test_openapi_describes_every_endpoint(cityhall_server):
    schema = requests.get(f"{cityhall_server.url}/openapi.json", timeout=10).json()
    assert {"/v1/ping", "/v1/challenges", "/v1/sessions", "/v1/issuances", "/v1/issuances/{issuance_number}",
            "/verify"} <= set(schema["paths"])
    body = schema["paths"]["/v1/issuances"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "order" in body["properties"]
    assert "OrderBody" in schema["components"]["schemas"]
