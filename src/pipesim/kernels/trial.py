"""Per-trial draws: the trial's root stream, its conversions, dwell times and value multipliers.

Arrays and scalars in, ``out`` arrays filled; no validation. Inputs are the named
tables of :mod:`pipesim.kernels.tables`; outputs are [trial, period, 1 + by-group]
arrays whose column 0 is the whole book, and ``day_period`` maps each whole day
after as_of to its period (month boundaries fall on whole days, so
``day_period[int(t)]`` is exact).

Every random number comes from a stream derived from (seed, trial, key), so the
result does not depend on the thread count or on blocks and chunks. The kernels
built on these: :mod:`pipesim.kernels.per_deal` and :mod:`pipesim.kernels.winners_only`
(open deals), :mod:`pipesim.kernels.arrivals` (new leads),
:mod:`pipesim.kernels.stage_flows` (entries per stage).
"""

from __future__ import annotations

import math

import numpy as np

from pipesim.kernels.jit import jit
from pipesim.kernels.samplers import (
    beta,
    exponential,
    gamma_strips,
    normal,
    normal_tail,
)
from pipesim.kernels.streams import branch, derive, mix, to_unit
from pipesim.kernels.tables import (
    EXPONENTIAL,
    GAMMA,
    LOGNORMAL,
    POOL_EPS,
    DealShocks,
    FunnelTable,
)

SEED_DOMAIN = np.uint64(0x5EED5EED5EED5EED)
CONV_DOMAIN = np.uint64(0xC0C0C0C0C0C0C0C0)
ARRIVAL_DOMAIN = np.uint64(0xA77A77A77A77A77A)
# Child streams of a deal or lead: 1, 2, ... are its stages; these name the other draws.
VALUE_KEY = 1_000_001
AMOUNT_KEY = 1_000_002
RATE_KEY = 1_000_003
COUNT_KEY = 1_000_004
TREND_KEY = np.uint64(0x7E4D7E4D7E4D7E4D)  # the trial's draw of the lead trend's error
SHOCK_KEY = np.uint64(0x5A0C5A0C5A0C0000)  # + month: the month's shock on new leads' odds
LEADS_SHOCK_KEY = np.uint64(0x1EAD5A0C1EAD0000)  # + month: the month's shock on lead volumes
SLIP_KEY = 1_000_006  # a win's booking: whether it slips to a later month


@jit
def trial_state(seed: np.uint64, trial: int) -> np.uint64:
    """The root stream of one trial."""
    return derive(mix(seed ^ SEED_DOMAIN), np.uint64(trial))


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
def trend_draw(base: np.uint64) -> float:
    """The trial's normal for the lead trend's error (stream ``base`` keyed by TREND_KEY)."""
    _, z = normal(derive(base, TREND_KEY))
    return z


@jit(inline=True)
def trend_factor(z: float, sd: float, months: float) -> float:
    """The lead rate's multiplier for a trend known up to ``sd`` a month, ``months`` ahead.

    ``z`` is the trial's :func:`trend_draw`, shared by every row:
    ``exp(sd·months·z − (sd·months)²/2)``, mean 1, its spread growing with the
    horizon. 1.0 when sd is 0.
    """
    if sd <= 0.0:
        return 1.0
    s = sd * months
    return math.exp(s * z - 0.5 * s * s)


@jit
def shock_path(stream: np.uint64, key: np.uint64, month: int, rho: float) -> float:
    """The month's standard normal shock of a path with month-to-month persistence ``rho``.

    Month k's innovation is the normal of stream ``stream`` keyed ``key + k``; the path
    is AR(1) and stationary: x_0 = z_0, x_k = rho·x_(k-1) + sqrt(1 - rho²)·z_k, so each
    month is a standard normal and months k apart correlate rho^k. ``rho`` 0: z_month
    alone (independent months).
    """
    if rho <= 0.0:
        _, z = normal(derive(stream, key + np.uint64(month)))
        return z
    _, x = normal(derive(stream, key))
    step = math.sqrt(1.0 - rho * rho)
    for k in range(1, month + 1):
        _, z = normal(derive(stream, key + np.uint64(k)))
        x = rho * x + step * z
    return x


@jit
def past_shock(stream: np.uint64, key: np.uint64, back: int, rho: float) -> float:
    """The standard normal shock ``back`` months before as_of's on :func:`shock_path`'s path.

    The path continued backwards from month 0: month -k's innovation is keyed
    ``key - k``, x_(-k) = rho·x_(-k+1) + sqrt(1 - rho²)·z_(-k), so months -a and b
    correlate rho^(a+b) as on a stationary AR(1). ``back`` 0 is month 0's shock.
    """
    if rho <= 0.0:
        _, z = normal(derive(stream, key - np.uint64(back)))
        return z
    _, x = normal(derive(stream, key))
    step = math.sqrt(1.0 - rho * rho)
    for k in range(1, back + 1):
        _, z = normal(derive(stream, key - np.uint64(k)))
        x = rho * x + step * z
    return x


@jit
def shifted(p: float, shift: float) -> float:
    """``p`` moved by ``shift`` on the logit scale (0 and 1, or no shift, stay as they are)."""
    if shift == 0.0 or p <= 0.0 or p >= 1.0:
        return p
    x = math.log(p / (1.0 - p)) + shift
    return 1.0 / (1.0 + math.exp(-x))


@jit
def deal_shifts(seed: np.uint64, trial0: int, shocks: DealShocks, out: np.ndarray) -> None:
    """out[i]: trial ``trial0 + i``'s logit shift of each column of :class:`DealShocks`.

    Column ``back * segments + g``: the market's shock ``back`` months before as_of's
    times its sd plus segment g's own times its sd, on the new leads' paths (streams
    of :func:`shocked_odds`), so an open deal and a new lead of one month share it.
    """
    n_seg = shocks.seg_key.shape[0]
    months = out.shape[1] // n_seg
    market_sd, rho = shocks.market_sd[0], shocks.rho[0]
    path = np.empty(months)
    for i in range(out.shape[0]):
        base = trial_state(seed, trial0 + i) ^ ARRIVAL_DOMAIN
        out[i, :] = 0.0
        if market_sd > 0.0:  # every segment's columns
            _past_path(base, rho, path)
            for back in range(months):
                for g in range(n_seg):
                    out[i, back * n_seg + g] += market_sd * path[back]
        for g in range(1, n_seg):  # segment 0 is none
            sd = shocks.own_sd[g]
            if sd > 0.0:
                _past_path(derive(base, shocks.seg_key[g]), rho, path)
                for back in range(months):
                    out[i, back * n_seg + g] += sd * path[back]


@jit
def _past_path(stream: np.uint64, rho: float, path: np.ndarray) -> None:
    """path[k] = :func:`past_shock` (stream, SHOCK_KEY, k, rho) for every k, in one pass."""
    if rho <= 0.0:
        for k in range(path.shape[0]):
            _, path[k] = normal(derive(stream, SHOCK_KEY - np.uint64(k)))
        return
    step = math.sqrt(1.0 - rho * rho)
    _, x = normal(derive(stream, SHOCK_KEY))
    path[0] = x
    for k in range(1, path.shape[0]):
        _, z = normal(derive(stream, SHOCK_KEY - np.uint64(k)))
        x = rho * x + step * z
        path[k] = x


@jit
def shifted_odds(
    pwin: np.ndarray, shift: np.ndarray, cell: np.ndarray, column: np.ndarray, out: np.ndarray
) -> None:
    """out[i, k]: trial row i's P(win) of cell ``cell[k]`` moved by shift column ``column[k]``."""
    for i in range(out.shape[0]):
        for k in range(out.shape[1]):
            out[i, k] = shifted(pwin[i, cell[k]], shift[i, column[k]])


@jit
def shocked_odds(
    base: np.uint64,
    segment: np.uint64,
    month: int,
    p: float,
    market_sd: float,
    own_sd: float,
    rho: float = 0.0,
) -> float:
    """P(win) of a new lead of ``month`` after that month's shocks on the logit scale.

    The market's shock (one path per trial, stream ``base``; :func:`shock_path` with
    persistence ``rho``) times ``market_sd``, plus the segment's own (stream
    ``segment``) times ``own_sd``; 0 and 1 stay as they are.
    """
    if (market_sd <= 0.0 and own_sd <= 0.0) or p <= 0.0 or p >= 1.0:
        return p
    x = math.log(p / (1.0 - p))
    if market_sd > 0.0:
        x += market_sd * shock_path(base, SHOCK_KEY, month, rho)
    if own_sd > 0.0:
        x += own_sd * shock_path(segment, SHOCK_KEY, month, rho)
    return 1.0 / (1.0 + math.exp(-x))


@jit
def shocked_leads(
    base: np.uint64,
    segment: np.uint64,
    month: int,
    market_sd: float,
    own_sd: float,
    rho: float = 0.0,
) -> float:
    """The lead rate's multiplier in ``month``: that month's shocks on the log scale, mean 1.

    ``exp(market_sd·z_m + own_sd·z_s − (market_sd² + own_sd²)/2)``: z_m the market's
    path (stream ``base``), z_s the segment's own (stream ``segment``), each a
    :func:`shock_path` with persistence ``rho``; independent of the odds' shocks. 1.0
    when both sds are 0.
    """
    if market_sd <= 0.0 and own_sd <= 0.0:
        return 1.0
    x = -0.5 * (market_sd * market_sd + own_sd * own_sd)
    if market_sd > 0.0:
        x += market_sd * shock_path(base, LEADS_SHOCK_KEY, month, rho)
    if own_sd > 0.0:
        x += own_sd * shock_path(segment, LEADS_SHOCK_KEY, month, rho)
    return math.exp(x)


@jit
def multiplier(state: np.uint64, sigma: float) -> float:
    """A lognormal multiplier of mean 1 and log-sd ``sigma`` (1.0 when sigma is 0)."""
    if sigma <= 0.0:
        return 1.0
    state, z = normal(state)
    return math.exp(sigma * z - 0.5 * sigma * sigma)


@jit(inline=True)
def lead_amount(state: np.uint64, amount: float, mu: float, sigma: float) -> float:
    """A new lead's amount: lognormal of log-mean ``mu`` and log-sd ``sigma``.

    A fixed amount (sigma 0) is ``amount`` itself, bit for bit: ``exp(log(1000))``
    is 999.9999999999998, and 60 such wins would miss a 60,000 target.
    """
    if sigma <= 0.0:
        return amount
    _, z = normal(state)
    return math.exp(mu + sigma * z)


@jit
def conversions(state: np.uint64, funnel: FunnelTable, out: np.ndarray) -> None:
    """Draw this trial's conversions and fill out[g * S + s] with stage s's conversion.

    A unit without a parent: Beta(c n, (1 - c) n), or c itself when n is 0. A
    child (pooled with weight m > 0 towards its parent, drawn before it): given the
    parent's draw x_p of mean c_p, Beta(w·mean, w·(1 − mean)) with w = n + m and
    mean = c + m/w · (x_p − c_p), which is the segment's posterior when its prior is
    Beta(m·x_p, m·(1 − x_p)): the whole stage's uncertainty is shared by every
    segment, each segment adds its own (its evidence n counted once).
    """
    unit_key, unit_conv, unit_n, unit_of = (
        funnel.unit_key,
        funnel.unit_conv,
        funnel.unit_n,
        funnel.unit_of,
    )
    parent, pool = funnel.unit_parent, funnel.unit_pool
    conv = np.empty(unit_key.shape[0])
    base = state ^ CONV_DOMAIN
    for u in range(unit_key.shape[0]):
        c = unit_conv[u]
        n = unit_n[u]
        p = parent[u]
        if p >= 0 and 0.0 < c < 1.0:
            m = pool[u]
            w = n + m
            mean = min(max(c + m / w * (conv[p] - unit_conv[p]), POOL_EPS), 1.0 - POOL_EPS)
            _, c = beta(derive(base, unit_key[u]), mean * w, (1.0 - mean) * w)
        elif n > 0.0 and 0.0 < c < 1.0:
            _, c = beta(derive(base, unit_key[u]), c * n, (1.0 - c) * n)
        conv[u] = c
    n_groups, n_stages = unit_of.shape
    for g in range(n_groups):
        for s in range(n_stages):
            out[g * n_stages + s] = conv[unit_of[g, s]]


@jit(inline=True)
def advance_odds(c: float, ratio: float) -> float:
    """P(advance) of a deal still open whose survival ratio S_loss/S_adv is ``ratio``.

    ``c / (c + (1 - c) ratio)``: the stage's conversion ``c`` when ``ratio`` is 1
    (see :mod:`pipesim.prepare.loss_clock`); 0 when the advance clock has run out
    (``ratio`` infinite) unless no deal is ever lost (``c`` = 1).
    """
    if c <= 0.0 or c >= 1.0:
        return c
    return c / (c + (1.0 - c) * ratio)


@jit(inline=True)
def win_probability(
    pwin: np.ndarray, conv: np.ndarray, i: int, cell: int, n_stages: int, ratio: float
) -> float:
    """P(win) in trial row ``i`` of a deal in ``cell`` with survival ratio ``ratio``.

    ``pwin`` and ``conv`` are [trial, cell]: P(win | in stage) and the conversions
    (indexed here, not sliced: views defeat the kernels' vector loops). A ratio of
    exactly 1 gives ``pwin[i, cell]`` itself (the same bits as one clock).
    """
    if ratio == 1.0:
        return pwin[i, cell]
    later = pwin[i, cell + 1] if (cell % n_stages) + 1 < n_stages else 1.0
    return advance_odds(conv[i, cell], ratio) * later


@jit
def trial_conversions(seed: np.uint64, trial0: int, funnel: FunnelTable, out: np.ndarray) -> None:
    """out[i]: trial ``trial0 + i``'s conversion per (group, stage) cell, as drawn by kernels."""
    for i in range(out.shape[0]):
        conversions(trial_state(seed, trial0 + i), funnel, out[i])


@jit
def win_probabilities(state: np.uint64, funnel: FunnelTable, out: np.ndarray) -> None:
    """Draw this trial's conversions and fill out[g * S + s] = P(win | in stage s)."""
    conversions(state, funnel, out)
    n_groups, n_stages = funnel.unit_of.shape
    for g in range(n_groups):
        p = 1.0
        for s in range(n_stages - 1, -1, -1):
            p *= out[g * n_stages + s]
            out[g * n_stages + s] = p


@jit(inline=True)
def booked(k: int, state: np.uint64, slips: np.ndarray) -> int:
    """The period a win due in period ``k`` is booked in (-1: after the horizon).

    ``slips`` is [3, period] (no columns: no slips): row 0 the chance that a win due
    in the period is held to the quarter-end month whose index is row 1 (the rush),
    row 2 the chance that a win due in the period it has reached is booked the period
    after (a slow month). Two uniforms of the win's stream ``state`` decide.
    """
    if slips.shape[1] == 0 or k < 0:
        return k
    n = slips.shape[1]
    if slips[0, k] > 0.0 and to_unit(mix(branch(state, 1))) < slips[0, k]:
        k = int(slips[1, k])
        if k >= n:
            return -1
    if slips[2, k] > 0.0 and to_unit(mix(branch(state, 2))) < slips[2, k]:
        k += 1
        if k >= n:
            return -1
    return k


@jit(inline=True)
def book(out_rev: np.ndarray, out_won: np.ndarray, i: int, k: int, by: int, value: float) -> None:
    """Book one win of ``value`` in trial ``i``, period ``k``: whole book and its by-group."""
    out_rev[i, k, 0] += value
    out_won[i, k, 0] += 1.0
    if out_rev.shape[2] > 1:
        out_rev[i, k, 1 + by] += value
        out_won[i, k, 1 + by] += 1.0


@jit
def trial_win_probabilities(
    seed: np.uint64, trial0: int, funnel: FunnelTable, out: np.ndarray
) -> None:
    """out[i]: trial ``trial0 + i``'s P(win | in stage) per (group, stage), as drawn by kernels."""
    for i in range(out.shape[0]):
        win_probabilities(trial_state(seed, trial0 + i), funnel, out[i])
