"""Picking a CRM export's columns by any of the names its CRM uses for them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from pipesim.errors import InputError


def pick(
    frame: pd.DataFrame,
    names: Mapping[str, Sequence[str]],
    required: Sequence[str],
    source: str,
    crm: str,
) -> dict[str, pd.Series]:
    """Map generic names to the export's columns (first alias present, case-insensitive)."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    found: dict[str, pd.Series] = {}
    for key, aliases in names.items():
        for alias in aliases:
            if alias.lower() in lower:
                found[key] = frame[lower[alias.lower()]]
                break
    missing = [k for k in required if k not in found]
    if missing:
        wanted = "; ".join(f"{k}: one of {', '.join(names[k])}" for k in missing)
        raise InputError(
            f"{source}: not a {crm} export: missing {wanted}. Check format=, or export "
            "those columns too.",
            parameters=("format",),
        )
    return found


def truthy(values: pd.Series) -> pd.Series:
    """TRUE/true/1/yes as True."""
    return values.fillna("").astype(str).str.strip().str.lower().isin(["true", "1", "yes", "y"])
