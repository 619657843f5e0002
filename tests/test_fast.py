"""The fast path (winners only) has the per-deal engine's law; one seed, one answer."""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
from scipy import stats

import pipesim
from conftest import Z
from pipesim._fast_kernels import binomial_inverse
from pipesim.engines import fast
from pipesim.prepare import prepare


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


def test_cells_follow_the_sorted_deals(demo):
    prepared = prepare(demo)
    starts = fast.cell_starts(prepared)
    gs = prepared.deals[1]
    assert starts[0] == 0 and starts[-1] == gs.size
    for a, e in itertools.pairwise(starts):
        assert np.all(gs[a:e] == gs[a])
    assert len(np.unique(gs)) == len(starts) - 1
