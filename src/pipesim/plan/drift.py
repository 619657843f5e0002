"""Drift: monthly actuals (deals entering each stage, won revenue) against the model's P10-P90.

The actuals table has one row per month, stage (and segment):

- ``period``: the month, ``YYYY-MM`` (or a date), inside the scenario's horizon;
- ``stage``: a stage of the funnel, or ``Won``;
- ``entered``: the deals that entered that stage that month (for ``Won``: deals won);
- ``revenue`` (optional): won revenue, read on the ``Won`` rows;
- any other column is a segment column (e.g. ``region``); the model is then broken
  down by those columns and each row is compared with its segment's band.

A deal already open on ``as_of`` does not *enter* its current stage; the first
stage's entries are the new leads.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.errors import InputError, show_rows
from pipesim.scenario.calendar import to_date
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.stage_flows import Flows

ACTUAL_COLUMNS = ("period", "stage", "entered", "revenue")


def check_actuals(frame: pd.DataFrame, scenario: Scenario, source: str) -> pd.DataFrame:
    """Validate an actuals table; return it with ``period`` as ``YYYY-MM`` text."""
    missing = [c for c in ("period", "stage", "entered") if c not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: required column(s) {', '.join(map(repr, missing))} missing (columns "
            f"present: {', '.join(map(str, frame.columns)) or 'none'}). One row per month and "
            "stage: period (YYYY-MM), stage, entered, optional revenue (on Won rows) and "
            "segment columns."
        )
    out = frame.reset_index(drop=True).copy()
    periods = []
    bad: list[int] = []
    for i, value in enumerate(out["period"]):
        periods.append(_month(value))
        if not periods[-1]:
            bad.append(i)
    if bad:
        raise InputError(
            f"{source}: column 'period' has values that are not months: "
            f"{show_rows(out['period'].to_numpy()[bad], bad)}. Write them as YYYY-MM."
        )
    out["period"] = periods
    known = (*scenario.funnel, "Won")
    stage = out["stage"].astype(str).to_numpy()
    bad_stage = np.flatnonzero(~np.isin(stage, known))
    if bad_stage.size:
        raise InputError(
            f"{source}: column 'stage' has unknown stages: "
            f"{show_rows(stage[bad_stage], bad_stage)}. Use {', '.join(known)}."
        )
    for col in ("entered", "revenue"):
        if col not in out.columns:
            continue
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=np.float64)
        required = col == "entered" or np.zeros(len(out), bool)
        bad_v = np.flatnonzero((np.isnan(values) & required) | (values < 0))
        if bad_v.size:
            raise InputError(
                f"{source}: column {col!r} needs numbers >= 0: "
                f"{show_rows(out[col].to_numpy()[bad_v], bad_v)}."
            )
        out[col] = values
    return out


def _month(value: object) -> str:
    """``YYYY-MM`` of a month given as text (YYYY-MM or YYYY-MM-DD) or a date; "" if not one."""
    if isinstance(value, dt.date | pd.Timestamp):
        return value.strftime("%Y-%m")
    text = str(value).strip()
    if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
        return ""
    try:
        return to_date(text if len(text) == 10 else f"{text}-01").strftime("%Y-%m")
    except (ValueError, TypeError):
        return ""


def segment_columns(actuals: pd.DataFrame) -> tuple[str, ...]:
    """The segment columns of an actuals table."""
    return tuple(c for c in actuals.columns if c not in ACTUAL_COLUMNS)


def drift_table(actuals: pd.DataFrame, flows: Flows, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Compare every actual with its model band; return the table and notes (rows skipped)."""
    by = list(flows.by)
    period_of = {p: k for k, p in enumerate(flows.periods)}
    stage_of = {s: k for k, s in enumerate(flows.stages)}
    seg_of = (
        {
            tuple(str(v) for v in row): 1 + k
            for k, row in enumerate(flows.segments[by].itertuples(index=False))
        }
        if by
        else {}
    )
    notes = []
    outside = ~actuals["period"].isin(period_of).to_numpy()
    if outside.any():
        notes.append(
            f"{source}: {int(outside.sum())} row(s) for months outside the forecast "
            f"({flows.periods[0]} to {flows.periods[-1]}) skipped."
        )
    rows = []
    for i, rec in enumerate(actuals.to_dict("records")):
        if outside[i]:
            continue
        col = 0
        if by:
            key = tuple(str(rec[c]) for c in by)
            if key not in seg_of:
                raise InputError(
                    f"{source}: row {i + 1} has segment {dict(zip(by, key, strict=True))}, "
                    "which no deal or arrival of the scenario has; check the values."
                )
            col = seg_of[key]
        k, s = period_of[rec["period"]], stage_of[rec["stage"]]
        checks = [("entered", rec["entered"], flows.entered[:, k, s, col])]
        if rec["stage"] == "Won" and "revenue" in rec and not pd.isna(rec["revenue"]):
            checks.append(("revenue", rec["revenue"], flows.revenue[:, k, col]))
        for metric, actual, sims in checks:
            p10, p50, p90 = np.quantile(sims, (0.1, 0.5, 0.9))
            low, high = actual < p10, actual > p90
            rows.append(
                {
                    "period": rec["period"],
                    "stage": rec["stage"],
                    **{c: rec[c] for c in by},
                    "metric": metric,
                    "actual": float(actual),
                    "p10": float(p10),
                    "p50": float(p50),
                    "p90": float(p90),
                    "flag": bool(low or high),
                    "direction": "low" if low else ("high" if high else ""),
                }
            )
    columns = ["period", "stage", *by, "metric", "actual", "p10", "p50", "p90", "flag", "direction"]
    table = pd.DataFrame(rows, columns=columns)
    return table, notes


def first_drift(table: pd.DataFrame, funnel: Sequence[str]) -> str | None:
    """Where the drift started: the earliest flagged month, the highest stage in the funnel."""
    if table.empty or not table["flag"].any():
        return None
    order = {s: k for k, s in enumerate([*funnel, "Won"])}
    flagged = table[table["flag"]].copy()
    flagged["_s"] = flagged["stage"].map(order)
    first = flagged.sort_values(["period", "_s"], kind="stable").iloc[0]
    segs = [
        c
        for c in table.columns
        if c
        not in (
            "period",
            "stage",
            "metric",
            "actual",
            "p10",
            "p50",
            "p90",
            "flag",
            "direction",
            "_s",
        )
    ]
    where = "".join(f", {c}={first[c]}" for c in segs)
    return (
        f"drift started at {first['stage']} in {first['period']}{where}: {first['metric']} "
        f"{first['actual']:,.0f}, {first['direction']} against the model's P10-P90 "
        f"{first['p10']:,.0f} to {first['p90']:,.0f} ({int(table['flag'].sum())} "
        "month-stage(s) flagged in all)."
    )
