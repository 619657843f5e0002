"""The Monte Carlo kernel: arrays and scalars in, ``out`` arrays filled. No validation here.

Layout of the inputs (built by :mod:`pipesim.prepare.kernel_inputs`):

- ``funnel`` = (unit_key, unit_conv, unit_n, unit_of, dwell_code, dwell_p1, dwell_p2,
  dwell_table, value_sigma, strip_edges, strip_ratio, strip_lf_max). Dwell parameters
  by code: exponential (mean), gamma (shape, scale, strip table), lognormal (mu,
  sigma), fixed (days). The strip arrays are :mod:`pipesim.prepare.dwell_tables`'. A *unit* is one
  conversion parameter that is drawn once per trial (Beta(conv*n, (1-conv)*n) when
  n > 0). ``unit_of[g, s]`` is the unit used by parameter group g at stage s; dwell
  and value arrays are flat, indexed ``g * S + s``.
- ``deals`` = (key, gs, amount, age, by, strip): ``gs = g * n_stages + stage``; ``strip``
  is the gamma strip holding the deal's age in its stage's dwell law (0 otherwise).
- ``arrivals`` = (key, g, t0, t1, lam, n, amount_mu, amount_sigma, by): one row per
  (month, segment): Poisson(lam) leads spread uniformly on [t0, t1) days.
- ``day_period``: the period of each whole day after as_of; its length is the horizon
  in days (month boundaries fall on whole days, so ``day_period[int(t)]`` is exact).
- ``out_rev``, ``out_won``: [trial, period, 1 + by-group]; column 0 is the whole book.

Every random number comes from a stream derived from (seed, trial, key), so the
result does not depend on the thread count or on blocks and chunks. The open deals'
kernel is :mod:`pipesim.kernels.per_deal` (the fast path's :mod:`pipesim.kernels.winners_only`);
this module holds the per-trial draws, the samplers' dispatch and the arrivals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from pipesim.kernels.random import (
    beta,
    branch,
    derive,
    exponential,
    gamma,
    gamma_strips,
    jit,
    mix,
    normal,
    normal_tail,
    poisson_inverse,
    to_unit,
)

EXPONENTIAL, GAMMA, LOGNORMAL, FIXED = 0, 1, 2, 3

_SEED_DOMAIN = np.uint64(0x5EED5EED5EED5EED)
_CONV_DOMAIN = np.uint64(0xC0C0C0C0C0C0C0C0)
_ARRIVAL_DOMAIN = np.uint64(0xA77A77A77A77A77A)
# Child streams of a deal or lead: 1, 2, ... are its stages; these name the other draws.
_VALUE_KEY = 1_000_001
_AMOUNT_KEY = 1_000_002
_RATE_KEY = 1_000_003
_COUNT_KEY = 1_000_004


@jit
def trial_state(seed: np.uint64, trial: int) -> np.uint64:
    """The root stream of one trial."""
    return derive(mix(seed ^ _SEED_DOMAIN), np.uint64(trial))


@jit(inline=True)
def dwell(
    state: np.uint64,
    code: int,
    p1: float,
    p2: float,
    tab: int,
    strips: tuple,
    age: float,
    strip: int,
) -> tuple[np.uint64, float]:
    """Draw the dwell (days) still to come for a deal already ``age`` days in the stage.

    ``strip`` is the gamma strip that holds the age (0 for a new deal).
    """
    if code == EXPONENTIAL:  # memoryless: the age does not matter
        state, e = exponential(state)
        return state, p1 * e
    if code == GAMMA:
        state, x = gamma_strips(state, p1, strips[0], strips[1], strips[2], tab, age / p2, strip)
        return state, max(p2 * x - age, 0.0)
    if code == LOGNORMAL:
        if age > 0.0:
            state, z = normal_tail(state, (math.log(age) - p1) / p2)
        else:
            state, z = normal(state)
        return state, max(math.exp(p1 + p2 * z) - age, 0.0)
    return state, max(p1 - age, 0.0)


@jit
def multiplier(state: np.uint64, sigma: float) -> float:
    """A lognormal multiplier of mean 1 and log-sd ``sigma`` (1.0 when sigma is 0)."""
    if sigma <= 0.0:
        return 1.0
    state, z = normal(state)
    return math.exp(sigma * z - 0.5 * sigma * sigma)


@jit
def conversions(state: np.uint64, funnel: tuple, out: np.ndarray) -> None:
    """Draw this trial's conversions and fill out[g * S + s] with stage s's conversion."""
    unit_key, unit_conv, unit_n, unit_of = funnel[0], funnel[1], funnel[2], funnel[3]
    conv = np.empty(unit_key.shape[0])
    base = state ^ _CONV_DOMAIN
    for u in range(unit_key.shape[0]):
        c = unit_conv[u]
        n = unit_n[u]
        if n > 0.0 and 0.0 < c < 1.0:
            _, c = beta(derive(base, unit_key[u]), c * n, (1.0 - c) * n)
        conv[u] = c
    n_groups, n_stages = unit_of.shape
    for g in range(n_groups):
        for s in range(n_stages):
            out[g * n_stages + s] = conv[unit_of[g, s]]


@jit
def win_probabilities(state: np.uint64, funnel: tuple, out: np.ndarray) -> None:
    """Draw this trial's conversions and fill out[g * S + s] = P(win | in stage s)."""
    conversions(state, funnel, out)
    n_groups, n_stages = funnel[3].shape
    for g in range(n_groups):
        p = 1.0
        for s in range(n_stages - 1, -1, -1):
            p *= out[g * n_stages + s]
            out[g * n_stages + s] = p


@jit(inline=True)
def _book(out_rev: np.ndarray, out_won: np.ndarray, i: int, k: int, by: int, value: float) -> None:
    out_rev[i, k, 0] += value
    out_won[i, k, 0] += 1.0
    if out_rev.shape[2] > 1:
        out_rev[i, k, 1 + by] += value
        out_won[i, k, 1 + by] += 1.0


@jit
def _arrivals(
    ts: np.uint64,
    pwin: np.ndarray,
    funnel: tuple,
    arrivals: tuple,
    day_period: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
    i: int,
) -> None:
    n_stages, code, p1, p2, tab = (funnel[3].shape[1], funnel[4], funnel[5], funnel[6], funnel[7])
    value_sigma, strips = funnel[8], (funnel[9], funnel[10], funnel[11])
    key, g_of, t0, t1, lam_of, n_of, amount_mu, amount_sigma, by = arrivals
    end = float(day_period.shape[0])
    base = ts ^ _ARRIVAL_DOMAIN
    for r in range(key.shape[0]):
        rs = derive(base, key[r])
        lam = lam_of[r]
        n = n_of[r]
        if n > 0.0:
            _, x = gamma(branch(rs, _RATE_KEY), n)
            lam *= x / n
        top = g_of[r] * n_stages
        # Thinning: the leads that go on to win are Poisson(lam * P(win from the top)).
        winners = poisson_inverse(to_unit(mix(branch(rs, _COUNT_KEY))), lam * pwin[top])
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
            value = math.exp(amount_mu[r])
            if amount_sigma[r] > 0.0:
                _, z = normal(branch(ws, _AMOUNT_KEY))
                value = math.exp(amount_mu[r] + amount_sigma[r] * z)
            if value_sigma[top] > 0.0:
                value *= multiplier(branch(ws, _VALUE_KEY), value_sigma[top])
            _book(out_rev, out_won, i, day_period[int(t)], by[r], value)


@jit
def trial_win_probabilities(seed: np.uint64, trial0: int, funnel: tuple, out: np.ndarray) -> None:
    """out[i]: trial ``trial0 + i``'s P(win | in stage) per (group, stage), as drawn by kernels."""
    for i in range(out.shape[0]):
        win_probabilities(trial_state(seed, trial0 + i), funnel, out[i])


@jit(parallel=True)
def simulate_arrivals(
    seed: np.uint64,
    trial0: int,
    pwin: np.ndarray,
    funnel: tuple,
    arrivals: tuple,
    day_period: np.ndarray,
    out_rev: np.ndarray,
    out_won: np.ndarray,
) -> None:
    """Add the new leads' revenue of trials ``trial0 ..`` (rows of ``out_rev``/``out_won``).

    ``pwin`` from :func:`trial_win_probabilities`. Each trial adds its arrival rows
    in order; the open deals are added before, by :mod:`pipesim.kernels.per_deal` or
    :mod:`pipesim.kernels.winners_only`.
    """
    for i in prange(out_rev.shape[0]):
        _arrivals(
            trial_state(seed, trial0 + i),
            pwin[i],
            funnel,
            arrivals,
            day_period,
            out_rev,
            out_won,
            i,
        )
