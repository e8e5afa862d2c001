"""What a resident may order at the kiosk, and the check that an order stays within it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cityhall.config import FeesSection

#: 住民票の写し options: 世帯全員 (else 本人のみ), 本籍・筆頭者 shown, 続柄 shown.
JUMINHYO_OPTIONS = ("with_household", "with_honseki", "with_relationship")


@dataclass(frozen=True)
class OfferSpec:
    cert_type: str
    fee_yen: int
    tax_years: tuple[int, ...] = ()
    options: tuple[str, ...] = ()
    max_copies: int = 5

    def as_json(self) -> dict[str, Any]:
        return {"cert_type": self.cert_type, "fee_yen": self.fee_yen, "tax_years": list(self.tax_years),
                "options": list(self.options), "max_copies": self.max_copies}


def is_untaxed(entry: Mapping[str, Any]) -> bool:
    return int(entry["municipal_tax"]) + int(entry["prefectural_tax"]) == 0


def offers_for(resident: Mapping[str, Any], fees: FeesSection, max_copies: int) -> tuple[OfferSpec, ...]:
    """Only an active resident gets offers (the caller refuses the others with their status)."""
    tax: Mapping[str, Mapping[str, Any]] = resident.get("tax", {}) or {}
    years = tuple(sorted((int(y) for y in tax), reverse=True))
    untaxed_years = tuple(y for y in years if is_untaxed(tax[str(y)]))
    offers = [OfferSpec("juminhyo", fees.juminhyo, (), JUMINHYO_OPTIONS, max_copies)]
    if years:
        offers.append(OfferSpec("kazei", fees.kazei, years, (), max_copies))
    if untaxed_years:
        offers.append(OfferSpec("hikazei", fees.hikazei, untaxed_years, (), max_copies))
    return tuple(offers)


class OrderInvalid(Exception):
    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


@dataclass(frozen=True)
class CheckedLine:
    cert_type: str
    copies: int
    unit_fee_yen: int
    tax_year: int | None
    options: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"cert_type": self.cert_type, "copies": self.copies, "unit_fee_yen": self.unit_fee_yen,
                "tax_year": self.tax_year, "options": list(self.options)}


def check_order(lines: list[Mapping[str, Any]], offers: tuple[OfferSpec, ...]) -> tuple[CheckedLine, ...]:
    by_type = {o.cert_type: o for o in offers}
    checked: list[CheckedLine] = []
    for i, line in enumerate(lines):
        where = f"order.lines.{i}"
        offer = by_type.get(line["cert_type"])
        if offer is None:
            raise OrderInvalid(f"{where}.cert_type",
                               f"{line['cert_type']!r} is not available to this resident (offered: "
                               f"{', '.join(by_type)})")
        tax_year = line.get("tax_year")
        if offer.tax_years:
            if tax_year not in offer.tax_years:
                raise OrderInvalid(f"{where}.tax_year", f"must be one of {list(offer.tax_years)}, found {tax_year}")
        elif tax_year is not None:
            raise OrderInvalid(f"{where}.tax_year", f"{offer.cert_type} takes no tax year")
        options = tuple(sorted(set(line.get("options") or ())))
        unknown = [o for o in options if o not in offer.options]
        if unknown:
            raise OrderInvalid(f"{where}.options", f"{unknown} not offered for {offer.cert_type} "
                                                   f"(offered: {list(offer.options)})")
        if not 1 <= line["copies"] <= offer.max_copies:
            raise OrderInvalid(f"{where}.copies", f"must be 1 to {offer.max_copies}, found {line['copies']}")
        if line["unit_fee_yen"] != offer.fee_yen:
            raise OrderInvalid(f"{where}.unit_fee_yen",
                               f"the fee of {offer.cert_type} is {offer.fee_yen} yen, found {line['unit_fee_yen']}")
        checked.append(CheckedLine(offer.cert_type, line["copies"], offer.fee_yen, tax_year, options))
    return tuple(checked)
