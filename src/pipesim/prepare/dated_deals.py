"""The deals with a stated close date, as the dated kernel reads them.

When a scenario has a slippage law (``close_dates.parquet``), each open deal with a
``close_date`` whose stage the law covers is taken out of the clocks' deal table and
put in a :class:`~pipesim.kernels.dated_deals.DatedTable`: its law row (its stage and
pushes bucket; a bucket the law lacks takes the highest one below it), its stated
date in days after as_of, and the amount, value spread, by-group and currency slot
the clocks' table would give it. The other deals keep the clocks, in the canonical
order (:mod:`pipesim.prepare.kernel_inputs`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.kernels.dated_deals import DatedTable
from pipesim.kernels.tables import DealTable
from pipesim.scenario.close_law import (
    LATENESS_COLUMNS,
    OVERDUE_BUCKETS,
    PUSH_BUCKETS,
    overdue_bucket,
)
from pipesim.scenario.keys import deal_keys
from pipesim.scenario.scenario import Scenario

MAX_EVIDENCE = 1e6  # Beta evidence of a p_win given without a standard error: exact


def law_arrays(law: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """The law's per-row arrays: p_win, its Beta evidence, lateness knots, tail."""
    p = law["p_win"].to_numpy(dtype=float)
    se = law["p_win_se"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(se > 0, p * (1.0 - p) / se**2, 0.0)
    n = np.clip(np.nan_to_num(n, nan=0.0), 0.0, MAX_EVIDENCE)
    return (
        p,
        n,
        np.ascontiguousarray(law[list(LATENESS_COLUMNS)].to_numpy(dtype=float)),
        law["lateness_tail_days"].to_numpy(dtype=float),
    )


def law_rows(
    law: pd.DataFrame, stages: np.ndarray, pushes: np.ndarray, overdue: np.ndarray
) -> np.ndarray:
    """Each deal's law row (-1: the law has no row for its stage)."""
    where = {
        (str(s), int(k), int(o)): r
        for r, (s, k, o) in enumerate(zip(law["stage"], law["pushes"], law["overdue"], strict=True))
    }

    def near(top: int, n: int) -> list[int]:
        # The bucket itself, the ones below it (nearest first), then the ones above.
        return [*range(top, -1, -1), *range(top + 1, n)]

    out = np.full(len(stages), -1, dtype=np.int64)
    for d, (stage, k, o) in enumerate(zip(stages, pushes, overdue, strict=True)):
        found = (
            where.get((str(stage), kk, oo))
            for oo in near(int(o), OVERDUE_BUCKETS)
            for kk in near(min(int(k), PUSH_BUCKETS - 1), PUSH_BUCKETS)
        )
        out[d] = next((r for r in found if r is not None), -1)
    return out


def uses_close_dates(scenario: Scenario) -> bool:
    """Whether some deal of ``scenario`` would be timed by its stated close date."""
    if scenario.close_law is None or "close_date" not in scenario.deal_columns:
        return False
    stages = set(scenario.close_law["stage"])
    return any(
        bool(dated_mask(rows, scenario.close_law).any())
        for rows in scenario.deal_chunks(columns=["stage", "close_date"])
        if len(set(rows["stage"]) & stages)
    )


def dated_mask(rows: pd.DataFrame, law: pd.DataFrame | None) -> np.ndarray:
    """The rows the dated kernel takes: a close date, and a stage the law covers."""
    if law is None or "close_date" not in rows.columns:
        return np.zeros(len(rows), dtype=bool)
    has = rows["close_date"].notna().to_numpy()
    covered = rows["stage"].isin(set(law["stage"])).to_numpy()
    return has & covered


def dated_table(
    rows: pd.DataFrame,
    clocks: DealTable,
    value_sigma: np.ndarray,
    law: pd.DataFrame,
    as_of: np.datetime64,
) -> DatedTable:
    """The dated kernel's table for ``rows`` (all dated), ``clocks`` their clocks' table.

    ``clocks`` is sorted its own way (by cell): rows are matched to it by deal key.
    """
    keys = deal_keys(rows["deal_id"])
    pos = np.argsort(keys)
    at = pos[np.searchsorted(keys[pos], clocks.key)]
    stages = rows["stage"].to_numpy(dtype=object)[at]
    pushes = (
        rows["pushes"].to_numpy(dtype=float)[at] if "pushes" in rows.columns else np.zeros(len(at))
    )
    close = rows["close_date"].to_numpy(dtype="datetime64[D]")[at]
    due = (close - as_of).astype(np.int64).astype(np.float64)
    p, n, knots, tail = law_arrays(law)
    return DatedTable(
        law_p=p,
        law_n=n,
        law_knots=knots,
        law_tail=tail,
        key=clocks.key,
        row=law_rows(law, stages, np.nan_to_num(pushes, nan=0.0), overdue_bucket(-due)),
        due=due,
        amount=clocks.amount,
        value_sigma=value_sigma[clocks.cell],
        by=clocks.by,
        fx=clocks.fx,
        shock=clocks.shock,
    )


def concat(parts: list[DatedTable]) -> DatedTable | None:
    """Tables one after the other (their law arrays are the same); None for none."""
    parts = [p for p in parts if p.rows]
    if not parts:
        return None
    first = parts[0]
    deal_fields = DatedTable._fields[4:]
    joined = {f: np.concatenate([getattr(p, f) for p in parts]) for f in deal_fields}
    return first._replace(**joined)
