"""Turn a validated :class:`Scenario` into the flat arrays the kernels read.

This is where segment overrides are resolved: every deal and arrival belongs to
a *parameter group* (its values in the stages table's segment columns), and each
group gets, per stage, the parameters of the most specific stage row matching it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipesim import _kernels as K
from pipesim import dwell_tables
from pipesim.calendar import add_months, month_index, period_bounds
from pipesim.errors import PipesimError
from pipesim.model import Scenario

NONE_LABEL = "(none)"
_PARAMS = ("conversion", "conversion_n", "dwell_days", "dwell_cv", "dwell_dist", "value_cv")


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Kernel inputs for one scenario and one choice of ``by`` columns."""

    funnel: tuple
    deals: tuple
    arrivals: tuple
    bounds: np.ndarray
    day_period: np.ndarray
    periods: list[str]
    by: tuple[str, ...]
    by_values: pd.DataFrame  # one row per by-group, in kernel column order (1 + index)
    notes: tuple[str, ...]
    # Per (group, stage) parameters in plain form, for the NumPy reference engine.
    conversion: np.ndarray
    dwell_mean: np.ndarray
    dwell_cv: np.ndarray


def stable_hash(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """64-bit keys of strings that do not change between runs or machines."""
    values = np.asarray(labels, dtype=object)
    if values.size == 0:
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(values, categorize=False).astype(np.uint64)


def _segment_frame(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The given columns of a table; a column the table lacks is all missing."""
    return pd.DataFrame(
        {
            c: (
                table[c].to_numpy(dtype=object)
                if c in table.columns
                else np.full(len(table), None, dtype=object)
            )
            for c in columns
        },
        index=range(len(table)),
    )


def _row_groups(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Group identical rows: (code per row, one row per group in first-seen order)."""
    n = len(frame)
    if frame.shape[1] == 0 or n == 0:
        return np.zeros(n, dtype=np.int64), frame.iloc[:1].reset_index(drop=True) if n else (
            pd.DataFrame({c: pd.Series([], dtype=object) for c in frame.columns})
        )
    codes = np.column_stack(
        [
            pd.factorize(frame[c].to_numpy(dtype=object), use_na_sentinel=False)[0]
            for c in frame.columns
        ]
    )
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    uniques = frame.iloc[first[order]].reset_index(drop=True)
    return rank[inverse.ravel()], uniques


def _resolve(scenario: Scenario, groups: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Per (group, stage): the stage-table row index that supplies each parameter."""
    stages = scenario.stages
    segs = list(scenario.stage_segments)
    funnel = list(scenario.funnel)
    n_groups, n_stages = len(groups), len(funnel)
    default = scenario.default_rows.to_numpy()
    row_of = {p: np.full((n_groups, n_stages), -1, dtype=np.int64) for p in _PARAMS}
    records: list[dict[str, Any]] = stages.to_dict("records")  # type: ignore[assignment]
    default_idx = {
        name: int(i)
        for i, name in zip(np.flatnonzero(default), stages.loc[default, "stage"], strict=True)
    }
    overrides = [
        (
            int(i),
            stages.at[i, "stage"],
            {c: stages.at[i, c] for c in segs if stages.at[i, c] is not None},
        )
        for i in np.flatnonzero(~default)
    ]
    group_rows = groups.to_dict("records") if segs else [{}] * n_groups
    for g, values in enumerate(group_rows):
        for s, name in enumerate(funnel):
            matches = [
                (len(cond), i)
                for i, st, cond in overrides
                if st == name and all(values.get(c) == v for c, v in cond.items())
            ]
            matches.sort(reverse=True)
            for p in _PARAMS:
                best: tuple[int, int] | None = None
                for spec, i in matches:
                    if pd.isna(records[i][p]):
                        continue
                    if best is not None and best[0] == spec:
                        raise PipesimError(
                            f"{source}: rows {best[1] + 1} and {i + 1} both set '{p}' of stage "
                            f"{name!r} for the segment {values}, and neither is more specific. "
                            "Add a row for that exact segment to say which value applies."
                        )
                    if best is None:
                        best = (spec, i)
                row_of[p][g, s] = best[1] if best is not None else default_idx[name]
    return row_of


def _dwell_arrays(
    dist: np.ndarray, mean: np.ndarray, cv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Kernel dwell parameters per cell: code, p1, p2, strip table, and the strip tables."""
    code = np.full(mean.shape, K.GAMMA, dtype=np.int64)
    p1 = np.zeros(mean.shape)
    p2 = np.zeros(mean.shape)
    tab = np.zeros(mean.shape, dtype=np.int64)
    fixed = cv <= 0
    expo = (dist == "gamma") & (cv == 1.0)
    gam = (dist == "gamma") & ~fixed & ~expo
    logn = (dist == "lognormal") & ~fixed
    code[fixed], p1[fixed] = K.FIXED, mean[fixed]
    code[expo], p1[expo] = K.EXPONENTIAL, mean[expo]
    code[gam], p1[gam], p2[gam] = K.GAMMA, 1.0 / cv[gam] ** 2, mean[gam] * cv[gam] ** 2
    tab[gam], *strips = dwell_tables.build(p1[gam])
    sigma2 = np.log1p(cv[logn] ** 2)
    code[logn] = K.LOGNORMAL
    p1[logn] = np.log(mean[logn]) - 0.5 * sigma2
    p2[logn] = np.sqrt(sigma2)
    return code, p1, p2, tab, tuple(strips)


def _age_strips(funnel: tuple[np.ndarray, ...], gs: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The strip of its stage's gamma table that holds each deal's age (0 when not gamma)."""
    code, scale, tab, edges = funnel[4][gs], funnel[6][gs], funnel[7][gs], funnel[9]
    strip = np.zeros(gs.shape, dtype=np.int64)
    aged = (code == K.GAMMA) & (age > 0)
    for t in np.unique(tab[aged]):
        these = aged & (tab == t)
        strip[these] = np.searchsorted(edges[t], age[these] / scale[these], side="right") - 1
    return np.clip(strip, 0, edges.shape[1] - 2)


def _by_groups(
    scenario: Scenario, arrivals: pd.DataFrame, by: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    deals = scenario.deals
    if not by:
        empty = pd.DataFrame(index=range(0))
        return (
            np.zeros(len(deals), dtype=np.int64),
            np.zeros(len(arrivals), dtype=np.int64),
            empty,
        )
    known = set(scenario.deal_segments) | set(scenario.arrival_segments)
    unknown = [c for c in by if c not in known]
    if unknown:
        where = ", ".join(sorted(known)) or "none"
        raise PipesimError(
            f"--by {','.join(by)}: column(s) {', '.join(map(repr, unknown))} are in neither "
            f"deals.parquet nor arrivals.parquet (segment columns there: {where}). "
            "Choose segment columns the deals or arrivals have."
        )
    both = pd.concat(
        [_segment_frame(deals, by), _segment_frame(arrivals, by)], ignore_index=True
    ).fillna(NONE_LABEL)
    codes, uniques = _row_groups(both)
    return codes[: len(deals)], codes[len(deals) :], uniques.astype(object)


def prepare(scenario: Scenario, by: Sequence[str] = ()) -> Prepared:
    """Build the kernel inputs for ``scenario``, with results broken down by ``by``."""
    source = (scenario.path and f"{scenario.path}/stages.parquet") or "stages table"
    stages = scenario.stages
    funnel = list(scenario.funnel)
    n_stages = len(funnel)
    segs = list(scenario.stage_segments)
    deals, arrivals = scenario.deals, scenario.arrivals
    notes: list[str] = []

    # Arrivals inside the horizon only.
    months = np.array(
        [month_index(int(p[:4]), int(p[5:7]), scenario.as_of) for p in arrivals["period"]],
        dtype=np.int64,
    )
    before = months < 0
    after = months >= scenario.horizon_months
    if before.any():
        notes.append(
            f"arrivals: {int(before.sum())} row(s) for months before "
            f"{scenario.as_of:%Y-%m} ignored (the forecast starts {scenario.as_of})."
        )
    if after.any():
        notes.append(f"arrivals: {int(after.sum())} row(s) after the horizon not simulated.")
    keep = ~before & ~after
    arr = arrivals[keep].reset_index(drop=True)
    months = months[keep]
    # Rows repeating the same month and segment get distinct random streams.
    label_cols = arr.drop(columns=["leads", "amount", "amount_cv", "leads_n"]).astype(str)
    labels = pd.Series(["|".join(row) for row in label_cols.itertuples(index=False)], dtype=object)
    occurrence = labels.groupby(labels).cumcount().to_numpy()

    # Parameter groups from the stages table's segment columns.
    both = pd.concat([_segment_frame(deals, segs), _segment_frame(arr, segs)], ignore_index=True)
    codes, groups = _row_groups(both)
    if len(groups) == 0:
        groups = pd.DataFrame({c: [None] for c in segs}) if segs else pd.DataFrame(index=[0])
    deal_g, arr_g = codes[: len(deals)], codes[len(deals) :]
    rows = _resolve(scenario, groups, source)
    records: list[dict[str, Any]] = stages.to_dict("records")  # type: ignore[assignment]
    for i in np.flatnonzero(~scenario.default_rows.to_numpy()):
        if not any((rows[p] == i).any() for p in _PARAMS):
            row = records[i]
            cond = {c: row[c] for c in segs if row[c] is not None}
            notes.append(
                f"stages: row {i + 1} ({row['stage']}, {cond}) matches no "
                "deal and no arrival: check the segment values for typos."
            )

    def take(param: str) -> np.ndarray:
        return stages[param].to_numpy()[rows[param]]

    conversion = take("conversion").astype(np.float64)
    dwell_mean = take("dwell_days").astype(np.float64)
    dwell_cv = take("dwell_cv").astype(np.float64)
    dist = take("dwell_dist").astype(str)
    value_cv = take("value_cv").astype(np.float64)
    conv_n = stages["conversion_n"].to_numpy(dtype=np.float64)

    # Conversion units: one per distinct (row giving conversion, row giving n).
    pair = rows["conversion"] * (len(stages) + 1) + (rows["conversion_n"] + 1)
    unit_ids, unit_of = np.unique(pair, return_inverse=True)
    unit_of = unit_of.reshape(pair.shape).astype(np.int64)
    conv_row = unit_ids // (len(stages) + 1)
    n_row = unit_ids % (len(stages) + 1) - 1
    unit_conv = stages["conversion"].to_numpy(dtype=np.float64)[conv_row]
    unit_n = np.where(n_row >= 0, conv_n[np.maximum(n_row, 0)], 0.0)
    unit_n = np.nan_to_num(unit_n, nan=0.0)
    unit_key = stable_hash(
        [
            f"conv|{a}|{b}"
            for a, b in zip(
                _row_labels(stages, conv_row, segs), _row_labels(stages, n_row, segs), strict=True
            )
        ]
    )

    code, p1, p2, tab, strips = _dwell_arrays(dist, dwell_mean, dwell_cv)
    value_sigma = np.sqrt(np.log1p(value_cv**2))
    funnel_arrays = (
        unit_key,
        unit_conv,
        unit_n,
        unit_of,
        code.ravel(),
        p1.ravel(),
        p2.ravel(),
        tab.ravel(),
        value_sigma.ravel(),
        *strips,
    )

    deal_by, arr_by, by_values = _by_groups(scenario, arr, by)
    stage_index = {name: s for s, name in enumerate(funnel)}
    deal_stage = deals["stage"].map(stage_index).to_numpy(dtype=np.int64)
    deal_gs = deal_g * n_stages + deal_stage
    # Deals of one group and stage side by side: the kernel's branches then repeat
    # the same path (same stages left, same dwell laws) and predict well.
    order = np.argsort(deal_gs, kind="stable")
    deal_arrays = (
        stable_hash(deals["deal_id"].map(str).to_numpy(dtype=object))[order],
        deal_gs[order].astype(np.int64),
        deals["amount"].to_numpy(dtype=np.float64)[order],
        deals["days_in_stage"].to_numpy(dtype=np.float64)[order],
        deal_by.astype(np.int64)[order],
        _age_strips(funnel_arrays, deal_gs[order], deals["days_in_stage"].to_numpy()[order]),
    )

    bounds = period_bounds(scenario.as_of, scenario.horizon_months)
    t0 = bounds[months]
    t1 = bounds[months + 1]
    month_days = np.array(
        [
            (add_months(scenario.as_of, int(m) + 1) - add_months(scenario.as_of, int(m))).days
            for m in months
        ],
        dtype=np.float64,
    )
    leads = arr["leads"].to_numpy(dtype=np.float64) * (t1 - t0) / np.maximum(month_days, 1.0)
    amount = arr["amount"].to_numpy(dtype=np.float64)
    acv = arr["amount_cv"].to_numpy(dtype=np.float64)
    sigma2 = np.log1p(acv**2)
    with np.errstate(divide="ignore"):
        amount_mu = np.log(amount) - 0.5 * sigma2
    amount_mu[amount <= 0] = -np.inf
    arr_keys = stable_hash(
        [f"arr|{label}|{occ}" for label, occ in zip(labels, occurrence, strict=True)]
    )
    arrival_arrays = (
        arr_keys,
        arr_g.astype(np.int64),
        t0,
        t1,
        leads,
        np.nan_to_num(arr["leads_n"].to_numpy(dtype=np.float64), nan=0.0),
        amount_mu,
        np.sqrt(sigma2),
        arr_by.astype(np.int64),
    )
    return Prepared(
        funnel=funnel_arrays,
        deals=deal_arrays,
        arrivals=arrival_arrays,
        bounds=bounds,
        day_period=np.repeat(
            np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds).astype(np.int64)
        ),
        periods=[
            add_months(scenario.as_of, k).strftime("%Y-%m") for k in range(scenario.horizon_months)
        ],
        by=tuple(by),
        by_values=by_values,
        notes=tuple(notes),
        conversion=conversion,
        dwell_mean=dwell_mean,
        dwell_cv=dwell_cv,
    )


def _row_labels(stages: pd.DataFrame, rows: np.ndarray, segs: Sequence[str]) -> list[str]:
    """A stable text naming a stage row by its stage and segment values (not its position)."""
    records: list[dict[str, Any]] = stages.to_dict("records")  # type: ignore[assignment]
    out = []
    for i in rows:
        if i < 0:
            out.append("-")
            continue
        row = records[i]
        cond = ",".join(f"{c}={row[c]}" for c in segs if row[c] is not None)
        out.append(f"{row['stage']}[{cond}]")
    return out
