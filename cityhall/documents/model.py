"""What a certificate says, before any layout: the request, the document model and its canonical bytes.

The renderer draws exactly the model, and the QR code signs the SHA-256 of the model's canonical JSON
("the document's canonical content"), so what is signed is what is printed. Only known keys of the
resident record are read; anything else in the record (whatever a registry adapter adds) never reaches
a document. A 12-digit run anywhere in the model is refused outright: an individual number (個人番号)
must never be printed, whatever path it took to get here.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Mapping

from cityhall.documents.wareki import (
    JST,
    issue_date_text,
    parse_iso_date,
    wareki_calendar_year,
    wareki_date,
    wareki_fiscal_year,
    yen,
)

CONTENT_FORMAT = "madoguchi-certificate/1"

CERT_TYPES: dict[str, str] = {
    "juminhyo": "住民票の写し",
    "kazei": "住民税課税（所得）証明書",
    "hikazei": "住民税非課税証明書",
}
OPTIONS_BY_TYPE: dict[str, frozenset[str]] = {
    # 続柄 is printed only when asked for, as at a city hall counter.
    "juminhyo": frozenset({"with_household", "with_honseki", "with_relationship"}),
    "kazei": frozenset(),
    "hikazei": frozenset(),
}
CERTIFICATION_SENTENCES: dict[str, str] = {
    "juminhyo": "この写しは、住民票の原本と相違ないことを証明する。",
    "kazei": "上記のとおり相違ないことを証明する。",
    "hikazei": "上記の者は、{fiscal_year}の市民税・県民税が課されていないことを証明する。",
}
_INDIVIDUAL_NUMBER = re.compile(r"(?<!\d)\d{12}(?!\d)")


class CertificateRequestInvalid(ValueError):
    """The request cannot become a certificate (unknown type, missing tax year, inactive resident...).

    The message names the field; the service answers 422 with it. It never contains personal data.
    """


@dataclass(frozen=True)
class CertificateRequest:
    cert_type: str                 # juminhyo | kazei | hikazei
    issuance_number: str           # unique, printed on the document, e.g. "131-2026-00000123"
    issued_at: datetime            # timezone-aware
    city_name: str                 # e.g. "和光市"
    mayor_name: str                # e.g. "和光市長 柴崎 光子"
    resident: Mapping[str, Any]    # the registry record (see prompts/cityhall_shared.md)
    tax_year: int | None = None    # fiscal year (年度) of the tax record, e.g. 2025 → 令和7年度
    options: tuple[str, ...] = ()
    copy_number: int = 1
    copies: int = 1
    place_of_issue: str = ""       # the kiosk's location, e.g. "和光市役所 1階 証明書自動交付機"


@dataclass(frozen=True)
class Row:
    label: str
    value: str


@dataclass(frozen=True)
class Block:
    heading: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class DocumentModel:
    cert_type: str
    title: str
    issuance_number: str
    issued_at: str                 # ISO 8601 in Japan time
    issue_date: str                # as printed: 和暦（西暦）
    city_name: str
    mayor_name: str
    place_of_issue: str
    copy_label: str                # "1/2" when several copies were ordered, else ""
    header: tuple[Row, ...]
    blocks: tuple[Block, ...]
    notes: tuple[str, ...]
    certification: str
    format: str = field(default=CONTENT_FORMAT)

    def canonical_bytes(self) -> bytes:
        """Sorted-key compact UTF-8 JSON: the bytes whose SHA-256 the QR signature covers."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode("utf-8")

    def content_sha256(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @classmethod
    def from_canonical_bytes(cls, data: bytes) -> "DocumentModel":
        raw = json.loads(data.decode("utf-8"))
        if raw.get("format") != CONTENT_FORMAT:
            raise ValueError(f"unknown certificate content format {raw.get('format')!r}")
        return cls(**{**raw,
                      "header": tuple(Row(**r) for r in raw["header"]),
                      "blocks": tuple(Block(b["heading"], tuple(Row(**r) for r in b["rows"]))
                                      for b in raw["blocks"]),
                      "notes": tuple(raw["notes"])})

    def all_text(self) -> list[str]:
        texts = [self.title, self.issuance_number, self.issue_date, self.city_name, self.mayor_name,
                 self.place_of_issue, self.copy_label, self.certification, *self.notes]
        for row in self.header:
            texts += [row.label, row.value]
        for block in self.blocks:
            texts.append(block.heading)
            for row in block.rows:
                texts += [row.label, row.value]
        return texts


def contains_individual_number(text: str) -> bool:
    """True when ``text`` holds a run of exactly 12 digits (full-width digits count too)."""
    return bool(_INDIVIDUAL_NUMBER.search(unicodedata.normalize("NFKC", text)))


def build_model(req: CertificateRequest) -> DocumentModel:
    """Validate the request and turn it into what the certificate will say."""
    _validate_request(req)
    resident = req.resident
    builders = {"juminhyo": _juminhyo, "kazei": _kazei, "hikazei": _hikazei}
    header, blocks, notes, certification = builders[req.cert_type](req, resident)
    model = DocumentModel(
        cert_type=req.cert_type,
        title=CERT_TYPES[req.cert_type],
        issuance_number=req.issuance_number,
        issued_at=req.issued_at.astimezone(JST).isoformat(),
        issue_date=issue_date_text(req.issued_at),
        city_name=req.city_name,
        mayor_name=req.mayor_name,
        place_of_issue=req.place_of_issue,
        copy_label=f"{req.copy_number}/{req.copies}" if req.copies > 1 else "",
        header=header,
        blocks=blocks,
        notes=notes,
        certification=certification,
    )
    for text in model.all_text():
        if contains_individual_number(text):
            raise CertificateRequestInvalid(
                "a 12-digit number reached the certificate content; an individual number must never "
                "be printed — check the registry adapter's record for this issuance")
    return model


def _validate_request(req: CertificateRequest) -> None:
    if req.cert_type not in CERT_TYPES:
        raise CertificateRequestInvalid(
            f"cert_type: expected one of {', '.join(CERT_TYPES)}, found {req.cert_type!r}")
    unknown = set(req.options) - OPTIONS_BY_TYPE[req.cert_type]
    if unknown:
        raise CertificateRequestInvalid(
            f"options: {', '.join(sorted(unknown))} not available for {req.cert_type}")
    if not re.fullmatch(r"[0-9A-Za-z-]{1,40}", req.issuance_number or ""):
        raise CertificateRequestInvalid(
            "issuance_number: expected 1-40 letters, digits or hyphens, e.g. 131-2026-00000123")
    if req.issued_at.tzinfo is None or req.issued_at.utcoffset() is None:
        raise CertificateRequestInvalid("issued_at: expected a timezone-aware datetime")
    if not (1 <= req.copy_number <= req.copies <= 20):
        raise CertificateRequestInvalid(
            f"copy_number/copies: expected 1 <= copy_number <= copies <= 20, "
            f"found {req.copy_number}/{req.copies}")
    if not req.city_name or not req.mayor_name:
        raise CertificateRequestInvalid("city_name and mayor_name: expected non-empty text")
    status = req.resident.get("status", "active")
    if status != "active":
        raise CertificateRequestInvalid(f"resident status: certificates are issued for active "
                                        f"residents only, found {status!r}")
    if req.cert_type in ("kazei", "hikazei"):
        if req.tax_year is None:
            raise CertificateRequestInvalid(f"tax_year: required for {req.cert_type}")
        if str(req.tax_year) not in (req.resident.get("tax") or {}):
            raise CertificateRequestInvalid(f"tax_year: no tax record for fiscal year {req.tax_year}")
        record = req.resident["tax"][str(req.tax_year)]
        if req.cert_type == "hikazei" and _tax_total(record) != 0:
            raise CertificateRequestInvalid(
                f"tax_year: the resident was taxed for fiscal year {req.tax_year}; "
                "a 非課税証明書 cannot be issued")


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def _birth(record: Mapping[str, Any]) -> str:
    raw = record.get("birth_date")
    return wareki_date(parse_iso_date(raw)) if raw else ""


def _identity_rows(resident: Mapping[str, Any]) -> tuple[Row, ...]:
    return (Row("住所", _text(resident, "address")),
            Row("ふりがな", _text(resident, "kana")),
            Row("氏名", _text(resident, "name")),
            Row("生年月日", _birth(resident)))


def _juminhyo(req: CertificateRequest, resident: Mapping[str, Any]):
    show_relationship = "with_relationship" in req.options
    show_honseki = "with_honseki" in req.options
    people: list[Mapping[str, Any]] = [resident]
    if "with_household" in req.options:
        people += list(resident.get("household") or [])
        # The household head is listed first, as on the register; the rest keep the registry's order.
        people.sort(key=lambda person: person.get("relationship") != "世帯主")

    header = [Row("住所", _text(resident, "address")),
              Row("世帯主", _text(resident, "household_head"))]
    blocks = []
    for index, person in enumerate(people, start=1):
        rows = [Row("ふりがな", _text(person, "kana")),
                Row("氏名", _text(person, "name")),
                Row("生年月日", _birth(person)),
                Row("性別", _text(person, "sex"))]
        if show_relationship:
            rows.append(Row("続柄", _text(person, "relationship")))
        moved_in = person.get("moved_in")
        if moved_in:
            rows.append(Row("住民となった年月日", wareki_date(parse_iso_date(moved_in))))
        if show_honseki:
            # Members of one household share the record's 本籍 unless the registry says otherwise.
            rows.append(Row("本籍", _text(person, "honseki") or _text(resident, "honseki")))
            head = _text(person, "honseki_head") or _text(resident, "honseki_head")
            if head:
                rows.append(Row("筆頭者", head))
        blocks.append(Block(f"{index}", tuple(rows)))

    scope = "世帯全員" if "with_household" in req.options else "本人のみ"
    note = (f"記載事項: {scope} ／ 本籍・筆頭者: {'記載' if show_honseki else '省略'}"
            f" ／ 続柄: {'記載' if show_relationship else '省略'}")
    return tuple(header), tuple(blocks), (note,), CERTIFICATION_SENTENCES["juminhyo"]


def _tax_total(record: Mapping[str, Any]) -> int:
    return int(record.get("municipal_tax", 0)) + int(record.get("prefectural_tax", 0))


def _tax_rows(record: Mapping[str, Any], fiscal_year: int) -> tuple[Row, ...]:
    income = int(record["income"])
    taxable = int(record.get("taxable_income", 0))
    deductions = int(record["deductions"]) if "deductions" in record else max(income - taxable, 0)
    rows = [Row("年度", wareki_fiscal_year(fiscal_year)),
            Row("所得の年分", f"{wareki_calendar_year(fiscal_year - 1)}分"),
            Row("総所得金額", yen(income)),
            Row("所得控除額", yen(deductions)),
            Row("課税標準額", yen(taxable))]
    return tuple(rows)


def _kazei(req: CertificateRequest, resident: Mapping[str, Any]):
    assert req.tax_year is not None
    record = req.resident["tax"][str(req.tax_year)]
    municipal = int(record.get("municipal_tax", 0))
    prefectural = int(record.get("prefectural_tax", 0))
    blocks = (Block("所得・控除", _tax_rows(record, req.tax_year)),
              Block("税額", (Row("市民税", yen(municipal)),
                             Row("県民税", yen(prefectural)),
                             Row("合計", yen(municipal + prefectural)))))
    notes = ("所得の年分の1月1日から12月31日までの所得に基づき課税された年度の証明です。",)
    return _identity_rows(resident), blocks, notes, CERTIFICATION_SENTENCES["kazei"]


def _hikazei(req: CertificateRequest, resident: Mapping[str, Any]):
    assert req.tax_year is not None
    record = req.resident["tax"][str(req.tax_year)]
    blocks = (Block("所得", (Row("年度", wareki_fiscal_year(req.tax_year)),
                             Row("所得の年分", f"{wareki_calendar_year(req.tax_year - 1)}分"),
                             Row("総所得金額", yen(int(record["income"]))),
                             Row("市民税・県民税", "非課税"))),)
    sentence = CERTIFICATION_SENTENCES["hikazei"].format(fiscal_year=wareki_fiscal_year(req.tax_year))
    return _identity_rows(resident), blocks, (), sentence
