"""Backtest: calibrate at past cutoffs, forecast, and score against what really closed.

For each cutoff the scenario is calibrated on what was known before it (see
:mod:`pipesim.calibration.stage_paths`), simulated over ``horizon_months`` calendar months (the
cutoff's month first), and compared with the revenue actually won in
``[cutoff, end of the horizon)`` by deals open at the cutoff and deals created
after it. Two point baselines are scored the same way: the weighted pipeline
(each open deal's amount times its stage's probability of being won, all open
deals) and the run rate (revenue won in the three months before the cutoff,
scaled to the horizon).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.fit import Calibration, calibrate_history
from pipesim.calibration.history import History, as_of_date
from pipesim.calibration.lead_rates import HALF_LIFE_MONTHS
from pipesim.errors import InputError, PipesimWarning
from pipesim.progress import Progress
from pipesim.scenario.calendar import add_months
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.simulate import simulate

QUANTILES = (0.1, 0.5, 0.9)
METRICS = ("revenue", "won_deals")
BASELINES = ("weighted_pipeline", "run_rate", "chain_ladder")
LADDER_COHORTS = 12  # creation months the chain-ladder development is measured on


def month_starts(span: str) -> list[dt.date]:
    """``FROM..TO``: every first day of a month from FROM to TO, both ends included.

    FROM and TO are dates or months (``2017-01`` is 2017-01-01).
    """
    parts = span.split("..")
    try:
        if len(parts) != 2:
            raise ValueError(span)
        lo, hi = (pd.Timestamp(p.strip()) for p in parts)
    except ValueError:
        raise InputError(
            f"cutoffs {span!r}: write a span as FROM..TO, e.g. 2017-01..2017-10 or "
            "2017-01-01..2017-10-01 (the first of each month, both ends included).",
            parameters=("cutoffs",),
        ) from None
    first = lo.to_period("M").to_timestamp()
    first = first if first >= lo else (lo.to_period("M") + 1).to_timestamp()
    days = [d.date() for d in pd.date_range(first, hi, freq="MS")]
    if not days:
        raise InputError(
            f"cutoffs {span!r}: no first of a month lies between FROM and TO. Write the "
            "earlier date first, and a span that holds a month's first day.",
            parameters=("cutoffs",),
        )
    return days


def pinball(y: float, forecast: float, q: float) -> float:
    """Pinball (quantile) loss of a forecast of the ``q`` quantile when ``y`` happened."""
    d = y - forecast
    return float(max(q * d, (q - 1.0) * d))


def crps_sample(y: float, draws: np.ndarray) -> float:
    """CRPS of the empirical law of ``draws`` at ``y``: E|X - y| - E|X - X'| / 2 (exact)."""
    x = np.sort(np.asarray(draws, dtype=np.float64))
    n = len(x)
    spread = 2.0 * np.sum((2.0 * np.arange(1, n + 1) - n - 1.0) * x) / (n * n)
    return float(np.mean(np.abs(x - y)) - 0.5 * spread)


def _score(prefix: str, y: float, point: float) -> dict[str, float]:
    out = {prefix: point}
    for q in QUANTILES:
        out[f"{prefix}_pinball_{round(q * 100)}"] = pinball(y, point, q)
    out[f"{prefix}_crps"] = abs(y - point)  # CRPS of a point forecast is its absolute error
    return out


def backtest_history(
    history: History,
    cutoffs: Sequence[object],
    *,
    horizon_months: int = 3,
    segments: Sequence[str] | None = None,
    trials: int = 2000,
    seed: int = 0,
    dwell_dist: str = "auto",
    loss_dist: str = "auto",
    metric: str = "revenue",
    calibrations: dict[str, Calibration] | None = None,
    since: object | None = None,
    leads_until: object | None = None,
    half_life: float = HALF_LIFE_MONTHS,
    progress: bool = False,
    moving_conversions: bool = False,
    close_dates: bool = True,
) -> pd.DataFrame:
    """Score forecasts made at each cutoff; one row per cutoff plus an ``overall`` row.

    Parameters
    ----------
    history : History
        The full history (later rows are used only to measure what happened).
    cutoffs : list of date-like
        Forecast dates.
    horizon_months : int
        Calendar months forecast from each cutoff (its month first).
    segments : list of str, optional
        Passed to the calibration.
    dwell_dist, loss_dist : str
        Passed to the calibration (the clocks' laws).
    metric : str
        What is forecast and scored: ``revenue`` (won amounts) or ``won_deals``
        (the number of deals won); the baselines follow (the weighted pipeline
        then sums probabilities, the run rate counts wins).
    calibrations : dict, optional
        When given, filled with each cutoff's :class:`Calibration` (by ISO date).
    since, leads_until, half_life
        Passed to the calibration, for each cutoff after them (``since`` and
        ``leads_until`` are dropped for a cutoff on or before them).
    moving_conversions : bool
        Passed to the calibration.
    progress : bool
        Show a bar counting the cutoffs done (on a terminal, after a few seconds).
    trials, seed : int
        Monte Carlo trials and seed of each forecast.
    close_dates : bool
        Forecast the deals with a stated close date by the slippage law (when the
        history records close-date changes); False: every deal by its stage's clocks.

    Returns
    -------
    DataFrame
        ``cutoff``, ``horizon_end``, ``metric``, ``open_deals``, ``realized`` (and its split
        ``realized_open``/``realized_new``), ``mean``, ``p5``, ``p10``, ``p50``,
        ``p90``, ``p95``, ``inside_p10_p90``, ``inside_p5_p95``,
        ``pinball_10/50/90``, ``crps``, and for each baseline its point
        forecast, pinball losses and CRPS. The ``overall`` row holds the means
        (coverage: the share of cutoffs inside).
    """
    if metric not in METRICS:
        raise InputError(
            f"metric={metric!r}: choose among {', '.join(METRICS)}.", parameters=("metric",)
        )
    rows = []
    laws = {"dwell_dist": dwell_dist, "loss_dist": loss_dist}
    start = None if since is None else pd.Timestamp(as_of_date(since))
    until = None if leads_until is None else pd.Timestamp(as_of_date(leads_until))
    bar = Progress(len(cutoffs), enabled=progress, desc="backtest", unit="cutoff")
    for value in cutoffs:
        day = value if isinstance(value, dt.date) else as_of_date(value)
        cut = pd.Timestamp(day)
        cal = calibrate_history(
            history,
            day,
            segments=segments,
            horizon_months=horizon_months,
            dwell_dist=laws["dwell_dist"],
            loss_dist=laws["loss_dist"],
            since=start if start is not None and start < cut else None,
            leads_until=until if until is not None and until < cut else None,
            half_life=half_life,
            moving_conversions=moving_conversions,
        )
        if calibrations is not None:
            calibrations[day.isoformat()] = cal
        sc = cal.scenario if close_dates else cal.scenario.replace(close_law=None)
        rows.append(_one(history, cal, sc, day, horizon_months, trials, seed, metric))
        bar.update(1)
    bar.close()
    table = pd.DataFrame(rows)
    overall: dict[str, object] = {
        c: table[c].astype(float).mean()
        for c in table.columns
        if c not in ("cutoff", "horizon_end", "metric")
    }
    overall.update({"cutoff": "overall", "horizon_end": "", "metric": metric})
    return pd.concat([table, pd.DataFrame([overall])], ignore_index=True)


def _one(
    history: History,
    cal: Calibration,
    scenario: Scenario,
    day: dt.date,
    horizon: int,
    trials: int,
    seed: int,
    metric: str,
) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipesimWarning)  # the calibration report holds them
        result = simulate(scenario, trials=trials, seed=seed)
    counts = metric == "won_deals"
    draws = result.won[:, :, 0].sum(axis=1).astype(float) if counts else result.total_revenue()
    cut = pd.Timestamp(day)
    end = pd.Timestamp(add_months(day, horizon))
    deals = history.deals
    won = deals[
        (deals["status"] == "won") & (deals["closed_at"] >= cut) & (deals["closed_at"] < end)
    ]
    won = won.assign(amount=1.0) if counts else won
    old = won["created_at"] < cut
    y = float(won["amount"].sum())
    q = np.quantile(draws, [0.05, 0.1, 0.5, 0.9, 0.95])
    row: dict[str, object] = {
        "cutoff": day.isoformat(),
        "horizon_end": (end - pd.Timedelta(days=1)).date().isoformat(),
        "metric": metric,
        "open_deals": len(cal.scenario.deals),
        "realized": y,
        "realized_open": float(won.loc[old, "amount"].sum()),
        "realized_new": float(won.loc[~old, "amount"].sum()),
        "mean": float(draws.mean()),
        "p5": q[0],
        "p10": q[1],
        "p50": q[2],
        "p90": q[3],
        "p95": q[4],
        "inside_p10_p90": float(q[1] <= y <= q[3]),
        "inside_p5_p95": float(q[0] <= y <= q[4]),
    }
    for level, value in zip(QUANTILES, (q[1], q[2], q[3]), strict=True):
        row[f"pinball_{round(level * 100)}"] = pinball(y, float(value), level)
    row["crps"] = crps_sample(y, draws)
    row.update(_score("weighted_pipeline", y, _weighted_pipeline(history, cal, cut, counts)))
    row.update(_score("run_rate", y, _run_rate(history, day, horizon, counts)))
    row.update(_score("chain_ladder", y, chain_ladder(history, day, horizon, counts)))
    return row


def _weighted_pipeline(history: History, cal: object, cut: pd.Timestamp, counts: bool) -> float:
    """Sum over every deal open at the cutoff (any age) of amount (or 1) x P(won from its stage)."""
    from pipesim.calibration.stage_paths import paths_at

    deals = paths_at(history, cut).deals
    open_ = deals[deals["state"] == "open"]
    funnel = history.funnel
    prob = np.array([cal.win_probability[s] for s in funnel])  # type: ignore[attr-defined]
    amount = np.ones(len(open_)) if counts else open_["open_amount"].fillna(0.0).to_numpy()
    return float((amount * prob[open_["reached"].to_numpy(dtype=np.int64)]).sum())


def chain_ladder(history: History, day: dt.date, horizon: int, counts: bool = False) -> float:
    """The chain-ladder point forecast of what is won in the ``horizon`` months from ``day``.

    Deals are grouped by creation month (cohorts). From the last
    :data:`LADDER_COHORTS` cohorts before ``day``, ``f(k)`` is the value (or number)
    won in a cohort's ``k``-th month after creation per deal created, averaged over
    the cohorts that had lived through month ``k`` before ``day``. Each cohort
    already created adds ``n_c * sum f(k)`` over the ``k`` the horizon covers; each
    horizon month adds a new cohort as large as the average of the last three.
    """
    cut = pd.Period(day, freq="M")
    d = history.deals[history.deals["created_at"] < pd.Timestamp(day)]
    created = d["created_at"].dt.to_period("M")
    won = (d["status"] == "won") & (d["closed_at"] < pd.Timestamp(day))
    age = (d.loc[won, "closed_at"].dt.to_period("M") - created[won]).map(lambda x: x.n)
    value = pd.Series(1.0, index=age.index) if counts else d.loc[won, "amount"].astype(float)
    size = created.value_counts()
    cohorts = [cut - i for i in range(1, LADDER_COHORTS + 1) if (cut - i) in size.index]
    f = np.zeros(horizon + LADDER_COHORTS + 1)
    for k in range(len(f)):
        lived = [c for c in cohorts if (cut - c).n > k]  # month k of c lies before day
        if not lived:
            continue
        pick = created[won].isin(lived) & (age == k)
        f[k] = float(value[pick.to_numpy()].sum()) / float(size[lived].sum())
    point = 0.0
    for c, n in size.items():
        a = (cut - c).n
        if a < len(f):
            point += n * f[a : a + horizon].sum()
    recent = [size.get(cut - i, 0) for i in (1, 2, 3)]
    for j in range(horizon):
        point += float(np.mean(recent)) * f[: horizon - j].sum()
    return float(point)


def _run_rate(history: History, day: dt.date, horizon: int, counts: bool) -> float:
    """Revenue (or deals) won in the three months before the cutoff, scaled to the horizon."""
    cut = pd.Timestamp(day)
    lo = cut - pd.DateOffset(months=3)
    d = history.deals
    won = d[(d["status"] == "won") & (d["closed_at"] >= lo) & (d["closed_at"] < cut)]
    return float(len(won) if counts else won["amount"].sum()) * horizon / 3.0


def format_backtest(table: pd.DataFrame) -> str:
    """The table ``pipesim backtest`` prints (thousands; coverage marks)."""
    head = (
        f"{'cutoff':<10} {'realized':>10} {'mean':>10} {'P5':>10} {'P10':>10} {'P50':>10} "
        f"{'P90':>10} {'P95':>10} {'in80':>5} {'in90':>5} {'CRPS':>9} {'wp CRPS':>9} "
        f"{'rr CRPS':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in table.itertuples():
        overall = bool(r.cutoff == "overall")

        def flag(v: object, overall: bool = overall) -> str:
            return f"{float(v):.0%}" if overall else ("yes" if v else "no")  # type: ignore[arg-type]

        lines.append(
            f"{r.cutoff!s:<10} {r.realized:>10,.0f} {r.mean:>10,.0f} {r.p5:>10,.0f} "
            f"{r.p10:>10,.0f} {r.p50:>10,.0f} {r.p90:>10,.0f} {r.p95:>10,.0f} "
            f"{flag(r.inside_p10_p90):>5} "
            f"{flag(r.inside_p5_p95):>5} {r.crps:>9,.0f} {r.weighted_pipeline_crps:>9,.0f} "
            f"{r.run_rate_crps:>9,.0f}"
        )
    return "\n".join(lines)
