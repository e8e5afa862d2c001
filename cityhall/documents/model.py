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
CLOSING = "以下余白"
PERSONS_PER_SHEET = 4  # 世帯連記式: 住民記録システム標準仕様書 (docs/certificates.md)
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
    members: tuple[int, ...] = ()  # with_household: which members (0 = the card holder, 1.. = household[i-1]);
                                   # () = all of them. Fewer than all prints "世帯の一部".
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
    layout: str = ""               # juminhyo: "household" (世帯連記式) or "individual" (個人票)
    persons_per_sheet: int = 0     # 世帯連記式: a new sheet after this many persons, the header repeated
    closing: str = ""              # printed after the last entry: 以下余白

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
                 self.place_of_issue, self.copy_label, self.certification, self.closing, *self.notes]
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
    header, blocks, notes, certification, *layout = builders[req.cert_type](req, resident)
    layout_name, per_sheet = layout if layout else ("", 0)
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
        layout=layout_name,
        persons_per_sheet=per_sheet,
        closing=CLOSING,
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
        if req.cert_type == "hikazei" and _assessment(req).annual_tax != 0:
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


def _date(record: Mapping[str, Any], key: str) -> str:
    raw = record.get(key)
    return wareki_date(parse_iso_date(raw)) if raw else ""


def _person_rows(person: Mapping[str, Any], resident: Mapping[str, Any], *, relationship: bool,
                 honseki: bool, with_address: bool) -> tuple[Row, ...]:
    """One person's entry with every item a kiosk copy prints (docs/certificates.md, 住民票の写し).
    Never 個人番号 or 住民票コード: the record has neither, and the model refuses any 12-digit run."""
    kana = _text(person, "kana")
    name = _text(person, "name") + (f"（{kana}）" if kana else "")
    born = f"{_birth(person)}　{_text(person, 'sex')}"
    rows = [Row("氏名（ふりがな）", name)]
    if relationship:
        rows.append(Row("生年月日・性別・続柄", f"{born}　{_text(person, 'relationship')}"))
    else:
        rows.append(Row("生年月日・性別", born))
    if with_address:
        rows += [Row("住所", _text(resident, "address")), Row("世帯主", _text(resident, "household_head"))]
    moved_in = _date(person, "moved_in")
    reason = _text(person, "moved_in_reason")
    rows.append(Row("住民となった年月日", f"{moved_in}　{reason}" if reason and moved_in else moved_in))
    since, notified = _date(person, "address_since"), _date(person, "address_notified")
    rows.append(Row("住所を定めた年月日", f"{since}　（届出日 {notified}）" if notified else since))
    previous = _text(person, "previous_address")
    rows.append(Row("前住所", previous or ("（出生）" if reason == "出生" else "")))
    if honseki:
        # Members of one household share the record's 本籍 unless the registry says otherwise.
        place = _text(person, "honseki") or _text(resident, "honseki")
        head = _text(person, "honseki_head") or _text(resident, "honseki_head")
        rows.append(Row("本籍・筆頭者", f"{place}　筆頭者 {head}"))
    return tuple(rows)


def _juminhyo(req: CertificateRequest, resident: Mapping[str, Any]):
    show_relationship = "with_relationship" in req.options
    show_honseki = "with_honseki" in req.options
    household = "with_household" in req.options
    everyone: list[Mapping[str, Any]] = [resident, *(resident.get("household") or [])]
    if household:
        chosen = sorted(set(req.members)) if req.members else list(range(len(everyone)))
        if any(i < 0 or i >= len(everyone) for i in chosen):
            raise CertificateRequestInvalid(f"members: expected indexes 0–{len(everyone) - 1}, found {list(chosen)}")
        people = [everyone[i] for i in chosen]
        # The household head is listed first, as on the register; the rest keep the registry's order.
        people.sort(key=lambda person: person.get("relationship") != "世帯主")
        partial = len(people) < len(everyone)
    else:
        if req.members:
            raise CertificateRequestInvalid("members: only with the with_household option")
        people, partial = [resident], False  # 個人票: one person by design, not a part of a household copy

    if household:
        header = (Row("住所", _text(resident, "address")), Row("世帯主", _text(resident, "household_head")))
    else:
        header = ()
    blocks = tuple(Block(f"{index}", _person_rows(person, resident, relationship=show_relationship,
                                                  honseki=show_honseki, with_address=not household))
                   for index, person in enumerate(people, start=1))
    scope = ("世帯の一部" if partial else "世帯全員") if household else "本人のみ（個人票）"
    notes = [f"記載事項: {scope}（{len(people)}人） ／ 本籍・筆頭者: {'記載' if show_honseki else '省略'}"
             f" ／ 続柄: {'記載' if show_relationship else '省略'} ／ 個人番号・住民票コード: 省略"]
    if partial:
        notes.append("この写しは世帯の一部の者について記載したものです。")
    layout = ("household", PERSONS_PER_SHEET) if household else ("individual", 0)
    return header, blocks, tuple(notes), CERTIFICATION_SENTENCES["juminhyo"], *layout


def _tax_total(record: Mapping[str, Any]) -> int:
    return int(record.get("municipal_tax", 0)) + int(record.get("prefectural_tax", 0))


def _assessment(req: CertificateRequest):
    from cityhall.taxcalc import assess_record

    assert req.tax_year is not None
    return assess_record(req.resident, req.tax_year)


def _kazei(req: CertificateRequest, resident: Mapping[str, Any]):
    """住民税課税（所得）証明書: the items of the 税務システム標準仕様書's 課税証明書 (docs/certificates.md)."""
    a = _assessment(req)
    year = Block("年度", (Row("年度", wareki_fiscal_year(a.fiscal_year)),
                         Row("所得の年分", f"{wareki_calendar_year(a.fiscal_year - 1)}分")))
    income = Block("所得の内訳", (
        Row("給与", f"収入 {yen(a.salary_revenue)}　所得 {yen(a.salary_income)}"),
        Row("公的年金等", f"収入 {yen(a.pension_revenue)}　所得 {yen(a.pension_income)}"),
        Row("事業", yen(a.business_income)),
        Row("その他", yen(a.other_income)),
        Row("合計所得金額", yen(a.income_total))))
    deductions = Block("所得控除", (
        Row("社会保険料控除", yen(a.social_insurance_deduction)),
        Row("配偶者控除", yen(a.spouse_deduction)),
        Row("扶養控除", yen(a.dependent_deduction)),
        Row("基礎控除", yen(a.basic_deduction)),
        Row("所得控除合計", yen(a.deductions_total))))
    family = Block("扶養", (Row("控除対象配偶者", "有" if a.has_spouse else "無"),
                           Row("扶養親族の数", f"{a.dependents}人")))
    tax = Block("税額", (
        Row("課税標準額", yen(a.taxable_income)),
        Row("所得割額", f"市民税 {yen(a.municipal_income_levy)}　県民税 {yen(a.prefectural_income_levy)}"),
        Row("均等割額", f"市民税 {yen(a.municipal_per_capita)}　県民税 {yen(a.prefectural_per_capita)}"),
        Row("森林環境税", yen(a.forest_environment_tax)),
        Row("年税額", yen(a.annual_tax))))
    notes = ("所得の年分の1月1日から12月31日までの所得に基づき課税された年度の証明です。",
             "年税額は市民税・県民税（所得割額と均等割額の合計）と森林環境税（国税）の合計です。")
    return (_identity_rows(resident), (year, income, deductions, family, tax), notes,
            CERTIFICATION_SENTENCES["kazei"])


def _hikazei(req: CertificateRequest, resident: Mapping[str, Any]):
    a = _assessment(req)
    blocks = (Block("所得", (Row("年度", wareki_fiscal_year(a.fiscal_year)),
                             Row("所得の年分", f"{wareki_calendar_year(a.fiscal_year - 1)}分"),
                             Row("合計所得金額", yen(a.income_total)),
                             Row("市民税・県民税", "非課税"),
                             Row("森林環境税", "非課税"))),)
    sentence = CERTIFICATION_SENTENCES["hikazei"].format(fiscal_year=wareki_fiscal_year(a.fiscal_year))
    notes = ("地方税法第24条の5及び第295条（個人の住民税の非課税の範囲）により課されていません。",)
    return _identity_rows(resident), blocks, notes, sentence
