"""health(): the pipeline indicators: what each stage holds now against what the target needs.

``deals_needed`` works backwards as :func:`pipesim.target` does: the lead volume
the target needs gives the monthly flow into every stage (leads x the conversions
above it), and a stage holds, in steady state, its inflow times its mean dwell
(Little's law). When the open deals alone meet the target (no new leads needed),
the lead flow of the funnel arithmetic (the steady state that sustains the target's
revenue rate) is used instead. ``coverage`` = deals_now / deals_needed; when the scenario as it
stands misses the target (P(revenue over N months >= X) below the confidence),
the stage with the lowest coverage is the ``bottleneck``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.plan import drift
from pipesim.plan.plan_result import PlanResult, ScenarioLike, as_scenario, base_metadata, check_run
from pipesim.plan.target import arrivals_only, reach, search
from pipesim.prepare.kernel_inputs import NONE_LABEL, Prepared, prepare
from pipesim.progress import Progress
from pipesim.scenario.currency import amounts_in_company
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.result import by_columns
from pipesim.simulation.stage_flows import simulate_flows

DAYS_PER_MONTH = 365.25 / 12


def time_in_stage(prepared: Prepared) -> np.ndarray:
    """Mean days a deal entering each stage stays open there, per (group, stage).

    One clock: the dwell mean. Two clocks: c x mean time to advance + (1 - c) x rho x
    mean time to a loss (rho: the share of losses recorded). The deals whose loss is
    never recorded (``loss_days`` = inf, or the 1 - rho others) stay open for ever:
    only those that advance or are lost are counted.
    """
    c, advance, loss = prepared.conversion, prepared.dwell_mean, prepared.loss_mean
    rho = prepared.loss_recorded
    with np.errstate(invalid="ignore"):
        two = np.where(np.isinf(loss), c * advance, c * advance + (1.0 - c) * rho * loss)
    return np.where(np.isnan(loss), advance, two)


def _needed(sc: Scenario, scale: float, months: int, by: Sequence[str]) -> pd.DataFrame:
    """Steady-state deals per stage (and segment) that the target's leads keep in the funnel."""
    prepared = prepare(arrivals_only(sc, months), by)
    arr = prepared.arrivals
    g, lam, by_code = arr.group, arr.leads, arr.by
    stock = reach(prepared)[g] * time_in_stage(prepared)[g] / DAYS_PER_MONTH
    stock *= (lam * scale / months)[:, None]
    frame = pd.DataFrame(stock, columns=list(sc.funnel))
    frame["_b"] = by_code
    out = frame.groupby("_b").sum()
    rows = []
    for b, rec in zip(out.index, out.to_dict("records"), strict=True):
        labels = {c: str(prepared.by_values[c].iloc[int(b)]) for c in by} if by else {}
        for stage in sc.funnel:
            rows.append({**labels, "stage": stage, "deals_needed": float(rec[stage])})
    return pd.DataFrame(rows, columns=[*by, "stage", "deals_needed"])


def _now(sc: Scenario, by: Sequence[str]) -> pd.DataFrame:
    deals = sc.deals
    money = amounts_in_company(deals, sc.fx, sc.currency, sc.as_of)
    frame = pd.DataFrame({"stage": deals["stage"].astype(str), "amount": money})
    for c in by:
        col = deals[c] if c in deals.columns else pd.Series([None] * len(deals))
        frame[c] = col.astype(object).where(col.notna(), NONE_LABEL).astype(str).to_numpy()
    return (
        frame.groupby([*by, "stage"])
        .agg(deals_now=("amount", "size"), value_now=("amount", "sum"))
        .reset_index()
    )


def health(
    scenario: ScenarioLike = None,
    revenue: float = 0.0,
    *,
    months: int | None = None,
    confidence: float = 0.8,
    actuals: str | os.PathLike[str] | pd.DataFrame | None = None,
    by: str | Sequence[str] | None = None,
    trials: int = 10_000,
    seed: int = 0,
    progress: bool = False,
) -> PlanResult:
    """Stage volumes and value now against what the revenue target needs; drift against actuals.

    Parameters
    ----------
    scenario : Scenario or path, optional
        The scenario (default: the bundled demo).
    revenue, months, confidence
        The target, as in :func:`pipesim.target`.
    actuals : path or DataFrame, optional
        Monthly actuals (see :mod:`pipesim.plan.drift` for the columns): each month and
        stage whose actual falls outside the model's P10-P90 is flagged.
    by : str or list of str, optional
        Segment columns for the indicators.
    trials, seed : int
        Monte Carlo settings.
    progress : bool
        Show a bar counting the simulated trials on stderr (after ~2 s, terminals only).

    Returns
    -------
    PlanResult
        ``table`` (health.parquet): the ``by`` columns, ``stage``, ``deals_now``,
        ``value_now``, ``deals_needed``, ``coverage``, ``bottleneck``, ``note``;
        with actuals also ``tables["drift"]`` (drift.parquet): ``period``, ``stage``,
        segment columns, ``metric`` (entered|revenue), ``actual``, ``p10``, ``p50``,
        ``p90``, ``flag``, ``direction``.
    """
    sc = as_scenario(scenario)
    window = check_run(trials, months, sc)
    if not (isinstance(revenue, int | float) and np.isfinite(revenue) and revenue > 0):
        raise InputError(
            f"revenue={revenue!r}: give a positive revenue target.", parameters=("revenue",)
        )
    if not 0.0 < confidence < 1.0:
        raise InputError(
            f"confidence={confidence}: must be between 0 and 1 (e.g. 0.8).",
            parameters=("confidence",),
        )
    cols = list(by_columns(by))
    if cols:
        prepare(sc, cols)  # checks the columns exist
    with Progress(None, enabled=progress, desc="health") as bar:
        found = search(sc, float(revenue), window, confidence, trials, seed, bar, now=True)
    # Today's forecast from the search's runs: open deals plus today's leads (scale 1).
    p_now = found.probability_now
    short = p_now < confidence
    # When the open deals alone meet the target, the stock that sustains the target's
    # revenue rate in steady state (the funnel arithmetic's leads) is what each stage needs.
    basis = "target search" if found.scale > 0 else "funnel arithmetic"
    stock_scale = found.scale if found.scale > 0 else found.first_guess_scale
    needed = _needed(sc, stock_scale, window, cols)
    now = _now(sc, cols)
    table = needed.merge(now, on=[*cols, "stage"], how="outer")
    table["deals_now"] = table["deals_now"].fillna(0).astype(np.int64)
    table["value_now"] = table["value_now"].fillna(0.0)
    table["deals_needed"] = table["deals_needed"].fillna(0.0)
    order = {s: k for k, s in enumerate(sc.funnel)}
    table["_s"] = table["stage"].map(order)
    table = table.sort_values([*cols, "_s"], kind="stable").drop(columns="_s")
    with np.errstate(divide="ignore", invalid="ignore"):
        table["coverage"] = np.where(
            table["deals_needed"] > 0, table["deals_now"] / table["deals_needed"], np.inf
        )
    table["bottleneck"] = False
    if short:
        groups = table.groupby(cols, sort=False) if cols else [((), table)]
        for _, grp in groups:
            table.loc[grp["coverage"].idxmin(), "bottleneck"] = True
    table["note"] = [
        f"{r.stage}: {r.deals_now:,} deals, target needs {r.deals_needed:,.0f} "
        f"({r.coverage:.0%})" + (" <- bottleneck" if r.bottleneck else "")
        for r in table.itertuples()
    ]
    table = table[
        [*cols, "stage", "deals_now", "value_now", "deals_needed", "coverage", "bottleneck", "note"]
    ].reset_index(drop=True)
    meta = base_metadata("health", sc, trials, seed)
    meta.update(
        {
            "revenue_target": repr(float(revenue)),
            "months": str(window),
            "confidence": repr(float(confidence)),
            "by": ",".join(cols),
            "probability": repr(p_now),
            "probability_se": repr(float(np.sqrt(p_now * (1 - p_now) / trials))),
            "short": str(short).lower(),
            "leads_scale_needed": repr(stock_scale),
            "deals_needed_basis": basis,
        }
    )
    amount = f"{revenue:,.0f}" + (f" {sc.currency}" if sc.currency else "")
    messages = [
        f"P(revenue over {window} month(s) >= {amount}) = {p_now:.3f} "
        f"({'short of' if short else 'meets'} the {confidence:g} confidence)."
    ]
    tables = {"health": table}
    if actuals is not None:
        from pipesim.io import parquet

        source = "actuals table" if isinstance(actuals, pd.DataFrame) else str(actuals)
        frame = actuals if isinstance(actuals, pd.DataFrame) else parquet.load_table(actuals)
        checked = drift.check_actuals(frame, sc, source)
        segs = drift.segment_columns(checked)
        flows = simulate_flows(sc, trials, seed, segs)
        drift_frame, notes = drift.drift_table(checked, flows, source)
        messages += notes
        first = drift.first_drift(drift_frame, sc.funnel)
        if drift_frame.empty:
            messages.append(f"{source}: no actuals inside the forecast's months: nothing compared.")
        else:
            messages.append(first or "no drift: every actual lies inside the model's P10-P90.")
        meta["actuals"] = source
        tables["drift"] = drift_frame
    result = PlanResult("health", sc, tables, meta, messages)
    from pipesim.plan.printed import health_report

    result.text = health_report(result)
    return result
