"""The counter's pages in Debian's chromium (Playwright) against the real `cityhall serve`, on SQLite and on
PostgreSQL: the fleet page in words, alarms acknowledged and sent to a webhook that fails its first
tries, a 返金引換券 redeemed exactly once by two clerks at the same instant, the daily book signed off
and then refused an edit, a viewer refused a clerk's action (403), the audit log. Screenshots of the
SQLite run go to docs/dashboard/."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

from kiosk.journal import DocumentRow, Journal
from kiosk.ops import cashbook
from sync import voucher as voucher_code
from sync.device_key import create_device_key
from sync.uploader import Uploader, UploaderSettings
from tests.integration.dashboard.conftest import DOCS
from tests.integration.sync.conftest import ROOT, Kiosk, SyncCityHall, cityhall_config
from tests.support.postgres import PostgresCluster
from tests.support.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
PASSWORD = "counter staff password"
USERS = {"kato": "clerk", "ito": "viewer", "sato": "admin", "mori": "clerk"}
FAIL_FIRST = 2


@dataclass
class Receiver:
    """An incoming-webhook stand-in on loopback that answers 503 to its first FAIL_FIRST requests."""
    server: ThreadingHTTPServer
    bodies: list[dict] = field(default_factory=list)
    tries: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def start_receiver() -> Receiver:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            receiver = holder[0]
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver.tries += 1
            if receiver.tries <= FAIL_FIRST:
                self.send_response(503)
                self.end_headers()
                return
            receiver.bodies.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    holder.append(receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@dataclass
class CounterWorld:
    hall: SyncCityHall
    kiosk: Kiosk
    receiver: Receiver
    voucher_text: str
    expired_code: str


def _sale(journal: Journal, key: str, coins: list[int], fee: int, change: int, cert: str, method: str = "cash") -> str:
    txn = journal.begin_transaction("ja", "CARD_READING")
    journal.record(txn, "payment.intent", {"payment_key": key, "method": method, "amount": fee},
                   set={"payment_key": key, "method": method})
    for coin in coins:
        journal.money_in(key, coin, "qr" if method == "qr" else (f"note {coin}" if coin >= 1000 else f"coin {coin}"),
                         ref=f"{key}:capture:1" if method == "qr" else "")
    doc = f"{txn}-d1"
    journal.add_documents(txn, [DocumentRow(txn, doc, f"11229-{txn[-6:]}", cert, fee, "ab" * 32, f"{txn}-doc1", 0)],
                          {"documents": [{"document_id": doc, "issuance_number": f"11229-{txn[-6:]}",
                                          "cert_type": cert, "fee": fee, "sha256": "ab" * 32}]})
    journal.mark_document(txn, doc, True, {})
    if change:
        journal.money_out(key, change, "change")
    journal.close_transaction(txn, "completed", "DONE")
    return txn


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def counter_world(request: pytest.FixtureRequest, dash_pki) -> Iterator[CounterWorld]:  # noqa: ANN001
    backend = request.param
    directory = Path(tempfile.mkdtemp(prefix=f"ctr-{backend[:2]}-"))
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database(f"counter_{int(time.time() * 1000) % 10**8}")
    else:
        url = f"sqlite:///{directory / 'data' / 'cityhall.sqlite3'}"
    receiver = start_receiver()
    port = free_port()
    config = cityhall_config(directory, dash_pki, url, port)
    config.write_text(config.read_text(encoding="utf-8") + f"""
[counter]
webhook_url = "{receiver.url}"
webhook_format = "generic"
webhook_attempts = 6
webhook_backoff_seconds = 0.05
webhook_backoff_cap_seconds = 0.2
sweep_interval_seconds = 0.1
""", encoding="utf-8")
    from cityhall.storage import Database

    hall = SyncCityHall(backend, directory, port, url, config, Database(url))
    hall.start()
    for user, role in USERS.items():
        made = subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", str(config), "staff", "add", user,
                               "--role", role, "--password-stdin"], input=PASSWORD + "\n", capture_output=True,
                              text=True, timeout=60, cwd=ROOT)
        assert made.returncode == 0, made.stderr
    kdir = Path(tempfile.mkdtemp(prefix="ctrk-"))
    (kdir / "data").mkdir()
    key = create_device_key(kdir / "data" / "device-key.pem")
    device_id, _ = hall.add_device(key, location="和光市役所 本庁舎 1階")
    kiosk = Kiosk(device_id, key, kdir, hall, hall.url)
    journal = kiosk.journal
    journal.append("kiosk.state", {"from": "BOOT", "to": "IDLE", "reason": "start"})
    cashbook.record_refills(journal, {100: 200, 10: 300}, {"hoppers": [{"coin_yen": 100}, {"coin_yen": 10}]})
    _sale(journal, "pk-1", [1000], 300, 700, "juminhyo")
    _sale(journal, "pk-2", [500, 100], 600, 0, "kazei")
    _sale(journal, "pk-3", [300], 300, 0, "hikazei", method="qr")
    cashbook.record_emptied(journal, counted={1000: 1, 500: 1, 100: 1})  # 1600 expected: counted right
    # A refund that could not be paid: money at risk, then a signed voucher.
    txn = journal.begin_transaction("ja", "CARD_READING")
    journal.record(txn, "payment.intent", {"payment_key": "pk-4", "method": "cash", "amount": 300},
                   set={"payment_key": "pk-4", "method": "cash"})
    journal.money_in("pk-4", 500, "coin 500")
    journal.alarm("pk-4", 309, "500 yen could not be given back; a refund voucher is due", amount_at_risk=500)
    issued = voucher_code.issue(key, device_id, txn, 500, datetime.now(timezone.utc), 90)
    journal.record_voucher(txn, 500, issued.code, issued.expires_at)
    journal.close_transaction(txn, "voucher", "IDLE")
    journal.append("device.warning", {"device": "receipt_printer", "warning": "paper_near_end"})
    old = voucher_code.issue(key, device_id, f"{device_id}-999999", 200,
                             datetime.now(timezone.utc) - timedelta(days=200), 90)
    reader = Journal(journal.path, device_id, readonly=True)
    uploader = Uploader(reader, key, UploaderSettings(url=hall.url, device_id=device_id, request_timeout=10))
    uploader.drain()
    reader.close()
    yield CounterWorld(hall, kiosk, receiver, issued.text, old.code)
    kiosk.close()
    hall.stop()
    hall.db.close()
    receiver.server.shutdown()
    shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(kdir, ignore_errors=True)


def login_as(page, world: CounterWorld, user: str) -> None:  # noqa: ANN001
    page.goto(f"{world.hall.url}/dashboard/login?lang=ja")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    assert page.url.endswith("/dashboard/"), page.url


def http_session(world: CounterWorld, user: str) -> tuple[requests.Session, str]:
    """A logged-in HTTP session and its CSRF token (read from a page's form, as a browser would)."""
    s = requests.Session()
    login = s.get(f"{world.hall.url}/dashboard/login", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)[1]
    answer = s.post(f"{world.hall.url}/dashboard/login", data={"csrf": csrf, "username": user, "password": PASSWORD},
                    timeout=10)
    assert answer.status_code == 200, answer.status_code
    token = re.search(r'name="csrf" value="([^"]+)"', s.get(f"{world.hall.url}/dashboard/", timeout=10).text)[1]
    return s, token


def shoot(page, world: CounterWorld, name: str) -> None:  # noqa: ANN001
    if world.hall.backend == "sqlite":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / name), full_page=True)


def test_fleet_page_says_state_devices_float_and_today_in_words(page, counter_world):
    login_as(page, counter_world, "ito")
    row = page.locator(f"#kiosk-{counter_world.kiosk.device_id}")
    assert row.locator(".state").inner_text().strip() == "稼働中"
    assert "残りわずか" in row.locator(".device-receipt_printer").inner_text()
    assert "釣銭 100円硬貨 193枚" in row.locator(".hopper-100").inner_text()  # 200 refilled, 7 paid as change
    assert "金庫の現金 500円" in row.locator(".cashbox").inner_text()  # emptied, then the voucher sale's coin
    assert "住民票の写し: 1通 300円" in row.locator(".cert-juminhyo").inner_text()
    assert "現金 1,400円" in row.locator(".takings-cash").inner_text()  # 1000 + 600 + 500 in, 700 change out
    text = row.inner_text()
    for token in ("paper_near_end", "in_service", "receipt_printer", "juminhyo", "cash.emptied"):
        assert token not in text
    shoot(page, counter_world, "fleet.png")


def test_alarms_reach_the_webhook_after_failures_and_a_clerk_acknowledges(page, counter_world):
    receiver = counter_world.receiver
    deadline = time.monotonic() + 30
    while not any(b["kind"] == "money_at_risk" for b in receiver.bodies) and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = [b for b in receiver.bodies if b["kind"] == "money_at_risk"]
    assert sent and receiver.tries > FAIL_FIRST, "the sender did not retry through the receiver's failures"
    assert sent[0]["amount_yen"] == 500 and sent[0]["device_id"] == counter_world.kiosk.device_id
    registry = json.loads((ROOT / "config" / "demo-registry.json").read_text(encoding="utf-8"))
    wire = json.dumps(receiver.bodies, ensure_ascii=False)
    for resident in registry.values():  # no name, address or birth date of anyone in the registry
        for value in (resident.get("name"), resident.get("address"), resident.get("birth_date")):
            if isinstance(value, str) and value:
                assert value not in wire
    login_as(page, counter_world, "kato")
    page.goto(f"{counter_world.hall.url}/dashboard/alarms")
    alarm = page.locator("tr.alarm-money_at_risk").first
    assert "お金が未処理" in alarm.inner_text() and "¥500" in alarm.inner_text()
    alarm.locator(".ack-note").fill("窓口で返金引換券を確認")
    shoot(page, counter_world, "alarms.png")
    alarm.locator(".ack-button").click()
    acked = page.locator("tr.alarm-money_at_risk").first
    assert "kato が" in acked.locator(".acked").inner_text() and "窓口で返金引換券を確認" in acked.inner_text()


def test_a_viewer_cannot_acknowledge_or_sign_off(counter_world):
    session, csrf = http_session(counter_world, "ito")
    answer = session.post(f"{counter_world.hall.url}/dashboard/daybook/sign", data={"csrf": csrf, "day": ""},
                          timeout=10, allow_redirects=False)
    assert answer.status_code == 403 and "担当職員の権限" in answer.text
    assert session.get(f"{counter_world.hall.url}/dashboard/staff", timeout=10).status_code == 403
    audit = session.get(f"{counter_world.hall.url}/dashboard/audit", timeout=10).text
    assert "日計の締めを拒否された" in audit


def test_a_voucher_is_redeemed_once_even_by_two_clerks_at_the_same_instant(page, counter_world):
    login_as(page, counter_world, "kato")
    page.goto(f"{counter_world.hall.url}/dashboard/vouchers")
    page.fill("#voucher-code", counter_world.voucher_text)
    page.click("#voucher-check")
    assert page.locator("#voucher-amount").inner_text() == "¥500"
    assert counter_world.kiosk.device_id in page.locator("#voucher-kiosk").inner_text()
    assert "E309" in page.locator("#voucher-why").inner_text()
    shoot(page, counter_world, "voucher.png")
    clerks = [http_session(counter_world, "kato"), http_session(counter_world, "mori")]
    barrier = threading.Barrier(2)

    def redeem(clerk: tuple[requests.Session, str]) -> int:
        barrier.wait()
        return clerk[0].post(f"{counter_world.hall.url}/dashboard/vouchers/redeem",
                             data={"csrf": clerk[1], "code": counter_world.voucher_text}, timeout=20).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(redeem, clerks))
    assert statuses == [200, 409]
    page.click("#voucher-check")
    assert page.locator("#voucher-result").get_attribute("data-reason") == "already_redeemed"
    forged = counter_world.voucher_text[:-6] + ("0" if counter_world.voucher_text[-6] != "0" else "1") + \
        counter_world.voucher_text[-5:]
    page.fill("#voucher-code", forged)
    page.click("#voucher-check")
    assert page.locator("#voucher-result").get_attribute("data-ok") == "no"
    page.goto(f"{counter_world.hall.url}/dashboard/vouchers?code={counter_world.expired_code}")
    assert page.locator("#voucher-result").get_attribute("data-reason") == "expired"


def test_the_daily_book_is_signed_off_then_read_only(page, counter_world):
    login_as(page, counter_world, "kato")
    page.goto(f"{counter_world.hall.url}/dashboard/daybook")
    total = page.locator("#daybook-total")
    assert total.locator(".fee-kazei td.num").last.inner_text() == "600"
    assert total.locator(".fees td.num").last.inner_text() == "1,200"
    assert total.locator(".emptied td.num").last.inner_text() == "1,600"
    assert total.locator(".emptied-difference td.num").inner_text() == "+0"
    assert total.locator(".vouchers-issued td.num").last.inner_text() == "500"
    assert page.locator("#balance").inner_text() == "収支一致"
    page.click("#sign-button")
    assert "kato が" in page.locator("#signed-off").inner_text()
    shoot(page, counter_world, "daybook.png")
    session, csrf = http_session(counter_world, "mori")
    day = re.search(r'name="day" value="([0-9-]+)"', session.get(f"{counter_world.hall.url}/dashboard/daybook",
                                                                 timeout=10).text)[1]
    edit = session.post(f"{counter_world.hall.url}/dashboard/daybook/entry",
                        data={"csrf": csrf, "day": day, "kind": "adjustment", "amount": "-100", "note": "数え直し"},
                        timeout=10)
    assert edit.status_code == 409 and "締めた日は変更できません" in edit.text
    again = session.post(f"{counter_world.hall.url}/dashboard/daybook/sign", data={"csrf": csrf, "day": day},
                         timeout=10)
    assert again.status_code == 409
    page.fill("#entry-amount", "-100")
    page.fill("#entry-note", "硬貨1枚の数え違い")
    page.click("#entry-button")
    assert "硬貨1枚の数え違い" in page.locator("#daybook-entries tr.entry-correction").inner_text()
    csv = session.get(f"{counter_world.hall.url}/dashboard/daybook.csv?day={day}", timeout=10)
    assert csv.content.startswith("\ufeff".encode("utf-8")) and "手数料（住民税課税証明書）" in csv.content.decode("utf-8")
    pdf = session.get(f"{counter_world.hall.url}/dashboard/daybook.pdf?day={day}", timeout=20)
    assert pdf.content.startswith(b"%PDF-")
    pdf_path = Path(tempfile.mkdtemp(prefix="daybook-")) / "daybook.pdf"
    pdf_path.write_bytes(pdf.content)
    info = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True, timeout=30).stdout
    assert "(A4)" in info, info
    text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, timeout=30).stdout
    assert "日計表" in text and "kato" in text
    page.goto(f"{counter_world.hall.url}/dashboard/month")
    assert page.locator(f"#day-{day} .difference").inner_text() == "+0"
    shoot(page, counter_world, "month.png")
    page.goto(f"{counter_world.hall.url}/dashboard/audit")
    audit = page.locator("#audit").inner_text()
    for done in ("日計を締めた", "締めた日の変更を断られた", "日計を訂正", "警報を確認"):
        assert done in audit, done
