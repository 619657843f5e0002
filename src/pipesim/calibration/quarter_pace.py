"""Calendar effects on closing from the wins' dates: the quarter-end rush and slow months.

The rush (:func:`quarter_paces`, as booking slips by :func:`rush_slips`) and, with two
years of wins, the months whose wins are booked the month after (:func:`month_slips`);
:func:`due_dates` takes the slips out of the wins' dates so the clocks are fitted on
the time to when the wins were due.

Over the complete calendar quarters before as_of that hold wins (the last
:data:`MAX_QUARTERS` at most), each month's wins are compared with what an even
pace inside its quarter would give (the quarter's wins spread by days), so a
trend from quarter to quarter is not mistaken for a rush: the pace of month j of
the quarter is observed / expected, summed over the quarters. The paces are used
only with at least :data:`MIN_QUARTERS` quarters and when they differ from 1 more
than chance allows: a chi-square test (2 degrees of freedom) whose variance is
widened by the dispersion of the quarters around the fitted paces (drift makes
monthly counts vary more than Poisson), at level :data:`LEVEL`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MIN_QUARTERS = 4
MAX_QUARTERS = 8
LEVEL = 0.01


def _quarters(year_start: int) -> str:
    """The pandas frequency of the quarters of a fiscal year starting in ``year_start``."""
    end = (year_start - 2) % 12  # the month before the start, 0: January
    names = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    return f"Q-{names[end]}"


def quarter_paces(
    won_at: pd.Series, cut: pd.Timestamp, year_start: int = 1
) -> tuple[tuple[float, float, float], str]:
    """``(paces, why)``: the paces of months 1-3 of a quarter ((1, 1, 1) when not used).

    ``won_at``: the wins' dates (before ``cut``). ``why`` says what was found, for the
    calibration report (empty when there are too few quarters to say anything).
    """
    even = (1.0, 1.0, 1.0)
    last = cut.to_period(_quarters(year_start)) - 1  # the last complete quarter
    quarters = won_at[won_at < cut].dt.to_period(_quarters(year_start))
    seen = sorted(q for q in quarters.unique() if q <= last)[-MAX_QUARTERS:]
    if len(seen) < MIN_QUARTERS:
        return even, ""
    months = won_at.dt.to_period("M")
    observed = np.zeros((len(seen), 3))
    expected = np.zeros((len(seen), 3))
    for i, q in enumerate(seen):
        ms = pd.period_range(q.start_time, q.end_time, freq="M")
        counts = np.array([(months == m).sum() for m in ms], dtype=float)
        days = np.array([m.days_in_month for m in ms], dtype=float)
        observed[i] = counts
        expected[i] = counts.sum() * days / days.sum()
    o, e = observed.sum(axis=0), expected.sum(axis=0)
    pace = o / e
    fitted = expected * pace
    dof = 2 * len(seen) - 2
    resid = ((observed - fitted) ** 2 / np.maximum(fitted, 1e-9)).sum()
    phi = max(float(resid) / dof, 1.0)
    x2 = float(((o - e) ** 2 / e).sum()) / phi
    p = float(stats.chi2.sf(x2, 2))
    shown = ", ".join(f"{v:.2f}" for v in pace)
    if p >= LEVEL:
        return even, (
            f"wins by month of quarter over {len(seen)} quarters: paces {shown}, within chance "
            f"(p = {p:.2f}): not used"
        )
    pace = pace * 3.0 / pace.sum()  # a mean of 1, as the scenario holds them
    return (float(pace[0]), float(pace[1]), float(pace[2])), (
        f"wins by month of quarter over {len(seen)} quarters: paces {shown} (p = {p:.1g})"
    )


MIN_YEARS = 2
MAX_YEARS = 3
Z_SLIP = 2.0  # standard errors a month's counts must ask for before its wins slip


def rush_slips(paces: tuple[float, ...] | None) -> tuple[float, float] | None:
    """The quarter-end rush as booking slips: the share of months 1 and 2's wins held to month 3.

    From :func:`quarter_paces` (each month's wins over an even pace inside its
    quarter): a month closing at pace r < 1 has held 1 - r of its wins to the quarter's
    last month (which then closes above 1 by as much). None when no month is below 1.
    """
    if paces is None:
        return None
    held = (max(0.0, 1.0 - paces[0]), max(0.0, 1.0 - paces[1]))
    return held if any(held) else None


def month_slips(
    won_at: pd.Series,
    cut: pd.Timestamp,
    rush: tuple[float, ...] | None = None,
    year_start: int = 1,
) -> tuple[tuple[float, ...] | None, str]:
    """``(slips, why)``: the share of each calendar month's wins booked the month after.

    Over the last complete years of months before ``cut`` (at least :data:`MIN_YEARS`,
    at most :data:`MAX_YEARS`, the wins reaching back to their start), the wins due
    in month m are its year's wins spread by days, less what the quarter's ``rush``
    holds to its last month (and plus what it brings there); a share s_m of them is
    booked in month m + 1: observed_m = due_m (1 - s_m) + due_(m-1) s_(m-1), fitted by
    least squares (Poisson weights, 0 <= s < 0.95) with an L1 penalty of :data:`Z_SLIP`
    standard errors per month (few months slip; the same share slipping from every
    month, or any smooth profile, changes the counts little), the months it picks
    refitted without it (relaxed lasso). Used when the months differ from
    their due counts more than chance allows (chi-square, 11 degrees of freedom,
    widened by the years' dispersion, level :data:`LEVEL`).
    """
    from scipy import optimize

    won_at = won_at[won_at < cut]
    if not len(won_at):
        return None, ""
    last = cut.to_period("M") - 1
    years = min(MAX_YEARS, (last - won_at.min().to_period("M")).n // 12)
    if years < MIN_YEARS:
        return None, ""
    months = pd.period_range(end=last, periods=12 * years, freq="M")
    counts = won_at.dt.to_period("M").value_counts().reindex(months, fill_value=0)
    observed = counts.to_numpy(dtype=float).reshape(years, 12)
    days = np.array([m.days_in_month for m in months], dtype=float).reshape(years, 12)
    natural = observed.sum(axis=1, keepdims=True) * days / days.sum(axis=1, keepdims=True)
    held = np.zeros(3) if rush is None else np.array([rush[0], rush[1], 0.0])
    j = np.array([(m.month - year_start) % 3 for m in months[:12]])
    due = natural * (1.0 - held[j])  # after the rush: months 1-2 lose, month 3 gains
    for k in range(12):
        if j[k] < 2 and k + 2 - j[k] < 12:
            due[:, k + 2 - j[k]] += natural[:, k] * held[j[k]]
    o, e = observed.sum(axis=0), due.sum(axis=0)
    if (e <= 0).any():
        return None, ""
    fitted = due * o / e
    phi = max(float(((observed - fitted) ** 2 / np.maximum(fitted, 1e-9)).sum()) / 11.0, 1.0)
    x2 = float(((o - e) ** 2 / e).sum()) / phi
    p = float(stats.chi2.sf(x2, 11))
    # o - e = -e_m s_m + e_(m-1) s_(m-1): linear in s (the window's months in a cycle).
    a = -np.diag(e) + np.diag(e[:-1], -1)
    a[0, -1] = e[-1]
    w = 1.0 / np.sqrt(phi * np.maximum(o, 1.0))
    aw, bw = a * w[:, None], (o - e) * w
    # Few months slip: an L1 penalty (s >= 0, so linear) of Z_SLIP standard errors per
    # month, so a slip enters only when its month's counts ask for it beyond noise (any
    # smooth profile of slips changes the counts little: least squares alone is lost).
    penalty = 2.0 * Z_SLIP * np.linalg.norm(aw, axis=0)

    def cost(x: np.ndarray) -> tuple[float, np.ndarray]:
        r = aw @ x - bw
        return float(r @ r + penalty @ x), 2.0 * aw.T @ r + penalty

    fit = optimize.minimize(
        cost, np.zeros(12), jac=True, method="L-BFGS-B", bounds=[(0.0, 0.95)] * 12
    )
    chosen = fit.x > 1e-6
    s = np.zeros(12)
    if chosen.any():  # the months chosen, refitted without the penalty (relaxed lasso)
        s[chosen] = optimize.lsq_linear(aw[:, chosen], bw, bounds=(0.0, 0.95)).x
    order = np.argsort([m.month for m in months[:12]])
    s = s[order]
    shown = ", ".join(f"{v:.2f}" for v in s)
    if p >= LEVEL or not s.any():
        return None, (
            f"wins by month of the year over {years} years: within chance (p = {p:.2f}): no "
            "month's wins booked late"
        )
    return tuple(float(v) for v in s), (
        f"wins by month of the year over {years} years (p = {p:.1g}): share of each month's "
        f"wins booked the month after (Jan..Dec) {shown}"
    )


def due_dates(
    won_at: np.ndarray,
    entered: np.ndarray,
    rush: tuple[float, ...] | None,
    late: tuple[float, ...] | None,
    year_start: int = 1,
) -> np.ndarray:
    """The dates the wins were due, before the slips booked some of them later (imputed).

    The clocks are fitted on the time to the due date: fitted on booked dates they
    would carry the slips' delays and the forecast would slip them twice. In each month,
    the share of its wins that came in from earlier (a month's slip from the month
    before, ``late``; the rush from the quarter's first two months, ``rush``), computed
    from the month counts and the slips as :func:`month_slips` models them, is moved
    back, the month slip first: which wins (a fixed-seed draw) and when (uniform in the
    month they came from, after the stage was entered) are imputed, a win that entered
    its stage too late to have been due there stays. ``won_at``/``entered``:
    datetime64 arrays; the result is a copy of ``won_at`` with the moved dates.
    """
    due = np.array(won_at, dtype="datetime64[ns]")
    start = np.asarray(entered, dtype="datetime64[ns]")
    if not len(due):
        return due
    rng = np.random.default_rng(0x5119)
    for kind, shares in (("month", late), ("rush", rush)):
        if shares is None or not any(shares):
            continue
        month = due.astype("datetime64[M]")
        months, counts = np.unique(month, return_counts=True)
        seen = dict(zip(months.tolist(), counts.tolist(), strict=True))
        u = rng.random(len(due))
        for m in months:
            here = month == m
            c = int(m.astype(np.int64) % 12)
            if kind == "month":
                sources = [(m - 1, shares[(c - 1) % 12])]
            elif (c + 1 - year_start) % 3 == 2:  # a quarter's last month: its first two's rush
                sources = [(m - 2, shares[0]), (m - 1, shares[1])]
            else:
                continue
            # came in from each source: s/(1 - s) x the source month's booked wins
            inflow = [seen.get(src.tolist(), 0) * s / (1.0 - s) for src, s in sources]
            total = sum(inflow)
            if total <= 0:
                continue
            share = min(total / seen[m.tolist()], 1.0)
            moved = here & (u < share)
            pick = rng.random(len(due)) * total
            src_of = np.where(pick < inflow[0], 0, len(sources) - 1)
            for i, (src, _) in enumerate(sources):
                rows = moved & (src_of == i)
                lo = np.maximum(src.astype("datetime64[ns]"), start[rows])
                hi = (src + 1).astype("datetime64[ns]")
                ok = lo < hi
                span = (hi - lo).astype(np.float64)
                at = lo + (rng.random(int(rows.sum())) * np.where(ok, span, 0.0)).astype(
                    "timedelta64[ns]"
                )
                idx = np.flatnonzero(rows)
                due[idx[ok]] = at[ok]
    return due


def booked_counts(
    due: np.ndarray,
    calendar_month: np.ndarray,
    rush: tuple[float, ...] | None,
    late: tuple[float, ...] | None,
    year_start: int = 1,
) -> np.ndarray:
    """Wins booked in each of consecutive months, from the wins ``due`` in each.

    ``calendar_month``: each month's calendar month (1-12). As the engine books them
    (:func:`pipesim.kernels.trial.booked`): the rush holds a share of a quarter's first
    two months' wins to its last month, then a share of each month's moves to the next;
    what would leave the last month is dropped.
    """
    n = len(due)
    out = np.array(due, dtype=float)
    if rush is not None:
        held = np.zeros(n)
        for k in range(n):
            j = (int(calendar_month[k]) - year_start) % 3
            if j < 2:
                held[k] = out[k] * rush[j]
                if k + 2 - j < n:
                    out[k + 2 - j] += held[k]
        out -= held
    if late is not None:
        moved = out * np.array([late[int(c) - 1] for c in calendar_month])
        out -= moved
        out[1:] += moved[:-1]
    return out
