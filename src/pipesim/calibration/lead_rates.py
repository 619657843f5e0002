"""New leads per month from the recent creation rate: the arrivals table of a calibration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.scenario.calendar import add_months, period_labels

DAYS_PER_MONTH = 365.25 / 12


def _seasonality(created: pd.Series, cut: pd.Timestamp, start: pd.Timestamp) -> np.ndarray:
    """Factor per calendar month (index 0 = January), 1 when under two years of data.

    With two full years before ``as_of``, each calendar month's share of the
    last 24 months' creations, relative to an even spread, shrunk halfway to 1
    (two observations per month are noisy).
    """
    if (cut - start).days < 2 * 365:
        return np.ones(12)
    lo = cut - pd.DateOffset(months=24)
    recent = created[(created >= lo) & (created < cut)]
    if not len(recent):
        return np.ones(12)
    counts = np.bincount(recent.dt.month.to_numpy() - 1, minlength=12).astype(float)
    factor = counts / (len(recent) / 12.0)
    return 0.5 * factor + 0.5


def _dispersion(created: pd.Series, lo: pd.Timestamp, cut: pd.Timestamp) -> tuple[float, float]:
    """Mean and month-to-month variance of the whole-month creation counts in ``[lo, cut)``.

    The variance is half the mean squared difference of consecutive months, so
    a trend (a CRM filling up) does not count as noise. NaN with < 3 months.
    """
    first = (lo + pd.offsets.MonthBegin(0)).normalize()
    last = cut.to_period("M").to_timestamp()
    months = pd.period_range(first, last - pd.Timedelta(days=1), freq="M")
    if len(months) < 3:
        return float("nan"), float("nan")
    counts = created[(created >= first) & (created < last)].dt.to_period("M").value_counts()
    values = counts.reindex(months, fill_value=0).to_numpy(dtype=float)
    return float(values.mean()), float(np.mean(np.diff(values) ** 2) / 2.0)


def lead_evidence(count: float, months: float, mean: float, var: float) -> float:
    """``leads_n``: the Gamma shape that gives a month's rate its honest spread.

    With Poisson months it is the count seen (the rate's posterior). When whole
    months vary more than Poisson (variance ``var`` > mean ``mean``), the extra
    month-to-month variance and the uncertainty of the mean both widen it:
    ``shape = rate^2 / ((var - mean) + var / months)``, never above the count.
    """
    if not (np.isfinite(mean) and np.isfinite(var)) or mean <= 0 or var <= mean:
        return float(count)
    share = count / months / mean  # this segment's rate relative to the whole
    rate = count / months
    extra = share * share * ((var - mean) + var / months)
    return float(min(count, rate * rate / extra))


def arrivals_table(
    deals: pd.DataFrame,
    as_of: dt.date,
    horizon_months: int,
    segments: Sequence[str],
    first_created: pd.Timestamp,
    window_months: int = 12,
) -> tuple[pd.DataFrame, float]:
    """Expected new leads per month and segment, with their evidence and amounts.

    ``deals`` are the deals created before ``as_of``. The rate is the count
    created in the last ``window_months`` (or since the first deal, when the
    history is shorter) divided by that span in months, times a calendar-month
    factor with two years of data; ``leads_n`` comes from :func:`lead_evidence`;
    ``amount``/``amount_cv`` are the mean and cv of their positive
    ``open_amount`` (the amount before the outcome). Returns the table and the
    overall mean amount.
    """
    cut = pd.Timestamp(as_of)
    lo = max(cut - pd.DateOffset(months=window_months), first_created)
    months = max((cut - lo).days / DAYS_PER_MONTH, 1.0 / DAYS_PER_MONTH)
    recent = deals[deals["created_at"] >= lo]
    season = _seasonality(deals["created_at"], cut, first_created)
    mu, var = _dispersion(deals["created_at"], lo, cut)
    amounts = recent["open_amount"][recent["open_amount"] > 0]
    mean_all = float(amounts.mean()) if len(amounts) else float("nan")
    cv_all = float(amounts.std(ddof=0) / mean_all) if len(amounts) > 1 else 0.0
    periods = period_labels(as_of, horizon_months)
    groups = list(recent.groupby(list(segments), dropna=False)) if segments else [((), recent)]
    rows = []
    for key, part in groups:
        values = key if isinstance(key, tuple) else (key,)
        count = len(part)
        amt = part["open_amount"][part["open_amount"] > 0]
        mean = float(amt.mean()) if len(amt) else mean_all
        cv = float(amt.std(ddof=0) / mean) if len(amt) > 1 else cv_all
        for k, period in enumerate(periods):
            month = add_months(as_of, k).month
            row = {
                "period": period,
                "leads": count / months * season[month - 1],
                "leads_n": lead_evidence(count, months, mu, var),
                "amount": mean if np.isfinite(mean) else 0.0,
                "amount_cv": cv if np.isfinite(cv) else 0.0,
            }
            for col, val in zip(segments, values, strict=True):
                row[col] = None if val is None or val != val else val  # NaN != NaN
            rows.append(row)
    columns = ["period", "leads", "leads_n", "amount", "amount_cv", *segments]
    table = pd.DataFrame(rows, columns=columns)
    return table[table["leads_n"] > 0].reset_index(drop=True), mean_all
