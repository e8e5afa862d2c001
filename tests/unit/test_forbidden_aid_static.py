"""The card-face text application's AID (which leads to the individual number) must not appear in any
source outside the emulators and the tests, however it is spelled: a hex string, a bytes literal, a list
of ints (hex or decimal), with any separators."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AID = bytes.fromhex("D3921000310001010408")
ALLOWED_PREFIXES = ("drivers/sim/", "tests/")


# Between two bytes: nothing, or separators (spaces, commas, colons, quotes, brackets, plus signs, line
# breaks of a wrapped literal), bounded so unrelated numbers far apart never join.
SEPARATOR = r"""(?:[\s,:;'"+\-_\[\]()b]|\\\n){0,12}?"""
AID_PATTERN = re.compile(SEPARATOR.join(
    rf"(?:(?:0x|\\x)?{b:02x}|(?<![0-9]){b}(?![0-9]))" for b in AID), re.I)


def contains_forbidden_aid(text: str) -> bool:
    return AID_PATTERN.search(text) is not None


def source_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                         cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
    return [p for p in out.splitlines() if p and not p.startswith(ALLOWED_PREFIXES) and (REPO / p).is_file()]


def test_detector_catches_every_spelling() -> None:
    planted = [
        'AID = bytes.fromhex("D3921000310001010408")',
        'aid = "d3 92 10 00 31 00 01 01 04 08"',
        "aid = b'\\xd3\\x92\\x10\\x00\\x31\\x00\\x01\\x01\\x04\\x08'",
        "aid = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08]",
        "aid = bytes([211, 146, 16, 0, 49, 0, 1, 1, 4, 8])",
        'aid = "D3:92:10:00:31:00:01:01:04:08"',
    ]
    for text in planted:
        assert contains_forbidden_aid(text), text


def test_detector_leaves_the_jpki_aid_alone() -> None:
    assert not contains_forbidden_aid('JPKI_AID = bytes.fromhex("D392F000260100000001")')
    assert not contains_forbidden_aid("[0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01]")


def test_no_source_outside_emulators_and_tests_names_the_text_application() -> None:
    offenders = [p for p in source_files() if contains_forbidden_aid((REPO / p).read_text(errors="replace"))]
    assert not offenders, (f"the card-face text application's AID appears in {offenders}: kiosk code must never "
                           "select it (DESIGN.md, privacy invariants)")
