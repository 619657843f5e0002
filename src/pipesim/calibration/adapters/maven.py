"""Maven Analytics "CRM Sales Opportunities": sales_pipeline + products + sales_teams + accounts.

Mapping: a deal is created when it is engaged (``engage_date``); the funnel is
one open stage, ``Engaging``, then Won (Prospecting deals carry no date at all,
so they cannot be placed in time: set aside and counted). A won deal's amount
is its ``close_value``; an open or lost deal has none (lost ones show 0), so
its amount is its product's list price (``sales_price``). ``open_amount``, what
was known while a deal was open, is the list price for every deal. The
pipeline's "GTXPro" is products.csv's "GTX Pro": names are matched ignoring
spaces and case, and the product takes products.csv's name. Segments:
``product``, ``series``, ``sales_agent``, ``manager``, ``regional_office``,
``account``, ``sector`` ("technolgy" read as "technology").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.calibration.history import History, Issue, make_history, read_csv
from pipesim.errors import InputError

FILES = ("sales_pipeline.csv", "products.csv", "sales_teams.csv", "accounts.csv")
FUNNEL = ("Engaging",)


def _key(text: pd.Series) -> pd.Series:
    return text.fillna("").str.replace(r"\s+", "", regex=True).str.lower()


def to_generic(
    pipeline: pd.DataFrame,
    products: pd.DataFrame,
    teams: pd.DataFrame,
    accounts: pd.DataFrame,
) -> tuple[pd.DataFrame, list[Issue]]:
    """Map the four Maven tables onto the generic deals columns; also return the issues."""
    issues: list[Issue] = []
    p = pipeline.copy()
    stage = p["deal_stage"].fillna("").str.strip()
    no_date = p["engage_date"].isna() & stage.eq("Prospecting")
    if no_date.any():
        issues.append(
            Issue(
                "Prospecting deal without dates",
                int(no_date.sum()),
                "set aside",
                "Maven gives Prospecting deals no date: they cannot be placed in time",
            )
        )
    p = p[~no_date]
    stage = stage[~no_date]
    price = pd.to_numeric(products["sales_price"], errors="coerce")
    price_of = dict(zip(_key(products["product"]), price, strict=True))
    series_of = dict(zip(_key(products["product"]), products["series"], strict=True))
    name_of = dict(zip(_key(products["product"]), products["product"], strict=True))
    pk = _key(p["product"])
    renamed = int((~p["product"].isin(products["product"]) & pk.isin(price_of)).sum())
    if renamed:
        issues.append(
            Issue(
                "product name differs from products.csv",
                renamed,
                "kept",
                "matched ignoring spaces and case (GTXPro = GTX Pro)",
            )
        )
    status = np.select([stage.eq("Won"), stage.eq("Lost")], ["won", "lost"], default="open")
    value = pd.to_numeric(p["close_value"], errors="coerce")
    list_price = pk.map(price_of).astype(float)
    amount = np.where(status == "won", value, list_price)
    team = teams.set_index("sales_agent")
    acc = accounts.set_index("account")
    sector = p["account"].map(acc["sector"]).replace({"technolgy": "technology"})
    deals = pd.DataFrame(
        {
            "deal_id": p["opportunity_id"].to_numpy(),
            "created_at": p["engage_date"].to_numpy(),
            "stage": np.where(
                status == "open", "Engaging", np.where(status == "won", "Won", "Engaging")
            ),
            "status": status,
            "closed_at": p["close_date"].to_numpy(),
            "amount": amount,
            "open_amount": list_price,
            "product": pk.map(name_of).fillna(p["product"]).to_numpy(),
            "series": pk.map(series_of).to_numpy(),
            "sales_agent": p["sales_agent"].to_numpy(),
            "manager": p["sales_agent"].map(team["manager"]).to_numpy(),
            "regional_office": p["sales_agent"].map(team["regional_office"]).to_numpy(),
            "account": p["account"].to_numpy(),
            "sector": sector.to_numpy(),
        }
    )
    return deals, issues


def read(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None,
    stages: Sequence[str] | None,
) -> History:
    """Read the Maven CRM folder (events are not part of this export)."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: the maven format reads a folder holding {', '.join(FILES)}.")
    tables = [read_csv(folder / name) for name in FILES]
    deals, issues = to_generic(*tables)
    return make_history(
        deals,
        None,
        stages=FUNNEL,
        source=str(folder / FILES[0]),
        issues=issues,
        rows_read=len(tables[0]),
    )
