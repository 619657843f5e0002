"""The reps' forecast call next to the model's, for the fiscal quarter of ``as_of``.

Open deals carrying ``forecast_category`` give the call CRMs roll up: the sum of
Commit, Commit + Best Case, and the weighted pipeline (each open deal's amount times
its stage's chance to be won, Omitted deals left out). As CRM forecasts do, Commit and
Commit + Best Case include the revenue already won in the quarter (``won.parquet``,
before ``as_of``). Next to it, from the same trials as every other output: the model's
mean, P10, P50 and P90 of the quarter's revenue (the horizon's periods inside the fiscal
quarter holding ``as_of``, open deals and new leads, plus the revenue already won in it,
in every trial), and P(revenue >= the Commit total), compared at cent precision. The
call takes the open deals' categories as meant for this quarter (the scenario holds no
expected close dates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.reports.funnel_table import funnel_table
from pipesim.scenario.booked import booked
from pipesim.scenario.currency import amounts_in_company
from pipesim.simulation.quarters import fiscal_windows
from pipesim.simulation.result import QUANTILES, Result

COLUMNS = (
    "quarter",
    "start",
    "end",
    "as_of",
    "complete",
    "booked",
    "commit",
    "commit_best_case",
    "weighted_pipeline",
    "commit_deals",
    "best_case_deals",
    "mean",
    "p10",
    "p50",
    "p90",
    "p_commit",
)


def forecast_call(result: Result) -> pd.DataFrame | None:
    """One row: the quarter, the reps' call and the model's (None: no deal has a category).

    Columns :data:`COLUMNS`: ``quarter`` (the fiscal quarter, ``FY2027-Q1``), ``start``
    and ``end`` (its first and last day), ``as_of`` (the scenario's), ``complete`` (false
    when as_of is after its first day or the horizon ends before its last), ``booked``
    (revenue already won in it before as_of), ``commit`` (booked + the open Commit deals' amounts),
    ``commit_best_case`` (commit + Best Case), ``weighted_pipeline`` (open deals),
    ``commit_deals``, ``best_case_deals`` (open deals), the model's ``mean``, ``p10``,
    ``p50``, ``p90`` of the quarter's revenue (booked included) and ``p_commit`` =
    P(revenue >= commit). Amounts in the company currency (open deals at as_of's rates).
    """
    sc = result.scenario
    if "forecast_category" not in sc.deal_columns:
        return None
    columns = ["stage", "amount", "forecast_category"]
    columns += ["currency"] if "currency" in sc.deal_columns else []
    deals = pd.concat(list(sc.deal_chunks(columns=columns))) if sc.deal_count else None
    if deals is None or not deals["forecast_category"].notna().any():
        return None
    value = amounts_in_company(deals, sc.fx, sc.currency, sc.as_of)
    called = deals["forecast_category"].to_numpy(dtype=object)
    commit_mask = called == "Commit"
    best_mask = called == "Best Case"
    funnel = funnel_table(sc).set_index("stage")["win_probability"]
    win = deals["stage"].map(funnel).to_numpy(dtype=np.float64)
    counted = called != "Omitted"

    # The fiscal quarter holding as_of: the horizon's first (its windows start at as_of).
    window = next(w for w in fiscal_windows(sc) if w.quarter > 0)
    already, _ = booked(sc.won, window.start, window.end, {})
    totals = result.revenue[:, window.periods, 0].sum(axis=1) + already
    q = np.quantile(totals, QUANTILES)
    commit = already + float(value[commit_mask].sum())
    return pd.DataFrame(
        {
            "quarter": [window.label],
            "start": [window.start],
            "end": [window.end],
            "as_of": [sc.as_of],
            "complete": [window.complete],
            "booked": [already],
            "commit": [commit],
            "commit_best_case": [commit + float(value[best_mask].sum())],
            "weighted_pipeline": [float((value * win)[counted].sum())],
            "commit_deals": [int(commit_mask.sum())],
            "best_case_deals": [int(best_mask.sum())],
            "mean": [float(totals.mean())],
            "p10": [float(q[0])],
            "p50": [float(q[1])],
            "p90": [float(q[2])],
            # At cent precision: a trial that books the Commit total to the cent makes it.
            "p_commit": [float((np.round(totals, 2) >= round(commit, 2)).mean())],
        }
    )


def won_label(call_row: pd.Series) -> str:
    """The booked row's label, ``won 2027-01-01 to 2027-01-09``: the quarter's days before as_of."""
    last = pd.Timestamp(call_row["as_of"]) - pd.Timedelta(days=1)
    return f"won {pd.Timestamp(call_row['start']):%Y-%m-%d} to {last:%Y-%m-%d}"
