"""Carry the last year's new leads forward over horizon months that have none.

A horizon longer than ``arrivals.parquet`` would simulate no new lead in its last
months. ``extend_arrivals`` fills each such month, per segment, with the row of the
same month a year before (two years before when that one is missing too, and so on);
a segment with no row a whole number of years back takes its latest row. Months that
have any row of a segment are left as they are.
"""

from __future__ import annotations

import pandas as pd

from pipesim.scenario.calendar import period_labels
from pipesim.scenario.scenario import Scenario


def extend_arrivals(scenario: Scenario) -> tuple[Scenario, int]:
    """The scenario with its arrivals carried over the horizon; and how many rows were added."""
    arrivals = scenario.arrivals
    if arrivals is None or not len(arrivals):
        return scenario, 0
    segs = list(scenario.arrival_segments)
    horizon = period_labels(scenario.as_of, scenario.horizon_months, scenario.fiscal)
    keyed = arrivals.assign(_key=_keys(arrivals, segs))
    added = []
    for _, rows in keyed.groupby("_key", sort=False):
        by_period = {p: r for p, r in rows.groupby("period", sort=False)}
        latest = rows[rows["period"] == rows["period"].max()]
        for month in horizon:
            if month in by_period:
                continue
            source = latest
            earlier = pd.Period(month, freq="M") - 12
            while earlier >= pd.Period(rows["period"].min(), freq="M"):
                if str(earlier) in by_period:
                    source = by_period[str(earlier)]
                    break
                earlier -= 12
            added.append(source.assign(period=month))
    if not added:
        return scenario, 0
    extra = pd.concat(added, ignore_index=True)
    table = pd.concat([arrivals, extra.drop(columns="_key")], ignore_index=True)
    return scenario.replace(arrivals=table), len(extra)


def _keys(arrivals: pd.DataFrame, segs: list[str]) -> pd.Series:
    if not segs:
        return pd.Series([""] * len(arrivals), index=arrivals.index)
    return arrivals[segs].astype(object).map(repr).agg("|".join, axis=1)
