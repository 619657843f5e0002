"""Segments drawn around the whole stage (``conversion_pool``); lead rates once per segment;
the lead trend's uncertainty (``leads_trend_sd``), growing with the months ahead.

Exact moments of the hierarchical draw, checked on the kernel's own draws; the
numba engine against the NumPy reference on a pooled book; and the lead rate's
uncertainty shared by every month of a segment. Tolerances are Z Monte Carlo
standard errors (conftest), each derived below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.engines.numba import trial_conversions
from pipesim.errors import ScenarioError
from pipesim.prepare.kernel_inputs import prepare

C_P, N_P = 0.4, 50.0  # the whole stage S3
C, N, M = 0.6, 30.0, 20.0  # region North: own evidence N, pooled with weight M


def _pooled_stages(pool=M):
    stages = stages_frame([0.5, 0.5, C_P], dwell_days=2.0, region=None)
    stages["conversion_n"] = [np.nan, np.nan, N_P]
    stages["conversion_pool"] = np.nan
    row = {"stage": "S3", "conversion": C, "conversion_n": N, "conversion_pool": pool}
    return pd.concat([stages, pd.DataFrame([{**row, "region": "North"}])], ignore_index=True)


def _book(n=2_000):
    return deals_frame(["S3"] * n, 1.0, region=["North", "South"] * (n // 2))


def test_pooled_segment_moves_with_the_whole_stage_by_exact_moments():
    prepared = prepare(build(_pooled_stages(), _book(), format_version=4), by=["region"])
    trials = 40_000
    conv = trial_conversions(3, 0, prepared, trials, True)
    groups = prepared.by_values  # by-groups follow the parameter groups' first-seen order
    assert groups["region"].tolist() == ["North", "South"]
    north, south = conv[:, 0 * 3 + 2], conv[:, 1 * 3 + 2]  # cell = group * stages + stage
    var_p = C_P * (1 - C_P) / (N_P + 1)  # Beta(c n, (1 - c) n)
    k, w = M / (N + M), N + M
    # Child | parent ~ Beta(w mean, w (1 - mean)), mean = C + k (parent - C_P):
    # E = C; Cov(child, parent) = k var_p; Var = E[mean (1 - mean)] / (w + 1) + k^2 var_p.
    var_c = (C * (1 - C) - k**2 * var_p) / (w + 1) + k**2 * var_p
    assert abs(south.mean() - C_P) < Z * np.sqrt(var_p / trials)
    assert abs(north.mean() - C) < Z * np.sqrt(var_c / trials)
    # SE of a sample variance ~ var sqrt(2 / T) (Beta draws: near-normal, 1.5x slack).
    assert abs(south.var() / var_p - 1) < Z * np.sqrt(2 / trials) * 1.5
    assert abs(north.var() / var_c - 1) < Z * np.sqrt(2 / trials) * 1.5
    # Correlation k sqrt(var_p / var_c); SE of a correlation ~ (1 - r^2) / sqrt(T).
    r = k * np.sqrt(var_p / var_c)
    got = np.corrcoef(north, south)[0, 1]
    assert abs(got - r) < Z * (1 - r**2) / np.sqrt(trials), (got, r)
    assert r > 0.3  # the test has power: far from independent draws


def test_pool_zero_draws_the_segment_on_its_own():
    prepared = prepare(build(_pooled_stages(pool=0.0), _book(), format_version=4), by=["region"])
    conv = trial_conversions(3, 0, prepared, 20_000, True)
    r = np.corrcoef(conv[:, 2], conv[:, 5])[0, 1]
    assert abs(r) < Z / np.sqrt(20_000)


def test_pooled_book_numba_matches_numpy_reference():
    sc = build(_pooled_stages(), _book(), format_version=4)
    trials = 4_000
    fast = pipesim.simulate(sc, trials=trials, seed=1, by="region")
    ref = pipesim.simulate(sc, trials=trials, seed=2, by="region", engine="numpy")
    a, b = fast.won[:, :, 1:].sum(axis=1), ref.won[:, :, 1:].sum(axis=1)
    se = np.sqrt(a.var(axis=0) / trials + b.var(axis=0) / trials)
    assert (np.abs(a.mean(axis=0) - b.mean(axis=0)) < Z * se).all()
    sd_a, sd_b = a.std(axis=0), b.std(axis=0)
    assert (np.abs(sd_a - sd_b) < Z * np.sqrt((sd_a**2 + sd_b**2) / (2 * trials)) * 1.5).all()
    # The whole book's spread includes the segments' shared part: corr(North, South) > 0.
    r = np.corrcoef(a[:, 0], a[:, 1])[0, 1]
    assert r > Z / np.sqrt(trials), r


def test_conversion_pool_is_checked():
    stages = _pooled_stages()
    stages.loc[2, "conversion_pool"] = 5.0  # a funnel row
    with pytest.raises(ScenarioError, match=r"conversion_pool.*funnel row"):
        build(stages, _book(), format_version=4)
    stages = _pooled_stages(pool=-1.0)
    with pytest.raises(ScenarioError, match="conversion_pool"):
        build(stages, _book(), format_version=4)


def test_conversion_pool_is_reserved_since_format_4():
    stages = _pooled_stages()
    with pytest.raises(ScenarioError, match="reserved since scenario format 4"):
        build(stages, _book(), format_version=3)


def _arrivals(months, leads, leads_n, region):
    return pd.DataFrame(
        {
            "period": months,
            "leads": leads,
            "amount": 1.0,
            "amount_cv": 0.0,
            "leads_n": leads_n,
            "region": region,
        }
    )


def test_lead_rate_is_drawn_once_per_trial_and_segment():
    # Every lead wins one day after arriving: won = leads. One region over 6 months,
    # leads_n 25: the six months share one Gamma(25)/25 multiplier, so the total's
    # variance is lam + lam^2 / 25 (mixed Poisson), not lam + sum(lam_k^2) / 25.
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.001, dwell_cv=0.0)
    months = [f"2027-{k:02d}" for k in range(1, 7)]
    arr = _arrivals(months, 400.0, 25.0, "North")
    sc = build(stages, None, arr, horizon_months=6)
    res = pipesim.simulate(sc, trials=10_000, seed=21)
    won = res.won[:, :, 0]
    total = won.sum(axis=1)
    lam = won.mean(axis=0).sum()
    var = lam + lam**2 / 25.0
    t = total.size
    assert abs(total.var(ddof=1) / var - 1) < Z * np.sqrt(2 / t) * 1.5
    assert total.var(ddof=1) > 3 * (lam + lam**2 / 25.0 / 6)  # the per-month draw: 6x less
    # Months move together: correlation of two months ~ (lam_k^2/25) / var_k = 16/17.
    rho = np.corrcoef(won[:, 1], won[:, 4])[0, 1]
    assert abs(rho - 16.0 / 17.0) < Z * (1 - (16 / 17) ** 2) / np.sqrt(t) * 2


def test_segments_draw_their_rates_apart_and_mixed_evidence_is_noted():
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.001, dwell_cv=0.0)
    arr = _arrivals(
        ["2027-01", "2027-02", "2027-01", "2027-02"],
        400.0,
        [25.0, 25.0, 10.0, 40.0],
        ["North", "North", "South", "South"],
    )
    res = pipesim.simulate(
        build(stages, None, arr, horizon_months=2), trials=10_000, seed=4, by="region"
    )
    won = res.won.sum(axis=1)[:, 1:]
    r = np.corrcoef(won[:, 0], won[:, 1])[0, 1]
    assert abs(r) < Z / np.sqrt(10_000)
    # South's two months use the smaller leads_n (10): variance 800 + 800^2 / 10.
    seg = res.segments["region"].tolist()
    south = won[:, seg.index("South")]
    var = 800.0 + 800.0**2 / 10.0
    assert abs(south.var(ddof=1) / var - 1) < Z * np.sqrt(2 / 10_000) * 1.5
    assert any("different leads_n" in note for note in res.notes)


def test_lead_trend_uncertainty_grows_with_the_months_ahead():
    # Every lead wins at once; 400 a month, leads_trend_sd 0.05: month k's rate is
    # 400 exp(s z - s^2 / 2), s = 0.05 (k + 1), one z per trial for every row and segment.
    # Month k's count is mixed Poisson: variance 400 + 400^2 (exp(s^2) - 1).
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.001, dwell_cv=0.0)
    months = [f"2027-{k:02d}" for k in range(1, 7)]
    arr = _arrivals(months, 400.0, np.nan, "North")
    arr["leads_trend_sd"] = 0.05
    south = _arrivals(months, 400.0, np.nan, "South")
    south["leads_trend_sd"] = 0.05
    sc = build(stages, None, pd.concat([arr, south], ignore_index=True), horizon_months=6)
    trials = 10_000
    for engine, seed in (("numba", 31), ("numpy", 32)):
        res = pipesim.simulate(sc, trials=trials, seed=seed, by="region", engine=engine)
        won = res.won[:, :, 1]  # North
        s = 0.05 * np.arange(1, 7)
        lam = 400.0 * np.array([1.0] * 5 + [1.0 - 0.003 / 30])  # the last 0.003 day is out
        var = lam + lam**2 * np.expm1(s**2)
        got = won.var(axis=0, ddof=1)
        np.testing.assert_array_less(np.abs(got / var - 1), Z * np.sqrt(2 / trials) * 1.5)
        np.testing.assert_array_less(np.abs(won.mean(axis=0) - lam), Z * np.sqrt(var / trials))
        # North and South share the trend's draw: their last months move together.
        r = np.corrcoef(res.won[:, 5, 1], res.won[:, 5, 2])[0, 1]
        want = lam[5] ** 2 * np.expm1(s[5] ** 2) / var[5]
        assert abs(r - want) < Z * (1 - want**2) / np.sqrt(trials) * 1.5, (engine, r, want)


def test_leads_trend_sd_is_checked_and_reserved_since_format_4():
    stages = stages_frame([1.0, 1.0, 1.0], dwell_days=0.001, dwell_cv=0.0)
    arr = _arrivals(["2027-01"], 400.0, np.nan, "North")
    arr["leads_trend_sd"] = -0.1
    with pytest.raises(ScenarioError, match="leads_trend_sd"):
        build(stages, None, arr, horizon_months=1)
    arr["leads_trend_sd"] = 0.1
    with pytest.raises(ScenarioError, match="reserved since scenario format 4"):
        build(stages, None, arr, horizon_months=1, format_version=3)


def _shock_mixture(p, sd):
    """Mean and variance of expit(logit(p) + sd z), z standard normal (numerical)."""
    from scipy import integrate, special, stats

    def moment(k):
        f = lambda z: special.expit(special.logit(p) + sd * z) ** k * stats.norm.pdf(z)  # noqa: E731
        return integrate.quad(f, -12, 12, epsabs=1e-13)[0]

    m1 = moment(1)
    return m1, moment(2) - m1 * m1


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_monthly_shocks_move_new_leads_odds_by_exact_moments(engine):
    # One stage, c = 0.4, a lead decides at once. 1,000 leads a month; the market's
    # shock (sd 0.5) and the segment's own (sd 0.3) on the logit scale, drawn per month:
    # a month's wins are mixed Poisson: mean lam m1, variance lam m1 + lam^2 var(p').
    stages = stages_frame([0.4], dwell_days=0.001, dwell_cv=0.0, names=["Offer"])
    months = [f"2027-{k:02d}" for k in range(1, 5)]
    north = _arrivals(months, 1_000.0, np.nan, "North")
    south = _arrivals(months, 1_000.0, np.nan, "South")
    arr = pd.concat([north, south], ignore_index=True)
    arr["segment_shock_sd"] = 0.3
    sc = build(stages, None, arr, horizon_months=4, market_shock_sd=0.5, calibrated=True)
    trials = 8_000
    res = pipesim.simulate(sc, trials=trials, seed=41, by="region", engine=engine)
    won = res.won[:, :, 1]  # North, month by month
    lam = 1_000.0 * np.array([1.0, 1.0, 1.0, 1.0 - 0.001 / 30])
    sd = np.hypot(0.5, 0.3)
    m1, v = _shock_mixture(0.4, sd)
    mean, var = lam * m1, lam * m1 + lam**2 * v
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - mean), Z * np.sqrt(var / trials))
    np.testing.assert_array_less(np.abs(won.var(axis=0) / var - 1), Z * np.sqrt(2 / trials) * 1.5)
    # North and South share the market's shock, not their own: positively correlated,
    # below the correlation of one shared shock of the whole sd (lam^2 var(p') / var).
    r = np.corrcoef(res.won[:, 0, 1], res.won[:, 0, 2])[0, 1]
    full = lam[0] ** 2 * v / var[0]
    assert 0.3 < r < full - Z * (1 - full**2) / np.sqrt(trials), (r, full)
    # Months are independent: no shock carries over.
    assert abs(np.corrcoef(won[:, 0], won[:, 2])[0, 1]) < Z / np.sqrt(trials)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_monthly_shocks_move_lead_volumes_by_exact_moments(engine):
    # One stage, conversion 1, a lead wins at once: a month's wins are its leads,
    # Poisson(lam M) with M = exp(sd z - sd^2 / 2), sd^2 = market^2 + own^2 (log scale):
    # mean lam, variance lam + lam^2 (e^{sd^2} - 1). North and South share the market's
    # normal: covariance lam^2 (e^{market^2} - 1).
    stages = stages_frame([1.0], dwell_days=0.001, dwell_cv=0.0, names=["Offer"])
    months = [f"2027-{k:02d}" for k in range(1, 5)]
    north = _arrivals(months, 500.0, np.nan, "North")
    south = _arrivals(months, 500.0, np.nan, "South")
    arr = pd.concat([north, south], ignore_index=True)
    arr["segment_leads_shock_sd"] = 0.2
    sc = build(stages, None, arr, horizon_months=4, market_leads_shock_sd=0.3, calibrated=True)
    trials = 8_000
    res = pipesim.simulate(sc, trials=trials, seed=43, by="region", engine=engine)
    won = res.won[:, :3, 1]  # North, the three whole months
    lam, sd2 = 500.0, 0.3**2 + 0.2**2
    var = lam + lam**2 * np.expm1(sd2)
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - lam), Z * np.sqrt(var / trials))
    # SE of a sample variance of a lognormal mixture: var sqrt((kurtosis - 1) / T); the
    # kurtosis of M at sd^2 = 0.13 is about 4.6, so 2x the normal's sqrt(2 / T).
    np.testing.assert_array_less(np.abs(won.var(axis=0) / var - 1), Z * np.sqrt(2 / trials) * 2)
    r = np.corrcoef(res.won[:, 0, 1], res.won[:, 0, 2])[0, 1]
    shared = lam**2 * np.expm1(0.3**2) / var
    assert abs(r - shared) < Z * (1 - shared**2) / np.sqrt(trials), (r, shared)
    assert abs(np.corrcoef(won[:, 0], won[:, 2])[0, 1]) < Z / np.sqrt(trials)  # months apart
    # The setting and the column round-trip through a scenario folder (format 5).
    assert sc.market_leads_shock_sd == 0.3
    with pytest.raises(ScenarioError, match="market_leads_shock_sd needs scenario format 5"):
        build(
            stages,
            None,
            north,
            horizon_months=4,
            market_leads_shock_sd=0.3,
            format_version=4,
            calibrated=True,
        )
    with pytest.raises(ScenarioError, match="reserved since scenario format 5"):
        build(stages, None, arr, horizon_months=4, format_version=4, calibrated=True)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_persistent_shocks_correlate_months_by_exact_moments(engine):
    # Lead-volume shocks (market sd 0.3, own 0.2) as AR(1) paths of persistence 0.7:
    # months k apart have Cov(N_m, N_m+k) = lam^2 (exp(s^2 0.7^k) - 1), s^2 = 0.13; each
    # month alone keeps the variance of independent months.
    stages = stages_frame([1.0], dwell_days=0.001, dwell_cv=0.0, names=["Offer"])
    months = [f"2027-{k:02d}" for k in range(1, 5)]
    arr = _arrivals(months, 500.0, np.nan, "North")
    arr["segment_leads_shock_sd"] = 0.2
    sc = build(
        stages,
        None,
        arr,
        horizon_months=4,
        market_leads_shock_sd=0.3,
        shock_persistence=0.7,
        calibrated=True,
    )
    trials = 8_000
    won = pipesim.simulate(sc, trials=trials, seed=47, engine=engine).won[:, :3, 0]
    lam, s2 = 500.0, 0.3**2 + 0.2**2
    var = lam + lam**2 * np.expm1(s2)
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - lam), Z * np.sqrt(var / trials))
    np.testing.assert_array_less(np.abs(won.var(axis=0) / var - 1), Z * np.sqrt(2 / trials) * 2)
    for k in (1, 2):
        r = lam**2 * np.expm1(s2 * 0.7**k) / var
        got = np.corrcoef(won[:, 0], won[:, k])[0, 1]
        assert abs(got - r) < Z * (1 - r**2) / np.sqrt(trials), (k, got, r)
    with pytest.raises(ScenarioError, match=r"shock_persistence 1\.0 is not a number from 0"):
        build(stages, None, arr, horizon_months=4, shock_persistence=1.0, calibrated=True)
