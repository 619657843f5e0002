"""The fast path: simulate each stage-and-segment cell of deals at the cost of its winners.

Whether a deal wins does not depend on its amount or age, so within a cell (the
deals of one parameter group and stage, all with the same win probability p)
the number of winners is Binomial(n, p) and, given that number, every subset of
deals is equally likely. Per trial and cell this kernel draws the number of
winners by inversion of the binomial law (one uniform, so a higher p never gives
fewer winners on the same seed: levers stay coupled on common random numbers),
picks which deals win by sampling without replacement, then times and values
only those, each with its own age and amount. Arrivals are thinned as in the
per-deal kernel. The result has the same law as the per-deal kernel's, not the
same bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from pipesim._kernels import _VALUE_KEY, _arrivals, _book, dwell, multiplier, trial_state
from pipesim._kernels import win_probabilities as _win_probabilities
from pipesim._random import branch, derive, jit, to_unit, uniform

_CELL_DOMAIN = np.uint64(0xCE11CE11CE11CE11)
_PICK_KEY = 7


@jit
def binomial_inverse(u: float, n: int, p: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) > u, searched outwards from the mode."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    q = 1.0 - p
    mode = min(n, int((n + 1) * p))
    pm = math.exp(
        math.lgamma(n + 1.0)
        - math.lgamma(mode + 1.0)
        - math.lgamma(n - mode + 1.0)
        + mode * math.log(p)
        + (n - mode) * math.log(q)
    )
    # Mass at and below the mode, and above it, until the terms no longer count.
    left = pm
    term = pm
    k = mode
    while k > 0:
        term *= k / (n - k + 1.0) * (q / p)
        k -= 1
        left += term
        if term < 1e-17 * left:
            break
    right = 0.0
    term = pm
    k = mode
    while k < n:
        term *= (n - k) / (k + 1.0) * (p / q)
        k += 1
        right += term
        if term < 1e-17 * (left + right):
            break
    target = u * (left + right)
    cdf = left
    term = pm
    k = mode
    if target < left:
        while k > 0:
            below = cdf - term  # P(X <= k - 1)
            if below <= target:
                return k
            cdf = below
            term *= k / (n - k + 1.0) * (q / p)
            k -= 1
        return 0
    while k < n:
        term *= (n - k) / (k + 1.0) * (p / q)
        k += 1
        cdf += term
        if cdf > target:
            return k
    return n


@jit
def _time_and_book(
    ts: np.uint64,
    d: int,
    funnel: tuple,
    deals: tuple,
    day_period: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
    i: int,
) -> None:
    """Time one winning deal through its remaining stages and book its value."""
    n_stages, code, p1, p2, tab = (funnel[3].shape[1], funnel[4], funnel[5], funnel[6], funnel[7])
    value_sigma, strips = funnel[8], (funnel[9], funnel[10], funnel[11])
    key, gs_of, amount, age, by, strip_of = deals
    end = float(day_period.shape[0])
    ds = derive(ts, key[d])
    gs = gs_of[d]
    last = gs - gs % n_stages + n_stages
    _, t = dwell(branch(ds, 1), code[gs], p1[gs], p2[gs], tab[gs], strips, age[d], strip_of[d])
    for c in range(gs + 1, last):
        if t >= end:
            break
        _, r = dwell(branch(ds, c - gs + 1), code[c], p1[c], p2[c], tab[c], strips, 0.0, 0)
        t += r
    if t >= end:
        return
    value = amount[d]
    if value_sigma[gs] > 0.0:
        value *= multiplier(branch(ds, _VALUE_KEY), value_sigma[gs])
    _book(out_rev, out_won, i, day_period[int(t)], by[d], value)


@jit(parallel=True)
def simulate_fast(
    seed: np.uint64,
    trial0: int,
    funnel: tuple,
    deals: tuple,
    cell_start: np.ndarray,
    arrivals: tuple,
    day_period: np.ndarray,
    block: int,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Fast path of :func:`pipesim._kernels.simulate_trials` (same inputs and outputs).

    ``cell_start`` holds the first deal of each cell (deals sorted by cell) and
    ends with the number of deals. Parallel over blocks of ``block`` trials.
    """
    n_trials = out_rev.shape[0]
    n_params = funnel[3].shape[0] * funnel[3].shape[1]
    n_deals = deals[0].shape[0]
    gs_of = deals[1]
    n_blocks = (n_trials + block - 1) // block
    for b in prange(n_blocks):
        first = b * block
        last = min(first + block, n_trials)
        pwin = np.empty(n_params)
        # One bit per deal: the picked deals of the current cell (clear between cells).
        bits = np.zeros(n_deals // 64 + 1, dtype=np.uint64)
        for i in range(first, last):
            ts = trial_state(seed, trial0 + i)
            _win_probabilities(ts, funnel, pwin)
            base = ts ^ _CELL_DOMAIN
            for c in range(cell_start.shape[0] - 1):
                a = cell_start[c]
                n = cell_start[c + 1] - a
                gs = gs_of[a]
                cs = derive(base, np.uint64(gs))
                k = binomial_inverse(to_unit(cs), n, pwin[gs])
                if k == 0:
                    continue
                winners_picked = 2 * k <= n  # else pick the losers: the others win
                todo = k if winners_picked else n - k
                st = branch(cs, _PICK_KEY)
                while todo > 0:
                    st, u = uniform(st)
                    d = a + min(int(u * n), n - 1)
                    word, bit = d >> 6, np.uint64(1) << np.uint64(d & 63)
                    if not bits[word] & bit:
                        bits[word] |= bit
                        todo -= 1
                # Book the winners in deal order: the deal arrays are read front to back.
                for word in range(a >> 6, ((a + n - 1) >> 6) + 1):
                    x = bits[word]
                    if winners_picked and x == 0:
                        continue
                    lo = max(a, word << 6)
                    hi = min(a + n, (word + 1) << 6)
                    # The cell's deals in this word whose bit says "won".
                    span = np.uint64(hi - lo)
                    mask = (
                        np.uint64(0xFFFFFFFFFFFFFFFF)
                        if span == 64
                        else ((np.uint64(1) << span) - np.uint64(1))
                    ) << np.uint64(lo & 63)
                    won_bits = (x if winners_picked else ~x) & mask
                    while won_bits:
                        low = won_bits & (~won_bits + np.uint64(1))
                        d = (word << 6) + int(math.log2(float(low)))
                        won_bits ^= low
                        _time_and_book(ts, d, funnel, deals, day_period, out_rev, out_won, i)
                    bits[word] = 0
            _arrivals(ts, pwin, funnel, arrivals, day_period, out_rev, out_won, i)
