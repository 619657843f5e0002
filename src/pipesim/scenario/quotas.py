"""Quotas: ``quotas.parquet``, revenue targets per owner (rep, team, company) and period.

Columns: owner columns (deal segment columns such as ``rep`` or ``team``; a row whose
owner columns are all empty is the company), ``period`` (a fiscal quarter
``FY2027-Q1``, a fiscal year ``FY2027`` or a month ``2026-04``) and ``quota``
(revenue). An owner's revenue in a period is that of the deals, new leads and booked
deals matching all its non-empty owner columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.errors import ScenarioError, show_rows
from pipesim.scenario.fiscal import FiscalCalendar, parse_window, window_label
from pipesim.scenario.table_checks import (
    MAX_AMOUNT,
    as_segment,
    check_rows,
    numeric_column,
    require_columns,
    segment_columns,
)

QUOTA_COLUMNS = ("period", "quota")


def horizon_labels(
    as_of: dt.date, horizon_months: int, fiscal: FiscalCalendar
) -> dict[str, tuple[dt.date, dt.date]]:
    """Every period label a quota may name: the horizon's months, fiscal quarters and years."""
    periods = fiscal.horizon_periods(as_of, horizon_months)
    out = {label: (first, last) for label, first, last in periods}
    for fy, q, bounds in fiscal.windows(as_of, periods[-1][2]):
        out[window_label(fy, q)] = bounds
    return out


def check_quotas(
    table: pd.DataFrame,
    source: str,
    owners_known: Sequence[str],
    as_of: dt.date,
    horizon_months: int,
    fiscal: FiscalCalendar,
) -> pd.DataFrame:
    """Validate ``quotas.parquet`` against the scenario's segment columns and horizon."""
    require_columns(table, source, QUOTA_COLUMNS)
    table = table.reset_index(drop=True)
    owners = segment_columns(table, QUOTA_COLUMNS)
    unknown = [c for c in owners if c not in owners_known]
    if unknown:
        raise ScenarioError(
            f"{source}: owner column(s) {', '.join(map(repr, unknown))} (all {len(table)} "
            f"row(s)) are not segment columns of the deals or arrivals (those are: "
            f"{', '.join(owners_known) or 'none'}). Name owners by those columns (e.g. rep, "
            "team), or add the column to deals.parquet."
        )
    labels = [_label(v) for v in table["period"].astype(object)]
    check_rows(
        source,
        "period",
        "are not a fiscal quarter, fiscal year or month",
        table,
        np.array([x is None for x in labels], dtype=bool),
        "Write FY2027-Q1 (a fiscal quarter), FY2027 (a fiscal year) or 2026-04 (a month).",
    )
    known = horizon_labels(as_of, horizon_months, fiscal)
    end = fiscal.horizon_periods(as_of, horizon_months)[-1][2]
    outside = np.array([x not in known for x in labels], dtype=bool)
    check_rows(
        source,
        "period",
        f"are outside the horizon ({as_of} to {end})",
        table,
        outside,
        f"Its periods are {', '.join(k for k in known if k.startswith('FY'))} and the months "
        f"{next(iter(known))} to {[k for k in known if not k.startswith('FY')][-1]}; lengthen "
        "horizon_months in scenario.parquet, or remove those rows.",
    )
    cut = np.array([known[str(x)][1] > end for x in labels], dtype=np.bool_)
    check_rows(
        source,
        "period",
        f"end after the horizon does ({end}): their revenue would miss the days after it",
        table,
        cut,
        "Lengthen horizon_months in scenario.parquet to cover them.",
    )
    quota = numeric_column(table, source, "quota", None)
    bad = ~(quota >= 0) | (quota > MAX_AMOUNT)
    check_rows(
        source,
        "quota",
        "are missing or negative",
        table,
        bad,
        "Write each owner's revenue quota for the period (0 or more).",
    )
    out = pd.DataFrame(index=range(len(table)))
    for col in owners:
        values = as_segment(table[col]).to_numpy()
        out[col] = pd.Series([None if v == "" else v for v in values], dtype=object)
    out["period"] = labels
    out["quota"] = quota
    key = out[[*owners, "period"]].astype(object).where(out[[*owners, "period"]].notna(), "")
    dup = key.astype(str).duplicated(keep="first").to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        raise ScenarioError(
            f"{source}: {len(rows)} row(s) repeat an earlier row's owner and period: "
            f"{show_rows(out['period'].to_numpy()[rows], rows)}. Keep one quota per owner and "
            "period."
        )
    return out


def _label(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    window = parse_window(text)
    if window is not None:
        return window_label(*window)
    if isinstance(value, dt.date | pd.Timestamp):
        return f"{value.year:04d}-{value.month:02d}"
    parts = text.split("-")
    if len(parts) == 2 and len(parts[0]) == 4 and parts[0].isdigit() and parts[1].isdigit():
        month = int(parts[1])
        return f"{parts[0]}-{month:02d}" if 1 <= month <= 12 else None
    return None


def owner_columns(quotas: pd.DataFrame | None) -> tuple[str, ...]:
    """The owner columns of a quotas table."""
    return () if quotas is None else tuple(segment_columns(quotas, QUOTA_COLUMNS))
