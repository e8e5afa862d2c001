"""Fail closed, the whole way: `cityhall serve` configured from cityhall.toml with an `openssl ocsp`
responder and no CRL fallback, asked by the kiosk's production client (sync.issuance_client) over
loopback HTTP. A good status opens a session; a revoked one is CardRevoked; with the responder gone the
card is refused as certificate_status_unknown, which the kiosk raises as E240 and shows as
「証明書の状態を確認できません」 (docs/revocation.md, the reason codes of the issues' contract)."""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from cityhall.storage import Database
from kiosk.errors import CardRevoked, CardStatusUnknown
from kiosk.i18n import catalog
from tests.integration.cityhall.conftest import ROOT, CityHallServer, TestWorld, _write_config, sign_challenge
from tests.support.ocsp import OcspResponder
from tests.support.services import ManagedProcess, free_port, port_open

pytestmark = pytest.mark.integration

if shutil.which("openssl") is None:  # Debian package openssl, in config/debian-packages.txt
    pytest.fail("openssl is not installed: `scripts/bootstrap` installs it")


@pytest.fixture(scope="module")
def ocsp_city_hall(world: TestWorld) -> Iterator[tuple[CityHallServer, OcspResponder, list[str]]]:
    active = world.cards_with_status("active")[:3]
    good = [world.card(card_id) for card_id in active]
    revoked = world.card(world.cards_with_status("active")[3])
    responder = OcspResponder(world.pki).start(good=good, revoked=[revoked])
    directory = Path(tempfile.mkdtemp(prefix="ch-ocsp-"))
    database_url = f"sqlite:///{directory / 'data' / 'cityhall.sqlite3'}"
    config_path = _write_config(directory, world, database_url)
    text = config_path.read_text(encoding="utf-8")
    crl_line = f'crl_file = "{world.pki.crl_path}"'
    assert crl_line in text
    config_path.write_text(text.replace(crl_line, f'crl_file = ""\nocsp_url = "{responder.url}"\n'
                                                  "ocsp_timeout_seconds = 2.0\nocsp_fallback_to_crl = false"),
                           encoding="utf-8")
    port = free_port()
    process = ManagedProcess([sys.executable, "-m", "cityhall.cli", "--config", str(config_path), "serve",
                              "--port", str(port)], name="cityhall-ocsp", log_dir=directory, cwd=str(ROOT))
    process.start(ready=lambda: port_open("127.0.0.1", port), timeout=30)
    db = Database(database_url)
    server = CityHallServer("sqlite", f"http://127.0.0.1:{port}", database_url, config_path, directory / "data",
                            process, db, world)
    yield server, responder, active + [revoked.card_id]
    process.stop()
    db.close()
    responder.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


def _authenticate(server: CityHallServer, card_id: str):
    client = server.add_device().client()
    card = server.world.card(card_id)
    challenge = client.challenge()
    return client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))


def test_good_then_revoked_then_responder_gone_is_refused_not_guessed(ocsp_city_hall) -> None:
    server, responder, (first, second, third, revoked) = ocsp_city_hall
    assert _authenticate(server, first).session_id  # OCSP said good: the resident goes on
    with pytest.raises(CardRevoked) as refused:
        _authenticate(server, revoked)
    assert refused.value.reason == "certificate_revoked"

    responder.stop()
    # the first card's good answer is cached until its nextUpdate (RFC 6960 §4.2.2.1), so it still passes;
    # a card the responder was never asked about cannot be checked now and is refused
    assert _authenticate(server, first).session_id
    started = time.monotonic()
    with pytest.raises(CardStatusUnknown) as unknown:
        _authenticate(server, second)
    assert time.monotonic() - started < 10
    assert unknown.value.code == 240 and unknown.value.reason == "certificate_status_unknown"
    assert unknown.value.as_dict()["key"] == "card_status_unknown"
    assert catalog("errors", "ja")("error.card_status_unknown.title") == "証明書の状態を確認できません"
    # city hall's own log says why, for the person who has to fix it
    logs = "".join(p.read_text(errors="replace") for p in Path(server.config_path.parent).glob("*.log"))
    assert "certificate_status_unknown" in logs
