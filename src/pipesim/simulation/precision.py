"""Monte Carlo standard errors of the summary's estimates: the mean and the P10/P50/P90.

Trials are independent and identically distributed (each draws its own parameters
and deals from its own streams), so:

- the mean's standard error is ``sd / sqrt(n)``;
- a quantile's is the exact bootstrap standard error of the order statistic that
  estimates it (Maritz and Jarrett, 1978; Hutson and Ernst, 2000): the estimate of
  the p-quantile is the order statistic of rank m ~ n·p, and resampled, X*_(m) equals
  the i-th smallest trial with probability ``I(i/n) − I((i − 1)/n)``, I the
  Beta(m, n − m + 1) distribution function (the law of a uniform order statistic),
  so its variance is a weighted sum over the sorted trials, no resampling needed.
  For a continuous outcome it is the asymptotic ``sqrt(p(1 − p)/n) / f(q)`` with the
  density read off the trials; for a count (won deals) it keeps the steps: a P50
  sitting well inside one count's mass is known exactly (0), one at the edge
  between two counts jumps between them (about 0.5), as repeated runs do. A
  confidence-interval width over 2 x 1.96 is half of that at the edge.

``tests/simulation/test_precision.py`` checks both against the spread of the
estimates over many seeds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

QUANTILES = (0.1, 0.5, 0.9)  # the summary's P10, P50, P90
ERROR_COLUMNS = ("mean_se", "p10_se", "p50_se", "p90_se")  # the summary's standard errors
_WINDOW_SD = 8.0  # order-statistic weights beyond 8 sd of their rank are below 1e-15
FLAG_ABOVE = 0.01  # the terminal marks a figure whose standard error exceeds 1 % of it


def mean_se(data: np.ndarray) -> np.ndarray:
    """Standard error of the mean over axis 0 (trials); NaN with fewer than 2 trials."""
    n = data.shape[0]
    if n < 2:
        return np.full(data.shape[1:], np.nan)
    return data.std(axis=0, ddof=1) / np.sqrt(n)


def quantile_se(data: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Standard errors [quantile, ...] of the empirical quantiles over axis 0 (trials).

    The exact bootstrap variance of the order statistic the estimate sits on (see the
    module's note); NaN with fewer than 2 trials.
    """
    n = data.shape[0]
    if n < 2:
        return np.full((len(quantiles), *data.shape[1:]), np.nan)
    x = np.sort(data.reshape(n, -1), axis=0)
    out = np.empty((len(quantiles), x.shape[1]))
    for k, p in enumerate(quantiles):
        m = min(max(round(p * (n - 1)) + 1, 1), n)  # 1-based rank nearest the estimate
        # The weights lie within a few sd of rank m: sd = sqrt(n p (1 - p)) ranks.
        reach = int(_WINDOW_SD * math.sqrt(n * p * (1.0 - p))) + 2
        lo, hi = max(m - reach, 1), min(m + reach, n)
        ranks = np.arange(lo - 1, hi + 1, dtype=np.float64)
        cdf = special.betainc(m, n - m + 1, ranks / n)  # P(X*_(m) <= x_(i)), i = lo-1 .. hi
        w = np.diff(cdf)[:, None] / (cdf[-1] - cdf[0])
        d = x[lo - 1 : hi] - x[m - 1]  # about the estimate: exact zeros where values tie
        shift = (w * d).sum(axis=0)
        out[k] = np.sqrt(np.maximum((w * d * d).sum(axis=0) - shift * shift, 0.0))
    return out.reshape((len(quantiles), *data.shape[1:]))


def relative_error(
    se: np.ndarray | float, value: np.ndarray | float, floor: float = 0.0
) -> np.ndarray:
    """``se / max(|value|, floor)``: 0 where both are 0, infinite where only the value is."""
    scale = np.maximum(np.abs(np.asarray(value, dtype=np.float64)), floor)
    se_arr = np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(
            scale > 0, se_arr / np.where(scale > 0, scale, 1.0), np.where(se_arr > 0, np.inf, 0.0)
        )
    return np.asarray(out, dtype=np.float64)
