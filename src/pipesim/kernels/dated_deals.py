"""Deals with a stated close date: odds and timing from the slippage law, not the clocks.

Each dated deal wins on the same uniform as in :mod:`pipesim.kernels.per_deal` (its
stream (seed, trial, deal key)), so switching close dates off or on keeps the two runs
on common random numbers. Its chance is its law row's ``p_win`` (drawn once per trial
from Beta(p n, (1 - p) n), the row's uncertainty, n = p (1 - p) / se²); its row is
its stage's, pushes' and overdue bucket's (:mod:`pipesim.prepare.dated_deals`). A win
is booked on the stated date plus a lateness drawn from the row's law (quantiles joined
by straight lines, exponential tail; :mod:`pipesim.scenario.close_law`) conditioned on
the won date falling on or after as_of; its p_win moves by the odds shock of the month
it entered its stage, as every open deal's (:class:`pipesim.kernels.tables.DealShocks`).
A separate kernel, so that books without close
dates run the other kernels' bits unchanged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from pipesim.kernels.jit import jit
from pipesim.kernels.samplers import beta, exponential
from pipesim.kernels.streams import branch, derive, to_unit, uniform
from pipesim.kernels.trial import VALUE_KEY, book, multiplier, shifted, trial_state

DATED_DOMAIN = np.uint64(0xDA7EDDA7EDDA7ED0)  # the trial's draw of each law row's p_win
LATE_KEY = 1_000_007  # a dated win's lateness draw (its stages are 1, 2, ...)
LEVELS = np.array([0.0, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90])


class DatedTable(NamedTuple):
    """Deals with a stated close date and the law rows they follow."""

    law_p: np.ndarray  # float64 [rows]: p_win
    law_n: np.ndarray  # float64 [rows]: Beta evidence of p_win (0: exact)
    law_knots: np.ndarray  # float64 [rows, 7]: lateness quantiles at LEVELS
    law_tail: np.ndarray  # float64 [rows]: mean of the exponential tail above the last knot
    key: np.ndarray  # uint64 [deals]: stream key (from deal_id)
    row: np.ndarray  # int64 [deals]: law row
    due: np.ndarray  # float64 [deals]: stated date minus as_of, in days (< 0: overdue)
    amount: np.ndarray  # float64 [deals]
    value_sigma: np.ndarray  # float64 [deals]: log-sd of the value multiplier
    by: np.ndarray  # int64 [deals]
    fx: np.ndarray  # int64 [deals]
    shock: np.ndarray  # int64 [deals]: column of the trial's odds shifts (DealShocks)

    @property
    def rows(self) -> int:
        """Number of dated deals."""
        return len(self.key)


@jit
def lateness_after(knots: np.ndarray, r: int, tail: float, low: float, v: float) -> float:
    """Lateness (days) at uniform ``v`` of row ``r``'s law conditioned on lateness >= ``low``."""
    n = LEVELS.shape[0]
    last = knots[r, n - 1]
    if low >= last:  # the exponential tail has no memory
        return low - tail * math.log(1.0 - v)
    f = 0.0
    if low > knots[r, 0]:
        for k in range(1, n):
            if low <= knots[r, k]:
                width = knots[r, k] - knots[r, k - 1]
                step = (low - knots[r, k - 1]) / width if width > 0.0 else 1.0
                f = LEVELS[k - 1] + step * (LEVELS[k] - LEVELS[k - 1])
                break
    w = f + (1.0 - f) * v
    if w >= LEVELS[n - 1]:
        return last - tail * math.log((1.0 - w) / (1.0 - LEVELS[n - 1]))
    for k in range(1, n):
        if w <= LEVELS[k]:
            step = (w - LEVELS[k - 1]) / (LEVELS[k] - LEVELS[k - 1])
            return max(knots[r, k - 1] + step * (knots[r, k] - knots[r, k - 1]), low)
    return last


@jit
def row_odds(ts: np.uint64, law_p: np.ndarray, law_n: np.ndarray, out: np.ndarray) -> None:
    """out[r]: trial ``ts``'s p_win of law row r (Beta(p n, (1 - p) n) when n > 0, else p)."""
    base = derive(ts, DATED_DOMAIN)
    for r in range(law_p.shape[0]):
        p = law_p[r]
        n = law_n[r]
        if n > 0.0 and 0.0 < p < 1.0:
            _, p = beta(derive(base, np.uint64(r + 1)), p * n, (1.0 - p) * n)
        out[r] = p


@jit
def won_day(ds: np.uint64, r: int, due: float, knots: np.ndarray, tail: np.ndarray) -> float:
    """A dated win's day after as_of: its stated date plus a lateness on or after as_of."""
    state, v = uniform(branch(ds, LATE_KEY))
    low = -due  # won on or after as_of
    if low >= knots[r, knots.shape[1] - 1]:
        _, e = exponential(state)
        late = low + tail[r] * e
    else:
        late = lateness_after(knots, r, tail[r], low, v)
    t = due + late
    return t if t >= 0.0 else 0.0


@jit
def dated_win(
    ds: np.uint64,
    p: float,
    r: int,
    due: float,
    knots: np.ndarray,
    tail: np.ndarray,
    amount: float,
    value_sigma: float,
    fx: int,
    day_rate: np.ndarray,
    end: int,
) -> tuple[int, float]:
    """A dated deal's (won day, booked value) on stream ``ds`` at odds ``p``; day -1: no win.

    No win when its uniform is not below ``p`` or its won day is ``end`` or later.
    """
    if not to_unit(ds) < p:
        return -1, 0.0
    day = int(won_day(ds, r, due, knots, tail))
    if day >= end:
        return -1, 0.0
    value = amount * multiplier(branch(ds, VALUE_KEY), value_sigma)
    return day, value * day_rate[fx, min(day, day_rate.shape[1] - 1)]


@jit(parallel=True)
def simulate_dated(
    seed: np.uint64,
    trial0: int,
    shift: np.ndarray,
    law_p: np.ndarray,
    law_n: np.ndarray,
    law_knots: np.ndarray,
    law_tail: np.ndarray,
    key: np.ndarray,
    row: np.ndarray,
    due: np.ndarray,
    amount: np.ndarray,
    value_sigma: np.ndarray,
    by: np.ndarray,
    fx: np.ndarray,
    shock: np.ndarray,
    day_period: np.ndarray,
    day_rate: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Add the dated deals' wins of trials ``trial0 ..`` to ``out_rev``/``out_won``.

    The fields of :class:`DatedTable` in order; ``day_period`` maps each calendar day
    after as_of to its period. Each trial fills its own row, deals in table order. A
    deal's p_win moves by its odds shock ``shift[i, shock[d]]`` (the month it entered
    its stage, as the other open deals'; all 0 without shocks).
    """
    n_trials = out_rev.shape[0]
    end = day_period.shape[0]
    for i in prange(n_trials):
        ts = trial_state(seed, trial0 + i)
        p_row = np.empty(law_p.shape[0])
        row_odds(ts, law_p, law_n, p_row)
        for d in range(key.shape[0]):
            r = row[d]
            p = shifted(p_row[r], shift[i, shock[d]])
            day, value = dated_win(
                derive(ts, key[d]), p, r, due[d], law_knots, law_tail, amount[d],
                value_sigma[d], fx[d], day_rate, end,
            )  # fmt: skip
            if day >= 0:
                book(out_rev, out_won, i, day_period[day], by[d], value)
