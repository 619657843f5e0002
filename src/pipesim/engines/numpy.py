"""The NumPy reference engine: the same model, written independently, vectorised over trials.

It is the oracle for the numba kernel in the tests (equal within sampling error,
not bit for bit: it draws from numpy's PCG64) and the peer in the benchmarks.
Conditional dwell times use the inverse survival function (scipy), where the
kernel uses rejection samplers; new leads are simulated one by one with a coin
flip per stage, where the kernel thins the Poisson process.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from pipesim.kernels.streams import seed_bits
from pipesim.kernels.tables import (
    EXPONENTIAL,
    FIXED,
    GAMMA,
    LOGNORMAL,
    MONTHS_BACK,
    POOL_EPS,
    ArrivalTable,
    FunnelTable,
)
from pipesim.prepare.kernel_inputs import Prepared
from pipesim.scenario.close_law import LATENESS_LEVELS

_MAX_CELLS = 2_000_000  # trials x deals held at once


def _dwell(
    rng: np.random.Generator,
    code: np.ndarray,
    p1: np.ndarray,
    p2: np.ndarray,
    age: np.ndarray | None = None,
) -> np.ndarray:
    """Dwell times for parameter arrays (per element); remaining time when ``age`` is given."""
    out = np.empty(code.shape)
    if age is None:
        age = np.zeros(code.shape)
    for kind in (EXPONENTIAL, GAMMA, LOGNORMAL, FIXED):
        m = code == kind
        if not m.any():
            continue
        a, x1, x2 = age[m], p1[m], p2[m]
        if kind == EXPONENTIAL:
            out[m] = rng.exponential(x1)
        elif kind == FIXED:
            out[m] = np.maximum(x1 - a, 0.0)
        elif kind == GAMMA:
            u = rng.random(a.shape)
            tail = special.gammaincc(x1, a / x2)
            draw = special.gammainccinv(x1, np.where(u > 0, u, 0.5) * tail) * x2
            fresh = a <= 0
            draw[fresh] = rng.gamma(x1[fresh], x2[fresh])
            out[m] = np.maximum(draw - a, 0.0)
        else:
            u = rng.random(a.shape)
            with np.errstate(divide="ignore"):
                z0 = (np.log(a) - x1) / x2
            z = special.ndtri(1.0 - np.where(u > 0, u, 0.5) * special.ndtr(-z0))
            z = np.where(a > 0, z, rng.standard_normal(a.shape))
            out[m] = np.maximum(np.exp(x1 + x2 * z) - a, 0.0)
    return out


def _survival(dist: np.ndarray, mean: np.ndarray, cv: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(T > t) per element for laws by name, mean and cv (inf mean: never ends)."""
    out = np.ones(t.shape)
    finite = np.isfinite(mean)
    fixed = finite & (cv <= 0)
    out[fixed] = t[fixed] < mean[fixed]
    logn = finite & (cv > 0) & (dist == "lognormal")
    sigma = np.sqrt(np.log1p(cv[logn] ** 2))
    out[logn] = stats.lognorm.sf(t[logn], sigma, scale=mean[logn] * np.exp(-0.5 * sigma**2))
    gam = finite & (cv > 0) & ~logn
    out[gam] = stats.gamma.sf(t[gam], 1.0 / cv[gam] ** 2, scale=mean[gam] * cv[gam] ** 2)
    return out


def _advance_odds(prepared: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deals whose odds depend on their age (two clocks), with S_adv and S_loss at their age."""
    deals = prepared.deals
    cell = deals.cell
    loss_mean = np.asarray(prepared.loss_mean, dtype=np.float64).ravel()
    aged = np.flatnonzero(~np.isnan(loss_mean[cell]) & (deals.age > 0))
    c = cell[aged]
    ravel = lambda a: np.asarray(a).ravel()[c]  # noqa: E731
    s_adv = _survival(
        ravel(prepared.dwell_dist), ravel(prepared.dwell_mean), ravel(prepared.dwell_cv),
        deals.age[aged],
    )  # fmt: skip
    s_loss = _survival(
        ravel(prepared.loss_dist), loss_mean[c], ravel(prepared.loss_cv), deals.age[aged]
    )
    rho = ravel(prepared.loss_recorded)  # the share of losses recorded; the rest stay open
    return aged, s_adv, (1.0 - rho) + rho * s_loss


def _book(
    rev: np.ndarray,
    won: np.ndarray,
    trial: np.ndarray,
    t: np.ndarray,
    value: np.ndarray,
    by: np.ndarray,
    bounds: np.ndarray,
    slips: np.ndarray,
    rng: np.random.Generator,
) -> None:
    inside = t < bounds[-1]
    trial, t, value, by = trial[inside], t[inside], value[inside], by[inside]
    period = np.searchsorted(bounds, t, side="right") - 1
    if slips.shape[1]:  # booked later than due (pipesim.kernels.trial.booked)
        held = rng.random(period.size) < slips[0, period]
        period = np.where(held, slips[1, period].astype(np.int64), period)
        kept = period < slips.shape[1]
        trial, value, by, period = trial[kept], value[kept], by[kept], period[kept]
        period = period + (rng.random(period.size) < slips[2, period])
        kept = period < slips.shape[1]
        trial, value, by, period = trial[kept], value[kept], by[kept], period[kept]
    _, n_p, width = rev.shape
    cells = [(np.zeros_like(by), 0)] if width == 1 else [(np.zeros_like(by), 0), (by, 1)]
    for col, offset in cells:
        flat = (trial * n_p + period) * width + col + offset
        rev += np.bincount(flat, weights=value, minlength=rev.size).reshape(rev.shape)
        won += np.bincount(flat, minlength=won.size).reshape(won.shape)


def _at_rate(day_rate: np.ndarray, fx: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Company currency per unit of each win's currency on its won day (past the end: the last)."""
    day = np.minimum(t, day_rate.shape[1] - 1).astype(np.int64)
    return day_rate[fx, np.maximum(day, 0)]


def _conversions(rng: np.random.Generator, funnel: FunnelTable, tb: int) -> np.ndarray:
    """[trial, unit] conversions: roots from their Beta, pooled segments around their parent."""
    unit_conv, unit_n = funnel.unit_conv, funnel.unit_n
    parent, pool = funnel.unit_parent, funnel.unit_pool
    inside = (unit_conv > 0) & (unit_conv < 1)
    conv = np.broadcast_to(unit_conv, (tb, unit_conv.size)).copy()
    roots = (unit_n > 0) & inside & (parent < 0)
    c, n = unit_conv[roots], unit_n[roots]
    conv[:, roots] = rng.beta(c * n, (1 - c) * n, size=(tb, c.size))
    kids = np.flatnonzero(inside & (parent >= 0))
    if kids.size:
        p, w = parent[kids], unit_n[kids] + pool[kids]
        shift = pool[kids] / w * (conv[:, p] - unit_conv[p])
        mean = np.clip(unit_conv[kids] + shift, POOL_EPS, 1.0 - POOL_EPS)
        conv[:, kids] = rng.beta(mean * w, (1.0 - mean) * w)
    return conv


def _shock_normals(
    rng: np.random.Generator, arrivals: ArrivalTable, tb: int, back: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """[trial, month] and [trial, segment, month] standard normal shock paths.

    The market's and each arrivals segment's (segments in the order of their sorted
    ``rate_key``), over the months ``-back`` .. the arrivals' last (column ``back`` is
    as_of's month): stationary AR(1) paths with the rows' persistence (0: months
    independent), run forwards and backwards from month 0 as
    :func:`pipesim.kernels.trial.shock_path` and :func:`pipesim.kernels.trial.past_shock`.
    """
    months = int(arrivals.month.max()) + 1 if arrivals.rows else 1
    n_seg = np.unique(arrivals.rate_key).size
    rho = float(arrivals.shock_rho.max()) if arrivals.rows else 0.0
    n = back + months
    step = np.sqrt(1.0 - rho * rho)
    paths = []
    for z in (rng.standard_normal((tb, n)), rng.standard_normal((tb, n_seg, n))):
        for k in range(back + 1, n if rho > 0 else 0):
            z[..., k] = rho * z[..., k - 1] + step * z[..., k]
        for k in range(back - 1 if rho > 0 else -1, -1, -1):
            z[..., k] = rho * z[..., k + 1] + step * z[..., k]
        paths.append(z)
    return paths[0], paths[1]


def _row_shocks(
    arrivals: ArrivalTable, paths: tuple[np.ndarray, np.ndarray], back: int
) -> tuple[np.ndarray, np.ndarray]:
    """[trial, row] the arrival rows' market and segment shocks from :func:`_shock_normals`."""
    _, seg = np.unique(arrivals.rate_key, return_inverse=True)
    col = back + arrivals.month
    return paths[0][:, col], paths[1][:, seg, col]


def _shift(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``p`` moved by ``x`` on the logit scale; 0 and 1 stay as they are."""
    inside = (p > 0) & (p < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(p / (1 - p)) + x
    return np.where(inside, 1.0 / (1.0 + np.exp(-np.where(inside, y, 0.0))), p)


def _deal_shift(
    prepared: Prepared, column: np.ndarray, paths: tuple[np.ndarray, np.ndarray], back: int
) -> np.ndarray:
    """[trial, deal] open deals' logit shifts: their stage-entry month's shocks (``column``s)."""
    shocks = prepared.deal_shocks
    n_cols = len(shocks.seg_key)
    ago, g = column // n_cols, column % n_cols
    col = back - ago
    x = shocks.market_sd[0] * paths[0][:, col]
    own = g > 0
    if own.any():
        keys = np.unique(prepared.arrivals.rate_key)
        seg = np.searchsorted(keys, shocks.seg_key[g[own]])
        x[:, own] += shocks.own_sd[g[own]] * paths[1][:, seg, col[own]]
    return x


def _lateness(knots: np.ndarray, tail: float, low: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Lateness at uniforms ``u`` of one law row, conditioned on lateness >= ``low``.

    The law: quantiles ``knots`` at :data:`LATENESS_LEVELS` joined by straight lines,
    above the last an exponential tail of mean ``tail`` (by inversion of its cdf).
    """
    levels = np.array(LATENESS_LEVELS)
    last, top = knots[-1], levels[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        cdf = np.where(
            low <= last,
            np.interp(low, knots, levels),
            1.0 - (1.0 - top) * np.exp(-(low - last) / tail),
        )
    w = cdf + (1.0 - cdf) * u
    with np.errstate(divide="ignore", invalid="ignore"):
        tail_part = last - tail * np.log((1.0 - w) / (1.0 - top))
    return np.maximum(np.where(w <= top, np.interp(w, levels, knots), tail_part), low)


def _dated(
    prepared: Prepared,
    rng: np.random.Generator,
    tb: int,
    odds_paths: tuple[np.ndarray, np.ndarray] | None,
    rev: np.ndarray,
    won: np.ndarray,
) -> None:
    """Add the deals timed by their stated close dates (the dated kernel's law) to rev/won."""
    dated = prepared.dated
    assert dated is not None and prepared.calendar_day_period is not None
    p_row = np.broadcast_to(dated.law_p, (tb, dated.law_p.size)).copy()
    n = dated.law_n
    fuzzy = (n > 0) & (dated.law_p > 0) & (dated.law_p < 1)
    if fuzzy.any():  # each law row's p_win drawn once per trial
        p, m = dated.law_p[fuzzy], n[fuzzy]
        p_row[:, fuzzy] = rng.beta(p * m, (1 - p) * m, size=(tb, int(fuzzy.sum())))
    p_deal = p_row[:, dated.row]
    if odds_paths is not None:
        p_deal = _shift(p_deal, _deal_shift(prepared, dated.shock, odds_paths, MONTHS_BACK))
    wt, wd = np.nonzero(rng.random(p_deal.shape) < p_deal)
    late = np.empty(wd.size)
    u = rng.random(wd.size)
    low = -dated.due[wd]
    for r in np.unique(dated.row[wd]):
        at = dated.row[wd] == r
        late[at] = _lateness(dated.law_knots[r], dated.law_tail[r], low[at], u[at])
    t = np.maximum(dated.due[wd] + late, 0.0)
    sig = dated.value_sigma[wd]
    value = dated.amount[wd] * np.exp(sig * rng.standard_normal(wd.size) - 0.5 * sig**2)
    value = value * _at_rate(prepared.day_rate, dated.fx[wd], np.floor(t))
    calendar = np.concatenate([[0], np.cumsum(np.bincount(prepared.calendar_day_period))]).astype(
        np.float64
    )
    _book(rev, won, wt, t, value, dated.by[wd], calendar, np.zeros((3, 0)), rng)


def _shocked_leads(rng: np.random.Generator, arrivals: ArrivalTable, tb: int) -> np.ndarray:
    """[trial, row] lead-rate multipliers: the month's market and segment log shocks, mean 1."""
    market, own = arrivals.market_leads_shock_sd, arrivals.segment_leads_shock_sd
    z_market, z_own = _row_shocks(arrivals, _shock_normals(rng, arrivals, tb), 0)
    return np.exp(market * z_market + own * z_own - 0.5 * (market**2 + own**2))


def run(
    prepared: Prepared, trials: int, seed: int, *, thin_arrivals: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``trials`` futures; same outputs as :func:`pipesim.engines.numba.run`.

    With ``thin_arrivals`` the new leads are thinned as in the kernel (only the
    Poisson number of eventual winners is drawn): the fastest NumPy form, used
    by the benchmarks. Without it every lead walks the funnel (the oracle form).
    """
    funnel, deals, arrivals = prepared.funnel, prepared.deals, prepared.arrivals
    unit_of = funnel.unit_of
    code, p1, p2, value_sigma = (
        funnel.dwell_code,
        funnel.dwell_p1,
        funnel.dwell_p2,
        funnel.value_sigma,
    )
    key, gs_of, amount, age, deal_by = deals.key, deals.cell, deals.amount, deals.age, deals.by
    arr_g, t0, t1, arr_by = arrivals.group, arrivals.t0, arrivals.t1, arrivals.by
    lam, lam_n = arrivals.leads, arrivals.leads_n
    amount_mu, amount_sigma, lead_mean = arrivals.amount_mu, arrivals.amount_sigma, arrivals.amount
    n_groups, n_stages = unit_of.shape
    bounds = prepared.bounds
    rng = np.random.default_rng([int(seed_bits(seed)), 0x5EF])
    width = 1 + len(prepared.by_values)
    rev = np.zeros((trials, len(prepared.periods), width))
    won = np.zeros_like(rev)
    n_deals = key.shape[0]
    block = max(1, min(trials, _MAX_CELLS // max(n_deals, 1)))
    s0_of = gs_of % n_stages
    aged, s_adv, s_loss = _advance_odds(prepared)
    for first in range(0, trials, block):
        tb = min(block, trials - first)
        conv = _conversions(rng, funnel, tb)
        conv_gs = conv[:, unit_of].reshape(tb, n_groups * n_stages)
        # P(win | in stage s) = product of this and later conversions.
        pwin = np.flip(np.cumprod(np.flip(conv_gs.reshape(tb, n_groups, n_stages), 2), 2), 2)
        pwin = pwin.reshape(tb, -1)
        r_rev, r_won = rev[first : first + tb], won[first : first + tb]
        odds_paths, back = None, MONTHS_BACK  # the odds' shock paths, drawn when first needed

        # Open deals: one uniform decides the win; timing only for the winners.
        if n_deals:
            p_deal = pwin[:, gs_of]
            if aged.size:
                # Two clocks: P(advance | open at its age) = c S_adv / (c S_adv + (1-c) S_loss).
                cells = gs_of[aged]
                c = conv_gs[:, cells]
                both = c * s_adv + (1.0 - c) * s_loss
                with np.errstate(invalid="ignore", divide="ignore"):
                    odds = np.where(both > 0, c * s_adv / both, c)
                last = (cells % n_stages) == n_stages - 1
                later = np.where(last, 1.0, pwin[:, np.where(last, cells, cells + 1)])
                p_deal[:, aged] = odds * later
            if prepared.deal_shocks.active:  # the month each entered its stage moves its odds
                odds_paths = _shock_normals(rng, arrivals, tb, MONTHS_BACK)
                shift = _deal_shift(prepared, deals.shock, odds_paths, MONTHS_BACK)
                p_deal = _shift(p_deal, shift)
            wins = rng.random((tb, n_deals)) < p_deal
            wt, wd = np.nonzero(wins)
            gs = gs_of[wd]
            t = _dwell(rng, code[gs], p1[gs], p2[gs], age[wd])
            for s in range(1, n_stages):
                later = s0_of[wd] + s < n_stages
                idx = gs[later] + s
                t[later] += _dwell(rng, code[idx], p1[idx], p2[idx])
            sig = value_sigma[gs]
            z = rng.standard_normal(sig.shape)
            value = amount[wd] * np.where(sig > 0, np.exp(sig * z - 0.5 * sig**2), 1.0)
            # Converted at the won day's rate, not at the (slipped) booking date.
            value = value * _at_rate(prepared.day_rate, deals.fx[wd], t)
            _book(r_rev, r_won, wt, t, value, deal_by[wd], bounds, prepared.slips, rng)

        # Deals timed by their stated close dates: the law's odds, date plus lateness.
        if prepared.dated is not None and prepared.dated.rows:
            if odds_paths is None and prepared.deal_shocks.active:
                odds_paths = _shock_normals(rng, arrivals, tb, MONTHS_BACK)
            _dated(prepared, rng, tb, odds_paths, r_rev, r_won)

        # New leads: every lead drawn, walked through the funnel stage by stage.
        if lam.size:
            rate = np.broadcast_to(lam, (tb, lam.size)).copy()
            fuzzy = lam_n > 0
            if fuzzy.any():  # one draw per trial and segment (rows of a segment share n)
                keys, head, seg = np.unique(
                    arrivals.rate_key[fuzzy], return_index=True, return_inverse=True
                )
                n_seg = lam_n[fuzzy][head]
                x = rng.gamma(n_seg, 1.0 / n_seg, size=(tb, keys.size))
                rate[:, fuzzy] *= x[:, seg]
            s = arrivals.trend_sd * arrivals.trend_months  # one normal per trial, every row
            if (s > 0).any():
                z = rng.standard_normal((tb, 1))
                rate *= np.exp(s * z - 0.5 * s * s)
            if ((arrivals.market_leads_shock_sd > 0) | (arrivals.segment_leads_shock_sd > 0)).any():
                rate *= _shocked_leads(rng, arrivals, tb)
            shocked = (arrivals.market_shock_sd > 0) | (arrivals.segment_shock_sd > 0)
            thin = thin_arrivals or bool(shocked.any())  # shocked odds: thinned, as the kernel
            if shocked.any():  # the new leads' share of the month's paths
                if odds_paths is None:
                    odds_paths, back = _shock_normals(rng, arrivals, tb), 0
                z_market, z_own = _row_shocks(arrivals, odds_paths, back)
                x = arrivals.market_shock_sd * z_market + arrivals.segment_shock_sd * z_own
                rate *= _shift(pwin[:, arr_g * n_stages], x)
            elif thin:
                rate *= pwin[:, arr_g * n_stages]
            count = rng.poisson(rate)
            lt = np.repeat(np.repeat(np.arange(tb), lam.size), count.ravel())
            lr = np.repeat(np.tile(np.arange(lam.size), tb), count.ravel())
            top = arr_g[lr] * n_stages
            if not thin:
                alive = np.ones(lt.size, dtype=bool)
                for s in range(n_stages):
                    alive &= rng.random(lt.size) < conv_gs[lt, top + s]
                lt, lr, top = lt[alive], lr[alive], top[alive]
            t = t0[lr] + (t1[lr] - t0[lr]) * rng.random(lr.size)
            for s in range(n_stages):
                t += _dwell(rng, code[top + s], p1[top + s], p2[top + s])
            z = rng.standard_normal(lr.size)
            # A fixed amount is booked as given (exp(log(1000)) is 999.9999999999998).
            fixed = amount_sigma[lr] <= 0
            value = np.where(fixed, lead_mean[lr], np.exp(amount_mu[lr] + amount_sigma[lr] * z))
            sig = value_sigma[top]
            value = value * np.exp(sig * rng.standard_normal(sig.shape) - 0.5 * sig**2)
            # Converted at the won day's rate, not at the (slipped) booking date.
            value = value * _at_rate(prepared.day_rate, arrivals.fx[lr], t)
            _book(r_rev, r_won, lt, t, value, arr_by[lr], bounds, prepared.slips, rng)
    return rev, won
