"""Fixtures for the dashboard: the real `cityhall serve` on SQLite, a staff login made with the CLI, one
kiosk whose journal (written through kiosk.journal.Journal) reached city hall through the real
uploader, and Debian's chromium driven headless by Playwright (never `playwright install`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from drivers.sim.pki import TestPKI
from kiosk.journal import DocumentRow, Journal
from sync.uploader import Uploader, UploaderSettings
from sync.device_key import create_device_key
from tests.integration.sync.conftest import ROOT, Kiosk, SyncCityHall, start_cityhall

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"]
STAFF_USER, STAFF_PASSWORD = "suzuki", "correct horse battery"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "dashboard"


@pytest.fixture(scope="session")
def dash_pki() -> Iterator[TestPKI]:
    directory = Path(tempfile.mkdtemp(prefix="dashpki-"))
    yield TestPKI(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def dash_hall(request: pytest.FixtureRequest, dash_pki: TestPKI) -> Iterator[SyncCityHall]:
    hall = start_cityhall("sqlite", dash_pki, request)
    added = subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", str(hall.config_path), "staff", "add",
                            STAFF_USER, "--display-name", "鈴木", "--password-stdin"], input=STAFF_PASSWORD + "\n",
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert added.returncode == 0, added.stderr
    yield hall
    hall.stop()
    hall.db.close()
    shutil.rmtree(hall.directory, ignore_errors=True)


def _cash_transaction(journal: Journal, key: str, paid: int, fee: int | None, change: int, outcome: str,
                      method: str = "cash") -> str:
    txn = journal.begin_transaction("ja", "CARD_READING")
    journal.record(txn, "payment.intent", {"payment_key": key, "method": method, "amount": fee or 300},
                   set={"payment_key": key, "method": method})
    journal.money_in(key, paid, "qr" if method == "qr" else "coin 100", ref=f"{key}:in")
    if fee is not None:
        doc = f"{txn}-d1"
        journal.add_documents(txn, [DocumentRow(txn, doc, f"11229-{txn[-6:]}", "juminhyo", fee, "ab" * 32,
                                                f"{txn}-doc1", 0)],
                              {"documents": [{"document_id": doc, "issuance_number": f"11229-{txn[-6:]}",
                                              "cert_type": "juminhyo", "fee": fee, "sha256": "ab" * 32}]})
        journal.mark_document(txn, doc, True, {})
    if change:
        journal.money_out(key, change, "change", ref=f"{key}:change")
    journal.close_transaction(txn, outcome, "DONE")
    return txn


@dataclass
class DashWorld:
    hall: SyncCityHall
    kiosk: Kiosk
    balanced: str
    mismatch: str
    qr: str
    backlog: int


@pytest.fixture(scope="session")
def dash_world(dash_hall: SyncCityHall) -> Iterator[DashWorld]:
    directory = Path(tempfile.mkdtemp(prefix="dashk-"))
    (directory / "data").mkdir()
    key = create_device_key(directory / "data" / "device-key.pem")
    device_id, _ = dash_hall.add_device(key, location="和光市役所 本庁舎 1階")
    kiosk = Kiosk(device_id, key, directory, dash_hall, dash_hall.url)
    journal = kiosk.journal
    journal.append("kiosk.state", {"from": "BOOT", "to": "IDLE", "reason": "start"})
    balanced = _cash_transaction(journal, "pk-bal", 500, 300, 200, "completed")
    mismatch = _cash_transaction(journal, "pk-mis", 300, None, 0, "completed")  # paid, nothing printed, no refund
    qr = _cash_transaction(journal, "pk-qr", 300, 300, 0, "completed", method="qr")
    journal.append("device.warning", {"device": "receipt_printer", "warning": "paper_low"})
    journal.append("device.fault", {"detail": "A4 printer: cover open", "code": 404})
    reader = Journal(journal.path, device_id, readonly=True)
    uploader = Uploader(reader, key, UploaderSettings(url=dash_hall.url, device_id=device_id, request_timeout=10))
    uploader.drain()
    for i in range(7):  # written while the uploader is away: the fleet page must show them as backlog
        journal.append("kiosk.state", {"from": "IDLE", "to": "IDLE", "reason": f"tick {i}"})
    uploader.heartbeat()
    reader.close()
    yield DashWorld(dash_hall, kiosk, balanced, mismatch, qr, backlog=7)
    kiosk.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Debian chromium at {CHROMIUM} (package chromium; scripts/bootstrap installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is not installed (extra 'test'; scripts/bootstrap installs it)")
    cache = tempfile.mkdtemp(prefix="pwcache-")
    os.environ["XDG_CACHE_HOME"] = cache
    with sync_playwright() as pw:
        # No D-Bus: other suites start and stop the system bus, and chromium aborts when its bus goes away.
        no_bus = f"unix:path={cache}/no-dbus-here"
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                      env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": no_bus,
                                           "DBUS_SESSION_BUS_ADDRESS": no_bus})
        yield chromium
        chromium.close()
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def page(browser):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    tab = context.new_page()
    tab.set_default_timeout(15000)
    yield tab
    context.close()


def login(page, hall: SyncCityHall, password: str = STAFF_PASSWORD) -> None:  # noqa: ANN001
    page.goto(f"{hall.url}/dashboard/login")
    page.fill("#username", STAFF_USER)
    page.fill("#password", password)
    page.click("#login-button")

