"""The kernel's samplers against scipy's laws (KS tests at fixed seeds) and exact quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import stats

from pipesim.kernels import samplers, streams
from pipesim.prepare import dwell_tables

N = 100_000
ALPHA = 1e-4  # KS p-value floor: a fixed seed passes or fails the same way every time


@njit(cache=False)
def _draw(kind, n, p1, p2, edges, ratio, lf_max):
    out = np.empty(n)
    root = np.uint64(12345)
    for i in range(n):
        s = streams.mix(streams.branch(root, i))
        if kind == 0:
            _, out[i] = samplers.normal(s)
        elif kind == 1:
            _, out[i] = samplers.exponential(s)
        elif kind == 2:
            _, out[i] = samplers.gamma(s, p1)
        elif kind == 3:
            _, out[i] = samplers.gamma_tail(s, p1, p2)
        elif kind == 4:
            j = np.searchsorted(edges[0], p2, side="right") - 1 if p2 > 0 else 0
            jmax = dwell_tables.N_STRIPS - 2
            _, out[i] = samplers.gamma_strips(s, p1, edges, ratio, lf_max, 0, p2, min(j, jmax))
        elif kind == 5:
            _, out[i] = samplers.normal_tail(s, p1)
        else:
            _, out[i] = samplers.beta(s, p1, p2)
    return out


def _sample(kind, p1=0.0, p2=0.0):
    _, edges, ratio, lf_max = dwell_tables.build(np.array([p1 if kind == 4 else 1.5]))
    return _draw(kind, N, p1, p2, edges, ratio, lf_max)


def _truncated(law, a):
    return lambda x: (law.cdf(x) - law.cdf(a)) / law.sf(a)


def test_normal_and_exponential_ziggurats():
    assert stats.kstest(_sample(0), "norm").pvalue > ALPHA
    assert stats.kstest(_sample(1), "expon").pvalue > ALPHA
    # The tails beyond the ziggurats' base strips are drawn too, at the right rate.
    z = _sample(0)
    assert abs((np.abs(z) > 3.6541528853610088).mean() - 2 * stats.norm.sf(3.65415)) < 5 * np.sqrt(
        2 * stats.norm.sf(3.65) / N
    )


@pytest.mark.parametrize("shape", [0.3, 0.9, 1.5, 4.0, 30.0])
def test_gamma_marsaglia_tsang(shape):
    assert stats.kstest(_sample(2, shape), stats.gamma(shape).cdf).pvalue > ALPHA


@pytest.mark.parametrize(
    "shape, a", [(0.4, 0.01), (0.4, 0.5), (0.4, 3.0), (2.0, 0.5), (2.0, 3.0), (4.0, 20.0)]
)
def test_gamma_tail_is_the_conditional_law(shape, a):
    x = _sample(3, shape, a)
    assert x.min() > a
    assert stats.kstest(x, _truncated(stats.gamma(shape), a)).pvalue > ALPHA


@pytest.mark.parametrize(
    "shape, a",
    [(0.4, 0.0), (0.4, 0.3), (1.5625, 0.0), (2.04, 1.0), (4.0, 5.33), (25.0, 20.0), (4.0, 30.0)],
)
def test_strip_table_gamma_is_exact(shape, a):
    x = _sample(4, shape, a)
    assert x.min() > a
    law = stats.gamma(shape)
    assert stats.kstest(x, _truncated(law, a) if a > 0 else law.cdf).pvalue > ALPHA
    if a == 0:
        # Every strip holds its 1/N_STRIPS of the draws (chi-square on the strip counts).
        _, edges, _, _ = dwell_tables.build(np.array([shape]))
        counts = np.histogram(x, bins=edges[0])[0]
        assert stats.chisquare(counts).pvalue > ALPHA


@pytest.mark.parametrize("z0", [-1.0, 0.0, 1.5, 4.0])
def test_normal_tail_is_the_conditional_law(z0):
    x = _sample(5, z0)
    assert x.min() > z0
    assert stats.kstest(x, _truncated(stats.norm, z0)).pvalue > ALPHA


def test_beta():
    assert stats.kstest(_sample(6, 2.5, 7.0), stats.beta(2.5, 7.0).cdf).pvalue > ALPHA


@pytest.mark.parametrize("mu", [0.3, 4.0, 29.9, 30.0, 250.0, 5_000.0])
def test_poisson_inverse_is_the_exact_quantile(mu):
    u = np.linspace(0.0005, 0.9995, 400)
    got = np.array([samplers.poisson_inverse(float(v), mu) for v in u])
    np.testing.assert_array_equal(got, stats.poisson(mu).ppf(u))
    assert samplers.poisson_inverse(0.5, 0.0) == 0


def test_streams_do_not_depend_on_call_order():
    a = streams.derive(np.uint64(1), np.uint64(2))
    assert a == streams.derive(np.uint64(1), np.uint64(2))
    assert a != streams.derive(np.uint64(1), np.uint64(3))


def test_exp_poly_is_exp_to_rounding():
    @njit(cache=False)
    def many(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = samplers.exp_poly(x[i])
        return out

    x = np.concatenate([np.linspace(-700.0, 700.0, 200_001), np.linspace(-3.0, 3.0, 100_001)])
    rel = np.abs(many(x) / np.exp(x) - 1.0)
    assert rel.max() < 1e-15  # a few units in the last place (2.2e-16 each)
