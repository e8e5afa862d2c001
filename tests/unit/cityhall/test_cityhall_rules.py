"""City hall's pure rules: config loading, offers and order checks, the registry file, card checks, and
how the kiosk client maps city hall's answers to kiosk errors."""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cityhall.cardauth import CardRefusal, CardVerifier, RevocationUnavailable
from cityhall.config import FeesSection, load_cityhall_config
from cityhall.offers import OrderInvalid, check_order, offers_for
from cityhall.registry import JsonRegistry, RegistryUnavailable
from drivers.sim.pki import TestPKI
from kiosk.errors import CardExpired, CardRefused, CardRevoked, CardStatusUnknown, CityHallError, CityHallRejected, \
    CityHallUnreachable, ConfigError, DeviceNotEnrolled, SessionExpired
from sync.issuance_client import _error_for

ROOT = Path(__file__).resolve().parents[3]
DEMO = json.loads((ROOT / "config" / "demo-registry.json").read_text(encoding="utf-8"))


def _resident(name: str) -> dict:
    return next(r for r in DEMO.values() if r["name"] == name)


# --- config --------------------------------------------------------------------------------------------

def test_shipped_config_loads_with_paths_from_the_project_root():
    config = load_cityhall_config(str(ROOT / "config" / "cityhall.toml"))
    assert config.database_url == f"sqlite:///{ROOT / 'var' / 'cityhall' / 'cityhall.sqlite3'}"
    assert config.signing_key_path == ROOT / "var" / "cityhall" / "document-signing-key.pem"
    assert config.path(config.registry.path) == ROOT / "config" / "demo-registry.json"
    assert config.fees.fee("juminhyo") == 300


@pytest.mark.parametrize("text, message", [
    ('[pki]\ncrl_file = "c"\n', "key 'pki.trusted_auth_ca_files': expected an array of strings (required), found nothing"),
    ('[pki]\ntrusted_auth_ca_files = ["a"]\ncrl_file = "c"\n[service]\ndatabase_url = "mysql://x"\n',
     "key 'service.database_url': expected a string matching"),
    ('[pki]\ntrusted_auth_ca_files = ["a"]\ncrl_file = "c"\n[city]\nmayor = "x"\n', "unknown key 'mayor'"),
])
def test_bad_config_names_file_key_expected_found(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_cityhall_config(str(path))
    assert str(path) in error.value.detail and message in error.value.detail


def test_config_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "env.toml"
    path.write_text('[pki]\ntrusted_auth_ca_files = ["/ca.pem"]\ncrl_file = "/crl.pem"\n[service]\nport = 9999\n')
    monkeypatch.setenv("CITYHALL_CONFIG", str(path))
    assert load_cityhall_config().service.port == 9999


# --- offers ----------------------------------------------------------------------------------------------

def test_offers_follow_the_residents_tax_records():
    fees = FeesSection(juminhyo=300, kazei=350, hikazei=200)
    taxed = {o.cert_type: o for o in offers_for(_resident("和光 太郎"), fees, 5)}
    assert set(taxed) == {"juminhyo", "kazei"} and taxed["kazei"].tax_years == (2026, 2025)
    untaxed = {o.cert_type: o for o in offers_for(_resident("広沢 恵子"), fees, 5)}
    assert untaxed["hikazei"].tax_years == (2026, 2025) and untaxed["hikazei"].fee_yen == 200
    # taxed one year, untaxed the other: 非課税証明書 only for the untaxed year
    mixed = {o.cert_type: o for o in offers_for(_resident("広沢 愛"), fees, 5)}
    assert mixed["hikazei"].tax_years == (2026,)
    assert set(o.cert_type for o in offers_for(_resident("和光 一郎"), fees, 5)) == {"juminhyo"}


def test_check_order_names_the_bad_field():
    offers = offers_for(_resident("和光 太郎"), FeesSection(), 3)
    good = check_order([{"cert_type": "juminhyo", "copies": 2, "unit_fee_yen": 300,
                         "options": ["with_honseki", "with_household", "with_honseki"]},
                        {"cert_type": "kazei", "copies": 1, "unit_fee_yen": 300, "tax_year": 2025}], offers)
    assert good[0].options == ("with_honseki", "with_household") and good[1].tax_year == 2025
    for line, field in (({"cert_type": "hikazei", "copies": 1, "unit_fee_yen": 300, "tax_year": 2025}, "cert_type"),
                        ({"cert_type": "kazei", "copies": 1, "unit_fee_yen": 300}, "tax_year"),
                        ({"cert_type": "juminhyo", "copies": 1, "unit_fee_yen": 300, "tax_year": 2025}, "tax_year"),
                        ({"cert_type": "juminhyo", "copies": 4, "unit_fee_yen": 300}, "copies"),
                        ({"cert_type": "juminhyo", "copies": 1, "unit_fee_yen": 0}, "unit_fee_yen"),
                        ({"cert_type": "juminhyo", "copies": 1, "unit_fee_yen": 300, "options": ["x"]}, "options")):
        with pytest.raises(OrderInvalid) as invalid:
            check_order([good[0].as_json(), line], offers)
        assert invalid.value.field == f"order.lines.1.{field}"


# --- registry --------------------------------------------------------------------------------------------

def test_demo_registry_shape():
    registry = JsonRegistry(ROOT / "config" / "demo-registry.json")
    records = [registry.find_by_card(cn) for cn in registry.card_ids()]
    assert len(records) >= 20 and sum(r["status"] == "active" for r in records) >= 20
    assert len({r["address"] for r in records}) >= 8
    assert {r["status"] for r in records} == {"active", "moved_out", "deceased", "protected"}
    assert all("和光市" in r["address"] for r in records)
    years = {y for r in records for y in r["tax"]}
    assert len(years) == 2
    assert any(t["municipal_tax"] == 0 for r in records for t in r["tax"].values())
    text = (ROOT / "config" / "demo-registry.json").read_text(encoding="utf-8")
    import re
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text), "no 12-digit number (個人番号) in the registry"
    assert all(len(cn) == 20 and cn.isalnum() for cn in registry.card_ids())
    head = registry.find_by_resident_id("R0001")
    assert head is not None and head["relationship"] == "世帯主" and head["household"]


def test_registry_refuses_a_bad_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"8439WAKO0001DEMOCARD": {**_resident("和光 太郎"), "status": "gone"}}))
    with pytest.raises(RegistryUnavailable, match="status"):
        JsonRegistry(path)
    path.write_text("{")
    with pytest.raises(RegistryUnavailable, match="not valid JSON"):
        JsonRegistry(path)


# --- card checks -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    return TestPKI(tempfile.mkdtemp(prefix="ca-"))


def _sign(card, data: bytes) -> bytes:
    return card.private_key().sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_card_verifier_reasons(pki):
    now = datetime.now(timezone.utc)
    good, revoked = pki.card("8439UNITTEST00000001"), pki.card("8439UNITTEST00000002")
    pki.write_crl([revoked.serial])
    verifier = CardVerifier((pki.ca_cert_path,), pki.crl_path, timedelta(hours=1))
    assert verifier.verify(good.cert_der, b"n" * 32, _sign(good, b"n" * 32), now).card_id == good.card_id

    def reason(cert_der, signature) -> str:
        with pytest.raises(CardRefusal) as refused:
            verifier.verify(cert_der, b"n" * 32, signature, now)
        return refused.value.reason

    assert reason(revoked.cert_der, _sign(revoked, b"n" * 32)) == "certificate_revoked"
    assert reason(good.cert_der, _sign(good, b"m" * 32)) == "bad_signature"
    expired = pki.card("8439UNITTEST00000001", expired=True)
    assert reason(expired.cert_der, _sign(expired, b"n" * 32)) == "certificate_expired"
    rogue = TestPKI(tempfile.mkdtemp(prefix="rogue-"), rogue=True).card("8439UNITTEST00000001")
    assert reason(rogue.cert_der, _sign(rogue, b"n" * 32)) == "unknown_card"
    assert reason(b"\x30\x03junk", b"x") == "unknown_card"
    # the CRL is reloaded when it changes
    pki.write_crl([])
    assert verifier.verify(revoked.cert_der, b"n" * 32, _sign(revoked, b"n" * 32), now).serial == revoked.serial
    # a CRL too far past its nextUpdate is not trusted (fail closed): no good status, no certificate
    with pytest.raises(CardRefusal, match="CRL .* expired") as stale:
        verifier.verify(good.cert_der, b"n" * 32, _sign(good, b"n" * 32), now + timedelta(days=3))
    assert stale.value.reason == "certificate_status_unknown"
    with pytest.raises(RevocationUnavailable, match="expired"):  # and the health probe says why
        verifier.check_revocation_source(now + timedelta(days=3))


# --- client error mapping ------------------------------------------------------------------------------

@pytest.mark.parametrize("status, body, expected", [
    (401, {"error": "unauthenticated", "reason": "device_revoked"}, DeviceNotEnrolled),
    (401, {"error": "unauthenticated", "reason": "unknown_device"}, DeviceNotEnrolled),
    (401, {"error": "unauthenticated", "reason": "stale_timestamp"}, CityHallRejected),
    (403, {"error": "card_refused", "reason": "expired"}, CardExpired),
    (403, {"error": "card_refused", "reason": "certificate_expired"}, CardExpired),
    (403, {"error": "card_refused", "reason": "certificate_revoked"}, CardRevoked),
    (403, {"error": "card_refused", "reason": "certificate_status_unknown"}, CardStatusUnknown),
    (403, {"error": "card_refused", "reason": "protected"}, CardRefused),
    (404, {"error": "session_unknown"}, SessionExpired),
    (410, {"error": "session_expired"}, SessionExpired),
    (409, {"error": "challenge_invalid"}, SessionExpired),
    (409, {"error": "transaction_conflict"}, CityHallRejected),
    (413, {"error": "body_too_large"}, CityHallRejected),
    (422, {"error": "invalid_request", "field": "order.lines.0.copies"}, CityHallRejected),
    (503, {"error": "not_ready"}, CityHallUnreachable),
    (500, {"error": "render_failed"}, CityHallError),
])
def test_client_error_mapping(status, body, expected):
    error = _error_for(status, body, "/v1/x")
    assert type(error) is expected
    if expected is CardRefused:
        assert error.reason == "protected"
