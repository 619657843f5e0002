"""Quota attainment: ``quota.parquet``, each quota row's chance of being met, from the trials.

An owner's revenue in a trial is the sum, over the by-groups matching all its non-empty
owner columns, of their revenue in the period's horizon periods, plus its revenue
already booked there (``won.parquet``). A team is so the sum of its reps trial by trial,
the company (all owner columns empty) the whole book: roll-ups combine trials, never
quantiles. Attainment is judged at cent precision: revenue rounded to cents >= quota.
With a week calendar a month's quota is pro-rated by day to the period named after it
(:func:`period_quota`).
"""

from __future__ import annotations

import calendar

import numpy as np
import pandas as pd

from pipesim.scenario.booked import booked
from pipesim.scenario.quotas import horizon_labels, owner_columns
from pipesim.scenario.scenario import Scenario

ATTAIN_COLUMNS = ("mean", "p10", "p50", "p90", "p_attain", "p_attain_80", "expected_gap")


def owner_trials(
    scenario: Scenario,
    segments: pd.DataFrame,
    revenue: np.ndarray,
    owner: dict[str, str | None],
    period: str,
) -> np.ndarray:
    """Per-trial revenue of ``owner`` in ``period`` (forecast by-groups + booked).

    ``segments`` are the by-groups (columns: the owner columns, text) of ``revenue``
    [trial, horizon period, 1 + by-group].
    """
    bounds = horizon_labels(scenario.as_of, scenario.horizon_months, scenario.fiscal)
    first, last = bounds[period]
    periods = scenario.fiscal.horizon_periods(scenario.as_of, scenario.horizon_months)
    inside = [k for k, (_, _, end) in enumerate(periods) if first <= end <= last]
    wanted = {c: v for c, v in owner.items() if v is not None}
    if not wanted:
        cols = [0]
    else:
        match = np.ones(len(segments), dtype=bool)
        for c, v in wanted.items():
            match &= segments[c].to_numpy(dtype=object) == v
        cols = [1 + int(k) for k in np.flatnonzero(match)]
    total = revenue[:, inside, :][:, :, cols].sum(axis=(1, 2)) if cols else None
    amount = booked(scenario.won, first, last, owner)[0]
    base = np.zeros(revenue.shape[0]) if total is None else total
    return base + amount


def attainment(quota: float, revenue: np.ndarray, quantiles: tuple[float, ...]) -> dict[str, float]:
    """Mean, quantiles, P(revenue >= quota), P(>= 0.8 quota), E[max(quota - revenue, 0)].

    Revenue and quotas are rounded to cents before they are compared.
    """
    cents = np.round(revenue, 2)
    target = round(float(quota), 2)
    q = np.quantile(revenue, quantiles)
    return {
        "mean": float(revenue.mean()),
        "p10": float(q[0]),
        "p50": float(q[1]),
        "p90": float(q[2]),
        "p_attain": float(np.mean(cents >= target)),
        "p_attain_80": float(np.mean(cents >= round(0.8 * target, 2))),
        "expected_gap": float(np.mean(np.maximum(target - cents, 0.0))),
    }


def period_quota(scenario: Scenario, period: str, quota: float) -> float:
    """The quota compared with the period's revenue: a month's, pro-rated by day to its period.

    With a week calendar (4-4-5 ...) the period named after a month (``2026-04``) does not
    hold that month's days: its quota is the month's quota per day times the period's
    days. Fiscal quarters and years, and months of a month calendar, keep theirs.
    """
    if scenario.fiscal.weeks is None or str(period).startswith("FY"):
        return float(quota)
    year, month = int(period[:4]), int(period[5:7])
    for label, first, last in scenario.fiscal.horizon_periods(
        scenario.as_of, scenario.horizon_months
    ):
        if label == period:
            month_days = calendar.monthrange(year, month)[1]
            return float(quota) * ((last - first).days + 1) / month_days
    return float(quota)


def quota_table(
    scenario: Scenario,
    segments: pd.DataFrame,
    revenue: np.ndarray,
    quantiles: tuple[float, ...],
) -> pd.DataFrame:
    """``quota.parquet``: one row per quota row, its owner columns, period, quota and odds.

    ``revenue`` [trial, period, 1 + by-group] must be broken down by the quotas' owner
    columns (``segments`` its by-groups).
    """
    quotas = scenario.quotas
    assert quotas is not None
    owners = owner_columns(quotas)
    rows = []
    for record in quotas.to_dict("records"):
        owner = {c: None if pd.isna(record[c]) else str(record[c]) for c in owners}
        trials = owner_trials(scenario, segments, revenue, owner, record["period"])
        rows.append(
            {
                **owner,
                "period": record["period"],
                "quota": (quota := period_quota(scenario, record["period"], record["quota"])),
                **attainment(quota, trials, quantiles),
            }
        )
    out = pd.DataFrame(rows, columns=[*owners, "period", "quota", *ATTAIN_COLUMNS])
    for c in owners:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out
