"""The batch samplers give the scalar samplers' numbers, bit for bit, winner by winner."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange

from pipesim.kernels import tables as K
from pipesim.kernels import trial
from pipesim.kernels.batch_samplers import stage_dwell, winner_values
from pipesim.kernels.streams import branch, derive
from pipesim.prepare import dwell_tables
from pipesim.prepare.funnel_table import age_strips

N = 20_000


@njit(cache=False, parallel=True)
def _batch(code, p1, p2, tab, edges, ratio, lf_max, aged, age, strip, idx, state, dt, bad, sigma,
           amount, value):  # fmt: skip
    for b in prange(1):
        stage_dwell(
            3, code, p1, p2, tab, edges, ratio, lf_max, 0, idx.shape[1], aged, age, strip, idx,
            state, dt, bad, b,
        )  # fmt: skip
        winner_values(sigma, 0, idx.shape[1], idx, amount, state, value, bad, b, False)


@njit(cache=False)
def _scalar(code, p1, p2, tab, strips, aged, age, strip, state, sigma, amount, dt, value):
    for w in range(state.shape[0]):
        a = age[w] if aged else 0.0
        j = strip[w] if aged else 0
        _, dt[w] = trial.dwell(branch(state[w], 3), code, p1, p2, tab, strips, a, j)
        value[w] = amount[w] * trial.multiplier(branch(state[w], trial.VALUE_KEY), sigma)


@pytest.mark.parametrize(
    ("code", "mean", "cv"),
    [
        (K.EXPONENTIAL, 12.0, 1.0),
        (K.GAMMA, 20.0, 0.7),  # shape 2.04: the vector path
        (K.GAMMA, 30.0, 1.8),  # shape 0.31: the scalar path
        (K.LOGNORMAL, 15.0, 0.6),
        (K.FIXED, 9.0, 0.0),
    ],
)
@pytest.mark.parametrize("aged", [False, True])
def test_batch_samplers_replay_the_scalar_samplers(code, mean, cv, aged):
    rng = np.random.default_rng(5)
    shape = 1.0 / cv**2 if cv > 0 else 1.0
    tab_index, edges, ratio, lf_max = dwell_tables.build(np.array([shape, 3.0]))
    tab = int(tab_index[0])
    p1, p2 = {
        K.EXPONENTIAL: (mean, 0.0),
        K.GAMMA: (shape, mean / shape),
        K.LOGNORMAL: (np.log(mean) - 0.5 * np.log1p(cv**2), np.sqrt(np.log1p(cv**2))),
        K.FIXED: (mean, 0.0),
    }[code]
    # Ages from 0 to far in the tail (some deals' ages beyond every strip but the last).
    age = np.where(rng.random(N) < 0.1, 0.0, rng.exponential(mean * 1.5, N))
    none = np.zeros(1)
    funnel = K.FunnelTable(
        unit_key=none, unit_conv=none, unit_n=none, unit_of=np.zeros((1, 1), np.int64),
        unit_parent=np.full(1, -1, np.int64), unit_pool=none,
        dwell_code=np.array([code]), dwell_p1=np.array([p1]), dwell_p2=np.array([p2]),
        dwell_table=np.array([tab]), value_sigma=none,
        strip_edges=edges, strip_ratio=ratio, strip_lf_max=lf_max,
    )  # fmt: skip
    strip = age_strips(funnel, np.zeros(N, dtype=np.int64), age)
    state = np.array([derive(np.uint64(99), np.uint64(w)) for w in range(N)], dtype=np.uint64)
    amount = rng.uniform(1.0, 1000.0, N)
    sigma = 0.4
    dt, value = np.empty((1, N)), np.empty((1, N))
    bad = np.empty((1, N), dtype=np.uint8)
    idx = np.arange(N, dtype=np.int64)[None, :]
    _batch(code, p1, p2, tab, edges, ratio, lf_max, aged, age, strip, idx, state[None, :], dt,
           bad, sigma, amount, value)  # fmt: skip
    want_dt, want_value = np.empty(N), np.empty(N)
    _scalar(code, p1, p2, tab, (edges, ratio, lf_max), aged, age, strip, state, sigma, amount,
            want_dt, want_value)  # fmt: skip
    np.testing.assert_array_equal(dt[0], want_dt)
    np.testing.assert_array_equal(value[0], want_value)
