"""Suite-wide guard: the kiosk never touches what it must not on a My Number card.

Registered for the whole suite in tests/conftest.py (``pytest_plugins = ["tests.support.card_guard"]``).
At start it points $MADOGUCHI_APDU_LOG_DIR at a fresh directory (unless the caller set one), so every
virtual card started by any test logs each APDU it receives there (drivers/sim/jpki_card/simulator.py).
At the end it reads every log and fails the run if any APDU

- selected the card-face text application (券面事項入力補助AP, which holds the individual number), or
- selected EF 0001 (the signature certificate: name, address, birth date, sex; in the text AP, the
  individual number) or EF 001B (the signature password).

Peers that are not kiosk code (the OpenSC cross-check) run their virtual card with a log directory of
their own, outside this one.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

LOG_ENV = "MADOGUCHI_APDU_LOG_DIR"
FORBIDDEN_AID = bytes.fromhex("D3921000310001010408")
FORBIDDEN_EFS = {0x0001: "the signature certificate / individual number (EF 0001)",
                 0x001B: "the signature password (EF 001B)"}


@dataclass(frozen=True)
class Violation:
    log: str
    line: int
    apdu: str
    why: str

    def __str__(self) -> str:
        return f"{self.log}:{self.line}: {self.apdu} — {self.why}"


def classify(apdu_hex: str) -> str | None:
    """Why this APDU is forbidden for kiosk code, or None."""
    try:
        apdu = bytes.fromhex(apdu_hex.replace("*", "0"))
    except ValueError:
        return None
    if len(apdu) < 5 or apdu[1] != 0xA4:
        return None
    data = apdu[5:5 + apdu[4]]
    if apdu[2] == 0x04 and data == FORBIDDEN_AID:
        return "selected the card-face text application (券面事項入力補助AP)"
    if apdu[2] in (0x00, 0x02, 0x08, 0x09) and len(data) >= 2 and int.from_bytes(data[-2:], "big") in FORBIDDEN_EFS:
        return "selected " + FORBIDDEN_EFS[int.from_bytes(data[-2:], "big")]
    return None


def check_logs(directory: str | os.PathLike[str]) -> list[Violation]:
    found: list[Violation] = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                apdu = json.loads(line).get("apdu", "")
            except (ValueError, AttributeError):
                continue
            why = classify(apdu)
            if why:
                found.append(Violation(str(path), number, apdu, why))
    return found


_STASH = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    directory = os.environ.get(LOG_ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="apdu-log-")
        os.environ[LOG_ENV] = directory
    config.stash[_STASH] = directory


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    directory = session.config.stash.get(_STASH, None)
    if not directory or not Path(directory).is_dir():
        return
    violations = check_logs(directory)
    if not violations:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["FORBIDDEN CARD ACCESS: kiosk code sent APDUs it must never send (DESIGN.md, privacy):",
             *(f"  {v}" for v in violations),
             "Fix the code that sent them; the virtual card's APDU logs are in " + directory]
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line, red=True, bold=True)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
