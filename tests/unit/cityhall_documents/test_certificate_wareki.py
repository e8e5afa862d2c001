from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from cityhall.documents.wareki import (
    issue_date_text,
    wareki_calendar_year,
    wareki_date,
    wareki_fiscal_year,
    yen,
)


@pytest.mark.parametrize("day, expected", [
    (date(1926, 12, 24), "大正15年12月24日"),
    (date(1926, 12, 25), "昭和元年12月25日"),
    (date(1989, 1, 7), "昭和64年1月7日"),
    (date(1989, 1, 8), "平成元年1月8日"),
    (date(2019, 4, 30), "平成31年4月30日"),
    (date(2019, 5, 1), "令和元年5月1日"),
    (date(2026, 1, 5), "令和8年1月5日"),
])
def test_era_boundaries(day, expected):
    assert wareki_date(day) == expected


def test_fiscal_and_calendar_years():
    assert wareki_fiscal_year(2025) == "令和7年度"
    assert wareki_fiscal_year(2019) == "令和元年度"     # April 2019 is still 平成, but the 年度 is named 令和元
    assert wareki_calendar_year(2018) == "平成30年"
    assert wareki_calendar_year(2019) == "令和元年"


def test_issue_date_is_shown_in_japan_time_with_gregorian_date():
    # 20:00 UTC on 4 January is already 5 January in Japan.
    assert issue_date_text(datetime(2026, 1, 4, 20, 0, tzinfo=timezone.utc)) == "令和8年1月5日（2026年1月5日）"
    with pytest.raises(ValueError):
        issue_date_text(datetime(2026, 1, 4, 20, 0))


def test_yen_is_integer_only():
    assert yen(4200000) == "4,200,000円"
    assert yen(0) == "0円"
    with pytest.raises(ValueError):
        yen(1.5)  # type: ignore[arg-type]
