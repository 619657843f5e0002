"""How each forecast category has really converted: stage rows keyed by ``forecast_category``.

A history whose deals carry the rep's call (``forecast_category``: Pipeline, Best
Case, Commit, Omitted) is calibrated a second time with the category as one more
segment, through the segment fit of :func:`pipesim.calibration.fit.calibrate_history`:
each category's conversion per stage, pooled towards the stage's (beta-binomial, the
weight from the spread between categories), with the weights the engine draws it with.
Only those conversions are kept, as stage rows keyed by the category (their other
parameters stay the stage's); the open deals carry their category in the book.

The category a deal had is taken as of the calibration date: from the history's field
history when the events carry one (the category of its last stage entry before
``as_of``), else its current value, which may leak the outcome (CRMs set a closed deal's
category: ``Closed`` is dropped here, an ``Omitted`` set on losing is not told apart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipesim.calibration.fit import Calibration
from pipesim.calibration.history import History
from pipesim.errors import InputError
from pipesim.scenario.forecast_category import CLOSED

COLUMN = "forecast_category"
KEPT = ("conversion", "conversion_n", "conversion_pool")  # the parameters a category row sets


def categories_at(history: History, cut: pd.Timestamp) -> tuple[pd.Series, bool]:
    """Each deal's category as of ``cut`` (None when unknown), and whether field history gave it.

    With events carrying ``forecast_category``: the category of the deal's last stage
    entry dated before ``cut`` (a ``Closed`` one skipped), else the deal's own value.
    """
    deals = history.deals
    own = deals[COLUMN] if COLUMN in deals.columns else pd.Series(None, index=deals.index)
    own = own.where(own != CLOSED, None)
    events = history.events
    if events is None or COLUMN not in events.columns:
        return own.astype(object), False
    ev = events[(events["entered_at"] < cut) & events[COLUMN].notna()]
    ev = ev[ev[COLUMN] != CLOSED].sort_values("entered_at", kind="stable")
    last = ev.groupby("deal_id")[COLUMN].last()
    at = deals["deal_id"].map(last)
    return at.where(at.notna(), own).astype(object), True


def with_categories(
    calibration: Calibration,
    history: History,
    cut: pd.Timestamp,
    segments: list[str],
    refit: Callable[[History, list[str]], Calibration],
) -> Calibration:
    """The calibration with stage rows per forecast category (none when the history has none).

    ``refit(history, segments)`` calibrates again with the same settings.
    """
    called, from_events = categories_at(history, cut)
    if not called.notna().any():
        return calibration
    tagged = dataclasses.replace(
        history,
        deals=history.deals.assign(**{COLUMN: called.to_numpy()}),
        segments=(*history.segments, COLUMN),
    )
    sc = calibration.scenario
    report = calibration.report
    source = "field history" if from_events else "current value (may leak the outcome)"
    try:
        by_category = refit(tagged, [*segments, COLUMN])
    except InputError as exc:  # e.g. categories filled only for closed deals: a leak
        note = {"item": "forecast categories not estimated", "rows": int(called.notna().sum()),
                "action": "note", "rule": str(exc)}  # fmt: skip
        return dataclasses.replace(calibration, report=pd.concat([report, pd.DataFrame([note])]))
    stages = by_category.scenario.stages
    rows = stages[stages[COLUMN].notna()].copy()
    for col in rows.columns:
        if col not in ("stage", COLUMN, *segments, *KEPT):
            rows[col] = np.nan if pd.api.types.is_numeric_dtype(rows[col]) else None
    base = sc.stages.assign(**{COLUMN: None})
    book = sc.deals.copy()
    at = pd.Series(called.to_numpy(), index=history.deals["deal_id"].to_numpy())
    book[COLUMN] = at.reindex(book["deal_id"]).to_numpy(dtype=object)
    scenario = sc.replace(
        stages=pd.concat([base, rows[[c for c in rows.columns if c in base.columns or c in KEPT]]],
                         ignore_index=True),
        deals=book,
    )  # fmt: skip
    counts = called.value_counts()
    note = {
        "item": "forecast categories",
        "rows": int(called.notna().sum()),
        "action": "note",
        "rule": f"{source}: "
        + ", ".join(f"{k} {int(v):,}" for k, v in counts.items())
        + "; each category's conversion per stage pooled towards the stage's",
    }
    estimates = by_category.estimates
    extra = estimates[estimates[COLUMN].notna() & estimates["parameter"].isin(KEPT)]
    return dataclasses.replace(
        calibration,
        scenario=scenario,
        report=pd.concat([report, pd.DataFrame([note])], ignore_index=True),
        estimates=pd.concat([calibration.estimates, extra], ignore_index=True),
    )
