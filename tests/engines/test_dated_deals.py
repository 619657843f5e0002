"""Deals with a stated close date: the dated kernel against the exact law of its table."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.errors import InputError, ScenarioError
from pipesim.io.scenario_folder import load_scenario, write_scenario
from pipesim.scenario.close_law import LATENESS_COLUMNS, LATENESS_LEVELS, lateness_cdf

N = 2000
TRIALS = 400
TAIL = 10.0
KNOTS = np.array(LATENESS_LEVELS) * 100.0  # lateness uniform on 0..100 days, up to its p90


def law(p=0.6, se=0.0, past=0.5, stages=("S3",)):
    """p_win p / (pushes + 1), times ``past`` for a deal already past its date."""
    rows = []
    for stage in stages:
        for k, o in itertools.product(range(4), range(5)):
            rows.append(
                {
                    "stage": stage,
                    "pushes": k,
                    "overdue": o,
                    "p_win": p / (k + 1) * (past if o else 1.0),
                    "p_win_se": se,
                    "p_by_date": 0.0,
                    **dict(zip(LATENESS_COLUMNS, KNOTS.tolist(), strict=True)),
                    "lateness_tail_days": TAIL,
                }
            )
    return pd.DataFrame(rows)


def dated(close_date, pushes=0, n=N, market_shock_sd=0.0, **kw):
    deals = deals_frame(["S3"] * n, 1000.0)
    deals["close_date"] = close_date
    deals["pushes"] = pushes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipesim.PipesimWarning)
        return build(
            stages_frame([0.5, 0.5, 0.5]), deals, horizon_months=3, close_law=law(**kw),
            market_shock_sd=market_shock_sd,
        )  # fmt: skip


def won_by_month(scenario, engine="numba", seed=1):
    result = pipesim.simulate(scenario, trials=TRIALS, seed=seed, engine=engine)
    return result.won[:, :, 0]


def check_mean(won: np.ndarray, p: float) -> None:
    # The table's p is exact (se 0): each trial's count is Binomial(N, p); the mean of
    # TRIALS counts has sd sqrt(N p (1 - p) / TRIALS).
    se = math.sqrt(N * p * (1 - p) / TRIALS)
    assert abs(won.mean() - N * p) < Z * se, (won.mean(), N * p, se)


@pytest.mark.parametrize("engine", ["numba", "numpy"])  # the NumPy reference too
def test_a_deal_due_in_ten_days_wins_on_its_date_plus_the_lateness_law(engine):
    # as_of 2027-01-01, stated 2027-01-11: won in January when the lateness is < 21 days.
    won = won_by_month(dated("2027-01-11"), engine)
    p_jan = 0.6 * lateness_cdf(KNOTS, TAIL, 21.0)
    p_feb = 0.6 * (lateness_cdf(KNOTS, TAIL, 49.0) - lateness_cdf(KNOTS, TAIL, 21.0))
    check_mean(won[:, 0], p_jan)
    check_mean(won[:, 1], p_feb)


@pytest.mark.parametrize("engine", ["numba", "numpy"])  # the NumPy reference too
def test_more_pushes_take_their_own_row(engine):
    won = won_by_month(dated("2027-01-11", pushes=5), engine)  # 3+: p_win 0.6 / 4
    check_mean(won.sum(axis=1), 0.15 * lateness_cdf(KNOTS, TAIL, 90.0 - 10.0))


@pytest.mark.parametrize("engine", ["numba", "numpy"])  # the NumPy reference too
def test_an_overdue_deal_wins_later_and_on_its_own_odds(engine):
    # Stated 2026-12-02: 30 days past at as_of, the 8-30 days row (p_win 0.6 x 0.5);
    # the lateness is conditioned on >= 30 days (won on or after as_of).
    won = won_by_month(dated("2026-12-02"), engine)
    p = 0.3
    base = lateness_cdf(KNOTS, TAIL, 30.0)
    jan = (lateness_cdf(KNOTS, TAIL, 61.0) - base) / (1.0 - base)
    horizon = (lateness_cdf(KNOTS, TAIL, 120.0) - base) / (1.0 - base)  # Jan-Mar: 90 days
    check_mean(won[:, 0], p * jan)
    check_mean(won.sum(axis=1), p * horizon)


@pytest.mark.parametrize("engine", ["numba", "numpy"])  # the NumPy reference too
def test_beyond_the_last_quantile_the_tail_has_no_memory(engine):
    # 120 days past (beyond p90 = 90): lateness = 120 + Exp(10): P(won in January) =
    # P(Exp(10) < 31) = 1 - exp(-3.1).
    won = won_by_month(dated("2026-09-03"), engine)
    check_mean(won[:, 0], 0.3 * (1.0 - math.exp(-31.0 / TAIL)))


def test_fast_engine_runs_the_same_dated_kernel():
    sc = dated("2027-01-11")
    assert np.array_equal(won_by_month(sc), won_by_month(sc, "fast"))


def test_the_other_engines_refuse_dated_deals(tmp_path):
    write_scenario(tmp_path / "sc", dated("2027-01-11", n=10))
    on_disk = load_scenario(tmp_path / "sc", deals_in_memory=False)
    with pytest.raises(InputError, match="engine=fast on a book left on disk"):
        won_by_month(on_disk, "fast")


def test_a_book_on_disk_runs_its_dated_deals_with_the_bits_of_the_book_in_memory(tmp_path):
    # Dated and clocked deals interleaved over chunks of 7: the chunked engine reads the
    # book twice (clocked deals, then dated ones), as prepare() orders them in memory.
    from pipesim.engines import chunked
    from pipesim.engines import numba as numba_engine
    from pipesim.prepare.kernel_inputs import prepare, prepare_context

    sc = dated([pd.Timestamp("2027-01-11"), pd.NaT] * 25, n=50, market_shock_sd=0.3)
    write_scenario(tmp_path / "sc", sc)
    on_disk = load_scenario(tmp_path / "sc", deals_in_memory=False)
    rev, won = chunked.run(on_disk, prepare_context(on_disk), 64, 9, chunk=7)
    expected = numba_engine.run(prepare(sc, chunk=7), 64, 9)
    np.testing.assert_array_equal(rev, expected[0])
    np.testing.assert_array_equal(won, expected[1])
    assert won.sum() > 0 and prepare(sc, chunk=7).dated.rows == 25


def test_without_the_law_a_close_date_changes_nothing():
    plain = deals_frame(["S3"] * 50, 1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipesim.PipesimWarning)
        a = build(stages_frame([0.5, 0.5, 0.5]), plain, horizon_months=3)
        b = dated("2027-01-11", n=50).replace(close_law=None)
    ra = pipesim.simulate(a, trials=50, seed=3).revenue
    rb = pipesim.simulate(b, trials=50, seed=3).revenue
    assert np.array_equal(ra, rb)


@pytest.mark.parametrize("engine", ["numba", "numpy"])  # the NumPy reference too
def test_parameter_uncertainty_widens_the_trials(engine):
    # p_win drawn per trial from Beta (mean p, sd se); stated 12 days before as_of, a deal
    # is won in the horizon (90 days) with chance p c, c = P(L < 102 | L >= 12). The
    # count's variance: N E[pc (1 - pc)] + N^2 c^2 se^2 (~62^2, against ~22^2 without).
    # Over 400 trials the sample sd is within ~3.5% (sqrt(1 / 2n)); Z of those.
    p, se = 0.6, 0.03
    won = won_by_month(dated("2026-12-20", se=se, past=1.0), engine).sum(axis=1)
    base = lateness_cdf(KNOTS, TAIL, 12.0)
    c = (lateness_cdf(KNOTS, TAIL, 102.0) - base) / (1.0 - base)
    var = N * (p * c - c * c * (p * p + se * se)) + N * N * c * c * se * se
    assert abs(won.std() / math.sqrt(var) - 1.0) < Z * math.sqrt(1.0 / (2 * TRIALS))


def test_the_law_round_trips_through_a_folder(tmp_path):
    sc = dated("2027-01-11", n=10)
    write_scenario(tmp_path / "sc", sc)
    back = load_scenario(tmp_path / "sc")
    assert back.close_law is not None
    pd.testing.assert_frame_equal(back.close_law, sc.close_law)
    assert back.deals["close_date"].notna().all()


def test_bad_law_and_bad_dates_are_refused():
    bad = law()
    bad.loc[1, "pushes"] = 5
    with pytest.raises(ScenarioError, match="pushes"):
        build(stages_frame([0.5, 0.5, 0.5]), deals_frame(["S3"], 1.0), close_law=bad)
    bad = law()
    bad.loc[0, "lateness_p50"] = -5.0
    with pytest.raises(ScenarioError, match="decrease"):
        build(stages_frame([0.5, 0.5, 0.5]), deals_frame(["S3"], 1.0), close_law=bad)
    deals = deals_frame(["S3"], 1.0)
    deals["close_date"] = "someday"
    with pytest.raises(ScenarioError, match="close_date"):
        build(stages_frame([0.5, 0.5, 0.5]), deals)


@pytest.mark.parametrize("engine", ["numba", "fast", "numpy"])
def test_a_dated_deals_odds_take_the_market_shock_of_its_stage_month(engine):
    # Every deal in S3 for 5 days (entered in December), p_win 0.6 by the law, the
    # market's monthly logit shock sd 0.5: a trial's wins are Binomial(N, q), q =
    # expit(logit 0.6 + 0.5 z) shared by all: mean N m1, variance N (m1 - m2) + N^2 (m2 - m1^2)
    # (quadrature); 6 months hold the lateness law but ~1e-4 of it.
    from scipy import integrate, stats

    deals = deals_frame(["S3"] * N, 1000.0, 5.0)
    deals["close_date"], deals["pushes"] = pd.Timestamp("2027-01-11"), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipesim.PipesimWarning)
        sc = build(
            stages_frame([0.5, 0.5, 0.5]), deals, horizon_months=6, close_law=law(),
            market_shock_sd=0.5, calibrated=True,
        )  # fmt: skip
    trials = 2_000
    won = pipesim.simulate(sc, trials=trials, seed=3, engine=engine).won[:, :, 0].sum(axis=1)
    q = lambda z, k: (1 / (1 + np.exp(-(np.log(1.5) + 0.5 * z)))) ** k * stats.norm.pdf(z)  # noqa: E731
    m1, m2 = (integrate.quad(q, -12, 12, args=(k,))[0] for k in (1, 2))
    mean, var = N * m1, N * (m1 - m2) + N**2 * (m2 - m1 * m1)
    assert abs(won.mean() - mean) < Z * math.sqrt(var / trials)
    # SE of a sample variance ~ var sqrt(2 / T) (x1.5 for the mixture's tails); without
    # the shock the variance would be N p (1 - p) = 480, about 1/40 of this one.
    assert abs(won.var() / var - 1) < Z * math.sqrt(2 / trials) * 1.5


def test_healths_stage_flows_walk_the_dated_deals_on_their_clocks():
    # The flows count stage entries: a deal with a stated date is walked on its stage's
    # clocks there, not left out (every deal of this book is dated).
    from pipesim.simulation.stage_flows import simulate_flows

    sc = dated("2027-01-11", n=200)
    walked = simulate_flows(sc, 50, 3).entered
    assert walked[:, :, -1, 0].sum() > 0  # Won entries
    np.testing.assert_array_equal(walked, simulate_flows(sc.replace(close_law=None), 50, 3).entered)
