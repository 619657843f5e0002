"""New leads per month from the recent creation rate: the arrivals table of a calibration."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.scenario.calendar import add_months, period_labels

DAYS_PER_MONTH = 365.25 / 12


def seasonality(created: pd.Series, cut: pd.Timestamp, start: pd.Timestamp) -> np.ndarray:
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


def month_counts(created: pd.Series, months: pd.PeriodIndex) -> np.ndarray:
    """Creations in each of ``months`` (0 where none)."""
    counts = created.dt.to_period("M").value_counts()
    return counts.reindex(months, fill_value=0).to_numpy(dtype=float)


HALF_LIFE_MONTHS = 6.0  # recency half-life of the lead rate's fit (months)
TREND_Z = 2.0  # a trend is projected when it is this many standard errors from 0
# A damped trend (Gardner and McKenzie): month j ahead adds DAMPING^j of a month's growth,
# so growth fades instead of compounding for ever (a ramp or an S-curve, not an exponential).
DAMPING = 0.9


def damped(months: float) -> float:
    """Months of growth a damped trend adds ``months`` ahead: sum of DAMPING^j, j = 1..months."""
    return DAMPING * (1.0 - DAMPING**months) / (1.0 - DAMPING)


# Whole months needed to fit a trend: a year, so that a season or a CRM filling up in its
# first months is not taken for growth (the Maven export's first year projected +10-20% a
# month and its 3-month backtest CRPS went from 0.34M to 0.74M with 4 months allowed).
MIN_TREND_MONTHS = 12


@dataclasses.dataclass(frozen=True)
class LeadTrend:
    """The whole book's monthly creations: level at the last month and growth, recency-weighted.

    ``log_level`` and ``growth`` (per month, log scale) of a Poisson regression on
    the whole months before the cut (seasonality taken out), each month weighted
    ``0.5 ** (months before the last / half_life)``; their variances from the
    weighted information times the dispersion ``phi`` (Pearson, at least 1).
    ``growth`` is 0 (and ``growth_se`` 0) unless fitted on :data:`MIN_TREND_MONTHS`
    months and at least :data:`TREND_Z` standard errors from 0.
    """

    log_level: float
    level_var: float
    growth: float
    growth_se: float
    phi: float
    months: int
    weight: np.ndarray  # per whole month, oldest first
    month_index: pd.PeriodIndex


def _poisson_fit(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, offset: np.ndarray, trend: bool
) -> np.ndarray | None:
    """Weighted Poisson regression of ``y`` on (1, x) (or 1): Newton; None if it diverges."""
    design = np.stack([np.ones_like(x), x], axis=1) if trend else np.ones((len(y), 1))
    beta = np.zeros(design.shape[1])
    beta[0] = np.log(float(w @ y) / float(w @ np.exp(offset)))
    if not trend:
        return beta  # the weighted mean is the maximum
    for _ in range(100):
        mu = np.exp(design @ beta + offset)
        info = design.T @ (design * (w * mu)[:, None])
        try:
            step = np.linalg.solve(info, design.T @ (w * (y - mu)))
        except np.linalg.LinAlgError:
            return None
        beta += np.clip(step, -1.0, 1.0)
        if not np.isfinite(beta).all() or abs(beta[1]) > 2.0:  # > e^2 a month: no trend
            return None
        if np.abs(step).max() < 1e-10:
            return beta
    return None


def lead_trend(
    created: pd.Series,
    lo: pd.Timestamp,
    cut: pd.Timestamp,
    season: np.ndarray,
    half_life: float = HALF_LIFE_MONTHS,
) -> LeadTrend | None:
    """Fit :class:`LeadTrend` on the whole months in ``[lo, cut)``; None under two months."""
    months = whole_months(lo, cut)
    if len(months) < 2:
        return None
    y = month_counts(created, months)
    x = np.arange(len(y), dtype=float) - (len(y) - 1)  # 0 at the last whole month
    w = 0.5 ** (-x / half_life)
    offset = np.log(season[months.month.to_numpy() - 1])
    if not (w @ y) > 0:
        return None
    trend = len(y) >= MIN_TREND_MONTHS
    beta = _poisson_fit(y, x, w, offset, trend)
    if beta is None:  # no finite trend (creations bunched in one month, say): the level
        trend, beta = False, _poisson_fit(y, x, w, offset, False)
    assert beta is not None  # the level alone always has one
    design = np.stack([np.ones_like(x), x], axis=1) if trend else np.ones((len(y), 1))
    mu = np.exp(design @ beta + offset)
    info = design.T @ (design * (w * mu)[:, None])
    dof = float(w.sum()) - design.shape[1]
    phi = max(float(w @ ((y - mu) ** 2 / mu)) / dof, 1.0) if dof > 1.0 else 1.0
    cov = phi * np.linalg.inv(info)
    level, level_var, growth, growth_se = float(beta[0]), float(cov[0, 0]), 0.0, 0.0
    if trend:
        se = float(np.sqrt(cov[1, 1]))
        if abs(beta[1]) >= TREND_Z * se:
            growth, growth_se = float(beta[1]), se
        else:  # no clear trend: the weighted level alone
            level = float(np.log(max(float(w @ y) / float(w @ np.exp(offset)), 1e-9)))
            level_var = phi / float(w @ np.exp(level + offset))
    return LeadTrend(level, level_var, growth, growth_se, phi, len(y), w, months)


def lead_window(
    cut: pd.Timestamp,
    first_created: pd.Timestamp,
    window_months: int,
    leads_until: pd.Timestamp | None = None,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(lo, end)``: the lead sample's span.

    The last ``window_months`` before the cut (or ``leads_until`` when earlier),
    from the first creation at most.
    """
    end = min(cut, leads_until) if leads_until is not None else cut
    return max(end - pd.DateOffset(months=window_months), first_created), end


def whole_months(lo: pd.Timestamp, end: pd.Timestamp) -> pd.PeriodIndex:
    """The whole calendar months inside ``[lo, end)``."""
    first = (lo + pd.offsets.MonthBegin(0)).normalize() if lo.day != 1 else lo.normalize()
    last = end.to_period("M").to_timestamp()
    return pd.period_range(first, last - pd.Timedelta(days=1), freq="M")


def arrivals_table(
    deals: pd.DataFrame,
    as_of: dt.date,
    horizon_months: int,
    segments: Sequence[str],
    first_created: pd.Timestamp,
    window_months: int = 24,
    *,
    leads_until: pd.Timestamp | None = None,
    half_life: float = HALF_LIFE_MONTHS,
) -> tuple[pd.DataFrame, float, list[str]]:
    """Expected new leads per month and segment, with their evidence and amounts.

    ``deals`` are the deals created before ``as_of``. The whole book's rate is
    :func:`lead_trend` on the whole months of the last ``window_months`` before
    ``as_of`` (or ``leads_until`` when earlier): its level at the last month, grown
    by its damped trend (:func:`damped`) to each forecast month, times a calendar-month
    factor with two years of data; each segment takes its recency-weighted share of
    it. ``leads_n`` is the Gamma shape of the level's uncertainty and the share's (at
    most the segment's weighted count); ``leads_trend_sd`` the growth's standard error,
    scaled so that the engine's spread of month k, ``leads_trend_sd`` x (k + 1), is
    the damped one. Under two whole months,
    the count over the span, as before. ``amount``/``amount_cv`` are the mean and cv
    of the leads' positive ``open_amount``. Returns the table, the overall mean
    amount and notes for the report.
    """
    cut = pd.Timestamp(as_of)
    lo, end = lead_window(cut, first_created, window_months, leads_until)
    span = max((end - lo).days / DAYS_PER_MONTH, 1.0 / DAYS_PER_MONTH)
    recent = deals[(deals["created_at"] >= lo) & (deals["created_at"] < end)]
    season = seasonality(deals["created_at"], end, first_created)
    fit = lead_trend(recent["created_at"], lo, end, season, half_life)
    mu, var = _dispersion(deals["created_at"], lo, end)
    amounts = recent["open_amount"][recent["open_amount"] > 0]
    mean_all = float(amounts.mean()) if len(amounts) else float("nan")
    cv_all = float(amounts.std(ddof=0) / mean_all) if len(amounts) > 1 else 0.0
    periods = period_labels(as_of, horizon_months)
    groups = list(recent.groupby(list(segments), dropna=False)) if segments else [((), recent)]
    ahead = 0
    notes: list[str] = []
    if fit is not None:
        ahead = len(pd.period_range(fit.month_index[-1], cut.to_period("M"), freq="M")) - 1
        weight_of = pd.Series(fit.weight, index=fit.month_index)
        total_w = float(weight_of.reindex(recent["created_at"].dt.to_period("M")).fillna(0.0).sum())
        if fit.growth:
            notes.append(
                f"new leads grow {np.expm1(fit.growth):+.1%} a month (± {fit.growth_se:.1%}, "
                f"fitted on {fit.months} months, half-life {half_life:g})"
            )
    rows = []
    for key, part in groups:
        values = key if isinstance(key, tuple) else (key,)
        count = len(part)
        amt = part["open_amount"][part["open_amount"] > 0]
        mean = float(amt.mean()) if len(amt) else mean_all
        cv = float(amt.std(ddof=0) / mean) if len(amt) > 1 else cv_all
        if fit is not None:
            own_w = float(weight_of.reindex(part["created_at"].dt.to_period("M")).fillna(0.0).sum())
            share = own_w / total_w if total_w > 0 else 0.0
            share_var = (1.0 - share) / max(own_w, 1e-9)
            n = min(own_w, 1.0 / (fit.level_var + share_var)) if share > 0 else 0.0
        else:
            n = lead_evidence(count, span, mu, var)
        for k, period in enumerate(periods):
            month = add_months(as_of, k).month
            if fit is not None:
                rate = share * np.exp(fit.log_level + fit.growth * damped(k + ahead))
            else:
                rate = count / span
            row = {
                "period": period,
                "leads": rate * season[month - 1],
                "leads_n": n,
                "amount": mean if np.isfinite(mean) else 0.0,
                "amount_cv": cv if np.isfinite(cv) else 0.0,
            }
            if fit is not None and fit.growth_se > 0:
                # the engine spreads month k by leads_trend_sd x (k + 1): damped here
                row["leads_trend_sd"] = fit.growth_se * damped(k + ahead) / (k + 1)
            for col, val in zip(segments, values, strict=True):
                row[col] = None if val is None or val != val else val  # NaN != NaN
            rows.append(row)
    trend_cols = ["leads_trend_sd"] if fit is not None and fit.growth_se > 0 else []
    columns = ["period", "leads", "leads_n", "amount", "amount_cv", *trend_cols, *segments]
    table = pd.DataFrame(rows, columns=columns)
    return table[table["leads_n"] > 0].reset_index(drop=True), mean_all, notes
