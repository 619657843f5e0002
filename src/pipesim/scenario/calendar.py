"""Calendar arithmetic: the horizon's months as continuous days after ``as_of``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd


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


def period_labels(as_of: dt.date, horizon_months: int) -> list[str]:
    """Return the horizon's periods as ``YYYY-MM`` strings, as_of's month first."""
    return [add_months(as_of, k).strftime("%Y-%m") for k in range(horizon_months)]


def period_bounds(as_of: dt.date, horizon_months: int) -> np.ndarray:
    """Return the horizon's month boundaries in days after ``as_of`` (00:00).

    Element 0 is 0 (``as_of`` itself), element k is the start of the k-th
    month after as_of's month, and the last element is the end of the horizon.
    A deal won at day ``t`` belongs to period k when ``bounds[k] <= t < bounds[k+1]``.
    """
    bounds = np.empty(horizon_months + 1, dtype=np.float64)
    bounds[0] = 0.0
    for k in range(1, horizon_months + 1):
        bounds[k] = float((add_months(as_of, k) - as_of).days)
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


def calendar_paces(quarter: tuple[float, ...] | None) -> np.ndarray | None:
    """The clocks' pace in each calendar month (index 0: January), or None for an even pace.

    Month m's pace is its month-of-quarter factor, scaled to a mean of 1 over a quarter.
    """
    if quarter is None:
        return None
    q = np.asarray(quarter, dtype=np.float64)
    return np.tile(q * 3.0 / q.sum(), 4)
