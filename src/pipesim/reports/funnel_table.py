"""The funnel as it stands at ``as_of``: open deals and their value per stage, and conversions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.scenario.currency import amounts_in_company
from pipesim.scenario.scenario import Scenario

FUNNEL_COLUMNS = ("stage", "deals", "value", "conversion", "win_probability")


def funnel_table(scenario: Scenario) -> pd.DataFrame:
    """One row per stage, top of the funnel first.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.

    Returns
    -------
    DataFrame
        ``stage``; ``deals`` and ``value`` (sum of ``amount``, in the company currency
        at as_of's rates) of the open deals in that stage; ``conversion``, the funnel's
        probability of moving on to the next stage (from the last one, of being won);
        ``win_probability``, the product of the conversions from that stage to Won. Segment override
        rows of ``stages.parquet`` are not shown: this is the funnel's default.
    """
    stages = scenario.stages.loc[scenario.default_rows]
    names = [str(s) for s in stages["stage"]]
    conversion = stages["conversion"].to_numpy(dtype=float)
    several = scenario.fx is not None and "currency" in scenario.deal_columns
    if scenario.deal_source is not None and not several:  # on disk: totals made when checked
        deals, value = scenario.deal_source.stage_totals()
        counts = pd.Series(deals, dtype=np.int64).reindex(names, fill_value=0)
        values = pd.Series(value, dtype=float).reindex(names, fill_value=0.0)
    else:
        parts = []
        for chunk in scenario.deal_chunks(columns=["stage", "amount", *(["currency"] * several)]):
            money = amounts_in_company(chunk, scenario.fx, scenario.currency, scenario.as_of)
            parts.append(pd.DataFrame({"stage": chunk["stage"].to_numpy(), "amount": money}))
        book = pd.concat(parts) if parts else pd.DataFrame({"stage": [], "amount": []})
        by_stage = book.groupby("stage", sort=False)["amount"]
        counts = by_stage.size().reindex(names, fill_value=0)
        values = by_stage.sum().reindex(names, fill_value=0.0)
    win = np.cumprod(conversion[::-1])[::-1]
    return pd.DataFrame(
        {
            "stage": pd.Series(names, dtype=object),
            "deals": counts.to_numpy(dtype=np.int64),
            "value": values.to_numpy(dtype=float),
            "conversion": conversion,
            "win_probability": win,
        }
    )
