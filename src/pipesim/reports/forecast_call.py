"""The reps' forecast call next to the model's, for the quarter of ``as_of``.

Open deals carrying ``forecast_category`` give the call CRMs roll up: the sum of
Commit, Commit + Best Case, and the weighted pipeline (each open deal's amount times
its stage's chance to be won, Omitted deals left out). Next to it, from the same
trials as every other output: the model's mean, P10, P50 and P90 of the revenue won in
the quarter (the horizon's months inside the calendar quarter holding ``as_of``, open
deals and new leads), and P(revenue >= the Commit total), compared at cent precision.
The call takes the open deals' categories as meant for this quarter (the scenario holds
no expected close dates); revenue won in the quarter before ``as_of`` is not counted.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipesim.reports.funnel_table import funnel_table
from pipesim.scenario.calendar import add_months, month_index
from pipesim.scenario.currency import amounts_in_company
from pipesim.simulation.result import QUANTILES, Result

COLUMNS = (
    "quarter",
    "start",
    "end",
    "complete",
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

    Columns :data:`COLUMNS`: ``quarter`` (``2027-Q1``), ``start`` and ``end`` (its first
    and last day), ``complete`` (false when as_of is after its first day or the horizon
    ends before its last), ``commit`` (sum of the Commit deals' amounts),
    ``commit_best_case`` (Commit + Best Case), ``weighted_pipeline``, ``commit_deals``,
    ``best_case_deals``, the model's ``mean``, ``p10``, ``p50``, ``p90`` of the quarter's
    revenue and ``p_commit`` = P(revenue >= commit). Amounts in the company currency
    (as_of's rates).
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
    commit = float(value[commit_mask].sum())

    first = dt.date(sc.as_of.year, 3 * ((sc.as_of.month - 1) // 3) + 1, 1)
    last = add_months(first, 3) - dt.timedelta(days=1)
    k0 = month_index(first.year, first.month, sc.as_of)  # 0, -1 or -2
    months = [k for k in range(k0, k0 + 3) if 0 <= k < sc.horizon_months]
    totals = result.revenue[:, months, 0].sum(axis=1)
    q = np.quantile(totals, QUANTILES)
    return pd.DataFrame(
        {
            "quarter": [f"{first.year}-Q{(first.month - 1) // 3 + 1}"],
            "start": [first],
            "end": [last],
            "complete": [sc.as_of == first and k0 + 2 < sc.horizon_months],
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
