"""A scenario's tables as text for the terminal (``pipesim show``): readable and bounded."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from pipesim.scenario.scenario import Scenario
from pipesim.text_table import table

DEAL_ROWS = 10  # deals shown by default: the first ones, with the count


def scenario_text(
    scenario: Scenario,
    settings: pd.DataFrame,
    levers: pd.DataFrame | None = None,
    deal_rows: int = DEAL_ROWS,
) -> str:
    """Every table of a scenario: settings, stages, the first ``deal_rows`` deals, arrivals.

    Then the first ``deal_rows`` rows of ``won.parquet`` and the quotas, when there are any.

    ``settings`` is the one-row scenario table; ``levers`` the levers table, if any.
    """
    funnel = " > ".join(scenario.funnel) + " > Won"
    overrides = len(scenario.stages) - len(scenario.funnel)
    count = scenario.deal_count
    shown = min(deal_rows, count)
    parts = [
        (
            f"pipesim · {scenario.name} · as of {scenario.as_of} · {scenario.horizon_months} "
            f"months"
            + (f" · {scenario.currency}" if scenario.currency else "")
            + (f" · folder {scenario.path}" if scenario.path else "")
        ),
        section("scenario", "1 row", settings),
        section(
            "stages",
            f"funnel {funnel}" + (f"; {overrides} segment override row(s)" if overrides else ""),
            scenario.stages,
        ),
        section(
            "deals",
            f"{count:,} open deal(s)" + (f"; the first {shown:,}" if shown < count else ""),
            scenario.deal_rows(0, shown),
        ),
        section("arrivals", f"{len(scenario.arrivals):,} row(s)", scenario.arrivals),
    ]
    if scenario.won is not None:
        booked = float(scenario.won["amount"].sum())
        about = f"{len(scenario.won):,} deal(s) already won, {booked:,.0f} booked"
        about += f"; the first {deal_rows:,}" if len(scenario.won) > deal_rows else ""
        parts.append(section("won", about, scenario.won.head(deal_rows)))
    if scenario.quotas is not None:
        parts.append(section("quotas", f"{len(scenario.quotas):,} row(s)", scenario.quotas))
    if scenario.fx is not None:
        parts.append(section("fx", f"{len(scenario.fx):,} rate(s)", scenario.fx))
    if levers is not None:
        parts.append(section("levers", f"{len(levers):,} row(s)", levers))
    return "\n\n".join(parts)


def section(name: str, about: str, frame: pd.DataFrame) -> str:
    """One table under its name: ``deals (3,000 open deals; the first 10)``."""
    head = f"{name} ({about})"
    if not len(frame.columns):
        return head
    if not len(frame):
        return f"{head}\ncolumns: {', '.join(map(str, frame.columns))}"
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c].dtype) for c in frame.columns]
    rows = [[cell(v) for v in row] for row in zip(*columns, strict=True)]
    return head + "\n" + table([str(c) for c in frame.columns], rows, right=numeric)


def cell(value: object) -> str:
    """A value as the terminal shows it: empty for missing, numbers short and exact enough."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:,.6g}"
    if isinstance(value, dt.datetime | pd.Timestamp):
        stamp = pd.Timestamp(value)
        return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)
    return str(value)
