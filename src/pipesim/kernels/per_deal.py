"""The open deals' kernel: each deal wins or not on its own uniform; winners timed in batches.

Per trial and chunk of deals (in cache for a block of trials): pass 1 hashes every
deal's stream and keeps the winners (a lost deal costs one hash and one
comparison); pass 2 takes the winners, in deal order, in runs of one parameter
group and stage (deals are sorted so) and times and values each run with the
batch samplers of :mod:`pipesim.kernels.batch_samplers`, which give the scalar samplers' numbers
bit for bit; then books them in deal order. Each deal's draws come from the
stream (seed, trial, deal key), so the result does not depend on threads, blocks
or chunks, and adding a deal leaves every other deal's draws alone. A win is booked
in the company currency at its won day's rate (``day_rate``, :mod:`pipesim.kernels.tables`).

Arrays are separate arguments and the scratch is made outside the parallel
region, so that LLVM vectorises the batch loops (see :mod:`pipesim.kernels.batch_samplers`).
A book whose stages have loss clocks runs :func:`simulate_deals_two_clocks`, where an
aged deal wins on its own odds (:mod:`pipesim.prepare.loss_clock`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipesim.kernels.batch_samplers import time_and_value
from pipesim.kernels.jit import jit
from pipesim.kernels.streams import branch, derive, to_unit
from pipesim.kernels.trial import (
    SLIP_KEY,
    book,
    booked,
    shifted,
    trial_state,
    win_probability,
)


@jit(parallel=True)
def simulate_deals(
    seed: np.uint64,
    trial0: int,
    pwin: np.ndarray,
    n_stages: int,
    code: np.ndarray,
    p1: np.ndarray,
    p2: np.ndarray,
    tab: np.ndarray,
    value_sigma: np.ndarray,
    edges: np.ndarray,
    ratio: np.ndarray,
    lf_max: np.ndarray,
    key: np.ndarray,
    gs_of: np.ndarray,
    odds_of: np.ndarray,
    amount: np.ndarray,
    age: np.ndarray,
    by: np.ndarray,
    strip_of: np.ndarray,
    fx_of: np.ndarray,
    day_period: np.ndarray,
    slips: np.ndarray,
    day_rate: np.ndarray,
    block: int,
    chunk: int,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Add the open deals' revenue of trials ``trial0 ..`` to ``out_rev``/``out_won``.

    The funnel and deal tables of :mod:`pipesim.kernels.tables`, taken apart; ``pwin``
    [trial, column] holds each deal's P(win) in column ``odds_of[d]``: the trial's
    P(win | in stage) of :func:`pipesim.kernels.trial.trial_win_probabilities` with
    ``odds_of`` the deals' cells, or those moved by the month's odds shocks
    (:func:`pipesim.kernels.trial.shifted_odds`). Parallel over blocks of
    ``block`` trials; within a block the deals are read in chunks of ``chunk`` so a
    chunk stays in cache for all the block's trials. Each trial adds its deals in
    deal order, so the sums are the same bits whatever ``block``, ``chunk`` and the
    thread count.
    """
    n_trials = out_rev.shape[0]
    n_deals = key.shape[0]
    end = float(day_period.shape[0])
    n_blocks = (n_trials + block - 1) // block
    # Per-block scratch, made here (see pipesim.kernels.batch_samplers).
    idx = np.empty((n_blocks, chunk), dtype=np.int64)
    state = np.empty((n_blocks, chunk), dtype=np.uint64)
    t = np.empty((n_blocks, chunk))
    dt = np.empty((n_blocks, chunk))
    bad = np.empty((n_blocks, chunk), dtype=np.uint8)
    for b in prange(n_blocks):
        first = b * block
        stop_trial = min(first + block, n_trials)
        for start in range(0, n_deals, chunk):
            stop = min(start + chunk, n_deals)
            for i in range(first, stop_trial):
                ts = trial_state(seed, trial0 + i)
                # Pass 1: one uniform per deal decides whether it is won.
                n_won = 0
                for d in range(start, stop):
                    ds = derive(ts, key[d])
                    idx[b, n_won] = d
                    state[b, n_won] = ds
                    n_won += to_unit(ds) < pwin[i, odds_of[d]]
                # Pass 2: the winners, in runs of one group and stage.
                w0 = 0
                while w0 < n_won:
                    gs = gs_of[idx[b, w0]]
                    w1 = w0 + 1
                    while w1 < n_won and gs_of[idx[b, w1]] == gs:
                        w1 += 1
                    time_and_value(
                        gs, n_stages, code, p1, p2, tab, value_sigma, edges, ratio, lf_max,
                        w0, w1, age, strip_of, amount, idx, state, t, dt, bad, b, False,
                    )  # fmt: skip
                    for w in range(w0, w1):
                        if t[b, w] < end:
                            d = idx[b, w]
                            day = int(t[b, w])
                            # Converted at the won day's rate, not at the (slipped) booking date.
                            value = dt[b, w] * day_rate[fx_of[d], day]
                            q = booked(day_period[day], branch(derive(ts, key[d]), SLIP_KEY), slips)
                            if q >= 0:
                                book(out_rev, out_won, i, q, by[d], value)
                    w0 = w1


@jit(parallel=True)
def simulate_deals_two_clocks(
    seed: np.uint64,
    trial0: int,
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
    key: np.ndarray,
    gs_of: np.ndarray,
    amount: np.ndarray,
    age: np.ndarray,
    by: np.ndarray,
    strip_of: np.ndarray,
    surv: np.ndarray,
    column: np.ndarray,
    fx_of: np.ndarray,
    day_period: np.ndarray,
    slips: np.ndarray,
    day_rate: np.ndarray,
    block: int,
    chunk: int,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """:func:`simulate_deals` for a book where some deals' odds depend on their age.

    Each deal wins on its own odds (:func:`pipesim.kernels.trial.win_probability`):
    ``pwin`` where its survival ratio ``surv`` is 1, else from its stage's conversion
    in ``conv`` (:func:`pipesim.kernels.trial.trial_conversions`) and the ratio, then
    moved by its odds shock ``shift[i, column[d]]`` (all 0 without shocks). A deal
    of ratio 1 draws exactly as in :func:`simulate_deals`. (Two kernels, not a
    branch in one: the branch cost the one-clock loop ~10% of its speed.)
    """
    n_trials = out_rev.shape[0]
    n_deals = key.shape[0]
    end = float(day_period.shape[0])
    n_blocks = (n_trials + block - 1) // block
    # Per-block scratch, made here (see pipesim.kernels.batch_samplers).
    idx = np.empty((n_blocks, chunk), dtype=np.int64)
    state = np.empty((n_blocks, chunk), dtype=np.uint64)
    t = np.empty((n_blocks, chunk))
    dt = np.empty((n_blocks, chunk))
    bad = np.empty((n_blocks, chunk), dtype=np.uint8)
    for b in prange(n_blocks):
        first = b * block
        stop_trial = min(first + block, n_trials)
        for start in range(0, n_deals, chunk):
            stop = min(start + chunk, n_deals)
            for i in range(first, stop_trial):
                ts = trial_state(seed, trial0 + i)
                # Pass 1: one uniform per deal decides whether it is won.
                n_won = 0
                for d in range(start, stop):
                    ds = derive(ts, key[d])
                    idx[b, n_won] = d
                    state[b, n_won] = ds
                    p = win_probability(pwin, conv, i, gs_of[d], n_stages, surv[d])
                    p = shifted(p, shift[i, column[d]])
                    n_won += to_unit(ds) < p
                # Pass 2: the winners, in runs of one group and stage.
                w0 = 0
                while w0 < n_won:
                    gs = gs_of[idx[b, w0]]
                    w1 = w0 + 1
                    while w1 < n_won and gs_of[idx[b, w1]] == gs:
                        w1 += 1
                    time_and_value(
                        gs, n_stages, code, p1, p2, tab, value_sigma, edges, ratio, lf_max,
                        w0, w1, age, strip_of, amount, idx, state, t, dt, bad, b, False,
                    )  # fmt: skip
                    for w in range(w0, w1):
                        if t[b, w] < end:
                            d = idx[b, w]
                            day = int(t[b, w])
                            # Converted at the won day's rate, not at the (slipped) booking date.
                            value = dt[b, w] * day_rate[fx_of[d], day]
                            q = booked(day_period[day], branch(derive(ts, key[d]), SLIP_KEY), slips)
                            if q >= 0:
                                book(out_rev, out_won, i, q, by[d], value)
                    w0 = w1
