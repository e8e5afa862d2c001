"""Service hours: when the kiosk serves residents (times in Japan Standard Time)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from kiosk.config import ServiceHoursSection

JST = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class ServiceHours:
    opens: dt.time
    closes: dt.time
    closed_dates: frozenset[str]  # "MM-DD", every year
    maintenance_days: frozenset[str]  # "YYYY-MM-DD"

    @classmethod
    def from_config(cls, section: ServiceHoursSection) -> "ServiceHours":
        def parse(hhmm: str) -> dt.time:
            h, m = map(int, hhmm.split(":"))
            return dt.time.max if h == 24 else dt.time(h, m)
        return cls(parse(section.opens), parse(section.closes), frozenset(section.closed_dates),
                   frozenset(section.maintenance_days))

    def _closed_day(self, day: dt.date) -> bool:
        return day.strftime("%m-%d") in self.closed_dates or day.isoformat() in self.maintenance_days

    def is_open(self, now: dt.datetime) -> bool:
        local = now.astimezone(JST)
        return not self._closed_day(local.date()) and self.opens <= local.time() < self.closes

    def next_opening(self, now: dt.datetime) -> dt.datetime:
        """When service resumes (JST), shown on the idle screen while closed."""
        local = now.astimezone(JST)
        day = local.date()
        for _ in range(400):
            start = dt.datetime.combine(day, self.opens, tzinfo=JST)
            end = dt.datetime.combine(day, self.closes, tzinfo=JST)
            if not self._closed_day(day) and local < end:
                return max(start, local)
            day += dt.timedelta(days=1)
        raise ValueError("no opening within a year: check service_hours in the config")
