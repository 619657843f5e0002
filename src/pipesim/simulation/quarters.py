"""Fiscal quarters and years of a result: per-trial totals over whole periods, then quantiles.

Every horizon period lies inside one fiscal quarter (calendar months inside a
month calendar's quarters; a week calendar's periods are its fiscal periods), so a
quarter's total in a trial is the sum of its periods in that trial: quantiles are
taken over those per-trial totals (never summed quantiles).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from pipesim.scenario.fiscal import window_label
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.result import QUANTILES, Result

QUARTER_COLUMNS = (
    "fiscal_year",
    "quarter",
    "start",
    "end",
    "complete",
    "metric",
    "mean",
    "p10",
    "p50",
    "p90",
)


@dataclasses.dataclass(frozen=True)
class Window:
    """A fiscal quarter (``quarter`` 1-4) or year (``quarter`` 0) met by the horizon.

    ``periods`` are the indices of the horizon periods inside it; ``complete`` is
    False when as_of falls after its first day or the horizon ends before its last.
    """

    fiscal_year: int
    quarter: int
    start: dt.date
    end: dt.date
    periods: np.ndarray
    complete: bool

    @property
    def label(self) -> str:
        """``FY2027-Q2`` or ``FY2027``."""
        return window_label(self.fiscal_year, self.quarter)


def horizon_end(scenario: Scenario) -> dt.date:
    """The last day the horizon covers."""
    return scenario.fiscal.horizon_periods(scenario.as_of, scenario.horizon_months)[-1][2]


def fiscal_windows(scenario: Scenario) -> list[Window]:
    """Every fiscal quarter and year the horizon meets, each year after its quarters."""
    periods = scenario.fiscal.horizon_periods(scenario.as_of, scenario.horizon_months)
    lasts = np.array([p[2] for p in periods], dtype="datetime64[D]")
    end = periods[-1][2]
    out = []
    for fy, q, (first, last) in scenario.fiscal.windows(scenario.as_of, end):
        inside = np.flatnonzero(
            (lasts >= np.datetime64(first, "D")) & (lasts <= np.datetime64(last, "D"))
        )
        complete = first >= scenario.as_of and last <= end
        out.append(Window(fy, q, first, last, inside, complete))
    return out


def window_totals(values: np.ndarray, window: Window) -> np.ndarray:
    """Per-trial totals [trial, column] of ``values`` [trial, period, column] over a window."""
    return values[:, window.periods, :].sum(axis=1)


def quarter_table(result: Result, by: tuple[str, ...]) -> pd.DataFrame:
    """The ``quarters.parquet`` table of a result (``by`` columns null on whole-book rows)."""
    windows = fiscal_windows(result.scenario)
    frames = []
    for labels, col in result._columns(with_segments=bool(by)):
        for metric, values in (("revenue", result.revenue), ("won_deals", result.won)):
            rows = []
            for w in windows:
                total = values[:, w.periods, col].sum(axis=1).astype(np.float64)
                q = np.quantile(total, QUANTILES)
                rows.append(
                    {
                        "fiscal_year": f"FY{w.fiscal_year}",
                        "quarter": "FY" if w.quarter == 0 else f"Q{w.quarter}",
                        "start": w.start,
                        "end": w.end,
                        "complete": w.complete,
                        "metric": metric,
                        "mean": total.mean(),
                        "p10": q[0],
                        "p50": q[1],
                        "p90": q[2],
                    }
                )
            frame = pd.DataFrame(rows, columns=list(QUARTER_COLUMNS))
            for pos, (c, v) in enumerate(labels.items()):
                frame.insert(pos, c, pd.Series([v] * len(frame), dtype=object))
            frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["complete"] = out["complete"].astype(bool)
    for c in by:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out
