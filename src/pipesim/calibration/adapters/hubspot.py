"""HubSpot deals export: Record ID, Deal Stage, Create Date, Close Date, Amount (+ Pipeline, owner).

Status from the stage: "Closed Won" -> won, "Closed Lost" -> lost, else open.
HubSpot's export keeps no stage a lost deal was lost from: it is counted as
lost from the first stage (noted). Funnel: ``--stages``, else HubSpot's default
sales pipeline order restricted to the stages present. ``deal_currency_code`` (or
"Currency") is the amounts' currency, ``hs_manual_forecast_category`` the forecast category.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.adapters.columns import pick
from pipesim.calibration.history import History, Issue, make_history, read_csv

STANDARD = (
    "Appointment Scheduled",
    "Qualified To Buy",
    "Presentation Scheduled",
    "Decision Maker Bought-In",
    "Contract Sent",
)
COLUMNS = {
    "deal_id": ("Record ID", "Deal ID", "hs_object_id"),
    "created_at": ("Create Date", "createdate"),
    "stage": ("Deal Stage", "dealstage"),
    "closed_at": ("Close Date", "closedate"),
    "amount": ("Amount", "amount"),
    "pipeline": ("Pipeline", "pipeline"),
    "owner": ("Deal owner", "Deal Owner", "hubspot_owner_id"),
    "currency": ("deal_currency_code", "Currency"),
    "forecast_category": (
        "hs_manual_forecast_category",
        "Forecast category",
        "hs_forecast_category",
    ),
}


def read(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None,
    stages: Sequence[str] | None,
) -> History:
    """Read a HubSpot deals export (events are not part of it)."""
    raw = read_csv(path)
    c = pick(raw, COLUMNS, ("deal_id", "created_at", "stage", "amount"), str(path), "HubSpot")
    name = c["stage"].fillna("").str.strip()
    low = name.str.lower().str.replace(r"[\s_-]", "", regex=True)
    status = np.where(low.eq("closedwon"), "won", np.where(low.eq("closedlost"), "lost", "open"))
    funnel = list(stages) if stages else [s for s in STANDARD if s in set(name)]
    issues: list[Issue] = []
    lost = status == "lost"
    stage = name.where(~lost, funnel[0] if funnel else None)
    if lost.any():
        issues.append(
            Issue(
                "lost deal: stage lost from unknown",
                int(lost.sum()),
                "kept",
                "HubSpot exports no stage history: counted as lost from the first stage",
            )
        )
    closed_at = c["closed_at"] if "closed_at" in c else pd.Series(None, index=raw.index)
    deals = pd.DataFrame(
        {
            "deal_id": c["deal_id"],
            "created_at": c["created_at"],
            "stage": stage,
            "status": status,
            "closed_at": closed_at.where(status != "open"),
            "amount": c["amount"].fillna("").str.replace(r"[$,\s]", "", regex=True),
        }
    )
    for seg in ("pipeline", "owner", "currency", "forecast_category"):
        if seg in c:
            deals[seg] = c[seg].to_numpy()
    return make_history(
        deals, None, stages=funnel or None, source=str(path), issues=issues, rows_read=len(raw)
    )
