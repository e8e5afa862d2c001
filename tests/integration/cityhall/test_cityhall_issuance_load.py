"""Under load, every document belongs to the resident whose card signed that session's challenge, and an
issue request repeated (one after another or at once) yields one issuance with the same bytes."""
from __future__ import annotations

import random
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kiosk.ports import Order, OrderLine
from tests.integration.cityhall.conftest import sign_challenge

pytestmark = pytest.mark.integration

KIOSKS = 8
RESIDENTS = 20


def _text(pdf: bytes, directory: Path, name: str) -> str:
    path = directory / f"{name}.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=30,
                          check=True).stdout
    return "".join(text.split())  # pdftotext may drop the space inside a name: compare without any


def test_no_wrong_person_certificate_under_load(cityhall_server):
    world = cityhall_server.world
    residents = world.cards_with_status("active")[:RESIDENTS]
    assert len(residents) == RESIDENTS
    devices = [cityhall_server.add_device() for _ in range(KIOSKS)]

    def kiosk_run(index: int) -> list[tuple[str, str, object]]:
        device = devices[index]
        client = device.client(issue_timeout=120, read_timeout=60)
        order = list(residents)
        random.Random(index).shuffle(order)
        out = []
        for cn in order:
            card = world.card(cn)
            challenge = client.challenge()
            session = client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
            txn = f"load-{device.device_id}-{cn}"
            (document,) = client.issue(session.session_id, Order((OrderLine("juminhyo", 1, 300),)), txn, "p")
            out.append((cn, txn, document))
        return out

    with ThreadPoolExecutor(KIOSKS) as pool:
        results = [item for batch in pool.map(kiosk_run, range(KIOSKS)) for item in batch]
    assert len(results) == KIOSKS * RESIDENTS
    assert len({doc.issuance_number for _, _, doc in results}) == KIOSKS * RESIDENTS

    with cityhall_server.db.transaction() as tx:
        stored = {(r["device_id"], r["transaction_id"]): r["resident_id"]
                  for r in tx.execute("SELECT device_id, transaction_id, resident_id FROM issuance_requests "
                                      "WHERE transaction_id LIKE 'load-%'")}
    directory = Path(tempfile.mkdtemp(prefix="load-"))
    names = {cn: "".join(world.registry[cn]["name"].split()) for cn in residents}
    for cn, txn, document in results:
        record = world.registry[cn]
        device_id = txn.removeprefix("load-").rsplit("-", 1)[0]
        assert stored[(device_id, txn)] == record["resident_id"]
        text = _text(document.pdf, directory, document.issuance_number)
        assert names[cn] in text, f"{document.issuance_number} does not name its resident"
        assert document.issuance_number in text
        strangers = [n for other, n in names.items()
                     if world.registry[other]["address"] != record["address"]]
        assert not [n for n in strangers if n in text], f"{document.issuance_number} names another resident"


def test_repeated_issue_request_is_one_issuance_with_the_same_bytes(cityhall_server):
    world = cityhall_server.world
    device = cityhall_server.add_device()
    client = device.client(issue_timeout=60)
    card = world.card(world.cards_with_status("active")[3])
    challenge = client.challenge()
    session = client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
    order = Order((OrderLine("juminhyo", 2, 300, None, ("with_household",)), OrderLine("kazei", 1, 350, 2025)))

    sequential = [client.issue(session.session_id, order, "idem-seq", "pay-1") for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        concurrent = list(pool.map(lambda _: device.client(issue_timeout=60).issue(
            session.session_id, order, "idem-par", "pay-2"), range(5)))

    for runs in (sequential, concurrent):
        first = runs[0]
        assert len(first) == 3
        for other in runs[1:]:
            assert [d.pdf for d in other] == [d.pdf for d in first]
            assert [d.issuance_number for d in other] == [d.issuance_number for d in first]
    with cityhall_server.db.transaction() as tx:
        for txn in ("idem-seq", "idem-par"):
            assert tx.one("SELECT COUNT(*) AS n FROM issuances WHERE device_id = ? AND transaction_id = ?",
                          (device.device_id, txn))["n"] == 3
            assert tx.one("SELECT COUNT(*) AS n FROM issuance_requests WHERE device_id = ? AND transaction_id = ?",
                          (device.device_id, txn))["n"] == 1
