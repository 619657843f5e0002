"""Run a base scenario and its variants on common random numbers.

Each deal's and lead's draws are keyed by (seed, trial, deal id / arrival row), so
a variant run with the base's seed reuses the base's numbers wherever the lever
leaves them alone. The one place that needs care is the per-trial draw of a
conversion rate from its uncertainty: it is keyed by the stage row that supplies
it, and a lever that adds a per-segment override row would give that segment a
fresh, independent draw. :func:`prepare_pair` keys every conversion draw of the
variant by the base draw it replaces, so the variant's rate moves with the base's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.engines import numba as numba_engine
from pipesim.prepare.kernel_inputs import Prepared, prepare
from pipesim.progress import Progress
from pipesim.scenario.scenario import STAGE_COLUMNS, Scenario


def align_stage_columns(scenarios: Sequence[Scenario]) -> list[Scenario]:
    """Give every scenario's stages table the same segment columns (missing ones all null).

    A null column selects nothing, so the forecast does not change; but the
    parameter groups (and so the cells of the funnel arrays) then match one to one.
    """
    cols: list[str] = []
    for sc in scenarios:
        cols += [c for c in sc.stages.columns if c not in STAGE_COLUMNS and c not in cols]
    out = []
    for sc in scenarios:
        missing = [c for c in cols if c not in sc.stages.columns]
        if not missing:
            out.append(sc)
            continue
        stages = sc.stages.copy()
        for c in missing:
            stages[c] = pd.Series([None] * len(stages), dtype=object, index=stages.index)
        out.append(
            sc.replace(stages=stages[[*[c for c in stages.columns if c not in cols], *cols]])
        )
    return out


def rekey(base: Prepared, variant: Prepared) -> Prepared:
    """The variant with each conversion unit keyed like the base unit it replaces."""
    b_key, b_of = base.funnel.unit_key, base.funnel.unit_of
    v_key, v_of = variant.funnel.unit_key, variant.funnel.unit_of
    if b_of.shape != v_of.shape:
        return variant  # different groups: nothing to match (cannot happen after alignment)
    keys = v_key.copy()
    flat_v, flat_b = v_of.ravel(), b_of.ravel()
    for u in range(keys.shape[0]):
        cells = np.flatnonzero(flat_v == u)
        if cells.size:
            keys[u] = b_key[flat_b[cells[0]]]
    return dataclasses.replace(variant, funnel=variant.funnel._replace(unit_key=keys))


def prepare_pair(
    base: Scenario, variants: Sequence[Scenario], by: Sequence[str] = ()
) -> tuple[Prepared, list[Prepared]]:
    """Prepare a base and its variants so that they share random numbers."""
    aligned = align_stage_columns([base, *variants])
    pb = prepare(aligned[0], by)
    return pb, [rekey(pb, prepare(v, by)) for v in aligned[1:]]


def run(
    prepared: Prepared, trials: int, seed: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Revenue and won deals [trial, period, 1 + by-group] of a prepared scenario.

    Run in blocks of trials (the same bits as one call): ``progress`` counts them.
    """
    return numba_engine.run_blocks(prepared, trials, seed, progress)


def open_book(
    prepared: Prepared, trials: int, seed: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The open deals' revenue and wins alone (no new leads), to add variants' leads to."""
    no_leads = dataclasses.replace(prepared, arrivals=prepared.arrivals.take(0, 0))
    return numba_engine.run_blocks(no_leads, trials, seed, progress)


def with_leads(
    book: tuple[np.ndarray, np.ndarray],
    prepared: Prepared,
    seed: int,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`run` of a scenario whose open deals are those of ``book``, at the cost of its leads.

    The kernel adds each trial's open deals, then its new leads, to the trial's row:
    adding the leads to a copy of the open book's rows gives the same bits as a run of
    the whole scenario. For a variant that changes only new leads (its funnel and
    deals those of the book's scenario), and for the base itself.
    """
    rev, won = book[0].copy(), book[1].copy()
    numba_engine.accumulate(
        prepared, prepared.deals.take(0, 0), prepared.arrivals, seed, 0, rev, won
    )
    if progress is not None:
        progress.update(rev.shape[0])
    return rev, won
