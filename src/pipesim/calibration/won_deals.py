"""Revenue already booked this fiscal year, from a CRM history: ``won.parquet``.

The deals won from the first day of as_of's fiscal year to the day before as_of, with
their booked ``amount`` and the book's segment columns, so that every fiscal quarter,
year, quota and target window adds what was already won in it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.history import History
from pipesim.scenario.fiscal import FiscalCalendar


def won_this_year(
    history: History, as_of: dt.date, fiscal: FiscalCalendar, segments: Sequence[str]
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """``won.parquet``'s rows and the data-quality rows saying what was kept and set aside."""
    fy = fiscal.year_of(as_of)
    start = fiscal.year_bounds(fy)[0]
    deals = history.deals
    closed = pd.to_datetime(deals["closed_at"])
    won = (deals["status"] == "won").to_numpy() & (
        (closed >= pd.Timestamp(start)) & (closed < pd.Timestamp(as_of))
    ).to_numpy()
    amount = pd.to_numeric(deals["amount"], errors="coerce").to_numpy(dtype=np.float64)
    unknown = won & ~(amount >= 0)
    keep = won & ~unknown
    rows = deals[keep]
    table = pd.DataFrame(
        {
            "deal_id": rows["deal_id"].astype(str).to_numpy(dtype=object),
            "closed_at": closed[keep].dt.date.to_numpy(dtype=object),
            "amount": amount[keep],
        }
    )
    for col in segments:
        if col in rows.columns:
            table[col] = rows[col].astype(object).where(rows[col].notna(), None).to_numpy()
    report: list[dict[str, object]] = [
        {
            "item": f"won.parquet: deals won from {start} (FY{fy} starts) to the day before "
            f"as_of, {table['amount'].sum():,.0f} booked",
            "rows": int(keep.sum()),
            "action": "note",
            "rule": "revenue already booked this fiscal year: every quarter, year, quota and "
            "target window adds it",
        }
    ]
    if unknown.any():
        report.append(
            {
                "item": "won this fiscal year without an amount",
                "rows": int(unknown.sum()),
                "action": "set aside",
                "rule": "won.parquet needs each deal's booked amount",
            }
        )
    return table, report
