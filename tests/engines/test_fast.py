"""The fast path (winners only) has the per-deal engine's law; one seed, one answer."""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
from scipy import stats

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.engines import fast
from pipesim.kernels.winners_only import binomial_inverse
from pipesim.prepare.kernel_inputs import prepare


@pytest.mark.parametrize(("n", "p"), [(1, 0.5), (10, 0.3), (1000, 0.05), (200_000, 0.4), (7, 0.99)])
def test_binomial_inversion_is_exact(n, p):
    us = np.linspace(0.0, 1.0, 1001, endpoint=False)[1:]
    mine = np.array([binomial_inverse(u, n, p) for u in us])
    np.testing.assert_array_equal(mine, stats.binom.ppf(us, n, p))


def test_binomial_inversion_is_monotone_in_p():
    # Common random numbers: on the same uniform a higher p never gives fewer winners.
    for u in np.linspace(0.001, 0.999, 97):
        ks = [binomial_inverse(u, 5000, p) for p in np.linspace(0.0, 1.0, 41)]
        assert ks == sorted(ks)


@pytest.mark.slow
def test_same_law_as_the_per_deal_engine(demo):
    # Independent seeds; tolerance Z standard errors of the difference of two means,
    # SE = sqrt(var_a / n + var_b / n) from the samples (n = 4000 trials each).
    trials = 4000
    a = pipesim.simulate(demo, trials=trials, seed=101, by="region", engine="fast")
    b = pipesim.simulate(demo, trials=trials, seed=202, by="region", engine="numba")
    for metric in ("revenue", "won"):
        x, y = getattr(a, metric), getattr(b, metric)
        # Per column (whole book and each region): totals over the horizon and per month.
        for xs, ys in ((x.sum(axis=1), y.sum(axis=1)), (x[:, :, 0], y[:, :, 0])):
            se = np.sqrt(xs.var(axis=0, ddof=1) / trials + ys.var(axis=0, ddof=1) / trials)
            diff = np.abs(xs.mean(axis=0) - ys.mean(axis=0))
            assert np.all(diff <= Z * se + 1e-9), (metric, diff / np.maximum(se, 1e-12))
        # Two-sample Kolmogorov-Smirnov test on the book's totals; fixed seeds, so the
        # p-value is a fixed number; 1e-4 is the false-alarm rate we accept.
        assert stats.ks_2samp(x[:, :, 0].sum(axis=1), y[:, :, 0].sum(axis=1)).pvalue > 1e-4


def test_one_seed_one_answer_whatever_the_threads(demo):
    prepared = prepare(demo, ("region",))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fast.run(prepared, 120, seed=5)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = fast.run(prepared, 120, seed=5)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one[0], two[0])
    tail = fast.run(prepared, 60, seed=5, first_trial=60)
    np.testing.assert_array_equal(tail[0], one[0][60:])


def test_cells_follow_the_sorted_deals_inside_windows(demo):
    prepared = prepare(demo)
    gs = prepared.deals.cell
    for window in (64, 1000, fast.WINDOW):
        starts, windows = fast.cell_starts(prepared.deals, window)
        assert starts[0] == 0 and starts[-1] == gs.size
        for a, e in itertools.pairwise(starts):
            assert np.all(gs[a:e] == gs[a])  # one path through the funnel per cell
            assert a // window == (e - 1) // window  # inside one window
        # Every window starts a cell, and window w's cells are windows[w]:windows[w + 1].
        np.testing.assert_array_equal(starts[windows[:-1]], np.arange(0, gs.size, window))
        assert windows[-1] == len(starts) - 1
        cuts = len(np.flatnonzero(np.diff(gs))) + len(range(0, gs.size, window))
        assert len(starts) - 1 <= cuts


def test_window_size_changes_the_draws_not_the_law(demo):
    # Windows cut cells, and cells key the streams: another window is another sample.
    prepared = prepare(demo)
    a = fast.run(prepared, 200, seed=9, window=64)[0].sum(axis=1)[:, 0]
    b = fast.run(prepared, 200, seed=9, window=100_000)[0].sum(axis=1)[:, 0]
    assert not np.array_equal(a, b)
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) <= Z * se


def test_winners_are_independent_bernoulli_draws_whatever_the_cells():
    # Binomial count + uniformly chosen subset = every deal wins on its own with
    # probability p. With short dwells and a year's horizon every winner closes in
    # it (P(miss) < 1e-30), so per slot (a by-column): won ~ sum of Bernoulli(p),
    # mean sum p, variance sum p(1 - p), exactly. Windows of 64 deals cut the cells;
    # stages win with 0.5 (pick winners) and 0.9 (pick losers).
    rng = np.random.default_rng(4)
    n, trials = 600, 4000
    stages = stages_frame([0.7, 0.8, 0.9], dwell_days=4.0, dwell_cv=[1.0, 0.5, 0.8])
    stage = rng.choice(["S1", "S2", "S3"], n)
    deals = deals_frame(
        stage, rng.uniform(1, 100, n), rng.uniform(0, 10, n), slot=np.arange(n) * 12 // n
    )
    scenario = build(stages, deals)
    p = {"S1": 0.7 * 0.8 * 0.9, "S2": 0.8 * 0.9, "S3": 0.9}
    pw = np.array([p[s] for s in stage])
    result = fast.run(prepare(scenario, ("slot",)), trials, seed=13, window=64)
    won = result[1].sum(axis=1)  # [trial, 1 + slot]
    rev = result[0].sum(axis=1)
    slot = np.arange(n) * 12 // n  # file order: positions inside cells
    for col in range(13):
        these = np.ones(n, bool) if col == 0 else slot == col - 1
        mean, var = pw[these].sum(), (pw * (1 - pw))[these].sum()
        assert abs(won[:, col].mean() - mean) <= Z * np.sqrt(var / trials)
        # Sample variance: SE ~ var * sqrt(2 / (trials - 1)) (near-normal sums).
        assert abs(won[:, col].var(ddof=1) - var) <= Z * var * np.sqrt(2 / (trials - 1))
        amount = deals["amount"].to_numpy()[these]
        rmean, rvar = (amount * pw[these]).sum(), (amount**2 * (pw * (1 - pw))[these]).sum()
        assert abs(rev[:, col].mean() - rmean) <= Z * np.sqrt(rvar / trials)
