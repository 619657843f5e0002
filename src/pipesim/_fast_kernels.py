"""The fast path: simulate each stage-and-segment cell of deals at the cost of its winners.

Whether a deal wins does not depend on its amount or age, so within a cell (deals
of one parameter group and stage, all with the same win probability p) the number
of winners is Binomial(n, p) and, given that number, every subset of deals is
equally likely. Per trial and cell this kernel draws the number of winners by
inversion of the binomial law (one uniform, so a higher p never gives fewer
winners on the same seed: levers stay coupled on common random numbers), picks
which deals win by sampling without replacement (a bitmap; the losers are picked
instead when they are fewer), then times and values only those, each with its own
age and amount. Arrivals are thinned as in the per-deal kernel. The result has the
same law as the per-deal kernel's, not the same bits.

Speed comes from the layout. Cells are cut at fixed windows of the deal table
(``cell_start``, from :func:`pipesim.engines.fast.cell_starts`) so that a window's
deals stay in cache while a block of trials runs over them, and a cell's winners
share one path through the funnel: they are timed stage by stage (all winners'
first stage, then all winners' second stage, ...), loops without branches to
mispredict whose draws the processor overlaps.
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


# Bit index of the lowest set bit: (x & -x) times this De Bruijn constant, top 6 bits.
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _DEBRUIJN_INDEX[((int(_DEBRUIJN) << _i) & 0xFFFFFFFFFFFFFFFF) >> 58] = _i
_S58 = np.uint64(58)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@jit(inline=True)
def _pick(st: np.uint64, n: int, todo: int, bits: np.ndarray) -> None:
    """Set ``todo`` distinct random bits among the first ``n`` of ``bits`` (all clear before)."""
    while todo > 0:
        st, u = uniform(st)
        d = min(int(u * n), n - 1)
        word, bit = d >> 6, np.uint64(1) << np.uint64(d & 63)
        if not bits[word] & bit:
            bits[word] |= bit
            todo -= 1


@jit(inline=True)
def _collect(a: int, n: int, picked_won: bool, bits: np.ndarray, idx: np.ndarray) -> int:
    """Write the winners (deal indices from ``a``, in order) to ``idx``; clear ``bits``."""
    k = 0
    for word in range((n + 63) >> 6):
        x = bits[word]
        bits[word] = 0
        if not picked_won:
            x = ~x
        span = n - (word << 6)
        if span < 64:
            x &= (np.uint64(1) << np.uint64(span)) - np.uint64(1)
        while x:
            low = x & (~x + np.uint64(1))
            idx[k] = a + (word << 6) + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> _S58]
            k += 1
            x ^= low
    return k


@jit(inline=True)
def _cell(
    cs: np.uint64,
    p: float,
    a: int,
    n: int,
    funnel: tuple,
    deals: tuple,
    day_period: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
    i: int,
    bits: np.ndarray,
    idx: np.ndarray,
    state: np.ndarray,
    t: np.ndarray,
) -> None:
    """One trial of one cell: how many win, which ones, when they close, for how much."""
    k = binomial_inverse(to_unit(cs), n, p)
    if k == 0:
        return
    picked_won = 2 * k <= n  # else pick the losers: the others win
    _pick(branch(cs, _PICK_KEY), n, k if picked_won else n - k, bits)
    k = _collect(a, n, picked_won, bits, idx)
    n_stages, code, p1, p2, tab = (funnel[3].shape[1], funnel[4], funnel[5], funnel[6], funnel[7])
    value_sigma, strips = funnel[8], (funnel[9], funnel[10], funnel[11])
    key, gs_of, amount, age, by, strip_of = deals
    end = float(day_period.shape[0])
    gs = gs_of[a]
    # The first stage, where each deal has its own age.
    c_code, c_p1, c_p2, c_tab = code[gs], p1[gs], p2[gs], tab[gs]
    for w in range(k):
        d = idx[w]
        ws = derive(cs, key[d])
        state[w] = ws
        _, t[w] = dwell(branch(ws, 1), c_code, c_p1, c_p2, c_tab, strips, age[d], strip_of[d])
    # The stages after it, fresh: one stage for all winners at a time.
    last = gs - gs % n_stages + n_stages
    for c in range(gs + 1, last):
        c_code, c_p1, c_p2, c_tab = code[c], p1[c], p2[c], tab[c]
        role = c - gs + 1
        for w in range(k):
            if t[w] < end:
                _, r = dwell(branch(state[w], role), c_code, c_p1, c_p2, c_tab, strips, 0.0, 0)
                t[w] += r
    sigma = value_sigma[gs]
    for w in range(k):
        if t[w] >= end:
            continue
        d = idx[w]
        value = amount[d]
        if sigma > 0.0:
            value *= multiplier(branch(state[w], _VALUE_KEY), sigma)
        _book(out_rev, out_won, i, day_period[int(t[w])], by[d], value)


@jit(parallel=True)
def simulate_fast(
    seed: np.uint64,
    trial0: int,
    funnel: tuple,
    deals: tuple,
    cell_start: np.ndarray,
    window_cell: np.ndarray,
    arrivals: tuple,
    day_period: np.ndarray,
    block: int,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Fast path of :func:`pipesim._kernels.simulate_trials` (same inputs and outputs).

    ``cell_start`` holds the first deal of each cell (cells are runs of deals with
    one ``gs`` inside a window of the deal table) and ends with the number of deals;
    ``window_cell`` holds the first cell of each window and ends with the number of
    cells. Parallel over blocks of ``block`` trials; within a block, window by
    window, every trial of the block runs the window's cells. Each cell's draws come
    from a stream keyed by (seed, trial, first deal of the cell), and each trial adds
    its cells in table order, so the bits do not depend on threads or blocks.
    """
    n_trials = out_rev.shape[0]
    n_params = funnel[3].shape[0] * funnel[3].shape[1]
    width = 1
    for c in range(cell_start.shape[0] - 1):
        width = max(width, cell_start[c + 1] - cell_start[c])
    gs_of = deals[1]
    n_blocks = (n_trials + block - 1) // block
    for b in prange(n_blocks):
        first = b * block
        last = min(first + block, n_trials)
        pwin = np.empty((last - first, n_params))
        roots = np.empty(last - first, dtype=np.uint64)
        bits = np.zeros(width // 64 + 1, dtype=np.uint64)
        idx = np.empty(width, dtype=np.int64)
        state = np.empty(width, dtype=np.uint64)
        t = np.empty(width)
        for i in range(first, last):
            ts = trial_state(seed, trial0 + i)
            _win_probabilities(ts, funnel, pwin[i - first])
            roots[i - first] = ts ^ _CELL_DOMAIN
        for win in range(window_cell.shape[0] - 1):
            for i in range(first, last):
                for c in range(window_cell[win], window_cell[win + 1]):
                    a = cell_start[c]
                    gs = gs_of[a]
                    _cell(
                        derive(roots[i - first], np.uint64(a)),
                        pwin[i - first, gs],
                        a,
                        cell_start[c + 1] - a,
                        funnel,
                        deals,
                        day_period,
                        out_rev,
                        out_won,
                        i,
                        bits,
                        idx,
                        state,
                        t,
                    )
        for i in range(first, last):
            _arrivals(
                trial_state(seed, trial0 + i),
                pwin[i - first],
                funnel,
                arrivals,
                day_period,
                out_rev,
                out_won,
                i,
            )
