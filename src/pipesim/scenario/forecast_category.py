"""Forecast categories: the rep's call on an open deal (Pipeline, Best Case, Commit, Omitted).

CRMs spell them their own way (Salesforce ``ForecastCategoryName``: ``Pipeline``,
``BestCase``, ``Commit``, ``Omitted``, ``Closed``, and ``Forecast`` in older orgs for
Commit; HubSpot ``hs_manual_forecast_category``: ``PIPELINE``, ``BEST_CASE``, ``COMMIT``,
``OMIT``, ``CLOSED``): :func:`canonical` maps each to one of :data:`CATEGORIES`, or to
:data:`CLOSED` (a closed deal's category, which says its outcome, not a call).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORIES = ("Pipeline", "Best Case", "Commit", "Omitted")
CLOSED = "Closed"
_SYNONYMS = {
    "pipeline": "Pipeline",
    "bestcase": "Best Case",
    "upside": "Best Case",
    "commit": "Commit",
    "forecast": "Commit",  # Salesforce's name for Commit before 2012
    "omitted": "Omitted",
    "omit": "Omitted",
    "closed": CLOSED,
}


def canonical(value: object) -> str | None:
    """The category a CRM's spelling names (None: empty, or not a category)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    key = "".join(ch for ch in str(value).lower() if ch.isalnum())
    return _SYNONYMS.get(key)


def categories(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each value's category (object array, None when empty) and a mask of the unknown ones."""
    raw = values.astype(object).to_numpy()
    mapped = np.array([canonical(v) for v in raw], dtype=object)
    given = pd.notna(values).to_numpy() & np.array([str(v).strip() != "" for v in raw], dtype=bool)
    return mapped, given & pd.isna(mapped)
