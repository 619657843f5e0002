"""How much monthly residuals vary beyond chance, and the part every segment shares.

Both the new deals' odds (:mod:`pipesim.calibration.odds_shocks`) and the lead volumes
(:mod:`pipesim.calibration.lead_shocks`) move month to month by a shock the market
shares plus one per segment. Their variances are measured here, the same way for both:

- :func:`shock_variance`: from a series of monthly residuals with known noise
  variance, on the differences of consecutive months with a robust scale (the median
  absolute deviation), so one change of level or a steady trend is not read as noise;
- :func:`split_shared`: the whole book's residuals hold the market's shock *and* the
  mean of the segments' own (weighted by their shares), and a segment's residual less
  the whole book's holds only part of its own; with shares w_h,
  Var(whole) = market² + own²·Σw_h² and Var(segment g − whole) = own²·(1 − 2w_g + Σw_h²),
  solved for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_MONTHS = 4  # residual months needed (3 differences) for a variance


def shock_variance(r: np.ndarray, v: np.ndarray) -> float:
    """Variance of iid monthly shocks from residuals ``r`` with noise variances ``v``.

    Half the robust variance of consecutive differences, less the mean noise; 0 when
    chance explains it, NaN with fewer than :data:`MIN_MONTHS` months.
    """
    d = np.diff(r)
    if len(d) < MIN_MONTHS - 1:
        return float("nan")
    scale = float(np.median(np.abs(d - np.median(d)))) / 0.6745  # sd of a difference
    return max(scale * scale / 2.0 - float(np.mean(v)), 0.0)


def split_shared(
    whole: float, parts: Sequence[float], shares: Sequence[float]
) -> tuple[float, float]:
    """``(market, own)`` variances from the whole book's and each segment's (less the whole).

    ``whole``: :func:`shock_variance` of the whole book's residuals; ``parts[g]``: of
    segment g's residuals less the whole book's (NaN: too few months, skipped);
    ``shares[g]``: segment g's share of the book (all segments, those skipped
    included). The own variance is pooled over the segments weighted by their shares.
    """
    w = np.asarray(shares, dtype=float)
    if not len(w) or w.sum() <= 0:
        return max(whole, 0.0), 0.0
    w = w / w.sum()
    concentration = float((w * w).sum())
    own, weight = 0.0, 0.0
    for part, share in zip(parts, w, strict=True):
        factor = 1.0 - 2.0 * share + concentration
        if not np.isfinite(part) or factor <= 1e-9:
            continue
        own += share * part / factor
        weight += share
    own = own / weight if weight > 0 else 0.0
    return max(whole - own * concentration, 0.0), own


PERSISTENCE_Z = 2.0  # standard errors the residuals' lag-1 correlation needs to be read
MAX_PERSISTENCE = 0.95


def persistence(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, int]:
    """``(rho, months)``: the shocks' month-to-month persistence, pooled over ``series``.

    Each series is monthly residuals with their noise variances (the cohorts' odds,
    the lead counts). The lag-1 autocovariance over the variance beyond noise, pooled
    (sums of both over the series); read only when the residuals' own lag-1
    correlation is at least :data:`PERSISTENCE_Z` standard errors (1/sqrt(months))
    above 0, else 0 (independent months). At most :data:`MAX_PERSISTENCE`.
    """
    cov = excess = total = 0.0
    months = 0
    for r, v in series:
        if len(r) < MIN_MONTHS:
            continue
        d = r - r.mean()
        cov += float(d[1:] @ d[:-1])
        total += float(d @ d)
        excess += float(d @ d) - float(v.sum())
        months += len(r) - 1
    if months < 2 * MIN_MONTHS or total <= 0 or excess <= 0:
        return 0.0, months
    if cov / total < PERSISTENCE_Z / np.sqrt(months):
        return 0.0, months
    return float(min(cov / excess, MAX_PERSISTENCE)), months
