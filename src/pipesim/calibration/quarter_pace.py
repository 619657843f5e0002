"""Closing paces from the wins' dates: by month of the quarter and of the year.

The quarter-end rush (:func:`quarter_paces`) and, with two years of wins, the
calendar months that close more or less (:func:`year_paces`).

Over the complete calendar quarters before as_of that hold wins (the last
:data:`MAX_QUARTERS` at most), each month's wins are compared with what an even
pace inside its quarter would give (the quarter's wins spread by days), so a
trend from quarter to quarter is not mistaken for a rush: the pace of month j of
the quarter is observed / expected, summed over the quarters. The paces are used
only with at least :data:`MIN_QUARTERS` quarters and when they differ from 1 more
than chance allows: a chi-square test (2 degrees of freedom) whose variance is
widened by the dispersion of the quarters around the fitted paces (drift makes
monthly counts vary more than Poisson), at level :data:`LEVEL`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MIN_QUARTERS = 4
MAX_QUARTERS = 8
LEVEL = 0.01


def quarter_paces(won_at: pd.Series, cut: pd.Timestamp) -> tuple[tuple[float, float, float], str]:
    """``(paces, why)``: the paces of months 1-3 of a quarter ((1, 1, 1) when not used).

    ``won_at``: the wins' dates (before ``cut``). ``why`` says what was found, for the
    calibration report (empty when there are too few quarters to say anything).
    """
    even = (1.0, 1.0, 1.0)
    last = cut.to_period("Q") - 1  # the last complete quarter
    quarters = won_at[won_at < cut].dt.to_period("Q")
    seen = sorted(q for q in quarters.unique() if q <= last)[-MAX_QUARTERS:]
    if len(seen) < MIN_QUARTERS:
        return even, ""
    months = won_at.dt.to_period("M")
    observed = np.zeros((len(seen), 3))
    expected = np.zeros((len(seen), 3))
    for i, q in enumerate(seen):
        ms = pd.period_range(q.start_time, q.end_time, freq="M")
        counts = np.array([(months == m).sum() for m in ms], dtype=float)
        days = np.array([m.days_in_month for m in ms], dtype=float)
        observed[i] = counts
        expected[i] = counts.sum() * days / days.sum()
    o, e = observed.sum(axis=0), expected.sum(axis=0)
    pace = o / e
    fitted = expected * pace
    dof = 2 * len(seen) - 2
    resid = ((observed - fitted) ** 2 / np.maximum(fitted, 1e-9)).sum()
    phi = max(float(resid) / dof, 1.0)
    x2 = float(((o - e) ** 2 / e).sum()) / phi
    p = float(stats.chi2.sf(x2, 2))
    shown = ", ".join(f"{v:.2f}" for v in pace)
    if p >= LEVEL:
        return even, (
            f"wins by month of quarter over {len(seen)} quarters: paces {shown}, within chance "
            f"(p = {p:.2f}): not used"
        )
    pace = pace * 3.0 / pace.sum()  # a mean of 1, as the scenario holds them
    return (float(pace[0]), float(pace[1]), float(pace[2])), (
        f"wins by month of quarter over {len(seen)} quarters: paces {shown} (p = {p:.1g}): the "
        "clocks run at these paces in the first, second and third month of each quarter"
    )


MIN_YEARS = 2
MAX_YEARS = 3
YEAR_DOF = 11  # twelve paces of a mean of 1


def year_paces(
    won_at: pd.Series, cut: pd.Timestamp, quarter: tuple[float, ...] | None = None
) -> tuple[tuple[float, ...] | None, str]:
    """``(paces, why)``: each calendar month's closing pace (January first; None when not used).

    Over the last complete years of months before ``cut`` (at least
    :data:`MIN_YEARS`, at most :data:`MAX_YEARS`, the wins reaching back to their
    start), each month's wins against its year's wins spread by its days and its
    month-of-quarter pace ``quarter``. Used when the months differ more than chance
    allows (chi-square, 11 degrees of freedom, widened by the dispersion of the years
    around the fitted paces, at level :data:`LEVEL`); then each month's log pace is
    shrunk towards 0 by max(0, 1 - 1/z²), z its own ratio to its standard error (two or
    three observations per month are noisy: a month within chance goes back to 1).
    """
    won_at = won_at[won_at < cut]
    if not len(won_at):
        return None, ""
    last = cut.to_period("M") - 1
    first_seen = won_at.min().to_period("M")
    years = min(MAX_YEARS, (last - first_seen).n // 12)  # whole years after the first month
    if years < MIN_YEARS:
        return None, ""
    months = pd.period_range(end=last, periods=12 * years, freq="M")
    counts = won_at.dt.to_period("M").value_counts().reindex(months, fill_value=0)
    observed = counts.to_numpy(dtype=float).reshape(years, 12)
    q = np.ones(3) if quarter is None else np.asarray(quarter, dtype=float) * 3 / sum(quarter)
    weight = np.array([m.days_in_month * q[(m.month - 1) % 3] for m in months]).reshape(years, 12)
    expected = observed.sum(axis=1, keepdims=True) * weight / weight.sum(axis=1, keepdims=True)
    o, e = observed.sum(axis=0), expected.sum(axis=0)
    if (e <= 0).any():
        return None, ""
    raw = np.maximum(o, 0.5) / e
    fitted = expected * raw
    dof = YEAR_DOF * (years - 1)
    resid = ((observed - fitted) ** 2 / np.maximum(fitted, 1e-9)).sum()
    phi = max(float(resid) / dof, 1.0)
    x2 = float(((o - e) ** 2 / e).sum()) / phi
    p = float(stats.chi2.sf(x2, YEAR_DOF))
    # Calendar order: the window's first month need not be January.
    order = np.argsort([m.month for m in months[:12]])
    raw = raw[order]
    shown = ", ".join(f"{v:.2f}" for v in raw)
    if p >= LEVEL:
        return None, (
            f"wins by month of the year over {years} years (Jan..Dec): paces {shown}, within "
            f"chance (p = {p:.2f}): not used"
        )
    # Each month shrunk towards 1 on the log scale by its own evidence: the log pace
    # times max(0, 1 - 1/z²), z = log pace / its standard error (~ 1/sqrt(wins) widened
    # by the dispersion): a month that differs by chance goes back to 1, a clear one stays.
    log_raw = np.log(raw)
    z2 = log_raw**2 / (phi * (1.0 / np.maximum(o[order], 0.5) + 1.0 / e[order]))
    pace = np.exp(log_raw * np.maximum(0.0, 1.0 - 1.0 / np.maximum(z2, 1e-12)))
    pace = pace * 12.0 / pace.sum()
    return tuple(float(v) for v in pace), (
        f"wins by month of the year over {years} years (Jan..Dec): paces {shown} (p = {p:.1g}), "
        "each shrunk towards 1 by its own evidence: the clocks run at these paces on top of "
        "the quarter's"
    )
