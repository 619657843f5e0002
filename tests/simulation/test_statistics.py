"""Statistical checks of the engine against exact answers.

Every tolerance is written as a number of Monte Carlo standard errors (Z in
conftest), the standard error being derived from the law being tested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.scenario.calendar import period_bounds
from pipesim.scenario.calendar import to_date as _date


def test_mean_revenue_is_amount_times_remaining_conversions():
    conv = [0.4, 0.5, 0.6, 0.7]
    stages = stages_frame(conv, dwell_days=5.0, dwell_cv=0.8, value_cv=[0, 0, 0, 0.3])
    rng = np.random.default_rng(3)
    n = 400
    stage_idx = rng.integers(0, 4, n)
    amounts = rng.uniform(1_000, 20_000, n).round(2)
    deals = deals_frame([f"S{i + 1}" for i in stage_idx], amounts, ages=rng.uniform(0, 30, n))
    sc = build(stages, deals, horizon_months=60)  # dwell ~20 days: nothing left past 5 years
    res = pipesim.simulate(sc, trials=20_000, seed=11)
    total = res.total_revenue()
    p = np.array([np.prod(conv[i:]) for i in stage_idx])
    expected = float((amounts * p).sum())
    # The last stage books amount x lognormal(mean 1, cv 0.3): E[m^2] = 1 + 0.3^2.
    m2 = np.where(stage_idx == 3, 1.09, 1.0)
    var = float((amounts**2 * (p * m2 - p**2)).sum())
    se = np.sqrt(var / total.size)
    assert abs(total.mean() - expected) < Z * se, (total.mean(), expected, se)
    # Per-trial variance matches too (SE of a variance ~ var * sqrt(2 / T), near-normal sum).
    assert abs(total.var() / var - 1) < Z * np.sqrt(2 / total.size)


def _quantile_margin_ok(dist, q, trials):
    """True when the CDF is far (5 sampling SEs) from q at the quantile and the value below it."""
    k = dist.ppf(q)
    se = np.sqrt(q * (1 - q) / trials)
    return abs(dist.cdf(k) - q) > 5 * se and abs(dist.cdf(k - 1) - q) > 5 * se


def test_won_count_of_identical_deals_is_binomial():
    n, c, trials = 100, 0.3, 20_000
    stages = stages_frame([0.5, 0.5, c], dwell_days=3.0)
    deals = deals_frame(["S3"] * n, 100.0)
    res = pipesim.simulate(build(stages, deals), trials=trials, seed=5)
    summary = res.summary()
    row = summary[
        (summary.metric == "won_deals") & summary.cumulative & (summary.period == "2027-12")
    ].iloc[0]
    dist = stats.binom(n, c)
    for q, col in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
        assert _quantile_margin_ok(dist, q, trials), q
        assert row[col] == dist.ppf(q), (col, row[col], dist.ppf(q))
    won = res.won[:, :, 0].sum(axis=1)
    assert abs(won.mean() - n * c) < Z * np.sqrt(n * c * (1 - c) / trials)


def test_conversion_n_gives_beta_binomial_counts():
    n, c, ess, trials = 40, 0.5, 20.0, 20_000
    stages = stages_frame([0.5, 0.5, c], dwell_days=3.0, conversion_n=[np.nan, np.nan, ess])
    deals = deals_frame(["S3"] * n, 100.0)
    res = pipesim.simulate(build(stages, deals), trials=trials, seed=6)
    won = res.won[:, :, 0].sum(axis=1)
    dist = stats.betabinom(n, c * ess, (1 - c) * ess)
    for q in (0.1, 0.5, 0.9):
        assert _quantile_margin_ok(dist, q, trials), q
        assert np.quantile(won, q) == dist.ppf(q)
    # The spread is the Beta-binomial's, far wider than the binomial's.
    assert abs(won.var() / dist.var() - 1) < Z * np.sqrt(2 / trials) * 1.5
    assert won.var() > 2 * n * c * (1 - c)  # Beta-binomial: (n + ess) / (1 + ess) = 2.9x


def test_exponential_dwell_books_wins_in_real_calendar_months():
    n, c, m = 5_000, 0.7, 45.0
    as_of = "2027-01-17"  # mid-month: the first period is 15 days long
    stages = stages_frame([0.5, 0.5, c], dwell_days=m, dwell_cv=1.0)
    deals = deals_frame(["S3"] * n, 10.0, ages=np.linspace(0, 200, n))  # memoryless: age moot
    res = pipesim.simulate(
        build(stages, deals, as_of=as_of, horizon_months=8), trials=4_000, seed=7
    )
    bounds = period_bounds(_date(as_of), 8)
    assert list(np.diff(bounds)[:3]) == [15.0, 28.0, 31.0]
    p = c * (np.exp(-bounds[:-1] / m) - np.exp(-bounds[1:] / m))
    mean = res.won[:, :, 0].mean(axis=0)
    se = np.sqrt(n * p * (1 - p) / res.won.shape[0])
    np.testing.assert_array_less(np.abs(mean - n * p), Z * se)


@pytest.mark.parametrize("dist, cv", [("gamma", 0.5), ("gamma", 1.6), ("lognormal", 0.8)])
def test_aged_deal_draws_remaining_dwell_from_its_conditional_law(dist, cv):
    n, mean_days, age = 4_000, 30.0, 40.0
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=mean_days, dwell_cv=cv, dwell_dist=dist)
    deals = deals_frame(["S3"] * n, 1.0, ages=age)
    res = pipesim.simulate(build(stages, deals, horizon_months=6), trials=2_000, seed=8)
    bounds = period_bounds(_date("2027-01-01"), 6)
    if dist == "gamma":
        law = stats.gamma(1 / cv**2, scale=mean_days * cv**2)
    else:
        s2 = np.log1p(cv**2)
        law = stats.lognorm(np.sqrt(s2), scale=mean_days * np.exp(-s2 / 2))
    p = (law.sf(age + bounds[:-1]) - law.sf(age + bounds[1:])) / law.sf(age)
    mean = res.won[:, :, 0].mean(axis=0)
    se = np.sqrt(n * p * (1 - p) / res.won.shape[0])
    np.testing.assert_array_less(np.abs(mean - n * p), Z * se + 1e-9)


def _arrivals(months, leads, amount=100.0, **extra):
    frame = pd.DataFrame({"period": months, "leads": leads, "amount": amount})
    for key, value in extra.items():
        frame[key] = value
    return frame


def test_poisson_arrivals_monthly_mean_and_variance():
    # Fixed dwell 0.25 day in each of 4 stages: a lead wins exactly 1 day after arriving.
    conv = [0.5, 0.6, 0.7, 0.8]
    p = float(np.prod(conv))
    stages = stages_frame(conv, dwell_days=0.25, dwell_cv=0.0)
    months = [f"2027-{k:02d}" for k in range(1, 7)]
    leads = np.array([100.0, 150.0, 80.0, 120.0, 60.0, 200.0])
    sc = build(stages, None, _arrivals(months, leads), horizon_months=6)
    res = pipesim.simulate(sc, trials=20_000, seed=9)
    length = np.diff(period_bounds(_date("2027-01-01"), 6))
    inside = leads * (length - 1) / length
    spill = np.concatenate([[0.0], leads[:-1] / length[:-1]])
    mu = p * (inside + spill)
    won = res.won[:, :, 0]
    t = won.shape[0]
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - mu), Z * np.sqrt(mu / t))
    # Poisson: variance = mean; SE of a sample variance = sqrt((mu + 2 mu^2) / T).
    np.testing.assert_array_less(
        np.abs(won.var(axis=0, ddof=1) - mu), Z * np.sqrt((mu + 2 * mu**2) / t)
    )
    # Revenue = 100 per win.
    np.testing.assert_allclose(res.revenue[:, :, 0], 100.0 * won)


def test_leads_n_makes_counts_negative_binomial():
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.01, dwell_cv=0.0)
    lam, shape = 50.0, 8.0
    sc = build(stages, None, _arrivals(["2027-03"], [lam], leads_n=[shape]), horizon_months=3)
    res = pipesim.simulate(sc, trials=20_000, seed=10)
    won = res.won[:, :, 0].sum(axis=1)
    dist = stats.nbinom(shape, shape / (shape + lam * (31 - 0.03) / 31))
    mu, var = dist.mean(), dist.var()
    t = won.size
    assert abs(won.mean() - mu) < Z * np.sqrt(var / t)
    assert abs(won.var(ddof=1) / var - 1) < Z * np.sqrt(2 / t) * 2  # heavier tail: 2x slack


def test_arrivals_in_as_of_month_are_prorated_and_earlier_months_ignored():
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.001, dwell_cv=0.0)
    arr = _arrivals(["2026-12", "2027-01", "2027-02"], [1_000.0, 310.0, 280.0])
    sc = build(stages, None, arr, as_of="2027-01-22", horizon_months=2)  # 10 of 31 days left
    res = pipesim.simulate(sc, trials=4_000, seed=12)
    won = res.won[:, :, 0]
    mu = np.array([310.0 * 10 / 31, 280.0])
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - mu), Z * np.sqrt(mu / won.shape[0]))
    assert any("before 2027-01 ignored" in note for note in res.notes)


def test_amount_cv_gives_lognormal_amounts_of_the_right_mean():
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.001, dwell_cv=0.0)
    arr = _arrivals(["2027-01"], [200.0], amount=5_000.0, amount_cv=[0.8])
    res = pipesim.simulate(build(stages, None, arr, horizon_months=1), trials=20_000, seed=13)
    rev = res.revenue[:, 0, 0]
    # Compound Poisson: E = lam * a, Var = lam * E[A^2] = lam * a^2 * (1 + cv^2).
    lam_eff = 200.0 * (31 - 0.003) / 31
    mean, var = lam_eff * 5_000.0, lam_eff * 5_000.0**2 * 1.64
    assert abs(rev.mean() - mean) < Z * np.sqrt(var / rev.size)
    assert abs(rev.var(ddof=1) / var - 1) < Z * np.sqrt(2 / rev.size) * 2


def test_segment_override_changes_only_matching_deals():
    stages = stages_frame([0.5, 0.5, 0.5], dwell_days=2.0, region=None)
    override = pd.DataFrame(
        {
            "stage": ["S3"],
            "conversion": [0.9],
            "dwell_days": [None],
            "dwell_cv": [None],
            "region": ["North"],
        }
    )
    stages = pd.concat([stages, override], ignore_index=True)
    n = 2_000
    deals = deals_frame(["S3"] * n, 1.0, region=["North", "South"] * (n // 2))
    res = pipesim.simulate(build(stages, deals), trials=4_000, seed=14, by="region")
    seg = res.segments["region"].tolist()
    won = res.won[:, :, 1:].sum(axis=1)
    north, south = won[:, seg.index("North")], won[:, seg.index("South")]
    for got, c in ((north, 0.9), (south, 0.5)):
        assert abs(got.mean() - 1_000 * c) < Z * np.sqrt(1_000 * c * (1 - c) / got.size)
