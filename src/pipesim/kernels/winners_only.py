"""The fast path: simulate each stage-and-segment cell of deals at the cost of its winners.

Whether a deal wins does not depend on its amount (nor on its age, unless its stage
has a loss clock: then the cell is drawn at its highest odds and thinned), so within
a cell (deals of one parameter group and stage, all with the same win probability p) the number
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
share one path through the funnel: they are timed stage by stage and valued by the
batch samplers of :mod:`pipesim.kernels.batch_samplers` (vector loops; see there why every array is
its own argument and the scratch is made outside the parallel region).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from pipesim.kernels.batch_samplers import time_and_value
from pipesim.kernels.jit import jit
from pipesim.kernels.streams import GOLDEN, branch, derive, mix, to_unit
from pipesim.kernels.trial import SLIP_KEY, booked, shifted, trial_state, win_probability

_CELL_DOMAIN = np.uint64(0xCE11CE11CE11CE11)
_PICK_KEY = 7
_THIN_KEY = 1_000_006  # a candidate winner's thinning uniform (its stages are 1, 2, ...)


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
def _pick(st: np.uint64, n: int, todo: int, bits: np.ndarray, draws: np.ndarray, b: int) -> None:
    """Set ``todo`` distinct random bits among the first ``n`` of ``bits[b]`` (all clear).

    Positions are the uniforms of stream ``st`` in order (a repeat is skipped), made
    in batches by a vector loop; ``draws[b]`` is scratch.
    """
    m = 0
    while todo > 0:
        batch = min(todo + (todo >> 3) + 8, draws.shape[1])
        for r in range(batch):
            u = to_unit(mix(st + np.uint64(m + r + 1) * GOLDEN))
            draws[b, r] = min(np.int64(u * n), n - 1)
        m += batch
        for r in range(batch):
            d = draws[b, r]
            word, bit = d >> 6, np.uint64(1) << np.uint64(d & 63)
            todo -= (bits[b, word] & bit) == 0  # a repeat sets nothing new (no branch)
            bits[b, word] |= bit
            if todo == 0:
                break


@jit(inline=True)
def _collect(a: int, n: int, picked_won: bool, bits: np.ndarray, idx: np.ndarray, b: int) -> int:
    """Write the winners (deal indices from ``a``, in order) to ``idx[b]``; clear ``bits[b]``."""
    k = 0
    for word in range((n + 63) >> 6):
        x = bits[b, word]
        bits[b, word] = 0
        if not picked_won:
            x = ~x
        span = n - (word << 6)
        if span < 64:
            x &= (np.uint64(1) << np.uint64(span)) - np.uint64(1)
        while x:
            low = x & (~x + np.uint64(1))
            idx[b, k] = a + (word << 6) + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> _S58]
            k += 1
            x ^= low
    return k


@jit(parallel=True)
def simulate_fast(
    seed: np.uint64,
    trial0: int,
    deal0: int,
    pwin: np.ndarray,
    conv: np.ndarray,
    shift: np.ndarray,
    n_stages: int,
    code: np.ndarray,
    p1: np.ndarray,
    p2: np.ndarray,
    tab: np.ndarray,
    value_sigma: np.ndarray,
    edges: np.ndarray,
    ratio: np.ndarray,
    lf_max: np.ndarray,
    gs_of: np.ndarray,
    amount: np.ndarray,
    age: np.ndarray,
    by: np.ndarray,
    strip_of: np.ndarray,
    surv: np.ndarray,
    column: np.ndarray,
    cell_start: np.ndarray,
    window_cell: np.ndarray,
    cell_surv: np.ndarray,
    cell_mixed: np.ndarray,
    fx_of: np.ndarray,
    day_period: np.ndarray,
    slips: np.ndarray,
    day_rate: np.ndarray,
    block: int,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Add the open deals' revenue to ``out_rev``/``out_won``, as the per-deal kernel would.

    Arrays as in :mod:`pipesim.kernels.tables` (the funnel and deal tables taken apart,
    so that each is its own argument); ``pwin`` from
    :func:`pipesim.kernels.trial.trial_win_probabilities`.
    ``conv`` (each trial's conversions, from
    :func:`pipesim.kernels.trial.trial_conversions`) and ``surv`` (each deal's
    survival ratio) give an aged deal its own odds when its stage has a loss clock:
    then a cell's winners are drawn at its highest odds (``cell_surv``: the lowest
    ratio in the cell) and thinned deal by deal (``cell_mixed``: the cell's ratios
    differ from ``cell_surv``). Every odds is moved by the deal's odds shock
    ``shift[i, column[d]]`` (:class:`pipesim.kernels.tables.DealShocks`; a cell's
    deals share one column; all 0 without shocks). Arrivals are not simulated here
    (:mod:`pipesim.engines.fast` adds them after, as the per-deal kernel does).
    ``cell_start`` holds the first deal of each cell (runs of deals with one ``gs``
    and shock column inside a window of the deal table) and ends with the number of deals;
    ``window_cell`` holds the first cell of each window and ends
    with the number of cells. Parallel over blocks of ``block`` trials; within a
    block, window by window, every trial of the block runs the window's cells. Each
    cell's draws come from a stream keyed by (seed, trial, first deal of the cell in
    the book: ``deal0`` is the book's index of this table's first deal),
    and each trial adds its cells in table order, so the bits do not depend on
    threads or blocks.
    """
    n_trials, n_periods = out_rev.shape[0], out_rev.shape[1]
    end = float(day_period.shape[0])
    last_day = day_period.shape[0] - 1
    width = 1
    for c in range(cell_start.shape[0] - 1):
        width = max(width, cell_start[c + 1] - cell_start[c])
    n_blocks = (n_trials + block - 1) // block
    # Per-block scratch, made here (see the module's note on vector loops).
    idx = np.empty((n_blocks, width), dtype=np.int64)
    state = np.empty((n_blocks, width), dtype=np.uint64)
    t = np.empty((n_blocks, width))
    dt = np.empty((n_blocks, width))
    # Flags as bytes: numba's boolean arrays defeat the vectoriser.
    bad = np.empty((n_blocks, width), dtype=np.uint8)
    per = np.empty((n_blocks, width), dtype=np.int64)
    bits = np.zeros((n_blocks, width // 64 + 1), dtype=np.uint64)
    acc = np.zeros((n_blocks, 4, n_periods, 2))
    for b in prange(n_blocks):
        first = b * block
        stop = min(first + block, n_trials)
        for win in range(window_cell.shape[0] - 1):
            for i in range(first, stop):
                root = trial_state(seed, trial0 + i) ^ _CELL_DOMAIN
                for c in range(window_cell[win], window_cell[win + 1]):
                    a = cell_start[c]
                    n = cell_start[c + 1] - a
                    gs = gs_of[a]
                    cs = derive(root, np.uint64(deal0 + a))
                    # The cell's highest odds (its deals' odds when they all have them).
                    top = win_probability(pwin, conv, i, gs, n_stages, cell_surv[c])
                    top = shifted(top, shift[i, column[a]])
                    k = binomial_inverse(to_unit(cs), n, top)
                    if k == 0:
                        continue
                    # Which deals win: pick the winners, or the losers when fewer.
                    picked_won = 2 * k <= n
                    _pick(branch(cs, _PICK_KEY), n, k if picked_won else n - k, bits, idx, b)
                    k = _collect(a, n, picked_won, bits, idx, b)
                    if cell_mixed[c]:
                        # Deals with lower odds (older, past their loss clock) are thinned:
                        # each candidate stays with its odds over the cell's highest.
                        kept = 0
                        for w in range(k):
                            d = idx[b, w]
                            p = win_probability(pwin, conv, i, gs, n_stages, surv[d])
                            p = shifted(p, shift[i, column[d]])
                            u = to_unit(mix(branch(derive(cs, np.uint64(d - a)), _THIN_KEY)))
                            if u * top < p:
                                idx[b, kept] = d
                                kept += 1
                        k = kept
                        if k == 0:
                            continue
                    for w in range(k):
                        state[b, w] = derive(cs, np.uint64(idx[b, w] - a))  # place in the cell
                    # When they close (t) and for how much (dt).
                    time_and_value(
                        gs, n_stages, code, p1, p2, tab, value_sigma, edges, ratio, lf_max,
                        0, k, age, strip_of, amount, idx, state, t, dt, bad, b, True,
                    )  # fmt: skip
                    # In which period (-1: after the horizon), at the won day's rate.
                    for w in range(k):
                        tw = t[b, w]
                        day = min(np.int64(tw), last_day)
                        q = day_period[day] if tw < end else -1
                        slip = branch(derive(cs, np.uint64(idx[b, w] - a)), SLIP_KEY)
                        per[b, w] = booked(q, slip, slips)
                        # Converted at the won day's rate, not at the (slipped) booking date.
                        dt[b, w] *= day_rate[fx_of[idx[b, w]], day]
                    # Sums: four interleaved accumulators, so that consecutive winners
                    # of one month do not wait on each other's additions.
                    for q in range(n_periods):  # (no acc[b] view: views defeat it too)
                        for r in range(4):
                            acc[b, r, q, 0] = 0.0
                            acc[b, r, q, 1] = 0.0
                    for w in range(k):
                        q = per[b, w]
                        if q >= 0:
                            acc[b, w & 3, q, 0] += dt[b, w]
                            acc[b, w & 3, q, 1] += 1.0
                    for q in range(n_periods):
                        out_rev[i, q, 0] += (acc[b, 0, q, 0] + acc[b, 1, q, 0]) + (
                            acc[b, 2, q, 0] + acc[b, 3, q, 0]
                        )
                        out_won[i, q, 0] += (acc[b, 0, q, 1] + acc[b, 1, q, 1]) + (
                            acc[b, 2, q, 1] + acc[b, 3, q, 1]
                        )
                    if out_rev.shape[2] > 1:
                        for w in range(k):
                            q = per[b, w]
                            if q >= 0:
                                out_rev[i, q, 1 + by[idx[b, w]]] += dt[b, w]
                                out_won[i, q, 1 + by[idx[b, w]]] += 1.0
