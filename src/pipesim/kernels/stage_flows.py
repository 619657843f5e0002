"""Numba kernel of stage flows: per trial and month, the deals ENTERING every stage, and wins.

The main kernel only books wins (and thins the leads to the winners); the health
check needs every stage's monthly entries to put P10-P90 bands on them. Here each
open deal and each new lead walks the funnel: a single uniform decides how deep
it gets (it passes stage k iff u < the product of the conversions up to k, the
coupling of the main kernel), dwell times come from the same samplers and child
streams, and an entry into stage k at day t counts in the period of t.

Inputs are the tables of :mod:`pipesim.kernels.tables`.
Outputs: ``out_enter`` [trial, period, stage (+1 for Won), 1 + by-group] and
``out_rev`` [trial, period, 1 + by-group]; column 0 is the whole book.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipesim.kernels.jit import jit
from pipesim.kernels.samplers import gamma, poisson_inverse
from pipesim.kernels.streams import branch, derive, mix, to_unit
from pipesim.kernels.tables import MONTHS_BACK, ArrivalTable, DealShocks, DealTable, FunnelTable
from pipesim.kernels.trial import (
    AMOUNT_KEY,
    ARRIVAL_DOMAIN,
    COUNT_KEY,
    RATE_KEY,
    VALUE_KEY,
    advance_odds,
    conversions,
    deal_shifts,
    dwell,
    lead_amount,
    multiplier,
    shifted,
    shocked_leads,
    shocked_odds,
    trend_draw,
    trend_factor,
    trial_state,
)

_DEPTH_KEY = 1_000_005


@jit
def _count(out: np.ndarray, i: int, k: int, s: int, by: int, value: float) -> None:
    out[i, k, s, 0] += value
    if out.shape[3] > 1:
        out[i, k, s, 1 + by] += value


@jit
def _walk(
    ds: np.uint64,
    u: float,
    gs: int,
    t: float,
    age: float,
    strip: int,
    ratio: float,
    value: float,
    by: int,
    fx: int,
    conv: np.ndarray,
    funnel: FunnelTable,
    day_period: np.ndarray,
    day_rate: np.ndarray,
    out_enter: np.ndarray,
    out_rev: np.ndarray,
    i: int,
) -> None:
    """Walk one deal from cell ``gs`` (entered or aged ``age`` at day ``t``) to Won or Lost.

    ``ratio`` is the deal's survival ratio in its first stage (1: its conversion); a
    win books ``value`` at its won day's rate of currency slot ``fx``.
    """
    n_stages = funnel.unit_of.shape[1]
    code, p1, p2, tab = funnel.dwell_code, funnel.dwell_p1, funnel.dwell_p2, funnel.dwell_table
    value_sigma = funnel.value_sigma
    strips = (funnel.strip_edges, funnel.strip_ratio, funnel.strip_lf_max)
    top = gs - gs % n_stages
    end = float(day_period.shape[0])
    p = 1.0
    for c in range(gs, top + n_stages):
        if c == gs:
            _, d = dwell(branch(ds, 1), code[c], p1[c], p2[c], tab[c], strips, age, strip)
        else:
            _, d = dwell(branch(ds, c - gs + 1), code[c], p1[c], p2[c], tab[c], strips, 0.0, 0)
        t += d
        if c == gs and ratio != 1.0:
            p *= advance_odds(conv[c], ratio)
        else:
            p *= conv[c]
        if u >= p or t >= end:
            return
        k = day_period[int(t)]
        if c + 1 < top + n_stages:
            _count(out_enter, i, k, c + 1 - top, by, 1.0)
        else:
            _count(out_enter, i, k, n_stages, by, 1.0)
            if value_sigma[gs] > 0.0:
                value *= multiplier(branch(ds, VALUE_KEY), value_sigma[gs])
            value *= day_rate[fx, int(t)]
            out_rev[i, k, 0] += value
            if out_rev.shape[2] > 1:
                out_rev[i, k, 1 + by] += value


@jit
def _depth_odds(conv: np.ndarray, gs: int, n_stages: int, ratio: float) -> float:
    """P(win) of a deal in cell ``gs`` with survival ratio ``ratio``: as :func:`_walk` walks."""
    p = advance_odds(conv[gs], ratio) if ratio != 1.0 else conv[gs]
    for c in range(gs + 1, gs - gs % n_stages + n_stages):
        p *= conv[c]
    return p


@jit
def _depth_scaled(u: float, p: float, q: float) -> float:
    """The depth uniform of a deal whose P(win) p is moved to q (it then wins iff u' < p)."""
    if p <= 0.0 or q == p:
        return u
    return u * p / q if q > 0.0 else 2.0  # q = 0: not even the first stage


@jit(parallel=True)
def flow_trials(
    seed: np.uint64,
    trial0: int,
    funnel: FunnelTable,
    deals: DealTable,
    arrivals: ArrivalTable,
    shocks: DealShocks,
    day_period: np.ndarray,
    day_rate: np.ndarray,
    out_enter: np.ndarray,
    out_rev: np.ndarray,
) -> None:
    """Fill ``out_enter`` and ``out_rev`` (zeroed by the caller) for trials ``trial0 ..``.

    The odds' monthly shocks (an open deal's of the month it entered its stage,
    :class:`~pipesim.kernels.tables.DealShocks`; a lead's of its month) move its
    P(win) p to q as in the main kernels; its depth uniform is scaled by p / q, so
    it passes stage k with probability min(1, P_k q / p) and wins with q.
    """
    n_trials = out_enter.shape[0]
    n_stages = funnel.unit_of.shape[1]
    n_cells = funnel.unit_of.shape[0] * n_stages
    key, gs_of, amount, age, by_d, strip_of = (
        deals.key,
        deals.cell,
        deals.amount,
        deals.age,
        deals.by,
        deals.strip,
    )
    surv = deals.survival_ratio
    a_key, g_of, t0, t1 = arrivals.key, arrivals.group, arrivals.t0, arrivals.t1
    lam_of, n_of, by_a = arrivals.leads, arrivals.leads_n, arrivals.by
    rate_key, trend_sd, trend_months = arrivals.rate_key, arrivals.trend_sd, arrivals.trend_months
    month, lead_market_sd = arrivals.month, arrivals.market_leads_shock_sd
    lead_own_sd, rho = arrivals.segment_leads_shock_sd, arrivals.shock_rho
    lead_mean, amount_mu, amount_sigma = arrivals.amount, arrivals.amount_mu, arrivals.amount_sigma
    odds_market_sd, odds_own_sd = arrivals.market_shock_sd, arrivals.segment_shock_sd
    end = float(day_period.shape[0])
    n_cols = (MONTHS_BACK + 1) * shocks.seg_key.shape[0]
    shocked = shocks.market_sd[0] > 0.0 or np.any(shocks.own_sd > 0.0)
    for i in prange(n_trials):
        ts = trial_state(seed, trial0 + i)
        conv = np.empty(n_cells)
        conversions(ts, funnel, conv)
        shift = np.zeros((1, n_cols))
        if shocked:
            deal_shifts(seed, trial0 + i, shocks, shift)
        for d in range(key.shape[0]):
            ds = derive(ts, key[d])
            u = to_unit(ds)
            x = shift[0, deals.shock[d]]
            if x != 0.0:
                p = _depth_odds(conv, gs_of[d], n_stages, surv[d])
                u = _depth_scaled(u, p, shifted(p, x))
            _walk(
                ds, u, gs_of[d], 0.0, age[d], strip_of[d], surv[d], amount[d], by_d[d],
                deals.fx[d], conv, funnel, day_period, day_rate, out_enter, out_rev, i,
            )  # fmt: skip
        base = ts ^ ARRIVAL_DOMAIN
        z_trend = trend_draw(base)
        for r in range(a_key.shape[0]):
            rs = derive(base, a_key[r])
            lam = lam_of[r]
            if n_of[r] > 0.0:
                _, x = gamma(branch(derive(base, rate_key[r]), RATE_KEY), n_of[r])
                lam *= x / n_of[r]
            lam *= trend_factor(z_trend, trend_sd[r], trend_months[r])
            lam *= shocked_leads(
                base, derive(base, rate_key[r]), month[r], lead_market_sd[r], lead_own_sd[r], rho[r]
            )
            top = g_of[r] * n_stages
            leads = poisson_inverse(to_unit(mix(branch(rs, COUNT_KEY))), lam)
            for j in range(leads):
                ws = derive(rs, np.uint64(j))
                t = t0[r] + (t1[r] - t0[r]) * to_unit(ws)
                if t >= end:
                    continue
                _count(out_enter, i, day_period[int(t)], 0, by_a[r], 1.0)
                value = lead_amount(
                    branch(ws, AMOUNT_KEY), lead_mean[r], amount_mu[r], amount_sigma[r]
                )
                u = to_unit(mix(branch(ws, _DEPTH_KEY)))
                if odds_market_sd[r] > 0.0 or odds_own_sd[r] > 0.0:
                    p = _depth_odds(conv, top, n_stages, 1.0)
                    q = shocked_odds(
                        base, derive(base, rate_key[r]), month[r], p, odds_market_sd[r],
                        odds_own_sd[r], rho[r],
                    )  # fmt: skip
                    u = _depth_scaled(u, p, q)
                _walk(
                    ws, u, top, t, 0.0, 0, 1.0, value, by_a[r], arrivals.fx[r],
                    conv, funnel, day_period, day_rate, out_enter, out_rev, i,
                )  # fmt: skip
