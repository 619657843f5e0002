"""The fiscal calendar: fiscal years, quarters and periods, and the horizon's periods.

A fiscal year starts on the first day of month ``year_start`` (1-12) and is named
after the calendar year in which it ends: with ``year_start`` 4, April 2026 - March
2027 is FY2027; with 1, FY2026 is calendar 2026. Its quarters are Q1..Q4, its twelve
periods the months from ``year_start`` on.

A week calendar (``weeks`` ``4-4-5``, ``4-5-4`` or ``5-4-4``) plans in whole weeks,
Sunday to Saturday: the fiscal year ends on the last Saturday of the month before
``year_start`` (of the calendar year it is named after) and starts the day after the
previous one ends; each quarter is 13 weeks split into three periods as the pattern
says, and a 53rd week joins the year's last period. Period p of a fiscal year is
labelled with the calendar month it stands for (period 1 of FY2027 starting in April
is ``2026-04``), so monthly inputs keep their ``YYYY-MM`` names.

All bounds are dates, inclusive: ``(first day, last day)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

WEEK_PATTERNS: dict[str, tuple[int, int, int]] = {
    "4-4-5": (4, 4, 5),
    "4-5-4": (4, 5, 4),
    "5-4-4": (5, 4, 4),
}
QUARTER_LABEL = re.compile(r"^FY(\d{4})-Q([1-4])$")
YEAR_LABEL = re.compile(r"^FY(\d{4})$")
Bounds = tuple[dt.date, dt.date]
_DAY = dt.timedelta(days=1)


def _month_first(index: int) -> dt.date:
    """First day of the month ``index`` (= year * 12 + month - 1)."""
    return dt.date(index // 12, index % 12 + 1, 1)


def _last_saturday(year: int, month: int) -> dt.date:
    """The last Saturday of a calendar month."""
    last = _month_first(year * 12 + month) - _DAY
    return last - dt.timedelta(days=(last.weekday() - 5) % 7)


@dataclasses.dataclass(frozen=True)
class FiscalCalendar:
    """A fiscal calendar: the first month of the fiscal year, whole months or weeks.

    Parameters
    ----------
    year_start : int
        The month (1-12) in which the fiscal year starts.
    weeks : str or None
        ``"4-4-5"``, ``"4-5-4"`` or ``"5-4-4"`` for a week calendar; None for months.
    """

    year_start: int = 1
    weeks: str | None = None

    @property
    def is_default(self) -> bool:
        """Whether this is the calendar year in months (nothing to write down)."""
        return self.year_start == 1 and self.weeks is None

    def _start_month_index(self, fy: int) -> int:
        """Month index (year * 12 + month - 1) of the first month of ``fy``."""
        start_year = fy - 1 if self.year_start > 1 else fy
        return start_year * 12 + self.year_start - 1

    def year_bounds(self, fy: int) -> Bounds:
        """First and last day of fiscal year ``fy`` (e.g. 2027 for FY2027)."""
        if self.weeks is None:
            first = self._start_month_index(fy)
            return _month_first(first), _month_first(first + 12) - _DAY
        end_month = self.year_start - 1 or 12
        last = _last_saturday(fy, end_month)
        previous = _last_saturday(fy - 1, end_month)
        return previous + _DAY, last

    def period_bounds(self, fy: int, period: int) -> Bounds:
        """First and last day of fiscal period ``period`` (1-12) of ``fy``."""
        if not 1 <= period <= 12:
            raise ValueError(f"fiscal period {period} is not 1 to 12")
        if self.weeks is None:
            index = self._start_month_index(fy) + period - 1
            return _month_first(index), _month_first(index + 1) - _DAY
        pattern = WEEK_PATTERNS[self.weeks]
        start, last_day = self.year_bounds(fy)
        weeks_before = sum(pattern[k % 3] for k in range(period - 1))
        first = start + dt.timedelta(weeks=weeks_before)
        if period == 12:  # the 53rd week, when there is one, joins the last period
            return first, last_day
        return first, first + dt.timedelta(weeks=pattern[(period - 1) % 3]) - _DAY

    def quarter_bounds(self, fy: int, quarter: int) -> Bounds:
        """First and last day of quarter ``quarter`` (1-4) of ``fy``."""
        if not 1 <= quarter <= 4:
            raise ValueError(f"fiscal quarter {quarter} is not 1 to 4")
        return (
            self.period_bounds(fy, 3 * quarter - 2)[0],
            self.period_bounds(fy, 3 * quarter)[1],
        )

    def year_of(self, day: dt.date) -> int:
        """The fiscal year a day falls in (named after the calendar year it ends in)."""
        for fy in (day.year, day.year + 1, day.year - 1):
            first, last = self.year_bounds(fy)
            if first <= day <= last:
                return fy
        raise AssertionError(f"no fiscal year holds {day}")  # pragma: no cover

    def period_of(self, day: dt.date) -> tuple[int, int]:
        """(fiscal year, period 1-12) of a day."""
        fy = self.year_of(day)
        for p in range(1, 13):
            if day <= self.period_bounds(fy, p)[1]:
                return fy, p
        raise AssertionError(f"no fiscal period holds {day}")  # pragma: no cover

    def quarter_of(self, day: dt.date) -> tuple[int, int]:
        """(fiscal year, quarter 1-4) of a day."""
        fy, p = self.period_of(day)
        return fy, (p - 1) // 3 + 1

    def period_label(self, fy: int, period: int) -> str:
        """The calendar month ``YYYY-MM`` fiscal period ``period`` of ``fy`` stands for."""
        return _month_first(self._start_month_index(fy) + period - 1).strftime("%Y-%m")

    def horizon_periods(self, as_of: dt.date, count: int) -> list[tuple[str, dt.date, dt.date]]:
        """The horizon's periods: (label, first day, last day), as_of's period first.

        Calendar months for a month calendar (whatever ``year_start``: its periods are
        the months), the fiscal periods for a week calendar. The first period's first
        day may lie before ``as_of`` (the forecast starts at as_of).
        """
        if self.weeks is None:
            base = as_of.year * 12 + as_of.month - 1
            return [
                (
                    _month_first(base + k).strftime("%Y-%m"),
                    _month_first(base + k),
                    _month_first(base + k + 1) - _DAY,
                )
                for k in range(count)
            ]
        fy, p = self.period_of(as_of)
        out = []
        for _ in range(count):
            first, last = self.period_bounds(fy, p)
            out.append((self.period_label(fy, p), first, last))
            fy, p = (fy + 1, 1) if p == 12 else (fy, p + 1)
        return out

    def windows(self, first_day: dt.date, last_day: dt.date) -> list[tuple[int, int, Bounds]]:
        """Every fiscal quarter and year overlapping ``[first_day, last_day]``.

        Rows (fiscal year, quarter 1-4 or 0 for the whole year, (first, last day)), in
        order: each year's quarters, then the year.
        """
        out: list[tuple[int, int, Bounds]] = []
        for fy in range(self.year_of(first_day), self.year_of(last_day) + 1):
            for q in range(1, 5):
                b = self.quarter_bounds(fy, q)
                if b[1] >= first_day and b[0] <= last_day:
                    out.append((fy, q, b))
            out.append((fy, 0, self.year_bounds(fy)))
        return out


def parse_window(label: str) -> tuple[int, int] | None:
    """``FY2027-Q2`` -> (2027, 2); ``FY2027`` -> (2027, 0); anything else None."""
    text = str(label).strip().upper()
    m = QUARTER_LABEL.match(text)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = YEAR_LABEL.match(text)
    if m:
        return int(m.group(1)), 0
    return None


def window_label(fy: int, quarter: int) -> str:
    """(2027, 2) -> ``FY2027-Q2``; (2027, 0) -> ``FY2027``."""
    return f"FY{fy}" if quarter == 0 else f"FY{fy}-Q{quarter}"
