"""The suite-wide forbidden-APDU guard (tests/support/card_guard.py) really fails a run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from tests.support.card_guard import LOG_ENV, check_logs, classify

REPO = Path(__file__).resolve().parents[3]


def write_log(directory: Path, apdus: list[str]) -> None:
    with (directory / "apdu-1.jsonl").open("w") as fh:
        for apdu in apdus:
            fh.write(json.dumps({"card": "X", "apdu": apdu, "sw": "9000"}) + "\n")


def test_classify() -> None:
    assert classify("00A4040C0AD3921000310001010408")
    assert classify("00A404000AD392100031000101040800")
    assert classify("00A4020C020001")
    assert classify("00A4020C02001B")
    assert classify("00A4040C0AD392F000260100000001") is None
    assert classify("00A4020C02000A") is None
    assert classify("00B0000004") is None
    assert classify("0020008004********") is None


def test_check_logs_reports_each_planted_access(tmp_path: Path) -> None:
    write_log(tmp_path, ["00A4040C0AD392F000260100000001", "00A4040C0AD3921000310001010408",
                         "00A4020C020001", "00B0000004"])
    found = check_logs(tmp_path)
    assert [v.line for v in found] == [2, 3]
    assert "text application" in found[0].why and "EF 0001" in found[1].why


def test_a_planted_select_of_the_text_application_fails_a_pytest_run() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="guard-"))
    (workdir / "test_planted.py").write_text(textwrap.dedent("""
        import os
        from drivers.sim.jpki_card.simulator import ApduLog, APDU_LOG_ENV

        def test_kiosk_code_selects_the_text_application():
            ApduLog(os.environ[APDU_LOG_ENV]).record(
                "PLANTED", bytes.fromhex("00A4040C0AD3921000310001010408"), b"\\x90\\x00")
    """))
    env = {k: v for k, v in os.environ.items() if k != LOG_ENV}  # a log dir of its own, not this run's
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.support.card_guard",
                             "-p", "no:cacheprovider", "--rootdir", str(workdir), str(workdir / "test_planted.py")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "1 passed" in result.stdout, result.stdout + result.stderr  # the planted test itself passes...
    assert result.returncode == 1, result.stdout  # ...but the guard fails the run
    assert "FORBIDDEN CARD ACCESS" in result.stdout and "text application" in result.stdout


def test_a_clean_run_passes() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="guard-"))
    (workdir / "test_clean.py").write_text("def test_nothing():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != LOG_ENV}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.support.card_guard",
                             "-p", "no:cacheprovider", "--rootdir", str(workdir), str(workdir / "test_clean.py")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
