"""Wire schemas shared by the kiosk and city hall: strict JSON parsing, and one schema per journal event
kind (EVENT_SCHEMAS) and per request body that is not a pydantic model in cityhall.app.

City hall checks every event of a batch against its kind's schema before anything is stored; an event
of a kind that is not here, or of a shape its schema does not allow, is refused (422 naming the field).
ANYONE WHO ADDS A JOURNAL EVENT KIND, OR CHANGES AN EVENT'S BODY, ADDS OR ADJUSTS ITS SCHEMA HERE
(tests/unit/sync/test_schemas.py finds every kind the kiosk appends and fails when one has no schema).

Rules every value obeys, whatever its schema says (the ``strict_loads`` parser and ``ANY``):

- JSON is UTF-8 without lone surrogates (neither as bytes nor as ``\\ud800`` escapes);
- no NaN, Infinity or -Infinity, no number that overflows a float (``1e400``);
- integers within 64 bits signed; money ("yen") is an integer 0..10^9;
- nesting at most MAX_DEPTH (32) arrays/objects deep, checked on the text before the parser builds
  anything;
- times are ISO 8601 with a timezone that ``datetime.fromisoformat`` accepts (``2026-13-45`` is not).

A schema lists the fields of a body with their types; ``extra=ANY`` (the event schemas) lets a body
carry further fields — the engine spreads error details and recovery notes into some bodies — but
those are still bounded by the rules above (scalars, short strings, small lists and objects).

Pure (no I/O); both ends import it.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

MAX_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)
MAX_YEN = 10**9
MAX_TEXT = 1024
MAX_ITEMS = 256


class SchemaViolation(ValueError):
    """A value that does not fit its schema; ``field`` is the dotted path of the first bad value."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


# --- strict JSON -------------------------------------------------------------------------------------

_BRACKETS = re.compile(rb"[\[\]{}]")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _depth(brackets: list[bytes]) -> int:
    depth = deepest = 0
    for b in brackets:
        if b in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise SchemaViolation("body", f"{name} is not a number JSON allows here")


def _checked_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SchemaViolation("body", f"the number {text[:40]} is too large")
    return value


def _checked_int(text: str) -> int:
    if len(text) > 20:
        raise SchemaViolation("body", f"the integer {text[:40]}... does not fit in 64 bits")
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise SchemaViolation("body", f"the integer {text} does not fit in 64 bits")
    return value


def _surrogate_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if any(0xD800 <= ord(c) <= 0xDFFF for c in value) else None
    if isinstance(value, list):
        return next((p for i, v in enumerate(value) if (p := _surrogate_path(v, f"{path}[{i}]"))), None)
    if isinstance(value, dict):
        for k, v in value.items():
            p = _surrogate_path(k, f"{path}.<key>") or _surrogate_path(v, f"{path}.{k}")
            if p:
                return p
    return None


def strict_loads(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with the rules above. Raises SchemaViolation (field "body" or the path of the bad string)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    try:
        text = raw.decode("utf-8")  # strict: refuses invalid UTF-8 and UTF-8-encoded surrogates
    except UnicodeDecodeError as exc:
        raise SchemaViolation("body", f"the body is not valid UTF-8 (byte {exc.start})") from None
    brackets = _BRACKETS.findall(raw)
    if len(brackets) > 2 * max_depth and _depth(brackets) > max_depth:
        # brackets inside strings do not nest: count again without the strings before refusing
        if _depth(_BRACKETS.findall(_STRINGS.sub(b'""', raw))) > max_depth:
            raise SchemaViolation("body", f"the JSON is nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_checked_float,
                           parse_int=_checked_int)
    except SchemaViolation:
        raise
    except (ValueError, RecursionError):
        raise SchemaViolation("body", "the body is not valid JSON") from None
    if _SURROGATE_ESCAPE.search(raw):
        bad = _surrogate_path(value, "body")
        if bad:
            raise SchemaViolation(bad.removeprefix("body.") if bad != "body" else bad,
                                  "the text holds a lone UTF-16 surrogate (not a character)")
    return value


# --- schemas -----------------------------------------------------------------------------------------


class Spec:
    def check(self, value: Any, path: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _fail(path: str, detail: str) -> None:
    raise SchemaViolation(path, detail)


@dataclass(frozen=True)
class Int(Spec):
    lo: int = INT64[0]
    hi: int = INT64[1]

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            _fail(path, f"must be an integer, got {type(value).__name__}")
        if not self.lo <= value <= self.hi:
            _fail(path, f"must be between {self.lo} and {self.hi}, got {value}")


YEN = Int(0, MAX_YEN)
COUNT = Int(0, 2**31)
ERROR_CODE = Int(0, 99999)


@dataclass(frozen=True)
class Bool(Spec):
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            _fail(path, f"must be true or false, got {type(value).__name__}")


@dataclass(frozen=True)
class Text(Spec):
    max_len: int = MAX_TEXT
    pattern: str | None = None
    min_len: int = 0

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            _fail(path, f"must be text, got {type(value).__name__}")
        if not self.min_len <= len(value) <= self.max_len:
            _fail(path, f"must be {self.min_len}..{self.max_len} characters long, has {len(value)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            _fail(path, f"must match {self.pattern}")


ID = Text(128, r"[A-Za-z0-9._:-]*")
# City hall names a document "<transaction id>/<position>" (cityhall/service.py), so a slash is part of it.
DOCUMENT_ID = Text(128, r"[A-Za-z0-9._:/-]*")
HEX64 = Text(64, r"[0-9a-f]{64}")


@dataclass(frozen=True)
class IsoTime(Spec):
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or len(value) > 40:
            _fail(path, "must be an ISO 8601 time")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            _fail(path, f"{value!r} is not an ISO 8601 time")
        else:
            if moment.tzinfo is None:
                _fail(path, f"{value!r} has no timezone")


@dataclass(frozen=True)
class Nullable(Spec):
    inner: Spec

    def check(self, value: Any, path: str) -> None:
        if value is not None:
            self.inner.check(value, path)


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    max_items: int = MAX_ITEMS

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            _fail(path, f"must be a list, got {type(value).__name__}")
        if len(value) > self.max_items:
            _fail(path, f"holds at most {self.max_items} items, has {len(value)}")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")


@dataclass(frozen=True)
class Bounded(Spec):
    """Any JSON value, bounded: scalars, text of at most MAX_TEXT, lists/objects of at most MAX_ITEMS."""

    def check(self, value: Any, path: str) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, int):
            Int().check(value, path)
        elif isinstance(value, float):
            if not math.isfinite(value):
                _fail(path, "must be a finite number")
        elif isinstance(value, str):
            Text().check(value, path)
        elif isinstance(value, list):
            ListOf(self).check(value, path)
        elif isinstance(value, dict):
            if len(value) > MAX_ITEMS:
                _fail(path, f"holds at most {MAX_ITEMS} fields")
            for k, v in value.items():
                Text(64).check(k, f"{path}.<key>")
                self.check(v, f"{path}.{k}")
        else:
            _fail(path, f"is not a JSON value ({type(value).__name__})")


ANY = Bounded()


@dataclass(frozen=True)
class Obj(Spec):
    """An object with these fields (``optional`` ones may be absent); others only when ``extra`` is given."""

    fields: Mapping[str, Spec] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    extra: Spec | None = None

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            _fail(path, f"must be an object, got {type(value).__name__}")
        for name, spec in self.fields.items():
            sub = f"{path}.{name}" if path else name
            if name in value:
                spec.check(value[name], sub)
            elif name not in self.optional:
                _fail(sub, "is required")
        unknown = [k for k in value if k not in self.fields]
        if unknown and self.extra is None:
            _fail(f"{path}.{unknown[0]}" if path else unknown[0], "is not a field of this object")
        if unknown and len(value) > MAX_ITEMS:
            _fail(path or "body", f"holds at most {MAX_ITEMS} fields")
        for name in unknown:
            Text(64).check(name, f"{path}.<key>" if path else "<key>")
            assert self.extra is not None
            self.extra.check(value[name], f"{path}.{name}" if path else name)


def event(required: Mapping[str, Spec] | None = None, **optional: Spec) -> Obj:
    """An event body: these typed fields, plus further bounded ones (see the module text)."""
    fields = dict(required or {})
    fields.update(optional)
    return Obj(fields, frozenset(optional), extra=ANY)


STATE = Text(40, r"[A-Z_]+")
ORDER_LINE = Obj({"cert_type": Text(32), "copies": Int(1, 100), "unit_fee": YEN,
                  "tax_year": Nullable(Int(1900, 2200)), "options": ListOf(Text(64), 16)},
                 frozenset({"tax_year", "options"}), extra=ANY)
DOCUMENT = Obj({"document_id": DOCUMENT_ID, "issuance_number": Text(64), "cert_type": Text(32), "fee": YEN, "sha256": HEX64},
               extra=ANY)

#: Journal event kind → the schema of its body. Bodies as the kiosk writes them (kiosk/journal/store.py,
#: kiosk/engine/machine.py, kiosk/recovery.py, kiosk/ops/lifecycle.py, kiosk/ops/cashbook.py, kiosk/kioskctl.py).
EVENT_SCHEMAS: dict[str, Obj] = {
    "txn.started": event({"state": STATE, "language": Text(16)}),
    "txn.state": event({"from": STATE, "to": STATE}),
    "txn.closed": event({"outcome": Text(40)}),
    "kiosk.state": event({"from": STATE, "to": STATE}, reason=Text(500), error_code=ERROR_CODE),
    "kiosk.safe_mode": event(marker=Text(500)),
    "service.off": event(reason=Text(500)),
    "service.on": event(),
    "device.fault": event(detail=Text(500), code=ERROR_CODE),
    "device.warning": event(device=Text(64), warning=Text(200)),
    "card.read": event(tries_left=Int(0, 15)),
    "card.last_try_confirmed": event(),
    "card.verify.intent": event(entry=Int(0, 2**31)),
    "card.verify.outcome": event({"ok": Bool()}, tries_left=Int(0, 15), not_sent=Bool(), error_code=ERROR_CODE),
    "auth.outcome": event({"ok": Bool()}, offers=ListOf(Text(32), 16)),
    "order.chosen": event({"lines": ListOf(ORDER_LINE, 20), "total": YEN}),
    "payment.intent": event({"payment_key": ID, "method": Text(32), "amount": YEN}),
    "payment.outcome": event(state=Text(40), amount_in=YEN, change_paid=YEN, returned=YEN, unpaid_to_resident=YEN,
                             provider_ref=Nullable(Text(200)), recovered=Bool()),
    "money.in": event({"payment_key": ID, "amount": YEN, "source": Text(64)}, ref=Text(200)),
    "money.out": event({"payment_key": ID, "amount": YEN, "reason": Text(64)}, ref=Text(200)),
    "alarm": event({"payment_key": ID, "code": ERROR_CODE}, detail=Text(500), amount_at_risk=YEN),
    "issue.intent": event({"lines": ListOf(ORDER_LINE, 20)}),
    "issue.failed": event(code=ERROR_CODE, key=Text(128), detail=Text(500)),
    "issue.outcome": event(documents=ListOf(DOCUMENT, 100)),
    "print.intent": event({"document_id": DOCUMENT_ID}, job_name=Text(128)),
    "print.outcome": event({"document_id": DOCUMENT_ID, "printed": Bool()}, error_code=ERROR_CODE, not_attempted=Bool()),
    "receipt.intent": event(),
    "receipt.outcome": event({"printed": Bool()}, error_code=ERROR_CODE),
    "refund.intent": event({"refund_key": ID, "amount": YEN}),
    "refund.outcome": event({"refund_key": ID, "refunded": YEN}, error_code=ERROR_CODE),
    "recovery.done": event(settled=ANY, in_doubt=ListOf(ID, 1000)),
    "voucher.issued": event({"amount": YEN, "voucher_code": Text(512)}, expires_at=IsoTime()),
    "ops.test_print": event(printer=Text(128), job_name=Text(128)),
    # drivers/payment/cash/provider.py float_status(): the float per denomination with capacities (#16)
    "cash.float": event(hoppers=ListOf(event(coin_yen=YEN, coins=Nullable(COUNT), capacity=Nullable(COUNT),
                                             usable=Bool(), why_not=Nullable(Text(200)), address=Int(0, 255)), 32),
                        stacker=ANY, accepted_coins=ListOf(YEN, 16), accepted_notes=ListOf(YEN, 16), why=Text(64)),
    "cash.refill": event({"added": ANY}, coin_yen=YEN, coins=Int(1, 5000)),
    "cash.emptied": event({"counted_yen": YEN, "expected_yen": Int(-MAX_YEN, MAX_YEN),
                           "difference_yen": Int(-MAX_YEN, MAX_YEN)}, counted=ANY),
}


def check_event_body(kind: str, body: Any, path: str = "body") -> None:
    """Raises SchemaViolation naming the field (``path`` prefixes it, e.g. ``events[3].body``)."""
    schema = EVENT_SCHEMAS.get(kind)
    if schema is None:
        raise SchemaViolation(path.rpartition(".")[0] + ".kind" if "." in path else "kind",
                              f"city hall does not know the journal event kind {kind!r}")
    schema.check(body, path)


# --- request bodies not modelled in cityhall.app -----------------------------------------------------

#: The uploader's status, in a batch's "status" and in a heartbeat.
STATUS_SCHEMA = Obj({"backlog": COUNT, "oldest_unsent_at": Nullable(IsoTime()), "software_version": Text(64),
                     "sent_at": IsoTime(), "last_seq": Int(0, 2**62)},
                    frozenset({"backlog", "oldest_unsent_at", "software_version", "sent_at", "last_seq"}))
HEARTBEAT_SCHEMA = Obj({"status": STATUS_SCHEMA}, frozenset({"status"}))

__all__ = ["EVENT_SCHEMAS", "STATUS_SCHEMA", "HEARTBEAT_SCHEMA", "SchemaViolation", "strict_loads",
           "check_event_body", "MAX_DEPTH", "MAX_YEN", "Obj", "Int", "Text", "Bool", "IsoTime", "ListOf", "Nullable",
           "ANY", "YEN", "event"]
