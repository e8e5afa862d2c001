"""The 住民税 calculator (cityhall/taxcalc.py): the law's tables at their edges, and every sample
resident's printed figures adding up (docs/certificates.md, 住民税の計算)."""
from __future__ import annotations

import dataclasses

import pytest

from cityhall.taxcalc import assess, assess_record, derived_figures, pension_deduction, salary_deduction
from cityhall.documents.samples import sample_registry

REGISTRY = sample_registry()
TAX_RECORDS = [(cn, int(year)) for cn, r in REGISTRY.items() for year in (r.get("tax") or {})]


@pytest.mark.parametrize("revenue, deduction", [
    (0, 0), (500_000, 500_000), (1_625_000, 550_000),   # 給与所得控除: 55万円 minimum (令和2年分以降)
    (1_800_000, 620_000),                                 # ×40 % − 10万円
    (3_600_000, 1_160_000),                               # ×30 % + 8万円
    (3_601_999, 1_160_000),                               # the 4,000-yen step of 別表第五
    (6_000_000, 1_640_000),                               # ×20 % + 44万円
    (8_500_000, 1_950_000), (12_000_000, 1_950_000)])     # ×10 % + 110万円, 195万円 cap
def test_salary_deduction_table(revenue, deduction):
    assert salary_deduction(revenue) == deduction


@pytest.mark.parametrize("revenue, age, deduction", [
    (1_000_000, 64, 600_000), (2_000_000, 64, 775_000), (3_000_000, 65, 1_100_000),
    (3_500_000, 65, 1_150_000), (5_000_000, 70, 1_435_000)])
def test_public_pension_deduction_table(revenue, age, deduction):
    assert pension_deduction(revenue, age) == deduction


def test_a_worked_example_from_the_rules():
    """Salary 5,200,000, social insurance 780,000, a spouse: taxable 2,180,000 → 所得割 市 129,300 / 県 86,200
    after the 調整控除 of 50,000 × 5 %, plus 均等割 3,000 / 1,000 and 森林環境税 1,000."""
    a = assess({"salary_revenue": 5_200_000, "social_insurance": 780_000, "spouse": "general"}, "1980-04-01", 2025)
    assert (a.salary_income, a.deductions_total, a.taxable_income) == (3_720_000, 1_540_000, 2_180_000)
    assert (a.municipal_income_levy, a.prefectural_income_levy) == (129_300, 86_200)
    assert (a.municipal_per_capita, a.prefectural_per_capita, a.forest_environment_tax) == (3_000, 1_000, 1_000)
    assert a.annual_tax == 220_500


def test_below_the_exemption_limits_nothing_is_levied():
    single = assess({"salary_revenue": 1_000_000}, "1990-01-01", 2025)     # 所得 450,000: 非課税
    assert single.income_total == 450_000 and single.annual_tax == 0 and single.exempt
    just_over = assess({"salary_revenue": 1_004_000}, "1990-01-01", 2025)
    assert just_over.income_total == 454_000 and just_over.municipal_per_capita == 3_000


@pytest.mark.parametrize("cn, year", TAX_RECORDS)
def test_every_sample_residents_figures_add_up_and_match_the_registry(cn, year):
    record = REGISTRY[cn]
    a = assess_record(record, year)
    assert a.salary_income + a.pension_income + a.business_income + a.other_income == a.income_total
    assert (a.social_insurance_deduction + a.spouse_deduction + a.dependent_deduction + a.basic_deduction
            == a.deductions_total)
    assert a.taxable_income == max(a.income_total - a.deductions_total, 0) // 1000 * 1000
    assert a.municipal_tax == a.municipal_income_levy + a.municipal_per_capita
    assert a.prefectural_tax == a.prefectural_income_levy + a.prefectural_per_capita
    assert a.annual_tax == a.municipal_tax + a.prefectural_tax + a.forest_environment_tax
    assert all(v >= 0 for v in dataclasses.asdict(a).values() if isinstance(v, int))
    stored = record["tax"][str(year)]
    assert {k: stored[k] for k in derived_figures(a)} == derived_figures(a), \
        "run `python -m cityhall.taxcalc config/demo-registry.json`"


def test_samples_include_taxed_and_untaxed_residents():
    outcomes = {assess_record(REGISTRY[cn], year).exempt for cn, year in TAX_RECORDS}
    assert outcomes == {True, False}


def test_an_unknown_fiscal_year_is_refused():
    with pytest.raises(ValueError, match="no tax rates for fiscal year 2019"):
        assess({}, "1980-01-01", 2019)
