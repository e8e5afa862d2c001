"""The staff dashboard in a real browser (Debian chromium, headless, through Playwright) against the real
`cityhall serve`: login, the fleet page showing a kiosk's backlog, the reconciliation flagging a
planted mismatch, transaction lookup, alerts, and verification of a genuine and a forged certificate.
The fleet and reconciliation screenshots are written to docs/dashboard/."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import requests

from kiosk.ports import Order, OrderLine
from sync.issuance_client import HttpCityHallClient
from tests.integration.dashboard.conftest import DOCS, STAFF_USER, login

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_pages_need_a_login_and_a_wrong_password_is_refused(page, dash_hall):
    page.goto(f"{dash_hall.url}/dashboard/")
    assert page.url.endswith("/dashboard/login")
    login(page, dash_hall, password="not the password")
    assert page.locator("#login-error").is_visible()
    assert page.url.endswith("/dashboard/login")


def test_login_without_the_csrf_token_is_refused(dash_hall):
    answer = requests.post(f"{dash_hall.url}/dashboard/login", data={"username": STAFF_USER, "password": "x" * 12},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 403


def test_fleet_page_shows_the_kiosks_backlog_and_state(page, dash_world):
    login(page, dash_world.hall)
    assert page.url.endswith("/dashboard/")
    row = page.locator(f"#kiosk-{dash_world.kiosk.device_id}")
    assert row.locator(".backlog").inner_text().splitlines()[0].strip() == str(dash_world.backlog)
    held = dash_world.kiosk.journal.last_seq() - dash_world.backlog
    assert row.locator(".last-seq").inner_text().strip() == str(held)
    text = row.inner_text()
    assert "稼働中" in row.locator(".state").inner_text()
    assert "残りわずか" in row.locator(".device-receipt_printer").inner_text()  # the paper_low warning, in words
    assert "故障" in row.locator(".device-printer").inner_text() and "E404" in text  # the cover-open fault
    assert "現金 600円" in row.locator(".takings-cash").inner_text()  # 500 + 300 in by cash, 200 back as change
    assert "QR決済 300円" in row.locator(".takings-qr").inner_text()
    assert "金庫の現金 800円" in row.locator(".cashbox").inner_text()  # change comes from the hoppers, not the box
    for token in ("paper_low", "in_service", "device.fault", "receipt_printer", "OUT_OF_SERVICE", "juminhyo"):
        assert token not in text, f"raw token {token!r} on the fleet page"
    # docs/dashboard/fleet.png is taken by test_counter_browser (a kiosk with cash, vouchers and alarms)
    page.click("#lang-switch")
    assert "Kiosk fleet" in page.content() and "In service" in page.locator(f"#kiosk-{dash_world.kiosk.device_id}").inner_text()


def test_reconciliation_flags_the_planted_mismatch(page, dash_world):
    login(page, dash_world.hall)
    page.goto(f"{dash_world.hall.url}/dashboard/reconciliation?lang=en")
    mismatch = page.locator(f"#txn-{dash_world.mismatch}")
    assert "mismatch" in (mismatch.get_attribute("class") or "")
    assert mismatch.locator(".difference").inner_text().strip() == "300"
    for balanced in (dash_world.balanced, dash_world.qr):
        row = page.locator(f"#txn-{balanced}")
        assert "mismatch" not in (row.get_attribute("class") or "") and row.locator(".difference").inner_text() == "0"
    assert "Mismatches: 1" in page.locator(f"#recon-{dash_world.kiosk.device_id}").inner_text()
    page.screenshot(path=str(DOCS / "reconciliation.png"), full_page=True)
    page.click(f"#txn-{dash_world.mismatch} a")
    assert page.locator("#txn-id").input_value() == dash_world.mismatch
    assert "money.in" in page.content() and "txn.closed" in page.content()


def test_alerts_page_lists_a_fork(page, dash_world):
    hall = dash_world.hall
    from datetime import datetime, timezone

    hall.store.alert(dash_world.kiosk.device_id, "fork", "seq 3 differs from the event city hall holds", 3,
                     datetime.now(timezone.utc))
    login(page, hall)
    page.goto(f"{hall.url}/dashboard/alerts?lang=en")
    assert "fork (same sequence, different content)" in page.locator("#security").inner_text()


def _issue_a_certificate(dash_world) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    import json

    from tests.integration.sync.conftest import ROOT

    registry = json.loads((ROOT / "config" / "demo-registry.json").read_text(encoding="utf-8"))
    cn = next(cn for cn, r in sorted(registry.items()) if r["status"] == "active")
    card = dash_world.hall_pki.card(cn)
    client = HttpCityHallClient(dash_world.hall.url, dash_world.kiosk.device_id, dash_world.kiosk.key, retries=0)
    challenge = client.challenge()
    session = client.authenticate(challenge, card.cert_der,
                                  card.private_key().sign(challenge.nonce, padding.PKCS1v15(), hashes.SHA256()))
    (document,) = client.issue(session.session_id, Order((OrderLine("juminhyo", 1, 300),)), "txn-dash-verify", "p")
    return document.pdf


def test_verification_of_a_genuine_and_a_forged_certificate(page, dash_world, dash_pki):
    dash_world.hall_pki = dash_pki
    pdf = _issue_a_certificate(dash_world)
    folder = Path(tempfile.mkdtemp(prefix="pdfs-"))
    genuine, forged = folder / "genuine.pdf", folder / "forged.pdf"
    genuine.write_bytes(pdf)
    altered = bytearray(pdf)
    altered[len(altered) // 3] ^= 0x01
    forged.write_bytes(bytes(altered))
    login(page, dash_world.hall)
    page.goto(f"{dash_world.hall.url}/dashboard/verify?lang=ja")
    page.set_input_files("#pdf", str(genuine))
    page.click("#verify-button")
    assert page.locator("#verdict").get_attribute("data-genuine") == "yes"
    assert "真正な証明書です" in page.locator("#verdict").inner_text()
    page.set_input_files("#pdf", str(forged))
    page.click("#verify-button")
    assert page.locator("#verdict").get_attribute("data-genuine") == "no"
    assert re.search(r"altered|signature|mismatch", page.locator("main table").inner_text())
