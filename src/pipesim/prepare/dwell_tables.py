"""Strip tables for fast, exact gamma dwell draws.

A gamma law with fixed parameters is cut into ``N_STRIPS`` strips of equal
probability (its quantiles). A draw picks a strip uniformly, a point uniformly
in it, and accepts it with probability f(x) / max f over the strip: exact
rejection sampling, where the squeeze ``min f / max f`` (close to 1 on narrow
strips) spares the density evaluation almost always. The unbounded last strip
uses the exact tail sampler; the first strip of a shape below 1 (infinite
density at 0) samples x^(k-1) on the strip and accepts with e^-x.
Tables are built once per distinct shape, in units of the scale.
"""

from __future__ import annotations

import numpy as np
from scipy import special

N_STRIPS = 1024  # gamma_strips picks a strip with 10 bits of a hash: keep 1024


def _log_density(shape: float, x: np.ndarray) -> np.ndarray:
    """Unnormalised log density of Gamma(shape, 1): (k - 1) log x - x."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (shape - 1.0) * np.log(x) - x
    out[x == 0] = -np.inf if shape > 1 else (0.0 if shape == 1 else np.inf)
    return out


def gamma_table(shape: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile edges [N+1], squeeze ratios [N] and log max density [N] for one shape."""
    n = N_STRIPS
    edges = np.empty(n + 1)
    edges[:n] = special.gammaincinv(shape, np.arange(n) / n)
    edges[0] = 0.0
    edges[n] = np.inf
    lo, hi = edges[:-1], edges[1:]
    f_lo, f_hi = _log_density(shape, lo), _log_density(shape, hi)
    lf_max = np.maximum(f_lo, f_hi)
    mode = max(shape - 1.0, 0.0)
    inside = (lo <= mode) & (mode <= hi)
    lf_max[inside] = _log_density(shape, np.array([mode]))[0]
    lf_min = np.minimum(f_lo, f_hi)
    with np.errstate(invalid="ignore"):
        ratio = np.exp(lf_min - lf_max)
    ratio[~np.isfinite(ratio)] = 0.0
    ratio[-1] = 0.0  # the last strip is sampled by the tail sampler
    return edges, ratio, lf_max


def build(shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tables for each distinct shape; returns (index per input, edges, ratios, log max)."""
    distinct, index = np.unique(shapes, return_inverse=True)
    if distinct.size == 0:
        empty = np.zeros((1, N_STRIPS))
        return index.astype(np.int64), np.zeros((1, N_STRIPS + 1)), empty, empty
    tables = [gamma_table(float(k)) for k in distinct]
    edges = np.stack([t[0] for t in tables])
    ratio = np.stack([t[1] for t in tables])
    lf_max = np.stack([t[2] for t in tables])
    return index.astype(np.int64), edges, ratio, lf_max
