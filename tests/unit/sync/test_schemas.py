"""sync.schemas: the strict JSON parser and the event schemas (issue #19, "strict wire schemas").

Each refused case is a value that reached city hall's database or made it answer 500 before."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from sync.schemas import EVENT_SCHEMAS, MAX_DEPTH, SchemaViolation, check_event_body, strict_loads

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("text, field, words", [
    (b'{"amount": NaN}', "body", "NaN"),
    (b'{"amount": Infinity}', "body", "Infinity"),
    (b'{"amount": -Infinity}', "body", "-Infinity"),
    (b'{"amount": 1e400}', "body", "too large"),
    (b'{"amount": 9223372036854775808}', "body", "64 bits"),
    (b'{"amount": -9223372036854775809}', "body", "64 bits"),
    (b'{"amount": ' + b"9" * 5000 + b"}", "body", "64 bits"),
    (b'{"name": "\\ud800"}', "name", "surrogate"),
    (b'{"a": ["x", "\\udfff"]}', "a[1]", "surrogate"),
    (b'{"name": "\xed\xa0\x80"}', "body", "UTF-8"),  # a surrogate encoded as UTF-8 bytes
    (b'{"name": "\xff"}', "body", "UTF-8"),
    (b"[" * 4000 + b"]" * 4000, "body", "nested deeper"),
    (b"{", "body", "not valid JSON"),
])
def test_strict_loads_refuses(text: bytes, field: str, words: str) -> None:
    with pytest.raises(SchemaViolation) as caught:
        strict_loads(text)
    assert caught.value.field == field and words in caught.value.detail


def test_strict_loads_accepts_what_the_kiosk_sends() -> None:
    value = {"a": [1, -2, 2**63 - 1, -(2**63)], "b": "住民票 😀", "c": 1.5, "d": None,
             "e": {"f": "[[[{{{ brackets in text do not nest"}}
    assert strict_loads(json.dumps(value).encode()) == value
    assert strict_loads(json.dumps(value, ensure_ascii=False).encode()) == value
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert strict_loads(deep) is not None
    with pytest.raises(SchemaViolation):
        strict_loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    # brackets inside strings are not nesting, even many of them
    assert strict_loads(json.dumps({"t": "[" * 500}))["t"] == "[" * 500


@pytest.mark.parametrize("kind, body, field", [
    ("money.in", {"payment_key": "pk-1", "amount": "lots", "source": "coin"}, "body.amount"),
    ("money.in", {"payment_key": "pk-1", "amount": -1, "source": "coin"}, "body.amount"),
    ("money.in", {"payment_key": "pk-1", "amount": 10**9 + 1, "source": "coin"}, "body.amount"),
    ("money.in", {"payment_key": "pk-1", "amount": 100.0, "source": "coin"}, "body.amount"),
    ("money.in", {"payment_key": "pk-1", "amount": True, "source": "coin"}, "body.amount"),
    ("money.in", {"payment_key": "pk-1", "source": "coin"}, "body.amount"),
    ("voucher.issued", {"amount": 300, "voucher_code": "X", "expires_at": "2026-13-45T99:99:99Z"}, "body.expires_at"),
    ("txn.state", {"from": "IDLE", "to": "x" * 5000}, "body.to"),
    ("print.outcome", {"document_id": "d1", "printed": "yes"}, "body.printed"),
    ("issue.outcome", {"documents": [{"document_id": "d", "issuance_number": "1", "cert_type": "juminhyo",
                                      "fee": "300", "sha256": "0" * 64}]}, "body.documents[0].fee"),
    ("service.on", {"note": "x" * 5000}, "body.note"),  # extra fields are bounded too
    ("made.up", {}, "kind"),
])
def test_event_bodies_are_checked_against_their_kind(kind: str, body: dict, field: str) -> None:
    with pytest.raises(SchemaViolation) as caught:
        check_event_body(kind, body)
    assert caught.value.field == field


def test_unknown_kind_names_the_event() -> None:
    with pytest.raises(SchemaViolation) as caught:
        check_event_body("made.up", {}, "events[3].body")
    assert caught.value.field == "events[3].kind"


def _kinds_the_kiosk_appends() -> dict[str, str]:
    """Every literal event kind passed to the journal's writers in kiosk/ and drivers/ (also through a
    module-level constant such as ``EMPTIED = "cash.emptied"``)."""
    found: dict[str, str] = {}
    for folder in ("kiosk", "drivers", "sync"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                         and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                         for t in n.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                position = {"append": 0, "_append": 1, "record": 1}.get(node.func.attr)
                if position is None or len(node.args) <= position:
                    continue
                arg = node.args[position]
                value = arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", ""))
                if isinstance(value, str) and ("." in value or value == "alarm") and value.islower() \
                        and " " not in value and "/" not in value:
                    found.setdefault(value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_kind_the_kiosk_journals_has_a_schema() -> None:
    kinds = _kinds_the_kiosk_appends()
    assert {"money.in", "txn.started", "kiosk.state", "cash.emptied"} <= set(kinds) | {"money.in", "txn.started"}
    missing = {k: where for k, where in kinds.items() if k not in EVENT_SCHEMAS}
    assert missing == {}, f"add these journal event kinds to sync/schemas.py EVENT_SCHEMAS: {missing}"


def test_the_engines_bodies_pass_their_schemas() -> None:
    samples = {
        "money.in": {"payment_key": "k1", "amount": 300, "source": "coin 100", "ref": ""},
        "money.out": {"payment_key": "k1", "amount": 200, "reason": "change", "ref": "k1:change:1"},
        "kiosk.state": {"from": "IDLE", "to": "OUT_OF_SERVICE", "reason": "printer", "error_code": 404},
        "issue.failed": {"code": 401, "key": "error.cityhall_refused", "detail": "x", "status": 409},
        "order.chosen": {"lines": [{"cert_type": "juminhyo", "copies": 2, "unit_fee": 300, "tax_year": None,
                                    "options": []}], "total": 600},
        "voucher.issued": {"amount": 300, "voucher_code": "ABC", "expires_at": "2027-06-01T00:00:00+09:00"},
        "recovery.done": {"settled": {"k-000001": "refunded"}, "in_doubt": []},
        # city hall names documents "<transaction id>/<position>" (cityhall/service.py)
        "print.intent": {"document_id": "demo-kiosk-01-000001/1", "job_name": "madoguchi-demo-kiosk-01-000001-1"},
        "print.outcome": {"document_id": "demo-kiosk-01-000001/1", "printed": True},
        "cash.emptied": {"counted_yen": 1000, "expected_yen": 1200, "difference_yen": -200, "counted": {"1000": 1}},
    }
    for kind, body in samples.items():
        check_event_body(kind, body)
