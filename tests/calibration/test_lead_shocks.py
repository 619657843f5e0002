"""Monthly shocks on lead volumes measured from creation counts (market and per segment).

Histories from a known process: two regions, each month's creations Poisson with a
rate moved by a market shock both share and one of the region's own (log scale).
The estimator is averaged over many histories; tolerances are Z standard errors of
that average, from the spread of the estimates themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from conftest import Z
from pipesim.calibration.lead_shocks import lead_shocks
from pipesim.calibration.shock_variance import split_shared

AS_OF = pd.Timestamp("2027-01-01")
MONTHS = 36


def _history(seed, market, own, rates=(300.0, 200.0), growth=0.0):
    """Creation dates of two regions over MONTHS whole months before AS_OF."""
    rng = np.random.default_rng(seed)
    start = AS_OF - pd.DateOffset(months=MONTHS)
    z = rng.standard_normal(MONTHS)
    frames = []
    for name, rate in zip(("North", "South"), rates, strict=True):
        zg = rng.standard_normal(MONTHS)
        for k in range(MONTHS):
            m0 = start + pd.DateOffset(months=k)
            days = (m0 + pd.DateOffset(months=1) - m0).days
            lam = rate * np.exp(growth * k + market * z[k] + own * zg[k])
            n = rng.poisson(lam)
            at = m0 + pd.to_timedelta(rng.uniform(0, days, n), unit="D")
            frames.append(pd.DataFrame({"created_at": at, "region": name}))
    return pd.concat(frames, ignore_index=True), start


def _estimates(market, own, histories=30, **kw):
    out = []
    for seed in range(histories):
        deals, start = _history(seed, market, own, **kw)
        m, s, why = lead_shocks(deals, AS_OF, ["region"], start, window_months=MONTHS)
        assert "lead volumes over" in why
        out.append((m * m, s * s))
    return np.array(out)


def _close(values, truth):
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
    assert abs(mean - truth) < Z * se + 0.1 * truth, (mean, se, truth)


def test_lead_shocks_recover_the_market_and_own_variances():
    # Market sd 0.25 and own sd 0.15 a month: both variances recovered on average
    # (10% of the truth allowed for the +0.5 in the log counts and the noise correction).
    est = _estimates(0.25, 0.15)
    _close(est[:, 0], 0.25**2)
    _close(est[:, 1], 0.15**2)


def test_lead_shocks_ignore_growth_and_pure_poisson_counts():
    # No shock, creations growing 5% a month: differences take the trend out; what is
    # left is Poisson noise, subtracted: the estimates are near 0 (well below sd 0.1).
    est = _estimates(0.0, 0.0, histories=20, growth=0.05)
    assert np.sqrt(est[:, 0].mean()) < 0.06 and np.sqrt(est[:, 1].mean()) < 0.06, est.mean(axis=0)


def test_split_shared_solves_the_whole_and_segment_variances():
    # Shares 3/4, 1/4; market 0.04, own 0.01: Var(whole) = 0.04 + 0.01 (9/16 + 1/16),
    # Var(g - whole) = 0.01 (1 - 2 w_g + 10/16).
    w, c = np.array([0.75, 0.25]), 10 / 16
    whole = 0.04 + 0.01 * c
    parts = [0.01 * (1 - 2 * x + c) for x in w]
    market, own = split_shared(whole, parts, [300.0, 100.0])
    assert abs(market - 0.04) < 1e-12 and abs(own - 0.01) < 1e-12
    assert split_shared(0.05, [float("nan")], [1.0]) == (0.05, 0.0)  # one segment: all market


def test_persistence_reads_the_lag_one_correlation_beyond_noise():
    # Two series of 36 months: an AR(1) path of persistence 0.7 and sd 0.3, plus noise of
    # variance 0.01 (known): the pooled estimate over 30 draws is near 0.7 (the lag-1
    # estimate is biased down by ~(1 + 3 rho) / n ~ 9% on 36 months: 0.15 allowed);
    # independent months give 0 (read only 2 standard errors above 0) most of the time.
    from pipesim.calibration.shock_variance import persistence

    def series(rng, rho):
        z = rng.standard_normal(36)
        for k in range(1, 36):
            z[k] = rho * z[k - 1] + np.sqrt(1 - rho**2) * z[k]
        return 0.3 * z + rng.normal(0, 0.1, 36), np.full(36, 0.01)

    rng = np.random.default_rng(5)
    got = [persistence([series(rng, 0.7), series(rng, 0.7)])[0] for _ in range(30)]
    assert abs(np.mean(got) - 0.7) < 0.15, np.mean(got)
    zero = [persistence([series(rng, 0.0), series(rng, 0.0)])[0] for _ in range(30)]
    # One-sided 2-se test: ~2% of independent draws pass; 30 draws: at most a few.
    assert sum(r > 0 for r in zero) <= 4, zero
    assert persistence([(np.zeros(3), np.zeros(3))]) == (0.0, 0)
