"""Per (parameter group, stage) funnel parameters: segment overrides resolved, kernel layout.

Every deal and arrival belongs to a *parameter group* (its values in the stages
table's segment columns); each group gets, per stage, the parameters of the most
specific stage row matching it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipesim.errors import InputError, ScenarioError
from pipesim.kernels.tables import EXPONENTIAL, FIXED, GAMMA, LOGNORMAL, FunnelTable
from pipesim.prepare import dwell_tables
from pipesim.scenario.keys import stable_hash
from pipesim.scenario.scenario import LOSS_COLUMNS, Scenario

PARAMS = ("conversion", "conversion_n", "dwell_days", "dwell_cv", "dwell_dist", "value_cv")


def params_of(stages: pd.DataFrame) -> tuple[str, ...]:
    """The parameters a stages table sets: :data:`PARAMS`, the pooling and loss clock if given."""
    optional = ("conversion_pool", *LOSS_COLUMNS)
    return PARAMS + tuple(c for c in optional if c in stages.columns)


def resolve(scenario: Scenario, groups: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Per (group, stage): the stage-table row index that supplies each parameter."""
    stages = scenario.stages
    segs = list(scenario.stage_segments)
    funnel = list(scenario.funnel)
    n_groups, n_stages = len(groups), len(funnel)
    default = scenario.default_rows.to_numpy()
    params = params_of(stages)
    row_of = {p: np.full((n_groups, n_stages), -1, dtype=np.int64) for p in params}
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
            for p in params:
                best: tuple[int, int] | None = None
                for spec, i in matches:
                    if pd.isna(records[i][p]):
                        continue
                    if best is not None and best[0] == spec:
                        raise InputError(
                            f"{source}: rows {best[1] + 1} and {i + 1} both set '{p}' of stage "
                            f"{name!r} for the segment {values}, and neither is more specific. "
                            "Add a row for that exact segment to say which value applies."
                        )
                    if best is None:
                        best = (spec, i)
                row_of[p][g, s] = best[1] if best is not None else default_idx[name]
    return row_of


def loss_laws(
    scenario: Scenario, rows: dict[str, np.ndarray], source: str
) -> dict[str, np.ndarray]:
    """Per (group, stage) loss clock, overrides inherited: ``loss_mean``, ``_cv``, ``_dist``.

    ``loss_mean`` NaN: the stage's own dwell law (no clock of its own); inf: losses
    are never recorded. ``loss_recorded``: the share of the losses recorded (1 by
    default; the others stay open for ever).
    """
    stages = scenario.stages
    shape = next(iter(rows.values())).shape
    if "loss_days" not in rows:
        return {
            "loss_mean": np.full(shape, np.nan),
            "loss_cv": np.ones(shape),
            "loss_dist": np.full(shape, "gamma", dtype=object),
            "loss_recorded": np.ones(shape),
        }
    mean = stages["loss_days"].to_numpy(dtype=np.float64)[rows["loss_days"]]
    cv = stages["loss_cv"].to_numpy(dtype=np.float64)[rows["loss_cv"]]
    dist = stages["loss_dist"].to_numpy(dtype=object)[rows["loss_dist"]]
    recorded = np.full(shape, np.nan)
    if "loss_recorded" in rows:
        recorded = stages["loss_recorded"].to_numpy(dtype=np.float64)[rows["loss_recorded"]]
    given = ~np.isnan(cv) | pd.notna(dist) | ~np.isnan(recorded)
    orphan = np.isnan(mean) & given
    if orphan.any():
        g, s = np.argwhere(orphan)[0]
        row = next(
            int(rows[c][g, s])
            for c in ("loss_cv", "loss_dist", "loss_recorded")
            if c in rows and pd.notna(stages[c].to_numpy()[rows[c][g, s]])
        )
        raise ScenarioError(
            f"{source}, column 'loss_days': row {row + 1} sets the loss law of stage "
            f"{scenario.funnel[s]!r} (loss_cv, loss_dist or loss_recorded) but no row it "
            "inherits from gives loss_days. Give loss_days on that row or on the stage's "
            "funnel row.",
        )
    cv = np.where(np.isnan(cv), 1.0, cv)
    dist = np.where(pd.isna(dist), "gamma", dist).astype(object)
    recorded = np.where(np.isnan(recorded), 1.0, recorded)
    return {"loss_mean": mean, "loss_cv": cv, "loss_dist": dist, "loss_recorded": recorded}


def dwell_arrays(
    dist: np.ndarray, mean: np.ndarray, cv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Kernel dwell parameters per cell: code, p1, p2, strip table, and the strip tables."""
    code = np.full(mean.shape, GAMMA, dtype=np.int64)
    p1 = np.zeros(mean.shape)
    p2 = np.zeros(mean.shape)
    tab = np.zeros(mean.shape, dtype=np.int64)
    fixed = cv <= 0
    expo = (dist == "gamma") & (cv == 1.0)
    gam = (dist == "gamma") & ~fixed & ~expo
    logn = (dist == "lognormal") & ~fixed
    code[fixed], p1[fixed] = FIXED, mean[fixed]
    code[expo], p1[expo] = EXPONENTIAL, mean[expo]
    code[gam], p1[gam], p2[gam] = GAMMA, 1.0 / cv[gam] ** 2, mean[gam] * cv[gam] ** 2
    tab[gam], *strips = dwell_tables.build(p1[gam])
    sigma2 = np.log1p(cv[logn] ** 2)
    code[logn] = LOGNORMAL
    p1[logn] = np.log(mean[logn]) - 0.5 * sigma2
    p2[logn] = np.sqrt(sigma2)
    return code, p1, p2, tab, tuple(strips)


def row_labels(stages: pd.DataFrame, rows: np.ndarray, segs: Sequence[str]) -> list[str]:
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


def conversion_units(scenario: Scenario, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The conversions drawn once per trial: ``(key, conv, n, unit_of, parent, pool)``.

    One unit per distinct (row giving the conversion, row giving ``conversion_n``,
    row giving ``conversion_pool``) over the cells, plus each stage's funnel row
    (drawn even when every cell has a segment row: the segments are drawn around
    it). A unit whose conversion comes from a segment row with a pooling weight
    ``m`` > 0 is the *child* of its stage's funnel-row unit (``parent``, drawn
    first; -1 for the others): each trial it is drawn from
    Beta(w·mean, w·(1 − mean)), w = n + m, mean = conv + m/w · (the parent's draw
    − the parent's conversion) (:func:`pipesim.kernels.trial.conversions`).
    """
    stages = scenario.stages
    segs = list(scenario.stage_segments)
    funnel = list(scenario.funnel)
    n_rows = len(stages)
    default = np.flatnonzero(scenario.default_rows.to_numpy())
    funnel_row = dict(zip(stages["stage"].to_numpy()[default], default, strict=True))
    pool_rows = rows.get("conversion_pool", np.full_like(rows["conversion"], -1))
    # Each stage's funnel-row unit first (parents before children), then the cells'.
    roots = np.array([funnel_row[s] for s in funnel], dtype=np.int64)
    triples = np.concatenate(
        [
            np.stack([roots, roots, np.full_like(roots, -1)], axis=1),
            np.stack(
                [rows["conversion"].ravel(), rows["conversion_n"].ravel(), pool_rows.ravel()],
                axis=1,
            ),
        ]
    )
    pool_all = (
        stages["conversion_pool"].to_numpy(dtype=np.float64)
        if "conversion_pool" in stages.columns
        else np.full(n_rows, np.nan)
    )
    conv_row, n_row, pool_row = triples.T
    pooled = (pool_row >= 0) & ~np.isin(conv_row, default)
    pool = np.where(pooled, np.nan_to_num(pool_all[np.maximum(pool_row, 0)], nan=0.0), 0.0)
    pooled &= pool > 0
    # The funnel-row units have no pool; the others keep it only when they pool.
    code = (conv_row * (n_rows + 1) + n_row + 1) * 2 + pooled
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-seen order: the roots come first
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    unit_of = rank[inverse[len(roots) :]].reshape(rows["conversion"].shape).astype(np.int64)
    pick = first[order]
    conv_row, n_row, pool, pooled = conv_row[pick], n_row[pick], pool[pick], pooled[pick]
    conv_n = stages["conversion_n"].to_numpy(dtype=np.float64)
    unit_conv = stages["conversion"].to_numpy(dtype=np.float64)[conv_row]
    unit_n = np.nan_to_num(np.where(n_row >= 0, conv_n[np.maximum(n_row, 0)], 0.0), nan=0.0)
    stage_of = {name: s for s, name in enumerate(funnel)}
    unit_stage = np.array([stage_of[n] for n in stages["stage"].to_numpy()[conv_row]])
    unit_parent = np.where(pooled, unit_stage, -1).astype(np.int64)  # root s is unit s
    unit_key = stable_hash(
        [
            f"conv|{a}|{b}"
            for a, b in zip(
                row_labels(stages, conv_row, segs), row_labels(stages, n_row, segs), strict=True
            )
        ]
    )
    return unit_key, unit_conv, unit_n, unit_of, unit_parent, np.where(pooled, pool, 0.0)


def build_funnel(
    scenario: Scenario, groups: pd.DataFrame, source: str
) -> tuple[FunnelTable, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The kernel's funnel table for ``groups``, the plain per-cell parameters, the rows used.

    Returns ``(funnel, plain, rows)``: ``plain`` holds ``conversion``, ``dwell_mean``
    and ``dwell_cv`` per (group, stage) for the NumPy reference engine; ``rows`` the
    stage-table row supplying each parameter per (group, stage).
    """
    stages = scenario.stages
    rows = resolve(scenario, groups, source)

    def take(param: str) -> np.ndarray:
        return stages[param].to_numpy()[rows[param]]

    conversion = take("conversion").astype(np.float64)
    dwell_mean = take("dwell_days").astype(np.float64)
    dwell_cv = take("dwell_cv").astype(np.float64)
    dist = take("dwell_dist").astype(str)
    value_cv = take("value_cv").astype(np.float64)

    unit_key, unit_conv, unit_n, unit_of, unit_parent, unit_pool = conversion_units(scenario, rows)

    loss = loss_laws(scenario, rows, source)
    code, p1, p2, tab, strips = dwell_arrays(dist, dwell_mean, dwell_cv)
    value_sigma = np.sqrt(np.log1p(value_cv**2))
    edges, ratio, lf_max = strips
    funnel = FunnelTable(
        unit_key=unit_key,
        unit_conv=unit_conv,
        unit_n=unit_n,
        unit_of=unit_of,
        unit_parent=unit_parent,
        unit_pool=unit_pool,
        dwell_code=code.ravel(),
        dwell_p1=p1.ravel(),
        dwell_p2=p2.ravel(),
        dwell_table=tab.ravel(),
        value_sigma=value_sigma.ravel(),
        strip_edges=edges,
        strip_ratio=ratio,
        strip_lf_max=lf_max,
    )
    plain = {
        "conversion": conversion,
        "dwell_mean": dwell_mean,
        "dwell_cv": dwell_cv,
        "dwell_dist": dist,
        **loss,
    }
    return funnel, plain, rows


def age_strips(funnel: FunnelTable, gs: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The strip of its stage's gamma table that holds each deal's age (0 when not gamma)."""
    code, scale = funnel.dwell_code[gs], funnel.dwell_p2[gs]
    tab, edges = funnel.dwell_table[gs], funnel.strip_edges
    strip = np.zeros(gs.shape, dtype=np.int64)
    aged = (code == GAMMA) & (age > 0)
    for t in np.unique(tab[aged]):
        these = aged & (tab == t)
        strip[these] = np.searchsorted(edges[t], age[these] / scale[these], side="right") - 1
    return np.clip(strip, 0, edges.shape[1] - 2)
