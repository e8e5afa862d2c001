"""Redaction for anything that leaves the kiosk as text (``kioskctl logs``, diagnostics bundles).

The kiosk never logs personal data on purpose; this is the second line: whatever slipped in is masked
before a technician copies it anywhere. Masked: 12-digit numbers (the individual number's shape),
PIN-like values next to the word PIN, card serials/CNs (20-character card ids), e-mail addresses,
secrets in ``key = value`` form, and PEM private keys.
"""
from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[private key removed]"),
    (re.compile(r"(?i)\b(pin|暗証番号)(\s*(?:code|number)?\s*[=:：]?\s*)[0-9０-９]{4,16}\b"), r"\1\2[PIN removed]"),
    (re.compile(r"(?<![0-9A-Za-z])[0-9０-９]{4}[ -]?[0-9０-９]{4}[ -]?[0-9０-９]{4}(?![0-9A-Za-z])"), "[12 digits removed]"),
    (re.compile(r"\b(?=[0-9A-Z]{20}\b)(?=[A-Z]*[0-9])[0-9A-Z]{20}\b"), "[card id removed]"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[e-mail removed]"),
    (re.compile(r"(?i)\b(api[_-]?key|api[_-]?secret|secret|password|passwd|token|credential[_a-z]*)(\s*[=:]\s*)"
                r"(\"[^\"]*\"|'[^']*'|\S+)"), r"\1\2[removed]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
