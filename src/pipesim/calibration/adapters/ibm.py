"""IBM Watson Analytics "Sales Win Loss" sample: closed deals with durations but no dates.

Every deal is closed (won or loss), so conversions and durations by segment
are all it can give: each deal is placed on a synthetic calendar (created
2000-01-01, closed "Total Days Identified Through Closing" later) so the same
estimators run; the book and the arrivals of such a calibration are empty
(the report says so). One stage, ``Identified``, from identification to close.
Duplicate opportunity numbers keep their first row (generic rule). Read with
``keep_default_na=False``: the Competitor Type "None" is a value, not missing.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.calibration.adapters.columns import pick
from pipesim.calibration.history import History, make_history, read_csv
from pipesim.errors import InputError

ORIGIN = pd.Timestamp("2000-01-01")
FUNNEL = ("Identified",)
COLUMNS = {
    "deal_id": ("Opportunity Number",),
    "result": ("Opportunity Result",),
    "days": ("Total Days Identified Through Closing",),
    "amount": ("Opportunity Amount USD",),
    "region": ("Region",),
    "route_to_market": ("Route To Market",),
    "supplies_group": ("Supplies Group",),
    "client_size": ("Client Size By Revenue",),
    "competitor_type": ("Competitor Type",),
}
SEGMENTS = ("region", "route_to_market", "supplies_group", "client_size", "competitor_type")


def _load(path: Path) -> pd.DataFrame:
    if path.suffix.lower() != ".zip":
        return read_csv(path)
    try:
        with zipfile.ZipFile(path) as z:
            member = next(n for n in z.namelist() if n.lower().endswith(".csv"))
            data = z.read(member)
    except (zipfile.BadZipFile, StopIteration, OSError) as exc:
        raise InputError(f"{path}: cannot be read as a zip holding a CSV ({exc}).") from None
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return frame.replace({"": None})


def read(
    path: str | os.PathLike[str],
    events: str | os.PathLike[str] | None,
    stages: Sequence[str] | None,
) -> History:
    """Read the IBM win-loss CSV (or its zip)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file. Give the IBM win-loss CSV or its zip.")
    raw = _load(p)
    c = pick(raw, COLUMNS, ("deal_id", "result", "days", "amount"), str(p), "IBM win-loss")
    result = c["result"].fillna("").str.strip().str.lower()
    status = np.where(result.eq("won"), "won", np.where(result.eq("loss"), "lost", "unknown"))
    days = pd.to_numeric(c["days"], errors="coerce")
    created = pd.Series(ORIGIN, index=raw.index)
    closed = created + pd.to_timedelta(days, unit="D")
    deals = pd.DataFrame(
        {
            "deal_id": c["deal_id"],
            "created_at": created.dt.strftime("%Y-%m-%d"),
            "stage": np.where(status == "won", "Won", FUNNEL[0]),
            "status": status,
            "closed_at": closed.dt.strftime("%Y-%m-%d"),
            "amount": c["amount"],
        }
    )
    for seg in SEGMENTS:
        if seg in c:
            deals[seg] = c[seg].to_numpy()
    history = make_history(deals, None, stages=FUNNEL, source=str(p), rows_read=len(raw))
    return History(**{**history.__dict__, "dated": False})
