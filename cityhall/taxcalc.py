"""The 個人住民税 of one resident for 令和7年度 (fiscal year 2025, on the income of calendar 2024), as the
課税（所得）証明書 prints it: one small calculator, so every printed total is the sum of its parts.

Sources and assumptions are in docs/certificates.md ("住民税の計算"); the rate table is ``RATES_2025``.
The sample registry (config/demo-registry.json) stores each resident's *inputs* (revenues, insurance,
family); ``assess()`` turns them into the figures, and ``python -m cityhall.taxcalc FILE`` rewrites the
derived figures in FILE (``income``, ``deductions``, ``taxable_income``, ``municipal_tax``,
``prefectural_tax``) so the registry and the certificate can never disagree.

Simplifications (marked in the docs' unconfirmed list): no 調整控除 beyond the basic rule for taxable
income up to 2,000,000 yen, no 税額控除 (住宅ローン, 配当, ふるさと納税), no 障害者/寡婦/ひとり親 rules,
the 非課税 limits of a 1級地 municipality, 分離課税 income ignored.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Rates:
    fiscal_year: int
    basic_deduction: int = 430_000          # 基礎控除 (住民税; 合計所得 2,400万円以下)
    spouse_deduction: int = 330_000         # 配偶者控除 (一般)
    spouse_elderly_deduction: int = 380_000  # 老人控除対象配偶者 (70歳以上)
    dependent_general: int = 330_000        # 一般の扶養親族 (16歳以上)
    dependent_specific: int = 450_000       # 特定扶養親族 (19歳以上23歳未満)
    dependent_elderly: int = 380_000        # 老人扶養親族 (70歳以上, 同居老親等以外)
    municipal_rate_percent: int = 6         # 所得割 市民税 6 %
    prefectural_rate_percent: int = 4       # 所得割 県民税 4 %
    municipal_per_capita: int = 3_000       # 均等割 市民税
    prefectural_per_capita: int = 1_000     # 均等割 県民税 (埼玉県: 超過課税なし — see docs, unconfirmed)
    forest_environment_tax: int = 1_000     # 森林環境税 (国税, 令和6年度から均等割と併せて課税)
    single_exempt_limit: int = 450_000      # 合計所得がこれ以下なら非課税 (扶養なし, 1級地)


RATES_2025 = Rates(fiscal_year=2025)
RATES: dict[int, Rates] = {2025: RATES_2025, 2026: Rates(fiscal_year=2026)}


def salary_deduction(revenue: int) -> int:
    """給与所得控除 (令和2年分以降, 所得税法第28条第3項; 住民税も同じ). For 1,625,001–6,599,999 yen the law's
    table (別表第五) works on the revenue rounded down to 4,000 yen; the formula below does the same."""
    if revenue <= 1_625_000:
        return min(revenue, 550_000)
    if revenue < 6_600_000:
        base = revenue // 4_000 * 4_000
        if base <= 1_800_000:
            return base * 40 // 100 - 100_000
        if base <= 3_600_000:
            return base * 30 // 100 + 80_000
        return base * 20 // 100 + 440_000
    if revenue <= 8_500_000:
        return revenue * 10 // 100 + 1_100_000
    return 1_950_000


def pension_deduction(revenue: int, age: int) -> int:
    """公的年金等控除 (公的年金等以外の合計所得 1,000万円以下). ``age`` at 31 December of the income year."""
    if age >= 65 and revenue <= 3_300_000:
        return min(revenue, 1_100_000)
    if revenue <= 1_300_000:
        return min(revenue, 600_000)
    if revenue <= 4_100_000:
        return revenue * 25 // 100 + 275_000
    if revenue <= 7_700_000:
        return revenue * 15 // 100 + 685_000
    if revenue <= 10_000_000:
        return revenue * 5 // 100 + 1_455_000
    return 1_955_000


@dataclass(frozen=True)
class Assessment:
    """Every figure the certificate prints. Invariants (tests check them): income_total is the sum of
    the four incomes; deductions_total the sum of its kinds; taxable = floor1000(income − deductions);
    each tax the sum of its parts; annual_tax = municipal + prefectural + forest."""

    fiscal_year: int
    salary_revenue: int
    salary_income: int
    pension_revenue: int
    pension_income: int
    business_income: int
    other_income: int
    income_total: int               # 合計所得金額 (= 総所得金額 here: no 分離課税)
    social_insurance_deduction: int
    spouse_deduction: int
    dependent_deduction: int
    basic_deduction: int
    deductions_total: int
    has_spouse: bool                # 控除対象配偶者
    dependents: int                 # 扶養親族の数
    taxable_income: int             # 課税標準額 (総所得金額 − 所得控除, 1,000円未満切捨て)
    municipal_income_levy: int      # 所得割額 市民税
    prefectural_income_levy: int    # 所得割額 県民税
    municipal_per_capita: int       # 均等割額 市民税
    prefectural_per_capita: int     # 均等割額 県民税
    forest_environment_tax: int
    municipal_tax: int
    prefectural_tax: int
    annual_tax: int                 # 年税額

    @property
    def exempt(self) -> bool:
        return self.annual_tax == 0


def _age_at_year_end(birth: str, year: int) -> int:
    born = date.fromisoformat(birth)
    return year - born.year


def assess(inputs: Mapping[str, Any], birth_date: str, fiscal_year: int) -> Assessment:
    """``inputs``: salary_revenue, pension_revenue, business_income, other_income, social_insurance (yen),
    spouse ("" | "general" | "elderly"), dependents_general, dependents_specific, dependents_elderly."""
    rates = RATES.get(fiscal_year)
    if rates is None:
        raise ValueError(f"no tax rates for fiscal year {fiscal_year}; known: {sorted(RATES)}")
    income_year = fiscal_year - 1
    get = lambda key: int(inputs.get(key, 0) or 0)  # noqa: E731
    salary_revenue, pension_revenue = get("salary_revenue"), get("pension_revenue")
    salary_income = max(salary_revenue - salary_deduction(salary_revenue), 0)
    pension_income = max(pension_revenue - pension_deduction(pension_revenue,
                                                             _age_at_year_end(birth_date, income_year)), 0)
    business, other = get("business_income"), get("other_income")
    income_total = salary_income + pension_income + business + other

    spouse_kind = str(inputs.get("spouse") or "")
    spouse = {"": 0, "general": rates.spouse_deduction, "elderly": rates.spouse_elderly_deduction}[spouse_kind]
    n_general, n_specific, n_elderly = get("dependents_general"), get("dependents_specific"), get("dependents_elderly")
    dependent = (n_general * rates.dependent_general + n_specific * rates.dependent_specific
                 + n_elderly * rates.dependent_elderly)
    social = get("social_insurance")
    basic = rates.basic_deduction
    deductions_total = social + spouse + dependent + basic
    taxable = max(income_total - deductions_total, 0) // 1_000 * 1_000

    family = 1 + (1 if spouse_kind else 0) + n_general + n_specific + n_elderly
    supports = family > 1
    # 非課税の範囲 (1級地): 均等割 280,000×人数 + 100,000 (+168,000 扶養あり); 所得割 350,000×人数 + 100,000 (+320,000)
    per_capita_limit = 280_000 * family + 100_000 + 168_000 if supports else rates.single_exempt_limit
    income_levy_limit = 350_000 * family + 100_000 + 320_000 if supports else rates.single_exempt_limit
    per_capita_exempt = income_total <= per_capita_limit
    income_levy_exempt = income_total <= income_levy_limit

    municipal_levy = prefectural_levy = 0
    if not income_levy_exempt and taxable:
        # 調整控除 (地方税法第37条, 第314条の6): 人的控除差額 (基礎 50,000, 配偶者 50,000, 一般扶養 50,000,
        # 特定扶養 180,000, 老人扶養 100,000); 合計課税所得 200万円以下: min(差額, 課税所得) × 5 % (市3 %, 県2 %)
        difference = (50_000 + (50_000 if spouse_kind else 0) + 50_000 * n_general + 180_000 * n_specific
                      + 100_000 * n_elderly)
        adjust_base = min(difference, taxable) if taxable <= 2_000_000 else max(difference - (taxable - 2_000_000),
                                                                                 50_000)
        municipal_levy = max(taxable * rates.municipal_rate_percent // 100 - adjust_base * 3 // 100, 0) // 100 * 100
        prefectural_levy = max(taxable * rates.prefectural_rate_percent // 100 - adjust_base * 2 // 100, 0) // 100 * 100
    municipal_pc = 0 if per_capita_exempt else rates.municipal_per_capita
    prefectural_pc = 0 if per_capita_exempt else rates.prefectural_per_capita
    forest = 0 if per_capita_exempt else rates.forest_environment_tax
    municipal = municipal_levy + municipal_pc
    prefectural = prefectural_levy + prefectural_pc
    return Assessment(
        fiscal_year=fiscal_year, salary_revenue=salary_revenue, salary_income=salary_income,
        pension_revenue=pension_revenue, pension_income=pension_income, business_income=business,
        other_income=other, income_total=income_total, social_insurance_deduction=social,
        spouse_deduction=spouse, dependent_deduction=dependent, basic_deduction=basic,
        deductions_total=deductions_total, has_spouse=bool(spouse_kind),
        dependents=n_general + n_specific + n_elderly, taxable_income=taxable,
        municipal_income_levy=municipal_levy, prefectural_income_levy=prefectural_levy,
        municipal_per_capita=municipal_pc, prefectural_per_capita=prefectural_pc,
        forest_environment_tax=forest, municipal_tax=municipal, prefectural_tax=prefectural,
        annual_tax=municipal + prefectural + forest)


DERIVED_FIELDS = ("income", "deductions", "taxable_income", "municipal_tax", "prefectural_tax", "forest_tax")


def derived_figures(a: Assessment) -> dict[str, int]:
    """What the registry stores next to the inputs (read by offers: 非課税 when both taxes are 0)."""
    return {"income": a.income_total, "deductions": a.deductions_total, "taxable_income": a.taxable_income,
            "municipal_tax": a.municipal_tax, "prefectural_tax": a.prefectural_tax,
            "forest_tax": a.forest_environment_tax}


def assess_record(resident: Mapping[str, Any], fiscal_year: int) -> Assessment:
    entry = (resident.get("tax") or {})[str(fiscal_year)]
    return assess(entry.get("inputs") or {}, str(resident["birth_date"]), fiscal_year)


def rewrite_registry(path: Path) -> int:
    """Recompute every derived figure in the registry file from its inputs. Returns records changed."""
    data = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for record in data.values():
        for year, entry in (record.get("tax") or {}).items():
            figures = derived_figures(assess(entry.get("inputs") or {}, record["birth_date"], int(year)))
            if any(entry.get(k) != v for k, v in figures.items()):
                entry.update(figures)
                changed += 1
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "config/demo-registry.json")
    print(f"{rewrite_registry(path)} tax records recomputed in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Assessment", "RATES", "RATES_2025", "Rates", "asdict", "assess", "assess_record", "derived_figures",
           "pension_deduction", "rewrite_registry", "salary_deduction"]
