"""Each open deal's odds: per-deal counters over every trial, the draws of the per-deal kernel.

The per-deal kernel (:mod:`pipesim.kernels.per_deal`) runs threads over blocks of
trials, so a per-deal counter there would be written by several threads at once.
This kernel turns the loops round: threads over chunks of deals, every trial inside,
so each deal is owned by one thread and its counters are added in trial order:
the same bits whatever the threads, chunks or lanes. Its draws are the per-deal
kernel's, number for number (the same streams, samplers and booking), so the
counters describe the very trials behind the summary: summed over deals, the wins
are the open deals' won deals of the summary and the revenue theirs (up to the
order of the float sums).

Memory: the counters (five numbers a deal) and, for the median won day, a histogram
of won days per deal of the chunks in flight only: ``lanes x chunk x days`` uint32
(a deal's row is reduced to its median when its chunk has run every trial), never
trials x deals.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipesim.kernels.batch_samplers import time_and_value
from pipesim.kernels.dated_deals import dated_win, row_odds
from pipesim.kernels.jit import jit
from pipesim.kernels.streams import branch, derive, to_unit
from pipesim.kernels.trial import (
    SLIP_KEY,
    booked,
    shifted,
    trial_state,
    win_probability,
)


@jit(parallel=True)
def count_deal_odds(
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
    strip_of: np.ndarray,
    surv: np.ndarray,
    column: np.ndarray,
    fx_of: np.ndarray,
    day_period: np.ndarray,
    slips: np.ndarray,
    day_rate: np.ndarray,
    in_window: np.ndarray,
    hist: np.ndarray,
    out_wins: np.ndarray,
    out_wins_window: np.ndarray,
    out_revenue: np.ndarray,
    out_revenue_window: np.ndarray,
    out_median_day: np.ndarray,
) -> None:
    """Count each deal's wins in trials ``trial0 .. trial0 + len(pwin)``, as the engine books them.

    Inputs as :func:`pipesim.kernels.per_deal.simulate_deals_two_clocks`'s (``conv``
    may be 1 x 1 when every ``surv`` is 1; ``shift`` [trial, 1] of zeros and ``column``
    all 0 without odds shocks: a deal's odds are then ``pwin``'s, as in
    :func:`pipesim.kernels.per_deal.simulate_deals`), plus ``in_window`` [period] (uint8: the
    periods of the window, e.g. the current quarter). Fills, per deal: ``out_wins``
    (trials in which a win is booked inside the horizon), ``out_wins_window`` (booked
    in a period of the window), ``out_revenue`` and ``out_revenue_window`` (the booked
    values, company currency, summed in trial order) and ``out_median_day`` (the
    first clock day by which at least half its wins were won; -1 with no win).
    ``hist`` [lane, chunk, day] (uint32, any content) holds the won days of the
    ``lanes`` chunks of ``chunk`` deals that run at a time (their other scratch is made
    once, here).
    """
    n_trials = pwin.shape[0]
    n_deals = key.shape[0]
    n_days = day_period.shape[0]
    end = float(n_days)
    lanes, chunk = hist.shape[0], hist.shape[1]
    idx = np.empty((lanes, chunk), dtype=np.int64)
    state = np.empty((lanes, chunk), dtype=np.uint64)
    t = np.empty((lanes, chunk))
    dt = np.empty((lanes, chunk))
    bad = np.empty((lanes, chunk), dtype=np.uint8)
    n_chunks = (n_deals + chunk - 1) // chunk
    for wave in range(0, n_chunks, lanes):
        for lane in prange(min(lanes, n_chunks - wave)):
            start = (wave + lane) * chunk
            stop = min(start + chunk, n_deals)
            hist[lane, :, :] = 0
            for d in range(start, stop):
                out_wins[d] = 0
                out_wins_window[d] = 0
                out_revenue[d] = 0.0
                out_revenue_window[d] = 0.0
            for i in range(n_trials):
                ts = trial_state(seed, trial0 + i)
                # Pass 1 (as the per-deal kernel): one uniform per deal decides a win.
                n_won = 0
                for d in range(start, stop):
                    ds = derive(ts, key[d])
                    idx[lane, n_won] = d
                    state[lane, n_won] = ds
                    p = win_probability(pwin, conv, i, gs_of[d], n_stages, surv[d])
                    p = shifted(p, shift[i, column[d]])
                    n_won += to_unit(ds) < p
                # Pass 2: the winners, in runs of one group and stage.
                w0 = 0
                while w0 < n_won:
                    gs = gs_of[idx[lane, w0]]
                    w1 = w0 + 1
                    while w1 < n_won and gs_of[idx[lane, w1]] == gs:
                        w1 += 1
                    time_and_value(
                        gs, n_stages, code, p1, p2, tab, value_sigma, edges, ratio, lf_max,
                        w0, w1, age, strip_of, amount, idx, state, t, dt, bad, lane, False,
                    )  # fmt: skip
                    for w in range(w0, w1):
                        if t[lane, w] < end:
                            d = idx[lane, w]
                            day = int(t[lane, w])
                            value = dt[lane, w] * day_rate[fx_of[d], day]
                            q = booked(day_period[day], branch(derive(ts, key[d]), SLIP_KEY), slips)
                            if q >= 0:
                                out_wins[d] += 1
                                out_revenue[d] += value
                                hist[lane, d - start, day] += 1
                                if in_window[q]:
                                    out_wins_window[d] += 1
                                    out_revenue_window[d] += value
                    w0 = w1
            for d in range(start, stop):
                out_median_day[d] = median_day(hist[lane, d - start], out_wins[d])


@jit
def median_day(counts: np.ndarray, total: int) -> int:
    """The first day by which at least half of ``total`` wins counted by day happened (-1: none)."""
    if total <= 0:
        return -1
    seen = 0
    for day in range(counts.shape[0]):
        seen += counts[day]
        if 2 * seen >= total:
            return day
    return counts.shape[0] - 1


@jit(parallel=True)
def count_dated_odds(
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
    fx: np.ndarray,
    shock: np.ndarray,
    day_period: np.ndarray,
    day_rate: np.ndarray,
    in_window: np.ndarray,
    hist: np.ndarray,
    out_wins: np.ndarray,
    out_wins_window: np.ndarray,
    out_revenue: np.ndarray,
    out_revenue_window: np.ndarray,
    out_median_day: np.ndarray,
) -> None:
    """:func:`count_deal_odds` for the deals timed by their stated close date.

    The draws of :func:`pipesim.kernels.dated_deals.simulate_dated`, number for number
    (each trial's law rows' p_win, the deal's uniform and lateness); days are calendar
    days after as_of (``day_period`` the calendar's). Threads over chunks of
    ``hist.shape[1]`` deals, ``hist.shape[0]`` at a time; counters as there.
    """
    n_trials = shift.shape[0]
    n_deals = key.shape[0]
    lanes, chunk = hist.shape[0], hist.shape[1]
    end = day_period.shape[0]
    p_row = np.empty((n_trials, law_p.shape[0]))
    for i in range(n_trials):
        row_odds(trial_state(seed, trial0 + i), law_p, law_n, p_row[i])
    n_chunks = (n_deals + chunk - 1) // chunk
    for wave in range(0, n_chunks, lanes):
        for lane in prange(min(lanes, n_chunks - wave)):
            start = (wave + lane) * chunk
            stop = min(start + chunk, n_deals)
            hist[lane, :, :] = 0
            for d in range(start, stop):
                out_wins[d] = 0
                out_wins_window[d] = 0
                out_revenue[d] = 0.0
                out_revenue_window[d] = 0.0
                r = row[d]
                for i in range(n_trials):
                    p = shifted(p_row[i, r], shift[i, shock[d]])
                    day, value = dated_win(
                        derive(trial_state(seed, trial0 + i), key[d]), p, r, due[d], law_knots,
                        law_tail, amount[d], value_sigma[d], fx[d], day_rate, end,
                    )  # fmt: skip
                    if day < 0:
                        continue
                    out_wins[d] += 1
                    out_revenue[d] += value
                    hist[lane, d - start, day] += 1
                    if in_window[day_period[day]]:
                        out_wins_window[d] += 1
                        out_revenue_window[d] += value
                out_median_day[d] = median_day(hist[lane, d - start], out_wins[d])
