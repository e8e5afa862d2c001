"""`cityhall` commands against the service's own database: devices, migrations, config errors, and
`cityhall verify` on genuine, altered, forged and never-issued certificates of every type."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cityhall.documents import CertificateRequest, DocumentSigner, render_certificate
from cityhall.storage import LATEST_VERSION
from kiosk.ports import Order, OrderLine
from sync.device_key import public_key_text
from tests.integration.cityhall.conftest import ROOT, sign_challenge

pytestmark = pytest.mark.integration


def test_device_add_list_revoke(cityhall_server):
    key = public_key_text(Ed25519PrivateKey.generate())
    done = cityhall_server.cli("device", "add", "kiosk-cli-1", key, "--label", "lobby", "--location", "本庁舎1階")
    assert done.returncode == 0, done.stderr
    listing = cityhall_server.cli("device", "list").stdout
    line = next(ln for ln in listing.splitlines() if ln.startswith("kiosk-cli-1\t"))
    assert "\tactive\t" in line and key in line and "本庁舎1階" in line
    again = cityhall_server.cli("device", "add", "kiosk-cli-1", key)
    assert again.returncode == 1 and "already registered" in again.stderr
    bad = cityhall_server.cli("device", "add", "kiosk-cli-2", "not-a-key")
    assert bad.returncode == 1 and "ed25519:" in bad.stderr
    assert cityhall_server.cli("device", "revoke", "kiosk-cli-1").returncode == 0
    assert "\trevoked\t" in next(ln for ln in cityhall_server.cli("device", "list").stdout.splitlines()
                                 if ln.startswith("kiosk-cli-1\t"))


def test_migrate_reports_the_schema_version(cityhall_server):
    done = cityhall_server.cli("migrate")
    assert done.returncode == 0 and f"schema version {LATEST_VERSION} (up to date)" in done.stdout


def test_bad_config_is_one_line(tmp_path):
    config = tmp_path / "cityhall.toml"
    config.write_text('[pki]\ntrusted_auth_ca_files = ["a.pem"]\ncrl_file = "c.pem"\n[fees]\nkazei = -1\n')
    done = subprocess.run([sys.executable, "-m", "cityhall.cli", "--config", str(config), "migrate"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{config}: key 'fees.kazei': expected an integer from 0 to 100000, found integer -1"


def _issue_all_types(cityhall_server):
    world = cityhall_server.world
    cn = next(cn for cn, r in world.registry.items() if r["name"] == "広沢 恵子")
    card = world.card(cn)
    client = cityhall_server.add_device().client(issue_timeout=60)
    challenge = client.challenge()
    session = client.authenticate(challenge, card.cert_der, sign_challenge(card, challenge.nonce))
    order = Order((OrderLine("juminhyo", 1, 300, None, ("with_household", "with_honseki", "with_relationship")),
                   OrderLine("kazei", 1, 350, 2026), OrderLine("hikazei", 1, 200, 2026)))
    return world.registry[cn], client.issue(session.session_id, order, "cli-verify", "p")


def test_verify_accepts_genuine_and_rejects_altered_forged_and_unknown(cityhall_server, tmp_path):
    resident, documents = _issue_all_types(cityhall_server)
    assert [d.cert_type for d in documents] == ["juminhyo", "kazei", "hikazei"]
    for document in documents:
        genuine = tmp_path / f"{document.cert_type}.pdf"
        genuine.write_bytes(document.pdf)
        done = cityhall_server.cli("verify", str(genuine))
        assert done.returncode == 0 and done.stdout.startswith("GENUINE"), done.stdout + done.stderr

        altered = tmp_path / f"{document.cert_type}-altered.pdf"
        data = bytearray(document.pdf)
        data[len(data) // 2] ^= 0x20
        altered.write_bytes(bytes(data))
        done = cityhall_server.cli("verify", str(altered))
        assert done.returncode == 1 and "NOT GENUINE" in done.stdout and "altered" in done.stdout

    # A forger's key: the file and QR carry a signature city hall does not know.
    forged = render_certificate(CertificateRequest(
        "juminhyo", documents[0].issuance_number, datetime.now(timezone.utc), "和光市", "和光市長 柴崎 光子",
        resident), DocumentSigner.generate())
    path = tmp_path / "forged.pdf"
    path.write_bytes(forged.pdf)
    done = cityhall_server.cli("verify", str(path))
    assert done.returncode == 1 and "NOT GENUINE" in done.stdout and "unknown_key" in done.stdout

    # City hall's own key but a number it never issued (e.g. a leaked key or a test render).
    own = DocumentSigner.load_or_create(cityhall_server.data_dir / "document-signing-key.pem")
    unissued = render_certificate(CertificateRequest(
        "juminhyo", "11229-2026-99999998", datetime.now(timezone.utc), "和光市", "和光市長 柴崎 光子", resident), own)
    path = tmp_path / "unissued.pdf"
    path.write_bytes(unissued.pdf)
    done = cityhall_server.cli("verify", str(path))
    assert done.returncode == 1 and "unknown_issuance" in done.stdout

    missing = cityhall_server.cli("verify", str(tmp_path / "nope.pdf"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_lookup_and_signing_key_commands(cityhall_server):
    done = cityhall_server.cli("signing-key")
    assert done.returncode == 0 and done.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert cityhall_server.cli("lookup", "11229-2026-99999997").returncode == 1
