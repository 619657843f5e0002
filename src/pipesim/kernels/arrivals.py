"""The new leads' kernel: Poisson arrivals per (month, segment), thinned to the winners.

Each trial adds its arrival rows in order after its open deals (:mod:`pipesim.kernels.per_deal`
or :mod:`pipesim.kernels.winners_only`). Inputs: the funnel and arrival tables of
:mod:`pipesim.kernels.tables`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipesim.kernels.jit import jit
from pipesim.kernels.samplers import gamma, poisson_inverse
from pipesim.kernels.streams import branch, derive, mix, to_unit
from pipesim.kernels.tables import ArrivalTable, FunnelTable
from pipesim.kernels.trial import (
    AMOUNT_KEY,
    ARRIVAL_DOMAIN,
    COUNT_KEY,
    RATE_KEY,
    SLIP_KEY,
    VALUE_KEY,
    book,
    booked,
    dwell,
    lead_amount,
    multiplier,
    shocked_leads,
    shocked_odds,
    trend_draw,
    trend_factor,
    trial_state,
    win_probabilities,
)


@jit
def add_arrivals(
    ts: np.uint64,
    pwin: np.ndarray,
    funnel: FunnelTable,
    arrivals: ArrivalTable,
    day_period: np.ndarray,
    slips: np.ndarray,
    day_rate: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
    i: int,
) -> None:
    """Add trial ``i``'s new leads (stream ``ts``) that win within the horizon to row ``i``."""
    n_stages = funnel.unit_of.shape[1]
    code, p1, p2, tab = funnel.dwell_code, funnel.dwell_p1, funnel.dwell_p2, funnel.dwell_table
    value_sigma = funnel.value_sigma
    strips = (funnel.strip_edges, funnel.strip_ratio, funnel.strip_lf_max)
    key, g_of, t0, t1 = arrivals.key, arrivals.group, arrivals.t0, arrivals.t1
    lam_of, n_of, by = arrivals.leads, arrivals.leads_n, arrivals.by
    rate_key, trend_sd, trend_months = arrivals.rate_key, arrivals.trend_sd, arrivals.trend_months
    month, market_sd, own_sd = arrivals.month, arrivals.market_shock_sd, arrivals.segment_shock_sd
    lead_market_sd, lead_own_sd = arrivals.market_leads_shock_sd, arrivals.segment_leads_shock_sd
    rho, fx = arrivals.shock_rho, arrivals.fx
    amount, amount_mu, amount_sigma = arrivals.amount, arrivals.amount_mu, arrivals.amount_sigma
    end = float(day_period.shape[0])
    base = ts ^ ARRIVAL_DOMAIN
    z_trend = trend_draw(base)  # once per trial: every row shares it
    for r in range(key.shape[0]):
        rs = derive(base, key[r])
        lam = lam_of[r]
        n = n_of[r]
        if n > 0.0:
            _, x = gamma(branch(derive(base, rate_key[r]), RATE_KEY), n)
            lam *= x / n
        lam *= trend_factor(z_trend, trend_sd[r], trend_months[r])
        segment = derive(base, rate_key[r])
        lam *= shocked_leads(base, segment, month[r], lead_market_sd[r], lead_own_sd[r], rho[r])
        top = g_of[r] * n_stages
        p = shocked_odds(base, segment, month[r], pwin[top], market_sd[r], own_sd[r], rho[r])
        # Thinning: the leads that go on to win are Poisson(lam * P(win from the top)).
        winners = poisson_inverse(to_unit(mix(branch(rs, COUNT_KEY))), lam * p)
        for j in range(winners):
            ws = derive(rs, np.uint64(j))
            t = t0[r] + (t1[r] - t0[r]) * to_unit(ws)
            for c in range(top, top + n_stages):
                if t >= end:
                    break
                _, dt = dwell(
                    branch(ws, c - top + 1), code[c], p1[c], p2[c], tab[c], strips, 0.0, 0
                )
                t += dt
            if t >= end:
                continue
            value = lead_amount(branch(ws, AMOUNT_KEY), amount[r], amount_mu[r], amount_sigma[r])
            if value_sigma[top] > 0.0:
                value *= multiplier(branch(ws, VALUE_KEY), value_sigma[top])
            day = int(t)
            # Converted at the won day's rate, not at the (slipped) booking date.
            q = booked(day_period[day], branch(ws, SLIP_KEY), slips)
            if q >= 0:
                book(out_rev, out_won, i, q, by[r], value * day_rate[fx[r], day])


@jit
def win_probabilities_of(
    seed: np.uint64, trials: np.ndarray, funnel: FunnelTable, out: np.ndarray
) -> None:
    """out[i]: trial ``trials[i]``'s P(win | in stage) per (group, stage), as drawn by kernels."""
    for i in range(trials.shape[0]):
        win_probabilities(trial_state(seed, trials[i]), funnel, out[i])


@jit(parallel=True)
def simulate_arrivals(
    seed: np.uint64,
    trials: np.ndarray,
    pwin: np.ndarray,
    funnel: FunnelTable,
    arrivals: ArrivalTable,
    day_period: np.ndarray,
    slips: np.ndarray,
    day_rate: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Add the new leads' revenue of the trials numbered ``trials`` (row i: ``trials[i]``).

    ``pwin`` from :func:`pipesim.kernels.trial.trial_win_probabilities` (row i: that
    trial's). Each trial adds its arrival rows in order; the open deals are added
    before, by :mod:`pipesim.kernels.per_deal` or :mod:`pipesim.kernels.winners_only`.
    A trial's row is the same bits whichever other trials run with it: a search
    re-simulates only the trials it has not decided yet (:mod:`pipesim.plan.target`).
    """
    for i in prange(out_rev.shape[0]):
        add_arrivals(
            trial_state(seed, trials[i]),
            pwin[i],
            funnel,
            arrivals,
            day_period,
            slips,
            day_rate,
            out_rev,
            out_won,
            np.int64(i),  # prange's index is unsigned in the parallel body: one signature
        )
