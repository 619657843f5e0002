"""Revenue already booked: ``won.parquet``, the deals won before as_of in the current fiscal year.

A quarter under way at as_of has revenue already won; every quarter, year, quota and
target window adds what was won inside it to each trial (a constant: it is known).
Columns: ``deal_id``, ``closed_at`` (the day it was won, before as_of), ``amount``, and
segment columns (``rep``, ``team``, ``region``, ... as the deals have them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipesim.scenario.table_checks import (
    MAX_AMOUNT,
    as_segment,
    check_rows,
    numeric_column,
    require_columns,
    segment_columns,
)

WON_COLUMNS = ("deal_id", "closed_at", "amount")


def check_won(table: pd.DataFrame, source: str, as_of: dt.date) -> pd.DataFrame:
    """Validate ``won.parquet``: ids given and unique, dates before as_of, amounts >= 0."""
    require_columns(table, source, WON_COLUMNS)
    table = table.reset_index(drop=True)
    ids = table["deal_id"]
    check_rows(
        source, "deal_id", "are empty", table, ids.isna().to_numpy(), "Give each deal its id."
    )
    dup = ids.astype(str).duplicated(keep="first").to_numpy()
    check_rows(
        source, "deal_id", "repeat an earlier row's id", table, dup, "Keep one row per deal."
    )
    closed = pd.to_datetime(table["closed_at"], errors="coerce")
    check_rows(
        source,
        "closed_at",
        "are not dates",
        table,
        closed.isna().to_numpy(),
        "Write the day each deal was won, e.g. 2026-05-14.",
    )
    days = closed.dt.date
    late = np.array([d >= as_of for d in days], dtype=bool)
    check_rows(
        source,
        "closed_at",
        f"are on or after as_of ({as_of})",
        table,
        late,
        "won.parquet holds revenue already won before the forecast starts; the forecast "
        "simulates the days from as_of on. Remove those rows (or move as_of).",
    )
    amount = numeric_column(table, source, "amount", None)
    bad = ~(amount >= 0) | (amount > MAX_AMOUNT)
    check_rows(
        source,
        "amount",
        f"are missing, negative or above {MAX_AMOUNT:,.0f}",
        table,
        bad,
        "Write the booked amount of each won deal in the scenario's currency.",
    )
    out = pd.DataFrame(
        {
            "deal_id": ids.astype(str).to_numpy(dtype=object),
            "closed_at": days.to_numpy(dtype=object),
            "amount": amount,
        }
    )
    for seg in segment_columns(table, WON_COLUMNS):
        out[seg] = as_segment(table[seg]).to_numpy()
    return out


def booked_mask(
    won: pd.DataFrame | None,
    start: dt.date,
    end: dt.date,
    owner: Mapping[str, str | None],
    none_label: str | None = None,
) -> np.ndarray:
    """Rows of ``won`` closed from ``start`` to ``end`` (inclusive) matching ``owner``.

    ``owner`` maps segment columns to a value (None: any value; ``none_label``: an
    empty cell, or a column the table lacks). A column the table lacks matches no row
    for any other value.
    """
    if won is None or not len(won):
        return np.zeros(0 if won is None else len(won), dtype=bool)
    days = np.asarray(won["closed_at"].to_numpy(), dtype="datetime64[D]")
    mask = (days >= np.datetime64(start, "D")) & (days <= np.datetime64(end, "D"))
    for col, value in owner.items():
        if value is None:
            continue
        if col not in won.columns:
            if value != none_label:
                return np.zeros(len(won), dtype=bool)
            continue
        cells = won[col].to_numpy(dtype=object)
        if none_label is not None and value == none_label:
            mask &= pd.isna(cells)
        else:
            mask &= cells == value
    return mask


def booked(
    won: pd.DataFrame | None,
    start: dt.date,
    end: dt.date,
    owner: Mapping[str, str | None],
    none_label: str | None = None,
) -> tuple[float, int]:
    """Revenue and deals already won from ``start`` to ``end`` by ``owner`` (see booked_mask)."""
    mask = booked_mask(won, start, end, owner, none_label)
    if won is None or not mask.any():
        return 0.0, 0
    return float(won["amount"].to_numpy(dtype=np.float64)[mask].sum()), int(mask.sum())


def won_segments(won: pd.DataFrame | None) -> Sequence[str]:
    """The segment columns of ``won.parquet``."""
    return () if won is None else tuple(segment_columns(won, WON_COLUMNS))
