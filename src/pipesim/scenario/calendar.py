"""Calendar arithmetic: the horizon's months as continuous days after ``as_of``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipesim.scenario.fiscal import FiscalCalendar


def month_start(day: dt.date) -> dt.date:
    """Return the first day of the month that contains ``day``."""
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    """Return the first day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_index(year: int, month: int, as_of: dt.date) -> int:
    """Number of months from the month of ``as_of`` to (year, month); 0 is as_of's month."""
    return (year * 12 + month - 1) - (as_of.year * 12 + as_of.month - 1)


def first_month(as_of: dt.date, fiscal: FiscalCalendar | None = None) -> dt.date:
    """First day of the calendar month the horizon's first period stands for.

    as_of's month, except on a week calendar whose period holding as_of stands
    for another month (as_of on the last days of a month, in next month's period).
    """
    if fiscal is None or fiscal.weeks is None:
        return month_start(as_of)
    label = fiscal.horizon_periods(as_of, 1)[0][0]
    return dt.date(int(label[:4]), int(label[5:7]), 1)


def period_labels(
    as_of: dt.date, horizon_months: int, fiscal: FiscalCalendar | None = None
) -> list[str]:
    """Return the horizon's periods as ``YYYY-MM`` strings, as_of's period first."""
    return [
        label for label, _, _ in (fiscal or FiscalCalendar()).horizon_periods(as_of, horizon_months)
    ]


def period_bounds(
    as_of: dt.date, horizon_months: int, fiscal: FiscalCalendar | None = None
) -> np.ndarray:
    """Return the horizon's period boundaries in days after ``as_of`` (00:00).

    Element 0 is 0 (``as_of`` itself), element k is the start of the k-th
    period after as_of's period, and the last element is the end of the horizon.
    The periods are calendar months, or a week calendar's fiscal periods.
    A deal won at day ``t`` belongs to period k when ``bounds[k] <= t < bounds[k+1]``.
    """
    periods = (fiscal or FiscalCalendar()).horizon_periods(as_of, horizon_months)
    bounds = np.empty(horizon_months + 1, dtype=np.float64)
    bounds[0] = 0.0
    for k in range(1, horizon_months + 1):
        bounds[k] = float((periods[k - 1][2] + dt.timedelta(days=1) - as_of).days)
    return bounds


def to_date(value: object) -> dt.date:
    """Convert a date-like value (date, datetime, Timestamp, ISO string) to a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()  # type: ignore[arg-type]


def operational_days(start: np.ndarray, end: np.ndarray, paces: np.ndarray) -> np.ndarray:
    """Days from ``start`` to ``end`` (datetime64 arrays) on a clock paced by calendar month.

    ``paces[m]``: the pace of calendar month m + 1 (twelve values, or three repeated
    by month of the quarter). A month of pace r counts r days for each of its days
    (linear inside the month). With every pace 1 this is the calendar.
    """
    s = np.asarray(start, dtype="datetime64[D]")
    e = np.asarray(end, dtype="datetime64[D]")
    if s.size == 0:
        return np.zeros(0)
    lo = min(s.min(), e.min()).astype("datetime64[M]")
    hi = max(s.max(), e.max()).astype("datetime64[M]") + 1
    months = np.arange(lo, hi + 1, dtype="datetime64[M]")
    length = np.diff(months.astype("datetime64[D]")).astype(np.float64)
    by_month = np.asarray(paces, dtype=np.float64)
    pace = by_month[(months[:-1].astype(np.int64) % 12) % len(by_month)]
    start_of = np.concatenate([[0.0], np.cumsum(length * pace)])

    def tau(d: np.ndarray) -> np.ndarray:
        m = d.astype("datetime64[M]")
        i = (m - lo).astype(np.int64)
        offset = (d - m.astype("datetime64[D]")).astype(np.float64)
        return start_of[i] + pace[i] * offset

    return tau(e) - tau(s)


def calendar_paces(quarter: tuple[float, ...] | None, year_start: int = 1) -> np.ndarray | None:
    """The clocks' pace in each calendar month (index 0: January), or None for an even pace.

    Month m's pace is its month-of-quarter factor, scaled to a mean of 1 over a quarter;
    quarters of the fiscal year that starts in month ``year_start``.
    """
    if quarter is None:
        return None
    q = np.asarray(quarter, dtype=np.float64)
    q = q * 3.0 / q.sum()
    return np.array([q[(m - year_start) % 3] for m in range(1, 13)])
