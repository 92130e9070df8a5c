"""Working days: weekends and Vietnamese public holidays (lunar ones included) do not count."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays

from reconcile.errors import BadInput

# The dates an audit may be as of: earlier ones are typing errors (no system then), and the holidays
# package knows Vietnam's lunar holidays up to 2100 only (later years would count Tết as working days).
FIRST_DAY, LAST_DAY = date(1990, 1, 1), date(2100, 12, 31)


@lru_cache(maxsize=64)
def _holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("VN", years=year))


def is_working_day(d: date) -> bool:
    return d.weekday() < 5 and d not in _holidays(d.year)


def add_working_days(start: date, days: int) -> date:
    """The date `days` working days after `start` (a deadline); 0 gives `start` itself. A deadline past
    the calendar's last day stops at date.max: only a mistyped year gets there."""
    d = start
    left = days
    while left > 0:
        if d == date.max:
            return d
        d += timedelta(days=1)
        if is_working_day(d):
            left -= 1
    return d


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end]; negative when end is before start."""
    if end < start:
        return -working_days_between(end, start)
    n, d = 0, start
    while d < end:
        d += timedelta(days=1)
        n += is_working_day(d)
    return n


def parse_as_of(text: str, what: str = "--as-of") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%d/%m/%Y").date()
    except ValueError:
        raise BadInput(f"{what}: {text!r} is not a date. Expected YYYY-MM-DD or dd/mm/yyyy.") from None
