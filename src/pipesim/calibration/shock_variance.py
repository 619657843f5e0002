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
