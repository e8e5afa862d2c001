"""The production engine with every real driver through the real stacks — the card through pcscd and
vpcd, coins over a ccTalk pty, certificates through CUPS to an IPP printer, receipts over ESC/POS TCP,
QR payment and city hall over loopback HTTP — one cash and one QR transaction as a resident does them.

What is checked is what a city would check: the printed PDF is genuine (`cityhall verify`) and is the
card holder's own certificate, a receipt came out, the money in the journal balances with what the
emulated devices physically took and paid out, and the journal file holds no PIN and no 12-digit number.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import REPO, DemoConfigs, write_demo_configs

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


PIN = "4739"  # not the virtual cards' default, so finding it anywhere means the kiosk kept it
CARD_SLOT = 1  # "Virtual PCD 00 01": the card tests hold slot 0 of the process-wide pcscd


@pytest.fixture(scope="module")
def configs() -> Iterator[DemoConfigs]:
    import shutil

    made = write_demo_configs(card_slot=CARD_SLOT)
    yield made
    shutil.rmtree(made.root, ignore_errors=True)


@pytest.fixture(scope="module")
def kiosk(configs: DemoConfigs) -> Iterator[dict[str, Any]]:
    """The demo's emulated world on private ports, and the kiosk engine built from the demo config."""
    from drivers.sim.demo import EmulatedWorld
    from kiosk.compose import build_engine, check_config, load
    from kiosk.compose.demo import EngineRunner, plan_world
    from tests.support.pcsc import shared_pcsc_stack

    config = load(str(configs.kiosk))
    check_config(config)
    plan = plan_world(config, str(configs.cityhall), card_slot=CARD_SLOT)
    with EmulatedWorld(plan, pcsc=shared_pcsc_stack()) as world:
        runner = EngineRunner()
        engine, devices = build_engine(config, on_view=runner.on_view)
        runner.start(engine)
        controls = world.controls()
        controls.pin = PIN
        try:
            yield {"config": config, "world": world, "runner": runner, "controls": controls, "engine": engine}
        finally:
            runner.stop()
            devices.close()
            controls.close()


def registry(configs: DemoConfigs) -> dict[str, Any]:
    return json.loads((configs.root / "config" / "demo-registry.json").read_text(encoding="utf-8"))


def households_apart(configs: DemoConfigs) -> tuple[str, str]:
    """Two active residents of different households (addresses), for 'whose certificate is this?'."""
    active = [(cid, r) for cid, r in registry(configs).items() if r["status"] == "active"]
    first = active[0]
    other = next(item for item in active if item[1]["address"] != first[1]["address"])
    return first[0], other[0]


def cityhall_verify(configs: DemoConfigs, pdf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", str(configs.cityhall), "verify", str(pdf)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60,
                          check=True).stdout


def run_one(kiosk: dict[str, Any], configs: DemoConfigs, card_id: str, method: str) -> dict[str, Any]:
    from kiosk.compose.demo import scripted_transaction, wait_for_outputs

    world = kiosk["world"]
    began = time.time()
    docs_before = set(world.printed_documents())
    receipts_before = set(world.receipts())
    report = scripted_transaction(kiosk["runner"], kiosk["controls"], card_id, method, PIN)
    wait_for_outputs(world, len(docs_before) + report.documents, 0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(set(world.receipts()) - receipts_before) < 1:
        time.sleep(0.2)
    new_docs = sorted(set(world.printed_documents()) - docs_before)
    new_receipts = sorted(set(world.receipts()) - receipts_before)
    return {"report": report, "docs": new_docs, "receipts": new_receipts, "began": began}


def check_certificate_is_the_residents(configs: DemoConfigs, pdf: Path, card_id: str, stranger: str) -> None:
    verdict = cityhall_verify(configs, pdf)
    assert verdict.returncode == 0 and verdict.stdout.startswith("GENUINE"), verdict.stdout + verdict.stderr
    text = re.sub(r"\s+", " ", pdf_text(pdf))
    people = registry(configs)
    assert people[card_id]["name"] in text, "the certificate does not name the card holder"
    assert people[card_id]["address"] in text
    assert people[stranger]["name"] not in text and people[stranger]["address"] not in text


def check_journal_balances(kiosk: dict[str, Any], txn_id: str, documents: int) -> Any:
    row = kiosk["engine"].journal.transaction(txn_id)
    assert row.closed and row.outcome == "completed", row
    assert row.unmatched_yen == 0, row
    assert row.docs_printed == row.docs_expected == documents
    assert row.money_in - row.change_paid - row.refunded == row.fees_printed == row.amount_due > 0, row
    kiosk["engine"].journal.verify_chain()
    return row


def test_a_cash_transaction_through_every_real_stack(kiosk: dict[str, Any], configs: DemoConfigs) -> None:
    card_id, stranger = households_apart(configs)
    cash_before = kiosk["controls"].cash_state()
    done = run_one(kiosk, configs, card_id, "cash")
    report = done["report"]

    states = report.states
    assert states.index("CARD_READING") < states.index("PIN_ENTRY") < states.index("AUTHENTICATING")
    assert states[-2:] == ["DONE", "IDLE"]
    assert len(done["docs"]) == report.documents == 1
    check_certificate_is_the_residents(configs, done["docs"][0], card_id, stranger)
    assert len(done["receipts"]) == 1 and done["receipts"][0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    row = check_journal_balances(kiosk, report.txn_id, 1)
    cash_after = kiosk["controls"].cash_state()
    # the emulated coin box and hoppers agree with the journal, yen for yen
    assert cash_after["in_yen"] - cash_before["in_yen"] == row.money_in == 500
    assert cash_after["out_yen"] - cash_before["out_yen"] == row.change_paid == 500 - row.fees_printed


def test_a_qr_transaction_through_every_real_stack(kiosk: dict[str, Any], configs: DemoConfigs) -> None:
    from drivers.sim.qr_provider.control import QrProviderControl

    _, card_id = households_apart(configs)
    stranger, _ = households_apart(configs)
    done = run_one(kiosk, configs, card_id, "qr")
    report = done["report"]

    assert len(done["docs"]) == report.documents == 1
    check_certificate_is_the_residents(configs, done["docs"][0], card_id, stranger)
    assert len(done["receipts"]) == 1
    row = check_journal_balances(kiosk, report.txn_id, 1)
    provider = QrProviderControl(kiosk["world"].plan.qr_url)
    try:
        payment = provider.payment(row.payment_key)
    finally:
        provider.close()
    assert payment["status"] == "COMPLETED" and payment["amount"] == row.money_in == row.fees_printed, payment
    assert payment["refunded"] == 0 and row.change_paid == 0


def test_a_next_generation_ecdsa_p384_card_through_every_real_stack(kiosk: dict[str, Any], configs: DemoConfigs) -> None:
    """The same resident with a next-generation card (ECDSA P-384 / SHA-384 key and CA, 10-year
    certificate): the kiosk signs with the algorithm its certificate names, city hall checks the P-384
    chain and signature, the certificate is issued and printed (docs/next-generation-card.md)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from drivers.sim.pki import TestPKI

    card_id, stranger = households_apart(configs)
    controls = kiosk["controls"]
    controls.card_algorithm = "p384"
    try:
        done = run_one(kiosk, configs, card_id, "cash")
    finally:
        controls.card_algorithm = "rsa2048"
    cert = x509.load_der_x509_certificate(TestPKI(kiosk["world"].plan.pki_dir).card(card_id, algorithm="p384").cert_der)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.signature_hash_algorithm.name == "sha384"
    report = done["report"]
    assert report.states[-2:] == ["DONE", "IDLE"] and len(done["docs"]) == report.documents == 1
    check_certificate_is_the_residents(configs, done["docs"][0], card_id, stranger)
    check_journal_balances(kiosk, report.txn_id, 1)
    log = kiosk["world"].card.control.status()["log"]
    signs = [json.loads(line) for line in Path(log).read_text().splitlines() if json.loads(line)["apdu"].startswith("802A")]
    assert signs[-1]["apdu"].startswith("802A008030") and signs[-1]["sw"] == "9000"  # a 48-byte SHA-384 hash


def test_the_journal_file_holds_no_pin_and_no_12_digit_number(kiosk: dict[str, Any], configs: DemoConfigs) -> None:
    journal = kiosk["engine"].journal
    completed = [t for t in journal.transactions() if t.outcome == "completed"]
    assert len(completed) >= 2, "run after the two transactions: the journal must hold them"
    raw = b"".join(p.read_bytes() for p in sorted(Path(journal.path).parent.glob(Path(journal.path).name + "*")))
    text = raw.decode("latin-1")
    standalone = r"(?<![0-9A-Za-z]){}(?![0-9A-Za-z])"
    assert not re.search(standalone.format(PIN), text), "the PIN is in the journal file"
    assert not re.search(standalone.format(r"\d{12}"), text), "a 12-digit number is in the journal file"
    for record in registry(configs).values():  # nor any resident's name or address
        assert record["name"].encode() not in raw and record["address"].encode() not in raw
