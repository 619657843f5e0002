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

from pipesim._kernels import (
    _VALUE_KEY,
    EXPONENTIAL,
    GAMMA,
    _arrivals,
    dwell,
    trial_state,
)
from pipesim._kernels import win_probabilities as _win_probabilities
from pipesim._random import (
    _GOLDEN,
    _KEY_MULT,
    _LOW8,
    _S8,
    _S11,
    _STRIP_MASK,
    _TWO_M53,
    _ZE_X,
    _ZN_X,
    branch,
    derive,
    exponential,
    gamma_strips,
    jit,
    mix,
    normal,
    strip_candidate,
    to_unit,
)

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
def _pick(st: np.uint64, n: int, todo: int, bits: np.ndarray, draws: np.ndarray) -> None:
    """Set ``todo`` distinct random bits among the first ``n`` of ``bits`` (all clear before).

    Positions are the uniforms of stream ``st`` in order (a repeat is skipped), made
    in batches by a loop without branches; ``draws`` is a scratch buffer.
    """
    m = 0
    while todo > 0:
        batch = min(todo + (todo >> 3) + 8, draws.shape[0])
        for r in range(batch):
            u = to_unit(mix(st + np.uint64(m + r + 1) * _GOLDEN))
            draws[r] = min(np.int64(u * n), n - 1)
        m += batch
        for r in range(batch):
            d = draws[r]
            word, bit = d >> 6, np.uint64(1) << np.uint64(d & 63)
            if not bits[word] & bit:
                bits[word] |= bit
                todo -= 1
                if todo == 0:
                    break


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
def _stage(
    role: int,
    code: int,
    p1: float,
    p2: float,
    tab: int,
    strips: tuple,
    k: int,
    idx: np.ndarray,
    age: np.ndarray,
    strip_of: np.ndarray,
    aged: bool,
    state: np.ndarray,
    dt: np.ndarray,
    bad: np.ndarray,
) -> None:
    """Fill dt[:k] with the winners' dwell in one stage (stream ``role`` of each winner).

    The exact samplers (exponential ziggurat, gamma strips) start with one candidate
    from one or two hashes, accepted almost always. A loop without branches computes
    every winner's candidate and whether it was accepted; the rare others are redrawn
    by the scalar sampler from the same stream, which replays the same candidate,
    rejects it and goes on: the same law, draw for draw, as the scalar sampler.
    """
    step = np.uint64(role) * _KEY_MULT + _GOLDEN
    if code == EXPONENTIAL:
        for w in range(k):
            z = mix(state[w] + step)
            i = np.int64(z & _LOW8)
            x = float(z >> _S11) * _TWO_M53 * _ZE_X[i]
            dt[w] = p1 * x
            bad[w] = x >= _ZE_X[i + 1]
        for w in range(k):
            if bad[w]:
                _, e = exponential(branch(state[w], role))
                dt[w] = p1 * e
        return
    if code == GAMMA and p1 >= 1.0:
        edges, ratio, lf_max = strips
        n = ratio.shape[1]
        if aged:
            for w in range(k):
                d = idx[w]
                h = mix(state[w] + step)
                j_lo = strip_of[d]
                j = np.int64(j_lo + int(to_unit(h) * (n - j_lo)))
                if j_lo == 0:
                    j = np.int64(h & _STRIP_MASK)
                else:
                    h = mix(state[w] + step + _GOLDEN)
                jj = min(j, n - 2)
                x, _, squeezed = strip_candidate(h, jj, edges, ratio, tab)
                a = age[d]
                dt[w] = max(p2 * x - a, 0.0)
                bad[w] = (j >= n - 1) | ~squeezed | (x <= a / p2)
        else:
            for w in range(k):
                h = mix(state[w] + step)
                j = np.int64(h & _STRIP_MASK)
                jj = min(j, n - 2)
                x, _, squeezed = strip_candidate(h, jj, edges, ratio, tab)
                dt[w] = p2 * x
                bad[w] = (j >= n - 1) | ~squeezed
        for w in range(k):
            if bad[w]:
                a = age[idx[w]] if aged else 0.0
                j_lo = strip_of[idx[w]] if aged else 0
                _, x = gamma_strips(
                    branch(state[w], role), p1, edges, ratio, lf_max, tab, a / p2, j_lo
                )
                dt[w] = max(p2 * x - a, 0.0)
        return
    for w in range(k):
        a = age[idx[w]] if aged else 0.0
        j_lo = strip_of[idx[w]] if aged else 0
        _, dt[w] = dwell(branch(state[w], role), code, p1, p2, tab, strips, a, j_lo)


@jit(inline=True)
def _values(
    sigma: float,
    k: int,
    idx: np.ndarray,
    amount: np.ndarray,
    state: np.ndarray,
    value: np.ndarray,
    bad: np.ndarray,
) -> None:
    """Fill value[:k]: each winner's amount times a lognormal multiplier (mean 1, log-sd sigma).

    Normal ziggurat candidates in a loop without branches; the rare rejected ones
    redrawn by the scalar sampler from the same stream (see :func:`_stage`).
    """
    if sigma <= 0.0:
        for w in range(k):
            value[w] = amount[idx[w]]
        return
    step = np.uint64(_VALUE_KEY) * _KEY_MULT + _GOLDEN
    for w in range(k):
        z = mix(state[w] + step)
        i = np.int64(z & _LOW8)
        sign = 1.0 if (z >> _S8) & np.uint64(1) else -1.0
        x = float(z >> _S11) * _TWO_M53 * _ZN_X[i]
        value[w] = sign * x
        bad[w] = x >= _ZN_X[i + 1]
    for w in range(k):
        if bad[w]:
            _, value[w] = normal(branch(state[w], _VALUE_KEY))
    half = 0.5 * sigma * sigma
    for w in range(k):
        value[w] = amount[idx[w]] * math.exp(sigma * value[w] - half)


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
    buffers: tuple,
) -> None:
    """One trial of one cell: how many win, which ones, when they close, for how much."""
    k = binomial_inverse(to_unit(cs), n, p)
    if k == 0:
        return
    idx, state, t, dt, bad, per, acc = buffers
    picked_won = 2 * k <= n  # else pick the losers: the others win
    _pick(branch(cs, _PICK_KEY), n, k if picked_won else n - k, bits, idx)
    k = _collect(a, n, picked_won, bits, idx)
    n_stages, code, p1, p2, tab = (funnel[3].shape[1], funnel[4], funnel[5], funnel[6], funnel[7])
    strips = (funnel[9], funnel[10], funnel[11])
    _, gs_of, amount, age, by, strip_of = deals
    end = float(day_period.shape[0])
    gs = gs_of[a]
    for w in range(k):
        state[w] = derive(cs, np.uint64(idx[w]))
    # The first stage, where each deal has its own age; then the later ones, fresh.
    _stage(1, code[gs], p1[gs], p2[gs], tab[gs], strips, k, idx, age, strip_of, True, state, t, bad)
    last = gs - gs % n_stages + n_stages
    for c in range(gs + 1, last):
        _stage(
            c - gs + 1,
            code[c],
            p1[c],
            p2[c],
            tab[c],
            strips,
            k,
            idx,
            age,
            strip_of,
            False,
            state,
            dt,
            bad,
        )
        for w in range(k):
            t[w] += dt[w]
    _values(funnel[8][gs], k, idx, amount, state, dt, bad)
    # The close period of each winner (-1 after the horizon), then the sums: four
    # interleaved accumulators, so that consecutive winners of one month do not wait
    # on each other's additions.
    last_day = day_period.shape[0] - 1
    for w in range(k):
        per[w] = day_period[min(np.int64(t[w]), last_day)] if t[w] < end else -1
    acc.fill(0.0)
    for w in range(k):
        q = per[w]
        if q >= 0:
            acc[w & 3, q, 0] += dt[w]
            acc[w & 3, q, 1] += 1.0
    for q in range(acc.shape[1]):
        out_rev[i, q, 0] += (acc[0, q, 0] + acc[1, q, 0]) + (acc[2, q, 0] + acc[3, q, 0])
        out_won[i, q, 0] += (acc[0, q, 1] + acc[1, q, 1]) + (acc[2, q, 1] + acc[3, q, 1])
    if out_rev.shape[2] > 1:
        for w in range(k):
            q = per[w]
            if q >= 0:
                out_rev[i, q, 1 + by[idx[w]]] += dt[w]
                out_won[i, q, 1 + by[idx[w]]] += 1.0


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
        buffers = (
            np.empty(width, dtype=np.int64),
            np.empty(width, dtype=np.uint64),
            np.empty(width),
            np.empty(width),
            np.empty(width, dtype=np.bool_),
            np.empty(width, dtype=np.int64),
            np.zeros((4, out_rev.shape[1], 2)),
        )
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
                        buffers,
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
