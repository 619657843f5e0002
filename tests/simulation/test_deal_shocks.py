"""Open deals take the odds shock of the month they entered their stage (issue 11).

A deal's P(win) moves on the logit scale by the market's shock of that month and
its arrivals segment's own, on the very paths the new leads take: an open deal
and a new lead of one month share the shock; months ``a`` apart correlate
``shock_persistence``^a. Exact moments by quadrature, on every engine. Tolerances
are Z Monte Carlo standard errors (conftest), each derived below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.kernels import trial
from pipesim.kernels.streams import seed_bits
from pipesim.kernels.tables import DealShocks
from pipesim.prepare.kernel_inputs import prepare

C = 0.4  # the one stage's conversion; a deal or lead decides at once
MARKET, OWN, RHO = 0.5, 0.3, 0.5
N, LEADS = 1_000, 600.0  # deals per cohort; new leads in the rest of as_of's month
AS_OF = "2027-03-15"


def _scenario(loss=False):
    stages = stages_frame([C], dwell_days=0.001, dwell_cv=0.0, names=["Offer"])
    if loss:  # two exponential clocks: advance (20 days) and loss (10 days)
        stages = stages_frame([C], dwell_days=20.0, dwell_cv=1.0, names=["Offer"])
        stages["loss_days"], stages["loss_cv"] = 10.0, 1.0
    # "recent" entered Offer in March (as_of's month), "older" on 2027-01-04 (two
    # months back); the arrivals' segment column is region, so both take North's own shock.
    deals = pd.concat(
        [
            deals_frame(["Offer"] * N, 1.0, 3.0, region="North", cohort="recent"),
            deals_frame(["Offer"] * N, 1.0, 70.0, region="North", cohort="older"),
        ],
        ignore_index=True,
    )
    deals["deal_id"] = [f"d{i}" for i in range(len(deals))]
    arrivals = pd.DataFrame(
        {
            "period": ["2027-03", "2027-03"],
            "leads": [LEADS * 31 / 17, LEADS * 31 / 17],  # 17 of March's 31 days are left
            "amount": 1.0,
            "amount_cv": 0.0,
            "region": ["North", "South"],
            "segment_shock_sd": OWN,
        }
    )
    return build(
        stages,
        deals,
        arrivals,
        as_of=AS_OF,
        horizon_months=36 if loss else 1,
        market_shock_sd=MARKET,
        shock_persistence=RHO,
        calibrated=True,
    )


def _moments(corr, a=C, b=C):
    """E q_a(x), E q_a(x)^2, E q_a(x) q_b(y), E q_b(y): q_p(x) = expit(logit p + x).

    x, y normal with sd hypot(MARKET, OWN) each and correlation ``corr`` (quadrature).
    """
    sd = np.hypot(MARKET, OWN)
    z, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    q = special.expit(special.logit(a) + sd * z)
    m1, m2 = w @ q, w @ q**2
    # y = corr x + sqrt(1 - corr^2) e: E q(x) q(y) on the 2-d grid.
    y = corr * z[:, None] + np.sqrt(1 - corr**2) * z[None, :]
    cross = w @ (q[:, None] * special.expit(special.logit(b) + sd * y)) @ w
    return m1, m2, cross, w @ special.expit(special.logit(b) + sd * z)


def _aged(days):
    """P(advance) of a deal open ``days`` on clocks of 20 (advance) and 10 days (loss)."""
    adv, loss = np.exp(-days / 20.0), np.exp(-days / 10.0)
    return C * adv / (C * adv + (1 - C) * loss)


@pytest.mark.parametrize("engine", ["numba", "fast", "numpy"])
def test_open_deals_take_their_stage_month_shock_by_exact_moments(engine):
    trials = 8_000
    res = pipesim.simulate(_scenario(), trials=trials, seed=47, by="cohort", engine=engine)
    labels = list(res.segments["cohort"])
    recent = res.won[:, 0, 1 + labels.index("recent")]
    older = res.won[:, 0, 1 + labels.index("older")]
    leads = res.won[:, 0, 1 + labels.index("(none)")]  # North's and South's
    m1, m2, cross2, _ = _moments(RHO**2)  # recent vs older: two months apart
    _, _, cross_market, _ = _moments(MARKET**2 / (MARKET**2 + OWN**2))  # North vs South
    v = m2 - m1 * m1
    # A cohort: Binomial(N, q) given its shock: mean N m1, variance N (m1 - m2) + N^2 v.
    mean, var = N * m1, N * (m1 - m2) + N**2 * v
    for won in (recent, older):
        assert abs(won.mean() - mean) < Z * np.sqrt(var / trials)
        # SE of a sample variance ~ var sqrt(2 / T) (x1.5 for the mixture's tails).
        assert abs(won.var() / var - 1) < Z * np.sqrt(2 / trials) * 1.5
    # Two months apart on an AR(1) of persistence RHO: Cov = N^2 (E q q' - m1^2).
    r = np.corrcoef(recent, older)[0, 1]
    expect = N**2 * (cross2 - m1 * m1) / var
    assert abs(r - expect) < Z * (1 - expect**2) / np.sqrt(trials), (r, expect)
    # The recent cohort and March's North leads share one shock; South's leads only the
    # market's: Cov = N L (v + E q q'_market - m1^2), L = LEADS each.
    lead_var = 2 * LEADS * m1 + LEADS**2 * (2 * v + 2 * (cross_market - m1 * m1))
    cov = N * LEADS * (v + cross_market - m1 * m1)
    r = np.corrcoef(recent, leads)[0, 1]
    expect = cov / np.sqrt(var * lead_var)
    assert abs(r - expect) < Z * (1 - expect**2) / np.sqrt(trials), (r, expect)


@pytest.mark.parametrize("engine", ["numba", "fast", "numpy"])
def test_aged_deals_on_two_clocks_take_the_shock_after_their_own_odds(engine):
    # Loss clocks: each deal wins on its odds at its age (3 and 70 days), then shocked.
    trials = 6_000
    res = pipesim.simulate(_scenario(True), trials=trials, seed=53, by="cohort", engine=engine)
    labels = list(res.segments["cohort"])
    a, b = _aged(3.0), _aged(70.0)
    wins = {k: res.won[:, :, 1 + labels.index(k)].sum(axis=1) for k in ("recent", "older")}
    m_a, m2_a, cross, m_b = _moments(RHO**2, a, b)
    _, m2_b, _, _ = _moments(0.0, b, b)
    var_a = N * (m_a - m2_a) + N**2 * (m2_a - m_a**2)
    var_b = N * (m_b - m2_b) + N**2 * (m2_b - m_b**2)
    for won, m, var in ((wins["recent"], m_a, var_a), (wins["older"], m_b, var_b)):
        assert abs(won.mean() - N * m) < Z * np.sqrt(var / trials)
        assert abs(won.var() / var - 1) < Z * np.sqrt(2 / trials) * 1.5
    r = np.corrcoef(wins["recent"], wins["older"])[0, 1]
    expect = N**2 * (cross - m_a * m_b) / np.sqrt(var_a * var_b)
    assert abs(r - expect) < Z * (1 - expect**2) / np.sqrt(trials), (r, expect)


def test_deal_shifts_are_the_new_leads_paths_continued_back():
    # The kernel's table against past_shock and shock_path, column by column.
    shocks = DealShocks(
        seg_key=np.array([0, 12345], dtype=np.uint64),
        own_sd=np.array([0.0, 0.3]),
        market_sd=np.array([0.5]),
        rho=np.array([0.6]),
    )
    out = np.empty((3, shocks.columns))
    trial.deal_shifts(seed_bits(5), 10, shocks, out)
    for i in range(3):
        base = trial.trial_state(seed_bits(5), 10 + i) ^ trial.ARRIVAL_DOMAIN
        seg = np.uint64(trial.derive(base, np.uint64(12345)))  # (a Python int from Python)
        assert out[i, 0] == pytest.approx(0.5 * trial.shock_path(base, trial.SHOCK_KEY, 0, 0.6))
        for back in (0, 1, 7):
            m = trial.past_shock(base, trial.SHOCK_KEY, back, 0.6)
            o = trial.past_shock(seg, trial.SHOCK_KEY, back, 0.6)
            assert out[i, back * 2] == pytest.approx(0.5 * m, abs=1e-12)
            assert out[i, back * 2 + 1] == pytest.approx(0.5 * m + 0.3 * o, abs=1e-12)


def test_past_months_correlate_as_a_stationary_ar1():
    # rho^(a+b) between months -a and b: over many streams, the sample correlation.
    rho, n = 0.7, 20_000
    x = np.array([trial.past_shock(np.uint64(s), trial.SHOCK_KEY, 2, rho) for s in range(n)])
    y = np.array([trial.shock_path(np.uint64(s), trial.SHOCK_KEY, 1, rho) for s in range(n)])
    assert abs(x.std() - 1) < Z / np.sqrt(2 * n)
    assert abs(np.corrcoef(x, y)[0, 1] - rho**3) < Z * (1 - rho**6) / np.sqrt(n)
    assert abs(stats.kstest(x, "norm").statistic) < 1.63 / np.sqrt(n)  # KS at alpha 1%


def test_without_shocks_the_deals_keep_their_cells():
    sc = _scenario()
    plain = prepare(
        build(sc.stages, sc.deals, None, as_of=AS_OF, horizon_months=1, calibrated=True)
    )
    assert not plain.deal_shocks.active
    assert not plain.deals.shock.any()
    shocked = prepare(sc)
    assert shocked.deal_shocks.active
    # 37 months x (none, North, South); recent in as_of's month, older two back; North is 1.
    n_seg = len(shocked.deal_shocks.seg_key)
    back, seg = np.divmod(shocked.deals.shock, n_seg)
    assert sorted(set(back)) == [0, 2] and set(seg) == {1}


def test_stage_flows_of_health_take_the_same_shocks():
    # health's walk of every deal and lead: its Won entries have the main kernel's
    # law. Two independent estimates of one variance: the SE of their ratio is about
    # sqrt(2 / T) x 1.5 (mixture tails) for each, sqrt(2) of that for the ratio.
    from pipesim.simulation.stage_flows import simulate_flows

    trials = 6_000
    sc = _scenario()
    flows = simulate_flows(sc, trials, 61)
    walked = flows.entered[:, 0, 1, 0]  # month 0, Won, whole book
    booked = pipesim.simulate(sc, trials=trials, seed=62).won[:, 0, 0]
    se = np.sqrt(booked.var() / trials)
    assert abs(walked.mean() - booked.mean()) < Z * np.sqrt(2) * se
    assert abs(walked.var() / booked.var() - 1) < Z * np.sqrt(2) * np.sqrt(2 / trials) * 1.5
    # Without the shocks the walk's variance would be far below (binomial + Poisson only).
    assert walked.var() > 5 * (N * 2 * C + 2 * LEADS * C)


def test_odds_table_in_full_or_of_the_pairs_held_gives_the_same_bits(monkeypatch):
    # The one-clock kernel's shocked odds: laid out for every (cell, month, segment)
    # when small, else only for the pairs the deals hold; the same odds either way.
    from pipesim.engines import numba as numba_engine

    sc = _scenario()
    full = pipesim.simulate(sc, trials=300, seed=9, by="cohort").revenue
    monkeypatch.setattr(numba_engine, "ODDS_TABLE", 0)
    held = pipesim.simulate(sc, trials=300, seed=9, by="cohort").revenue
    np.testing.assert_array_equal(full, held)


def test_deals_without_the_arrivals_segment_columns_take_the_market_shock_with_a_note():
    sc = _scenario()
    arrivals = sc.arrivals.rename(columns={"region": "channel"})
    other = build(
        sc.stages, sc.deals, arrivals, as_of=AS_OF, horizon_months=1, market_shock_sd=MARKET,
        calibrated=True,
    )  # fmt: skip
    prepared = prepare(other)
    assert any("no channel column" in note for note in prepared.notes), prepared.notes
    assert len(prepared.deal_shocks.seg_key) == 1  # the market's only
    assert prepared.deal_shocks.active
