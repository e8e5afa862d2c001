"""Japanese calendar (和暦) and amount formatting for certificates.

Municipal certificates print dates in the Japanese era with the Gregorian year beside the issue date,
and amounts in yen with thousands separators. Pure functions, no clock.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")  # Japan has no daylight saving time: a fixed offset is exact.

# First day of each era, newest first (明治 starts on the Gregorian calendar's adoption date we can
# represent; residents born before 1873 do not exist in any registry this software serves).
_ERAS: tuple[tuple[date, str], ...] = (
    (date(2019, 5, 1), "令和"),
    (date(1989, 1, 8), "平成"),
    (date(1926, 12, 25), "昭和"),
    (date(1912, 7, 30), "大正"),
    (date(1868, 10, 23), "明治"),
)


def era_year(day: date) -> tuple[str, int]:
    """The era name and year number of ``day`` (year 1 is the era's first year)."""
    for start, name in _ERAS:
        if day >= start:
            return name, day.year - start.year + 1
    raise ValueError(f"{day.isoformat()} is before the Meiji era; no Japanese era date exists for it")


def _year_text(number: int) -> str:
    return "元" if number == 1 else str(number)


def wareki_date(day: date) -> str:
    """``date(2026, 1, 5)`` → ``令和8年1月5日``."""
    name, number = era_year(day)
    return f"{name}{_year_text(number)}年{day.month}月{day.day}日"


def wareki_fiscal_year(year: int) -> str:
    """The fiscal year (年度) starting on 1 April of ``year``: 2025 → ``令和7年度``.

    Named by the era in force at the end of that calendar year, as offices did for 2019 (令和元年度).
    """
    name, number = era_year(date(year, 12, 31))
    return f"{name}{_year_text(number)}年度"


def wareki_calendar_year(year: int) -> str:
    """A calendar year named by the era in force at its end: 2024 → ``令和6年``."""
    name, number = era_year(date(year, 12, 31))
    return f"{name}{_year_text(number)}年"


def issue_date_text(moment: datetime) -> str:
    """The issue date as printed: Japanese era with the Gregorian date, in Japan time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware (UTC stored, Asia/Tokyo shown)")
    day = moment.astimezone(JST).date()
    return f"{wareki_date(day)}（{day.year}年{day.month}月{day.day}日）"


def parse_iso_date(text: str) -> date:
    return date.fromisoformat(str(text))


def yen(amount: int) -> str:
    """``4200000`` → ``4,200,000円``; amounts are integer yen, never floats."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"amounts are integer yen, found {amount!r}")
    return f"{amount:,}円"
