"""Month-to-month shocks on new deals' odds of winning, shared by the market and per segment.

The deals created in one calendar month (a cohort) win more or less often than the
average: the market moves (a shock every segment shares) and each segment moves on its
own. Over the cohorts old enough to have mostly closed (created at least
``settle_days`` before as_of, the time by which 90% of the closed deals had closed),
each cohort's win rate on the logit scale is compared with the average; the variance
of these residuals beyond binomial noise is the shocks' variance, measured on the
differences of consecutive cohorts with a robust scale (the median absolute
difference), so a single change of level (a new regime, which
:mod:`pipesim.calibration.conversion_level` follows) is not read as monthly noise:

- ``market``: the whole book's cohorts (every segment together);
- ``segment``: each segment's cohort residual less the whole book's, pooled over the
  segments (weighted by their deals).

Both are 0 (no shock) with fewer than :data:`MIN_COHORTS` usable cohorts, or when the
residuals vary no more than chance. The engine draws, per trial and forecast month, a
normal for the market and one per segment, and moves the odds of the leads arriving
that month (:func:`pipesim.kernels.trial.shocked_odds`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.shock_variance import MIN_MONTHS as MIN_COHORTS
from pipesim.calibration.shock_variance import shock_variance, split_shared

SETTLE_QUANTILE = 0.9


def _residuals(won: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logit residuals of cohort win rates from their pooled rate, and their noise variance."""
    p = won.sum() / n.sum()
    if not 0.0 < p < 1.0:
        return np.zeros(0), np.zeros(0)
    rate = (won + 0.5) / (n + 1.0)
    r = np.log(rate / (1.0 - rate)) - np.log(p / (1.0 - p))
    return r, 1.0 / ((n + 1.0) * p * (1.0 - p))


def cohort_residuals(
    deals: pd.DataFrame, cut: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame, float]:
    """The settled creation cohorts' logit residuals and noise, oldest first.

    Returns ``(r, v, book, old, settle)``: residuals and their noise variances, the
    cohorts' wins and counts, the settled deals and the settling time in days (empty
    arrays when there are too few cohorts).
    """
    empty = np.zeros(0)
    closed = deals[deals["state"] != "open"]
    took = (closed["closed_at"] - closed["created_at"]).dt.days
    if len(took) < 20:
        return empty, empty, pd.DataFrame(), deals.iloc[0:0], 0.0
    settle = float(np.quantile(took, SETTLE_QUANTILE))
    old = deals[deals["created_at"] < cut - pd.Timedelta(days=settle)]
    month = old["created_at"].dt.to_period("M")
    first = deals["created_at"].min().to_period("M")
    keep = month > first  # the first month may be partial
    old, month = old[keep], month[keep]
    won = (old["state"] == "won").astype(float)
    book = won.groupby(month).agg(["sum", "count"])
    book = book[book["count"] >= 10]
    if len(book) < MIN_COHORTS:
        return empty, empty, book, old, settle
    r, v = _residuals(book["sum"].to_numpy(), book["count"].to_numpy(dtype=float))
    return r, v, book, old, settle


def odds_shocks(
    deals: pd.DataFrame, cut: pd.Timestamp, segments: Sequence[str]
) -> tuple[float, float, str]:
    """``(market_sd, segment_sd, why)`` from the deals known at ``cut`` (``why``: a note or '')."""
    r, v, book, old, settle = cohort_residuals(deals, cut)
    if not len(r):
        return 0.0, 0.0, ""
    market, segment = max(shock_variance(r, v), 0.0), 0.0
    if segments:
        whole = pd.Series(r, index=book.index)
        parts, shares = [], []
        for _, part in old.groupby(list(segments), dropna=True):
            g = (part["state"] == "won").astype(float).groupby(part["created_at"].dt.to_period("M"))
            cohorts = g.agg(["sum", "count"])
            shares.append(float(cohorts["count"].sum()))
            cohorts = cohorts[(cohorts["count"] >= 5) & cohorts.index.isin(whole.index)]
            if len(cohorts) < MIN_COHORTS:
                parts.append(float("nan"))
                continue
            rg, vg = _residuals(cohorts["sum"].to_numpy(), cohorts["count"].to_numpy(dtype=float))
            if not len(rg):
                parts.append(float("nan"))
                continue
            d = rg - whole.loc[cohorts.index].to_numpy()
            parts.append(shock_variance(d, vg))
        market, segment = split_shared(market, parts, shares)
    m_sd, s_sd = float(np.sqrt(market)), float(np.sqrt(segment))
    why = (
        f"cohorts' odds over {len(book)} creation months (settled after {settle:.0f} days): "
        f"market shock sd {m_sd:.2f}"
        + (f", segment shock sd {s_sd:.2f}" if segments else "")
        + " (logit scale; 0: no more than chance)"
    )
    return m_sd, s_sd, why
