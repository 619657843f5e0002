"""Owners of a target: ``owner="rep=A"`` (or ``team=X,region=North``), their book and quota.

An owner is a set of segment values; its deals and new leads are the rows matching all
of them (new leads carry the segment columns of their arrival rows), its booked revenue
the rows of ``won.parquet`` matching them, and its quota the ``quotas.parquet`` row with
exactly those owner columns filled for the period.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.scenario.quotas import owner_columns
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.attainment import period_quota

Owner = dict[str, str]


def parse_owner(owner: str | Mapping[str, str] | None, scenario: Scenario) -> Owner | None:
    """``"rep=A,team=X"`` (or a mapping) as {column: value}, columns checked against the book."""
    if owner is None or (isinstance(owner, str) and not owner.strip()):
        return None
    if isinstance(owner, str):
        pairs = [p.split("=", 1) for p in owner.split(",") if p.strip()]
        if any(len(p) != 2 or not p[0].strip() for p in pairs):
            raise InputError(
                f"owner={owner!r}: write COLUMN=VALUE[,COLUMN=VALUE], e.g. rep=Ana or "
                "team=North,region=EU.",
                parameters=("owner",),
            )
        parsed = {k.strip(): v.strip() for k, v in pairs}
    else:
        parsed = {str(k): str(v) for k, v in owner.items()}
    known = [*scenario.deal_segments, *scenario.arrival_segments]
    unknown = [c for c in parsed if c not in known]
    if unknown:
        raise InputError(
            f"owner={owner!r}: column(s) {', '.join(map(repr, unknown))} are not segment "
            f"columns of the deals or arrivals ({', '.join(dict.fromkeys(known)) or 'none'}).",
            parameters=("owner",),
        )
    return parsed


def _matching(table: pd.DataFrame, owner: Owner) -> np.ndarray:
    mask = np.ones(len(table), dtype=bool)
    for col, value in owner.items():
        if col not in table.columns:
            return np.zeros(len(table), dtype=bool)
        mask &= table[col].to_numpy(dtype=object) == value
    return mask


def owner_scenario(scenario: Scenario, owner: Owner) -> Scenario:
    """The scenario with the owner's deals and new leads only (their draws unchanged)."""
    deals = scenario.deals
    arrivals = scenario.arrivals
    return scenario.replace(
        deals=deals[_matching(deals, owner)].reset_index(drop=True),
        arrivals=arrivals[_matching(arrivals, owner)].reset_index(drop=True),
    )


def owner_quota(scenario: Scenario, owner: Owner, period: str) -> float | None:
    """The owner's quota for ``period`` in quotas.parquet (None when there is no such row)."""
    quotas = scenario.quotas
    if quotas is None:
        return None
    cols = owner_columns(quotas)
    mask = (quotas["period"] == period).to_numpy().copy()
    for col in cols:
        cells = quotas[col].to_numpy(dtype=object)
        if col in owner:
            mask &= cells == owner[col]
        else:
            mask &= pd.isna(cells)
    if any(c not in cols for c in owner) or not mask.any():
        return None
    return period_quota(
        scenario, period, float(quotas["quota"].to_numpy(dtype=np.float64)[mask][0])
    )
