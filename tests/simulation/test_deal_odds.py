"""Each deal's odds (run --deal-odds): exact laws per deal, the summary's trials, same bits."""

from __future__ import annotations

import datetime as dt

import numba
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import integrate, stats

from conftest import Z, build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.engines import numba as numba_engine
from pipesim.io.scenario_folder import write_scenario
from pipesim.prepare.kernel_inputs import prepare
from pipesim.scenario.calendar import period_bounds
from pipesim.simulation.deal_odds import current_quarter, deal_odds

TRIALS = 20_000


def _check_share(found: np.ndarray, exact: np.ndarray, trials: int) -> None:
    # Each deal's count of wins is Binomial(trials, p) (conversions fixed: no
    # conversion_n, so trials are independent): SE sqrt(p(1-p)/trials); Z = 4.5 SEs.
    se = np.sqrt(exact * (1 - exact) / trials)
    assert np.all(np.abs(found - exact) <= Z * se + 1e-12), (found - exact) / se


def test_p_win_of_aged_deals_is_the_law_of_winning_inside_the_horizon():
    # One stage, gamma dwell (mean 60 days, cv 0.5: shape 4, scale 15), conversion 0.6,
    # horizon 90 days. A deal aged a wins inside it with probability
    # 0.6 (F(a + 90) - F(a)) / S(a): its remaining dwell given it has lasted a.
    ages = np.array([0.0, 10.0, 30.0, 60.0, 90.0, 150.0, 250.0])
    stages = stages_frame([0.6], dwell_days=60.0, dwell_cv=0.5, names=["Offer"])
    deals = deals_frame(["Offer"] * len(ages), 1_000.0, ages=ages)
    sc = build(stages, deals, horizon_months=3, calibrated=True)
    horizon = period_bounds(sc.as_of, 3)[-1]
    assert horizon == 90.0
    law = stats.gamma(4.0, scale=15.0)
    exact = 0.6 * (law.cdf(ages + horizon) - law.cdf(ages)) / law.sf(ages)
    odds = deal_odds(sc, TRIALS, seed=3).table
    _check_share(odds["p_win"].to_numpy(), exact, TRIALS)
    # The test has power: the odds move with age (gamma of shape 4: the hazard rises)
    # by more than four times the tolerance.
    assert np.ptp(exact) > 4 * Z * np.sqrt(exact * (1 - exact) / TRIALS).max()


def test_p_win_through_two_stages_is_the_convolution_of_their_clocks():
    # Stage 1 gamma (mean 20, cv 0.7) entered a days ago, then stage 2 exponential (mean
    # 30); conversions 0.5 and 0.8; horizon 90 days. P(win inside) = 0.4 x
    # integral_0^90 f_R(r) (1 - exp(-(90 - r)/30)) dr, f_R(r) = f(a + r) / S(a).
    ages = np.array([0.0, 15.0, 40.0, 80.0])
    stages = stages_frame([0.5, 0.8], dwell_days=[20.0, 30.0], dwell_cv=[0.7, 1.0])
    deals = deals_frame(["S1"] * len(ages), 500.0, ages=ages)
    sc = build(stages, deals, horizon_months=3, calibrated=True)
    k = 1 / 0.7**2
    law = stats.gamma(k, scale=20.0 / k)
    exact = np.array(
        [
            0.4
            * integrate.quad(
                lambda r, a=a: law.pdf(a + r) / law.sf(a) * (1 - np.exp(-(90.0 - r) / 30.0)),
                0.0,
                90.0,
            )[0]
            for a in ages
        ]
    )
    odds = deal_odds(sc, TRIALS, seed=4).table
    _check_share(odds["p_win"].to_numpy(), exact, TRIALS)


def test_p_win_quarter_is_the_exponential_dwell_over_the_quarters_days():
    # Fiscal year from February: as_of 2027-02-10 falls in FY2028-Q1 (Feb-Apr), whose
    # days from as_of are 19 + 31 + 30 = 80. Exponential dwell of mean 40, conversion
    # 0.7: P(won in the quarter) = 0.7 (1 - exp(-80/40)); in the 6-month horizon of H
    # days 0.7 (1 - exp(-H/40)); the median won day given a win inside the horizon
    # solves F(t) = F(H)/2: t = -40 log(1 - (1 - exp(-H/40))/2).
    stages = stages_frame([0.7], dwell_days=40.0, dwell_cv=1.0, names=["Offer"])
    deals = deals_frame(["Offer"] * 12, np.arange(1, 13) * 100.0, ages=np.arange(12) * 20.0)
    sc = build(
        stages, deals, as_of="2027-02-10", horizon_months=6, fiscal_year_start=2, calibrated=True
    )
    horizon = period_bounds(sc.as_of, 6, sc.fiscal)[-1]
    found = deal_odds(sc, TRIALS, seed=5)
    assert (found.quarter, found.quarter_start, found.quarter_end) == (
        "FY2028-Q1",
        dt.date(2027, 2, 10),
        dt.date(2027, 4, 30),
    )
    odds = found.table
    p_quarter = 0.7 * (1 - np.exp(-80.0 / 40.0))
    _check_share(odds["p_win_quarter"].to_numpy(), np.full(12, p_quarter), TRIALS)
    _check_share(odds["p_win"].to_numpy(), np.full(12, 0.7 * (1 - np.exp(-horizon / 40))), TRIALS)
    # No value spread: each win books the amount itself.
    np.testing.assert_allclose(
        odds["expected_revenue_quarter"], odds["amount"] * odds["p_win_quarter"], rtol=1e-12
    )
    np.testing.assert_allclose(odds["expected_revenue"], odds["amount"] * odds["p_win"], rtol=1e-12)
    # The median of ~0.7 x 20,000 won days: SE 1 / (2 f(t) sqrt(n)), f the density of the
    # won day given a win (f(t) = exp(-t/40)/40 / F(H)); plus one day for whole days.
    f_h = 1 - np.exp(-horizon / 40.0)
    t50 = -40.0 * np.log(1 - f_h / 2)
    n = odds["p_win"].to_numpy() * TRIALS
    se = 1 / (2 * (np.exp(-t50 / 40.0) / 40.0 / f_h) * np.sqrt(n))
    day = (odds["close_p50"] - pd.Timestamp(sc.as_of)).dt.days.to_numpy()
    assert np.all(np.abs(day - np.floor(t50)) <= Z * se + 1), (day, t50)


def _slipped_demo(demo):
    return demo.replace(rush_slips=(0.3, 0.2), month_slips=(0.1,) * 12, calibrated=True)


def _shocked_demo(demo):
    # Odds shocks of the month a deal entered its stage: the market's and each arrivals
    # segment's own, persistent from month to month.
    return demo.replace(
        arrivals=demo.arrivals.assign(segment_shock_sd=0.3),
        market_shock_sd=0.4,
        shock_persistence=0.5,
        calibrated=True,
    )


def _loss_clock_book():
    stages = stages_frame([0.5, 0.6], dwell_days=[15.0, 40.0], dwell_cv=[1.0, 0.6])
    stages["loss_days"] = [np.nan, 60.0]
    stages["loss_cv"] = [np.nan, 1.0]
    stages["conversion_n"] = [40.0, 25.0]  # conversions drawn per trial
    deals = deals_frame(["S1", "S2"] * 150, np.linspace(100, 9_000, 300))
    deals["days_in_stage"] = np.tile(np.arange(150) * 1.5, 2)
    return build(stages, deals, horizon_months=6, calibrated=True)


BOOKS = {
    "slips": _slipped_demo,
    "shocks": _shocked_demo,
    "loss clock": lambda _: _loss_clock_book(),
}


@pytest.mark.parametrize("book", list(BOOKS))
def test_the_odds_add_up_to_the_open_deals_of_the_run(book, demo):
    # The very trials of the run: summed over deals, the wins are the open deals' won
    # deals (exactly) over the horizon and over the quarter, and so is the revenue (up
    # to the order of the float sums). The run's open deals: the engine without arrivals.
    sc = BOOKS[book](demo)
    trials = 400
    prepared = prepare(sc)
    assert prepared.deal_shocks.active == (book == "shocks")
    shape = (trials, len(prepared.periods), 1)
    rev, won = np.zeros(shape), np.zeros(shape)
    no_leads = prepared.arrivals.take(0, 0)
    numba_engine.accumulate(prepared, prepared.deals, no_leads, 11, 0, rev, won)
    found = deal_odds(sc, trials, seed=11)
    odds = found.table
    quarter = current_quarter(sc)
    assert quarter.label == found.quarter
    months = quarter.periods
    wins = np.rint(odds["p_win"] * trials).sum()
    wins_q = np.rint(odds["p_win_quarter"] * trials).sum()
    assert wins == won.sum()
    assert wins_q == won[:, months].sum()
    np.testing.assert_allclose(odds["expected_revenue"].sum(), rev.sum() / trials, rtol=1e-12)
    in_q = rev[:, months].sum() / trials
    np.testing.assert_allclose(odds["expected_revenue_quarter"].sum(), in_q, rtol=1e-12)
    assert 0 < wins_q < wins
    assert list(odds["deal_id"]) == list(sc.deals["deal_id"])  # the book's order


def test_one_seed_one_table_whatever_the_threads_and_chunks(demo):
    sc = _slipped_demo(demo)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = deal_odds(sc, 150, seed=2, chunk=256, lanes=1).table
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = deal_odds(sc, 150, seed=2, chunk=100, lanes=3, deal_chunk=700).table
        three = deal_odds(sc, 150, seed=2).table
    finally:
        numba.set_num_threads(before)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    pd.testing.assert_frame_equal(one, three, check_exact=True)


def test_memory_is_lanes_by_chunk_by_days_whatever_the_deals_and_trials():
    # The won-day histograms are the only arrays beyond a few numbers per deal: their
    # size depends on lanes, chunk and the horizon's days, not on deals or trials.
    stages = stages_frame([0.5, 0.5], dwell_days=10.0)
    days = period_bounds(dt.date(2027, 1, 1), 12)[-1]
    sizes = set()
    for n, trials in ((3_000, 10), (12_000, 10), (3_000, 40)):
        sc = build(stages, deals_frame(["S1"] * n, 10.0), horizon_months=12, calibrated=True)
        sizes.add(deal_odds(sc, trials, seed=1, chunk=128, lanes=2).scratch_bytes)
    assert sizes == {2 * 128 * int(days) * 4}
    # A book smaller than a wave holds only the lanes it fills.
    small = build(stages, deals_frame(["S1"] * 100, 10.0), horizon_months=12, calibrated=True)
    assert deal_odds(small, 10, seed=1, chunk=128, lanes=2).scratch_bytes == 128 * int(days) * 4


def test_a_deal_that_cannot_win_has_no_median_date():
    stages = stages_frame([0.0, 1.0])
    sc = build(stages, deals_frame(["S1", "S2"], 100.0), horizon_months=3, calibrated=True)
    odds = deal_odds(sc, 200, seed=0).table
    assert odds["p_win"].tolist()[0] == 0.0 and odds["close_p50"].isna().tolist() == [True, False]


def test_run_deal_odds_writes_prints_and_reports(tmp_path):
    stages = stages_frame([0.6, 0.7], dwell_days=20.0)
    deals = deals_frame(["S1", "S2", "S2"], [1_000.0, 5_000.0, 2_000.0], ages=[5.0, 200.0, 1.0])
    deals["deal_id"] = ["<b>big</b>", "old & slow", "d3"]
    deals["region"] = ["North", "South", "<i>East</i>"]
    folder = tmp_path / "sc"
    write_scenario(folder, build(stages, deals, horizon_months=6, calibrated=True))
    out = tmp_path / "out"
    args = ["run", str(folder), "--trials", "300", "--out", str(out), "--deal-odds", "--report"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "Deals that carry FY2027-Q1: the 3 of 3 open deals" in res.output
    assert "The 3 oldest deals (longest in their stage) and their odds" in res.output
    odds = pd.read_parquet(out / "deal_odds.parquet")
    assert list(odds.columns) == [
        *("deal_id", "stage", "region", "amount", "days_in_stage", "p_win", "p_win_quarter"),
        *("expected_revenue", "expected_revenue_quarter", "close_p50"),
    ]
    assert odds["deal_id"].tolist() == ["<b>big</b>", "old & slow", "d3"]
    page = (out / "report.html").read_text()
    assert "Deals that carry FY2027-Q1" in page
    assert "&lt;b&gt;big&lt;/b&gt;" in page and "&lt;i&gt;East&lt;/i&gt;" in page
    assert "<b>big</b>" not in page
    # Without the flag: no deal odds, nothing printed about them.
    plain = CliRunner().invoke(main, ["run", str(folder), "--trials", "50", "--out", str(out)])
    assert plain.exit_code == 0 and "Deals that carry" not in plain.output


def test_a_book_without_open_deals_gets_an_empty_table(tmp_path):
    stages = stages_frame([0.5, 0.6, 0.7])
    arrivals = pd.DataFrame({"period": ["2027-01"], "leads": [5.0], "amount": [100.0]})
    folder = tmp_path / "sc"
    write_scenario(folder, build(stages, None, arrivals))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main, ["run", str(folder), "--trials", "50", "--out", str(out), "--deal-odds"]
    )
    assert res.exit_code == 0, res.output
    assert "Deal odds: no open deal." in res.output
    odds = pd.read_parquet(out / "deal_odds.parquet")
    assert len(odds) == 0 and odds["p_win"].dtype == float and odds["amount"].dtype == float


def test_deals_timed_by_their_close_dates_are_counted_on_the_dated_kernels_draws():
    # Half the book carries a stated close date (law: p_win 0.6, lateness 0..100 days),
    # half runs on the clocks; the market's odds shock moves both. Summed over deals the
    # wins are the run's open-deal wins exactly (dated and clocked), the revenue to
    # float order; a dated deal's median won day falls after its stated date.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "engines"))
    from test_dated_deals import law

    deals = deals_frame(["S3"] * 600, 1000.0, 5.0)
    deals["close_date"] = [pd.Timestamp("2027-01-20")] * 300 + [pd.NaT] * 300
    deals["pushes"] = 0
    sc = build(
        stages_frame([0.5, 0.5, 0.5]), deals, horizon_months=6, close_law=law(),
        market_shock_sd=0.4, calibrated=True,
    )  # fmt: skip
    trials = 300
    prepared = prepare(sc)
    assert prepared.dated is not None and prepared.dated.rows == 300
    shape = (trials, len(prepared.periods), 1)
    rev, won = np.zeros(shape), np.zeros(shape)
    no_leads = prepared.arrivals.take(0, 0)
    numba_engine.accumulate(
        prepared, prepared.deals, no_leads, 7, 0, rev, won, dated=prepared.dated
    )
    odds = deal_odds(sc, trials, seed=7).table
    months = current_quarter(sc).periods
    assert np.rint(odds["p_win"] * trials).sum() == won.sum()
    assert np.rint(odds["p_win_quarter"] * trials).sum() == won[:, months].sum()
    np.testing.assert_allclose(odds["expected_revenue"].sum(), rev.sum() / trials, rtol=1e-12)
    dated = odds["close_date"].notna()
    # The law's p_win 0.6 moved by December's market shock (sd 0.4, logit), one per trial
    # shared by the 300 (6 months hold all but ~1e-4 of the lateness law): the deals'
    # mean p_win is the trials' mean share, mean m1 and sd sqrt((v + m1 (1 - m1) / 300) / T),
    # m1 and v the logit-normal's mean and variance.
    q = lambda z, k: (1 / (1 + np.exp(-(np.log(1.5) + 0.4 * z)))) ** k * stats.norm.pdf(z)  # noqa: E731
    m1 = integrate.quad(q, -12, 12, args=(1,))[0]
    v = integrate.quad(q, -12, 12, args=(2,))[0] - m1 * m1
    shared = odds.loc[dated, "p_win"].mean()
    assert abs(shared - m1) < Z * np.sqrt((v + m1 * (1 - m1) / 300) / trials), (shared, m1)
    assert (odds.loc[dated, "close_p50"] >= pd.Timestamp("2027-01-20")).all()
