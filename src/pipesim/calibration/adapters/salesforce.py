"""Salesforce: an Opportunity export (API or report names), plus OpportunityHistory as events.

Status: the stage names "Closed Won" / "Closed Lost" decide; for other stage
names ``IsClosed`` and ``IsWon`` do (exports where the flags contradict the
stage are counted). A lost deal's stage is
its last open stage in the history; without a history it is unknown and the
deal is counted as lost from the first stage (noted in the report). The funnel
comes from ``--stages``, else the history's ``SortOrder`` (or dates), else
Salesforce's standard stage order (either default sales process) restricted
to the stages present. ``CurrencyIsoCode`` (multi-currency orgs) is the amounts'
currency; ``ForecastCategoryName`` the forecast category (OpportunityHistory's
``ForecastCategory`` gives it as of each stage change); OpportunityHistory's ``CloseDate``
is read as the close-date history (:mod:`pipesim.calibration.close_dates`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.adapters.columns import pick, truthy
from pipesim.calibration.close_dates import attach_changes
from pipesim.calibration.history import History, Issue, make_history, read_csv

STANDARD = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
)
# the stage set of Salesforce's newer default sales process (and the Tableau sample)
STANDARD_SHORT = ("Qualify", "Discover", "Solution", "Decision", "Commit")
DEALS = {
    "deal_id": ("Id", "Opportunity ID", "OpportunityId"),
    "created_at": ("CreatedDate", "Created Date"),
    "stage": ("StageName", "Stage"),
    "closed_at": ("CloseDate", "Close Date"),
    "amount": ("Amount",),
    "is_won": ("IsWon", "Won"),
    "is_closed": ("IsClosed", "Closed"),
    "Type": ("Type", "Opportunity Type"),
    "LeadSource": ("LeadSource", "Lead Source"),
    "currency": ("CurrencyIsoCode", "Opportunity Currency", "Currency ISO Code"),
    "forecast_category": ("ForecastCategoryName", "ForecastCategory", "Forecast Category"),
}
EVENTS = {
    "deal_id": ("OpportunityId", "OppID", "Opportunity ID"),
    "entered_at": ("CreatedDate", "Created Date"),
    "stage": ("StageName", "Stage"),
    "order": ("SortOrder",),
    "forecast_category": ("ForecastCategory", "ForecastCategoryName", "Forecast Category"),
    "close_date": ("CloseDate", "Close Date"),
}


def read(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None,
    stages: Sequence[str] | None,
) -> History:
    """Read a Salesforce Opportunity export (and OpportunityHistory when given)."""
    raw = read_csv(path)
    raw = raw.loc[:, ~raw.columns.str.match(r".*\.\d+$")]  # report joins repeat columns as x.1
    c = pick(
        raw,
        DEALS,
        ("deal_id", "created_at", "stage", "closed_at", "amount"),
        str(path),
        "Salesforce",
    )
    name = c["stage"].fillna("").str.strip()
    low = name.str.lower()
    flag_won = truthy(c["is_won"]) if "is_won" in c else low.eq("closed won")
    flag_closed = truthy(c["is_closed"]) if "is_closed" in c else low.str.startswith("closed")
    # The stage name decides when it is a closed stage; the flags only for open-named stages.
    status = np.where(
        low.eq("closed won"),
        "won",
        np.where(
            low.eq("closed lost"),
            "lost",
            np.where(flag_closed, np.where(flag_won, "won", "lost"), "open"),
        ),
    )
    contradict = int(((status == "won") != flag_won.to_numpy()).sum())
    issues: list[Issue] = []
    if contradict:
        issues.append(
            Issue(
                "IsWon/IsClosed contradict the stage",
                contradict,
                "kept",
                "a Closed Won / Closed Lost stage name decides; the flags decide otherwise",
            )
        )
    ev = None
    funnel = list(stages) if stages else []
    if events is not None:
        h = read_csv(events)
        e = pick(h, EVENTS, ("deal_id", "entered_at", "stage"), str(events), "Salesforce history")
        keys = (
            "deal_id",
            "stage",
            "entered_at",
            *(["forecast_category"] * ("forecast_category" in e)),
        )
        ev = pd.DataFrame({k: e[k] for k in keys})
        if not funnel and "order" in e:
            order = pd.to_numeric(e["order"], errors="coerce")
            ranks = order.groupby(e["stage"].str.strip()).median().sort_values()
            funnel = [s for s in ranks.index if not s.lower().startswith("closed")]
    present = set(name) | (set(ev["stage"].dropna().str.strip()) if ev is not None else set())
    if not funnel and ev is None:
        open_names = {n for n in present if n and not n.lower().startswith("closed")}
        for standard in (STANDARD, STANDARD_SHORT):
            if open_names <= set(standard):
                funnel = [s for s in standard if s in present]
                break
    stage = name.copy()
    lost = status == "lost"
    if ev is not None:
        open_ev = ev[~ev["stage"].fillna("").str.lower().str.startswith("closed")]
        if funnel:
            rank = open_ev["stage"].map({s: i for i, s in enumerate(funnel)})
            last = open_ev.assign(rank=rank).sort_values("rank").groupby("deal_id")["stage"].last()
            stage = stage.where(~lost, c["deal_id"].map(last))
    no_from = lost & ~stage.isin(funnel)
    if no_from.any() and funnel:
        issues.append(
            Issue(
                "lost deal: stage lost from unknown",
                int(no_from.sum()),
                "kept",
                "counted as lost from the first stage",
            )
        )
        stage = stage.where(~no_from, funnel[0])
    deals = pd.DataFrame(
        {
            "deal_id": c["deal_id"],
            "created_at": c["created_at"],
            "stage": stage,
            "status": status,
            "closed_at": c["closed_at"].where(status != "open"),
            "amount": c["amount"].fillna("").str.replace(r"[$,\s]", "", regex=True),
        }
    )
    for seg in ("Type", "LeadSource", "currency", "forecast_category"):
        if seg in c:
            deals[seg] = c[seg].to_numpy()
    history = make_history(
        deals, ev, stages=funnel or None, source=str(path), issues=issues, rows_read=len(raw)
    )
    if events is not None and "close_date" in e:
        # OpportunityHistory's CloseDate: the date stated as of each row (a close-date history).
        changes = pd.DataFrame(
            {"deal_id": e["deal_id"], "changed_at": e["entered_at"], "close_date": e["close_date"]}
        )
        history = attach_changes(history, changes, f"{events} (CloseDate)")
    return history
