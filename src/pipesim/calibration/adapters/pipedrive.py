"""Pipedrive deals export: "Deal - ID", "Deal - Stage", "Deal - Status", "Deal - Value", dates.

Status is Pipedrive's own (open / won / lost; "deleted" rows are set aside by
the generic unknown-status rule). The close date is "Won time" or "Lost time"
(else "Close date"). A lost deal keeps the stage it was lost in. Funnel:
``--stages``, else Pipedrive's default pipeline order when every stage is one of
its stages (those present, and the last default stage), else the
stages in the order they first appear. "Deal - Currency" (or ``currency``) is the
value's currency.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pipesim.calibration.adapters.columns import pick
from pipesim.calibration.history import History, make_history, read_csv

STANDARD = ("Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started")


def _aliases(name: str) -> tuple[str, ...]:
    return (f"Deal - {name}", name)


COLUMNS = {
    "deal_id": _aliases("ID"),
    "created_at": (*_aliases("Deal created"), *_aliases("Add time")),
    "stage": _aliases("Stage"),
    "status": _aliases("Status"),
    "won_time": _aliases("Won time"),
    "lost_time": _aliases("Lost time"),
    "close": (*_aliases("Close date"), *_aliases("Expected close date")),
    "amount": _aliases("Value"),
    "pipeline": _aliases("Pipeline"),
    "owner": _aliases("Owner"),
    "currency": _aliases("Currency"),
}


def read(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None,
    stages: Sequence[str] | None,
) -> History:
    """Read a Pipedrive deals export (events are not part of it)."""
    raw = read_csv(path)
    c = pick(
        raw, COLUMNS, ("deal_id", "created_at", "stage", "status", "amount"), str(path), "Pipedrive"
    )
    status = c["status"].fillna("").str.strip().str.lower()
    empty = pd.Series(None, index=raw.index, dtype=object)
    closed = c.get("won_time", empty).where(status.eq("won"), c.get("lost_time", empty))
    closed = closed.fillna(c.get("close", empty)).where(status.isin(["won", "lost"]))
    name = c["stage"].fillna("").str.strip()
    seen = list(dict.fromkeys(name[name.ne("")]))
    if stages:
        funnel = list(stages)
    elif set(seen) <= set(STANDARD):
        funnel = [s for s in STANDARD if s in seen or s == STANDARD[-1]]
    else:
        funnel = seen
    deals = pd.DataFrame(
        {
            "deal_id": c["deal_id"],
            "created_at": c["created_at"],
            "stage": name,
            "status": status,
            "closed_at": closed,
            "amount": c["amount"].fillna("").str.replace(r"[$,\s]", "", regex=True),
        }
    )
    for seg in ("pipeline", "owner", "currency"):
        if seg in c:
            deals[seg] = c[seg].to_numpy()
    return make_history(deals, None, stages=funnel or None, source=str(path), rows_read=len(raw))
