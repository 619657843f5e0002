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

from pipesim.errors import InputError
from pipesim.scenario.booked import booked
from pipesim.scenario.fiscal import parse_window, window_label
from pipesim.scenario.scenario import Scenario

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
    """A fiscal quarter (``quarter`` 1-4), year (``quarter`` 0) or month (-1) met by the horizon.

    ``periods`` are the indices of the horizon periods inside it; ``complete`` is
    False when as_of falls after its first day or the horizon ends before its last.
    A month window's ``fiscal_year`` is its fiscal year and ``name`` its ``YYYY-MM``.
    """

    fiscal_year: int
    quarter: int
    start: dt.date
    end: dt.date
    periods: np.ndarray
    complete: bool
    name: str = ""

    @property
    def label(self) -> str:
        """``FY2027-Q2``, ``FY2027`` or a month ``2026-04``."""
        return self.name or window_label(self.fiscal_year, self.quarter)

    @property
    def cut(self) -> tuple[int, int]:
        """(first period, period after the last): the window as a slice of the horizon."""
        return int(self.periods[0]), int(self.periods[-1]) + 1


def month_windows(scenario: Scenario) -> list[Window]:
    """Each horizon period as a window named ``YYYY-MM`` (a week calendar's fiscal periods)."""
    periods = scenario.fiscal.horizon_periods(scenario.as_of, scenario.horizon_months)
    end = periods[-1][2]
    return [
        Window(
            scenario.fiscal.year_of(last),
            -1,
            first,
            last,
            np.array([k]),
            first >= scenario.as_of and last <= end,
            label,
        )
        for k, (label, first, last) in enumerate(periods)
    ]


def find_window(scenario: Scenario, label: str, parameter: str = "period") -> Window:
    """The window ``FY2027-Q2``, ``FY2027`` or ``2026-04`` of the horizon (else InputError).

    A window the horizon ends inside is refused (its total would miss the days after
    the horizon); one under way at as_of is kept (the days before as_of are not
    forecast: its revenue already won is added when the scenario has it).
    """
    text = str(label).strip()
    wanted = parse_window(text)
    pool = fiscal_windows(scenario) if wanted else month_windows(scenario)
    if wanted is None and not (len(text) == 7 and text[4] == "-" and text[:4].isdigit()):
        raise InputError(
            f"{parameter}={label!r}: not a fiscal quarter (FY2027-Q2), a fiscal year (FY2027) "
            "or a month (2026-04).",
            parameters=(parameter,),
        )
    found = [w for w in pool if w.label == (window_label(*wanted) if wanted else text)]
    horizon = f"{scenario.as_of} to {horizon_end(scenario)}"
    if not found:
        known = ", ".join(w.label for w in fiscal_windows(scenario))
        raise InputError(
            f"{parameter}={label!r}: outside the horizon ({horizon}; its fiscal quarters and "
            f"years: {known}). Give one of those, or lengthen horizon_months.",
            parameters=(parameter,),
        )
    window = found[0]
    if window.end > horizon_end(scenario):
        raise InputError(
            f"{parameter}={label!r}: the horizon ({horizon}) ends before {window.label} does "
            f"({window.end}). Lengthen horizon_months in scenario.parquet to cover it.",
            parameters=(parameter,),
        )
    return window


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


def quarter_table(
    scenario: Scenario,
    columns: list[tuple[dict[str, object], int]],
    revenue: np.ndarray,
    won: np.ndarray,
    by: tuple[str, ...],
    quantiles: tuple[float, ...],
    none_label: str = "(none)",
) -> pd.DataFrame:
    """The ``quarters.parquet`` table (``by`` columns null on whole-book rows).

    ``columns`` are (labels of the ``by`` columns, column of ``revenue``/``won``
    [trial, period, column]) pairs, as :class:`pipesim.simulation.result.Result` lists them.
    Revenue and deals already won in a window (``scenario.won``) are added to every trial.
    """
    windows = fiscal_windows(scenario)
    frames = []
    for labels, col in columns:
        for metric, values in (("revenue", revenue), ("won_deals", won)):
            rows = []
            for w in windows:
                total = values[:, w.periods, col].sum(axis=1).astype(np.float64)
                owner = {k: None if v is None else str(v) for k, v in labels.items()}
                amount, deals = booked(scenario.won, w.start, w.end, owner, none_label)
                total = total + (amount if metric == "revenue" else deals)
                q = np.quantile(total, quantiles)
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
