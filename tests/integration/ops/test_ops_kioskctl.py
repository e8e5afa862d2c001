"""Every kioskctl subcommand, human and --json, against the demo's emulated world: the virtual card
behind pcscd/vpcd, coins on a ccTalk pty, CUPS with an IPP printer, ESC/POS over TCP, the QR provider
and city hall over loopback HTTP — reached through kiosk.compose exactly as on a kiosk."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import REPO, DemoConfigs, write_demo_configs

pytestmark = pytest.mark.integration

CARD_SLOT = 1  # "Virtual PCD 00 01": slot 0 belongs to the card tests of the process-wide pcscd
PIN_IN_LOG = "4739"
NUMBER_IN_LOG = "123456789012"


@dataclass
class Rig:
    configs: DemoConfigs
    config: Any
    world: Any

    def ctl(self, capsys: pytest.CaptureFixture[str], *argv: str, as_json: bool = False) -> tuple[int, Any]:
        from kiosk.kioskctl import main
        capsys.readouterr()
        rc = main([*argv, "--config", str(self.configs.kiosk), *(["--json"] if as_json else [])])
        out = capsys.readouterr().out
        return rc, (json.loads(out) if as_json else out)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    from drivers.sim.demo import EmulatedWorld
    from kiosk.compose import check_config, load
    from kiosk.compose.demo import plan_world
    from tests.support.pcsc import shared_pcsc_stack

    configs = write_demo_configs(card_slot=CARD_SLOT)
    config = load(str(configs.kiosk))
    check_config(config)
    plan = plan_world(config, str(configs.cityhall), card_slot=CARD_SLOT)
    try:
        with EmulatedWorld(plan, pcsc=shared_pcsc_stack()) as world:
            yield Rig(configs, config, world)
    finally:
        shutil.rmtree(configs.root, ignore_errors=True)


@pytest.mark.parametrize("as_json", [False, True])
def test_status_reports_every_device_and_the_journal(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    rc, out = rig.ctl(capsys, "status", as_json=as_json)
    assert rc == 0, out
    if as_json:
        assert {d["name"]: d["ok"] for d in out["devices"]} == {
            "card": True, "cityhall": True, "document_printer": True, "receipt_printer": True, "cash": True, "qr": True}
        assert out["kiosk_process"]["running"] is False and out["service"]["in_service"] is True
        assert out["journal"]["size_bytes"] > 0 and "backlog" in out["sync"] and out["device_id"] == "demo-kiosk-01"
        assert out["software"]["package_version"]
    else:
        assert "IN SERVICE" in out and "backlog" in out
        for name in ("card", "cityhall", "document_printer", "receipt_printer", "cash", "qr"):
            assert re.search(rf"^  ok   {name}\b", out, re.M), out


@pytest.mark.parametrize("as_json", [False, True])
def test_selftest_exercises_each_device(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    from kiosk.compose import build_devices, open_journal
    controls = rig.world.controls()
    controls.place_card(controls.residents[0].card_id)
    journal = open_journal(rig.config)
    reader = build_devices(rig.config, journal, roles=("card",)).card
    journal.close()

    def wait_card(present: bool) -> None:  # pcscd takes a moment to notice
        deadline = time.monotonic() + 10
        while reader.card_present() != present and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)

    wait_card(True)
    try:
        rc, out = rig.ctl(capsys, "selftest", as_json=as_json)
    finally:
        controls.remove_card()
        controls.close()
        wait_card(False)
    assert rc == 0, json.dumps(out, indent=1) if as_json else out
    if as_json:
        checks = {c["name"]: c for c in out["checks"]}
        assert out["passed"] and checks["journal"]["ok"] and checks["disk"]["ok"]
        assert checks["card"]["card_present"] and checks["card"]["certificate_bytes"] == 1583
        assert checks["card"]["reader_model"] == "vsmartcard virtual reader (vpcd)"
        assert checks["card"]["read_apdus"] >= 3  # SELECT AP, SELECT 000A, header read, the rest
        assert checks["cash"]["ok"] and checks["receipt_printer"]["ok"]
    else:
        assert out.rstrip().endswith("self-test passed") and "hash chain ok" in out
        assert "reader model: vsmartcard virtual reader (vpcd): both, CCID APDU (short + extended)" in out
        assert re.search(r"read test: user-authentication certificate, 1583 bytes in \d+ APDUs", out), out


def test_selftest_fails_when_a_device_does(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.world.cups.stop_printer()
    try:
        rc, out = rig.ctl(capsys, "selftest", as_json=True)
    finally:
        rig.world.cups.start_printer()
    assert rc == 1 and not out["passed"]
    assert [c["name"] for c in out["checks"] if c["ok"] is False] == ["document_printer"]


@pytest.mark.parametrize("what, as_json", [("a4", False), ("receipt", True)])
def test_test_print_reaches_the_printer(rig: Rig, capsys: pytest.CaptureFixture[str], what: str, as_json: bool) -> None:
    before = set(rig.world.printed_documents() if what == "a4" else rig.world.receipts())
    rc, out = rig.ctl(capsys, "test-print", what, as_json=as_json)
    assert rc == 0, out
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = set(rig.world.printed_documents() if what == "a4" else rig.world.receipts())
        if now - before:
            break
        time.sleep(0.2)
    assert now - before, f"nothing reached the {what} printer"
    job = out["job_name"] if as_json else re.search(r"\((TEST-\d+)\)", out).group(1)
    assert job.startswith("TEST-")


@pytest.mark.parametrize("as_json", [False, True])
def test_enroll_prints_the_key_city_hall_knows(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    rc, out = rig.ctl(capsys, "enroll", as_json=as_json)
    assert rc == 0
    registered = rig.world.plan.cityhall.device_public_key
    if as_json:
        assert out["public_key"] == registered and out["created"] is False
        assert out["register_with"].startswith("cityhall device add demo-kiosk-01 ed25519:")
    else:
        assert registered in out and "cityhall device add" in out


@pytest.mark.parametrize("as_json", [False, True])
def test_sync_now_drains_the_backlog(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    from kiosk.compose import open_journal
    journal = open_journal(rig.config)
    journal.append("ops.test_print", {"printer": "receipt", "job_name": "something to send"})
    last = journal.last_seq()
    journal.close()
    rc, out = rig.ctl(capsys, "sync-now", as_json=as_json)
    assert rc == 0, out
    if as_json:
        assert out["synced"] and out["acked_seq"] >= last and out["backlog"] == 0
    else:
        assert "up to #" in out and "backlog 0" in out
    rc, status = rig.ctl(capsys, "status", as_json=True)
    assert status["sync"]["backlog"] == 0 and status["sync"]["last_success_at"]


@pytest.mark.parametrize("as_json", [False, True])
def test_logs_are_redacted(rig: Rig, capsys: pytest.CaptureFixture[str], tmp_path: Path, as_json: bool) -> None:
    log = tmp_path / "kiosk.log"
    log.write_text(f"E401 printer out of paper\nverify pin={PIN_IN_LOG}\nfound {NUMBER_IN_LOG} on a form\n")
    rc, out = rig.ctl(capsys, "logs", "--file", str(log), "-n", "50", as_json=as_json)
    assert rc == 0
    text = "\n".join(out["lines"]) if as_json else out
    assert "E401 printer out of paper" in text
    assert PIN_IN_LOG not in text and NUMBER_IN_LOG not in text


def test_logs_from_journald_or_a_clear_message(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    from kiosk.kioskctl import main
    rc = main(["logs", "--config", str(rig.configs.kiosk)])
    captured = capsys.readouterr()
    if rc == 0:  # a machine with a systemd journal
        assert PIN_IN_LOG not in captured.out
    else:
        assert rc == 2 and "journalctl" in captured.err


@pytest.mark.parametrize("as_json", [False, True])
def test_cash_levels_refill_and_emptying(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    rc, before = rig.ctl(capsys, "cash", as_json=True)
    assert rc == 0
    hundred = {h["coin_yen"]: h["coins"] for h in before["levels"]["hoppers"]}[100]
    rc, out = rig.ctl(capsys, "cash", "refill", "--coin", "100", "--coins", "40", as_json=as_json)
    assert rc == 0
    rc, out = rig.ctl(capsys, "cash", "empty", "--counted", "0", as_json=as_json)
    assert rc == 0
    if as_json:
        assert out["recorded"]["kind"] == "cash.emptied" and out["levels"]["cashbox_yen"] == 0
    else:
        assert "recorded cash.emptied" in out and "hoppers" in out
    rc, after = rig.ctl(capsys, "cash", as_json=True)
    assert {h["coin_yen"]: h["coins"] for h in after["levels"]["hoppers"]}[100] == hundred + 40
    rc, out = rig.ctl(capsys, "cash", "refill", "--coin", "500", "--coins", "1")
    assert rc == 2


@pytest.mark.parametrize("as_json", [False, True])
def test_diagnostics_bundle_has_no_personal_data(rig: Rig, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 as_json: bool) -> None:
    log = tmp_path / "kiosk.log"
    log.write_text(f"verify pin={PIN_IN_LOG}\nnumber {NUMBER_IN_LOG}\n")
    target = tmp_path / "diag.tar.gz"
    rc, out = rig.ctl(capsys, "diagnostics", "--out", str(target), "--log-file", str(log), as_json=as_json)
    assert rc == 0 and target.exists()
    with tarfile.open(target) as tar:
        texts = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert {"diagnostics/status.json", "diagnostics/config.toml", "diagnostics/journal-summary.json",
            "diagnostics/logs.txt"} <= set(texts)
    everything = "\n".join(texts.values())
    assert PIN_IN_LOG not in everything and NUMBER_IN_LOG not in everything
    assert "PRIVATE KEY" not in everything and "demo-secret" not in everything  # qr api_secret masked
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", everything)
    if as_json:
        assert out["bundle"] == str(target)


@pytest.mark.parametrize("as_json", [False, True])
def test_health_and_migrate_of_this_release(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    rc, out = rig.ctl(capsys, "migrate", as_json=as_json)
    assert rc == 0 and (out["schema_version"] == 1 if as_json else "schema 1" in out)
    rc, out = rig.ctl(capsys, "health", as_json=as_json)
    assert rc == 0, out
    assert out["healthy"] if as_json else out.strip() == "healthy"


@pytest.mark.parametrize("as_json", [False, True])
def test_update_releases_and_rollback_through_the_cli(rig: Rig, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      shop: Any, as_json: bool) -> None:
    root = tmp_path / "root"
    common = ["--root", str(root)]
    rc, out = rig.ctl(capsys, "update", str(shop.bundle("1.0")), *common, "--release-key", str(shop.public_key),
                      "--no-systemd", as_json=as_json)
    assert rc == 0, out
    rc, out = rig.ctl(capsys, "update", str(shop.bundle("2.0")), *common, "--release-key", str(shop.public_key),
                      "--no-systemd", as_json=as_json)
    assert rc == 0
    assert (out["to"], out["from"]) == ("2.0", "1.0") if as_json else "release 2.0 is running (was 1.0)" in out
    rc, out = rig.ctl(capsys, "releases", *common, as_json=as_json)
    assert (out["current"] == "2.0" and out["installed"] == ["1.0", "2.0"]) if as_json else "* 2.0" in out
    rc, out = rig.ctl(capsys, "rollback", *common, "--release-key", str(shop.public_key), "--no-systemd",
                      as_json=as_json)
    assert rc == 0
    assert out["to"] == "1.0" if as_json else "went back from release 2.0 to 1.0" in out
    damaged = tmp_path / "damaged.bundle"
    data = bytearray(Path(shop.bundle("2.0")).read_bytes())
    data[-5] ^= 1
    damaged.write_bytes(bytes(data))
    rc, out = rig.ctl(capsys, "update", str(damaged), *common, "--release-key", str(shop.public_key), "--no-systemd",
                      as_json=as_json)
    assert rc == 2
    if as_json:
        assert out["error"]["code"] == 801


def test_release_keygen_and_build_through_the_cli(rig: Rig, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tests.integration.ops.fake_release import make_wheel
    make_wheel(tmp_path / "wheels", "3.0")
    rc, out = rig.ctl(capsys, "release", "keygen", str(tmp_path / "k.pem"), as_json=True)
    assert rc == 0 and out["public_key"].startswith("ed25519:")
    rc, out = rig.ctl(capsys, "release", "build", "--key", str(tmp_path / "k.pem"), "--version", "3.0", "--wheels",
                      str(tmp_path / "wheels"), "--requirement", "madoguchi", "--out", str(tmp_path / "3.bundle"))
    assert rc == 0 and "release 3.0" in out and (tmp_path / "3.bundle").exists()


def test_kioskctl_runs_as_its_own_command(rig: Rig) -> None:
    result = subprocess.run([sys.executable, "-m", "kiosk.kioskctl", "cash", "--json", "--config", str(rig.configs.kiosk)],
                            capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    assert "hoppers" in json.loads(result.stdout)["levels"]


@pytest.mark.parametrize("as_json", [False, True])
def test_service_off_and_on_reach_the_running_kiosk(rig: Rig, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    """The engine runs with the appliance lifecycle (as `kiosk run` does); kioskctl flips the switch."""
    from kiosk.compose import build_engine
    from kiosk.compose.demo import EngineRunner
    from kiosk.ops.lifecycle import ApplianceLifecycle
    from kiosk.ops.notify import SystemdNotifier

    runner = EngineRunner()
    engine, devices = build_engine(rig.config, on_view=runner.on_view)
    lifecycle = ApplianceLifecycle(rig.config.data_dir, engine.journal, rig.config.kiosk.device_id,
                                   rig.config.timeouts, SystemdNotifier({}))
    lifecycle.prepare(engine, lambda: runner._thread is not None and runner._thread.is_alive())
    runner.start(engine)
    try:
        runner.wait_for(lambda v: v.state in ("IDLE", "OUT_OF_SERVICE"), "the first steady screen", timeout=60)
        rc, out = rig.ctl(capsys, "service", "off", "--reason", "cleaning", "--wait", "15", as_json=as_json)
        assert rc == 0, out
        assert out["kiosk_followed"] is True if as_json else "is now out of service (cleaning)" in out
        view = runner.wait_for(lambda v: v.state == "OUT_OF_SERVICE", "out of service", timeout=15)
        assert view.out_of_service_reason == "cleaning"
        rc, status = rig.ctl(capsys, "status", as_json=True)
        assert not status["service"]["in_service"] and status["kiosk_process"]["running"]
        assert {d["name"]: d["ok"] for d in status["devices"]}["cash"] is None  # left to the running kiosk
        rc, out = rig.ctl(capsys, "service", "on", "--wait", "15", as_json=as_json)
        assert rc == 0 and (out["kiosk_followed"] is True if as_json else "is now in service" in out)
    finally:
        runner.stop()
        devices.close()
        lifecycle.stop()
        engine.journal.close()


def test_kiosk_run_notifies_systemd_and_follows_kioskctl(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    """`kiosk run --headless` as systemd starts it: READY=1 once settled, WATCHDOG=1 from its main loop,
    `kioskctl service off` followed, STOPPING=1 on SIGTERM — against a socket standing in for systemd."""
    import os
    import socket
    import tempfile

    from tests.support.pcsc import shared_pcsc_stack
    from tests.support.services import ManagedProcess, wait_until

    workdir = tempfile.mkdtemp(prefix="notify-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(workdir, "notify"))
    sock.settimeout(0.2)
    received: list[str] = []

    def got(prefix: str) -> bool:
        try:
            received.append(sock.recv(4096).decode())
        except (TimeoutError, socket.timeout):
            pass
        return any(m.startswith(prefix) for m in received)

    kiosk = ManagedProcess([sys.executable, "-m", "kiosk.cli", "run", "--headless", "--config", str(rig.configs.kiosk)],
                           name="kiosk-run", log_dir=workdir, cwd=str(REPO),
                           env={**shared_pcsc_stack().env, "NOTIFY_SOCKET": os.path.join(workdir, "notify"),
                                "WATCHDOG_USEC": "2000000", "PYTHONUNBUFFERED": "1"})
    kiosk.start()
    try:
        wait_until(lambda: got("READY=1"), 60, "READY=1 from the kiosk")
        wait_until(lambda: got("WATCHDOG=1") and received.count("WATCHDOG=1") >= 2, 10, "two watchdog pings")
        rc, out = rig.ctl(capsys, "service", "off", "--reason", "inspection", "--wait", "15", as_json=True)
        assert rc == 0 and out["kiosk_running"] and out["kiosk_followed"], out
        rc, out = rig.ctl(capsys, "service", "on", "--wait", "15", as_json=True)
        assert rc == 0 and out["kiosk_followed"]
    finally:
        kiosk.stop()
        log = kiosk.tail(40)
        deadline = time.monotonic() + 2
        while not got("STOPPING=1") and time.monotonic() < deadline:
            pass
        sock.close()
        shutil.rmtree(workdir, ignore_errors=True)
    assert any(m.startswith("STOPPING=1") for m in received), log


@pytest.mark.parametrize("as_json", [False, True])
def test_technician_password_prints_a_hash_the_screen_accepts(as_json: bool) -> None:
    from kiosk.credential import check_credential
    argv = [sys.executable, "-m", "kiosk.kioskctl", "technician-password"] + (["--json"] if as_json else [])
    done = subprocess.run(argv, input="s3cret-tech\n", capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "s3cret-tech" not in done.stdout
    hashed = (json.loads(done.stdout)["technician_credential_hash"] if as_json
              else done.stdout.split('technician_credential_hash = "')[1].split('"')[0])
    assert check_credential("s3cret-tech", hashed) and not check_credential("s3cret-teck", hashed)
    short = subprocess.run(argv, input="short\n", capture_output=True, text=True, timeout=60, cwd=REPO)
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
