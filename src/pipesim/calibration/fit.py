"""CRM history -> scenario: conversions, dwell times, the open book and new leads at a date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.calibration.history import History, as_of_date
from pipesim.calibration.lead_rates import arrivals_table
from pipesim.calibration.stage_paths import paths_at
from pipesim.calibration.survival import ADVANCE, OPEN, StageFit, fit_stage, pooled_conversion
from pipesim.errors import InputError, PipesimWarning
from pipesim.io import parquet
from pipesim.scenario.scenario import Scenario, make_scenario

DEFAULT_DWELL = 30.0  # days, used only for a stage where nothing has ever advanced (noted)
SEGMENT_DWELL_WEIGHT = 20.0  # pseudo-deals pulling a segment's dwell towards the overall one
STALE_MIN_ADVANCES = 30  # the longest advance seen means little on fewer advances


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    scenario : Scenario
        Ready for :func:`pipesim.simulate` (or to write with :func:`write_calibration`).
    report : DataFrame
        Data-quality report: ``item``, ``rows``, ``action``, ``rule``.
    fits : dict
        Stage name -> :class:`~pipesim.calibration.survival.StageFit` (overall rows).
    win_probability : dict
        Stage name -> probability that a deal there is eventually won.
    """

    scenario: Scenario
    report: pd.DataFrame
    fits: dict[str, StageFit]
    win_probability: dict[str, float]

    def summary(self) -> str:
        """The printed summary: rows read, used, set aside by reason, and the stage estimates."""
        lines = []
        for row in self.report.itertuples():
            lines.append(f"{row.item:<48} {row.rows:>8,}  {row.action:<9}  {row.rule}")
        lines.append("")
        lines.append(
            f"{'stage':<20} {'conversion':>10} {'n':>8} {'dwell_days':>10} {'dwell_cv':>8} "
            f"{'advanced':>8} {'lost':>6} {'open':>6}"
        )
        rows = self.scenario.stages[self.scenario.default_rows]
        for row, f in zip(rows.itertuples(), self.fits.values(), strict=True):
            lines.append(
                f"{row.stage!s:<20} {row.conversion:>10.3f} {row.conversion_n:>8.0f} "
                f"{row.dwell_days:>10.1f} {row.dwell_cv:>8.2f} {f.advanced:>8} {f.lost:>6} "
                f"{f.still_open:>6}"
            )
        return "\n".join(lines)


def _issue_rows(history: History) -> list[dict[str, object]]:
    return [
        {"item": i.reason, "rows": i.rows, "action": i.action, "rule": i.rule}
        for i in history.issues
    ]


def calibrate_history(
    history: History,
    as_of: object,
    *,
    segments: Sequence[str] | None = None,
    horizon_months: int = 12,
    name: str = "",
    window_months: int = 12,
) -> Calibration:
    """Estimate a scenario from a history, using only what was known before ``as_of``.

    Parameters
    ----------
    history : History
        From an adapter (:func:`pipesim.calibration.adapters.read_history`) or
        :func:`pipesim.calibration.history.make_history`.
    as_of : date-like
        The calibration date: the forecast starts there, and nothing dated on or
        after it is used.
    segments : list of str, optional
        Segment columns: each combination of their values gets stage rows
        partially pooled towards the overall ones, and its own arrivals.
    horizon_months : int
        Months of new leads to write.
    name : str
        The scenario's name.
    window_months : int
        Months of recent creations the lead rate is measured on.

    Returns
    -------
    Calibration
    """
    day = as_of if isinstance(as_of, dt.date) else as_of_date(as_of)
    cut = pd.Timestamp(day)
    segs = list(segments or [])
    bad = [s for s in segs if s not in history.segments]
    if bad:
        raise InputError(
            f"{history.source}: segment column(s) {', '.join(bad)} not in the history "
            f"(segment columns there: {', '.join(history.segments) or 'none'}). "
            "Choose segments= among them.",
            parameters=("segments",),
        )
    paths = paths_at(history, cut)
    deals = paths.deals
    if not len(deals):
        raise InputError(
            f"{history.source}: no deal was created before {day}; nothing to calibrate on. "
            "Choose a later as_of=.",
            parameters=("as_of",),
        )
    report = [
        {"item": "rows read", "rows": history.rows_read, "action": "note", "rule": ""},
        *_issue_rows(history),
    ]
    later = int((history.deals["created_at"] >= cut).sum())
    if later:
        report.append(
            {
                "item": "created on or after as_of",
                "rows": later,
                "action": "set aside",
                "rule": "not known at as_of; not used",
            }
        )
    report += [{"item": r, "rows": c, "action": "note", "rule": t} for r, c, t in paths.notes]
    funnel = history.funnel
    obs = paths.obs
    fits: dict[str, StageFit] = {}
    stage_rows = []
    for s, stage in enumerate(funnel):
        o = obs[obs["stage"] == s]
        fit = fit_stage(o["days"].to_numpy(), o["outcome"].to_numpy())
        fits[stage] = fit
    for stage, fit in fits.items():
        # without events only the creation-to-win time is known: every stage gets a share
        law = fits[funnel[-1]] if paths.cycle else fit
        stage_rows.append(_stage_row(stage, fit, law, len(funnel), paths.cycle, report))
    if paths.cycle:
        report.append(
            {
                "item": "no events: dwell from creation-to-win time",
                "rows": len(deals),
                "action": "note",
                "rule": "each stage's dwell = the time from creation to a win divided by the "
                "number of stages (cv scaled by its square root)",
            }
        )
    stages = pd.DataFrame(stage_rows)
    stages["value_cv"] = _value_cv(deals, report)
    if segs:
        stages = _segment_rows(stages, funnel, obs, deals, segs)
    phi = _overdispersion(obs) if history.dated else 1.0
    if phi > 1.0:
        stages["conversion_n"] = np.maximum(stages["conversion_n"] / phi, 2.0)
        report.append(
            {
                "item": "conversion drifts month to month",
                "rows": int((obs["outcome"] != OPEN).sum()),
                "action": "note",
                "rule": f"monthly conversions vary {phi:.1f}x more than chance: each stage's "
                "conversion_n is divided by that (quasi-binomial)",
            }
        )
    win = _win_probability(stages, funnel)
    arrivals, mean_amount = arrivals_table(
        deals, day, horizon_months, segs, history.deals["created_at"].min(), window_months
    )
    if not history.dated:
        arrivals = arrivals.iloc[0:0]
        report.append(
            {
                "item": "no real dates in this export",
                "rows": len(deals),
                "action": "note",
                "rule": "conversions and durations only: no open book, no arrivals",
            }
        )
    book = _book(deals, funnel, fits, mean_amount, segs, report, stale_rule=not paths.cycle)
    used = len(deals)
    report.insert(
        1 + len(history.issues),
        {"item": "rows used", "rows": used, "action": "note", "rule": "deals known at as_of"},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PipesimWarning)
        scenario = make_scenario(
            stages, book, arrivals, as_of=day, horizon_months=horizon_months, name=name
        )
    for w in caught:
        report.append({"item": str(w.message), "rows": 0, "action": "note", "rule": "warning"})
    return Calibration(scenario, pd.DataFrame(report), fits, win)


def _stage_row(
    stage: str,
    fit: StageFit,
    law: StageFit,
    n_stages: int,
    cycle: bool,
    report: list[dict[str, object]],
) -> dict[str, object]:
    dwell, cv = law.dwell_days, law.dwell_cv
    if cycle:
        dwell, cv = dwell / n_stages, cv * np.sqrt(n_stages)
    if not np.isfinite(dwell):
        dwell, cv = DEFAULT_DWELL, 1.0
        report.append(
            {
                "item": f"stage {stage}: no deal has advanced yet",
                "rows": 0,
                "action": "note",
                "rule": f"dwell set to {DEFAULT_DWELL:g} days, cv 1; edit stages.parquet",
            }
        )
    return {
        "stage": stage,
        "conversion": fit.conversion,
        "dwell_days": float(dwell),
        "dwell_cv": float(cv),
        "conversion_n": fit.conversion_n,
    }


def _segment_rows(
    stages: pd.DataFrame,
    funnel: Sequence[str],
    obs: pd.DataFrame,
    deals: pd.DataFrame,
    segs: list[str],
) -> pd.DataFrame:
    """Per segment combination, each stage's conversion (and dwell) pooled towards the overall."""
    for col in segs:
        stages[col] = None
    keyed = obs.join(deals[segs], on="row").dropna(subset=segs)
    rows = []
    for s, stage in enumerate(funnel):
        base = stages.iloc[s]
        o = keyed[keyed["stage"] == s]
        groups = list(o.groupby(segs))
        if not groups:
            continue
        fits = [fit_stage(g["days"].to_numpy(), g["outcome"].to_numpy()) for _, g in groups]
        # each segment's own censored estimate, weighted by its deals with an outcome
        adv = np.array([f.conversion * (f.advanced + f.lost) for f in fits], dtype=float)
        closed = np.array([f.advanced + f.lost for f in fits], dtype=float)
        pooled, evidence, _ = pooled_conversion(
            float(base["conversion"]), adv, closed, cap=float(base["conversion_n"])
        )
        for (key, _), f, p, n in zip(groups, fits, pooled, evidence, strict=True):
            values = key if isinstance(key, tuple) else (key,)
            w = f.advanced if np.isfinite(f.dwell_days) else 0.0
            d_own = f.dwell_days if w else 0.0
            row = {
                "stage": stage,
                "conversion": float(p),
                "dwell_days": float(
                    (w * d_own + SEGMENT_DWELL_WEIGHT * base["dwell_days"])
                    / (w + SEGMENT_DWELL_WEIGHT)
                ),
                "dwell_cv": float(base["dwell_cv"]),
                "conversion_n": float(n),
            }
            row.update(dict(zip(segs, values, strict=True)))
            rows.append(row)
    return pd.concat([stages, pd.DataFrame(rows)], ignore_index=True)


def _overdispersion(obs: pd.DataFrame) -> float:
    """How much more each stage's monthly conversion varies than binomial noise allows.

    Outcomes are grouped by stage and by the month they happened in (months with
    at least 10 outcomes); the Pearson chi-square over all groups, divided by its
    degrees of freedom, is the quasi-binomial dispersion (at least 1).
    """
    done = obs[(obs["outcome"] != OPEN) & obs["exit_at"].notna()]
    chi2, dof = 0.0, 0
    for _, part in done.groupby("stage"):
        month = pd.to_datetime(part["exit_at"]).dt.to_period("M")
        adv = (part["outcome"] == ADVANCE).groupby(month).agg(["sum", "count"])
        adv = adv[adv["count"] >= 10]
        p = adv["sum"].sum() / max(adv["count"].sum(), 1)
        if len(adv) < 3 or p <= 0 or p >= 1:
            continue
        chi2 += float((((adv["sum"] - adv["count"] * p) ** 2) / (adv["count"] * p * (1 - p))).sum())
        dof += len(adv) - 1
    return max(chi2 / dof, 1.0) if dof else 1.0


def _value_cv(deals: pd.DataFrame, report: list[dict[str, object]]) -> float:
    """Spread of the booked value around the open amount, from deals won before as_of."""
    won = deals[(deals["state"] == "won") & (deals["open_amount"] > 0) & (deals["amount"] > 0)]
    ratio = won["amount"] / won["open_amount"]
    if len(ratio) < 20 or float(ratio.std()) == 0.0:
        return 0.0
    report.append(
        {
            "item": "value_cv from won amount / open amount",
            "rows": len(ratio),
            "action": "note",
            "rule": f"mean ratio {ratio.mean():.3f}, cv {ratio.std() / ratio.mean():.3f}",
        }
    )
    return float(ratio.std() / ratio.mean())


def _win_probability(stages: pd.DataFrame, funnel: Sequence[str]) -> dict[str, float]:
    conv = stages["conversion"].to_numpy()[: len(funnel)]
    tail = np.cumprod(conv[::-1])[::-1]
    return {s: float(p) for s, p in zip(funnel, tail, strict=True)}


def _book(
    deals: pd.DataFrame,
    funnel: Sequence[str],
    fits: dict[str, StageFit],
    mean_amount: float,
    segs: list[str],
    report: list[dict[str, object]],
    *,
    stale_rule: bool = True,
) -> pd.DataFrame:
    """The deals open at as_of, in their stage then; stale ones left out (counted)."""
    open_ = deals[deals["state"] == "open"]
    stage = np.asarray(funnel, dtype=object)[open_["reached"].to_numpy(dtype=np.int64)]
    limit = np.array(
        [
            fits[s].max_advance_days
            if stale_rule and fits[s].advanced >= STALE_MIN_ADVANCES
            else np.inf
            for s in stage
        ],
        dtype=float,
    )
    age = open_["days_in_stage"].to_numpy(dtype=float)
    stale = np.isfinite(limit) & (age > limit)
    if stale.any():
        report.append(
            {
                "item": "stale open deals",
                "rows": int(stale.sum()),
                "action": "set aside",
                "rule": "open longer than any deal took to advance from that stage: left out "
                "of the book (still used as censored evidence)",
            }
        )
    amount = open_["open_amount"].to_numpy(dtype=float)
    missing = ~(amount > 0)
    amount = np.where(missing, mean_amount if np.isfinite(mean_amount) else 0.0, amount)
    book = pd.DataFrame(
        {
            "deal_id": open_["deal_id"].to_numpy(),
            "stage": stage,
            "amount": amount,
            "days_in_stage": np.maximum(age, 0.0),
        }
    )
    for col in segs:
        book[col] = open_[col].to_numpy()
    return book[~stale].reset_index(drop=True)


def write_calibration(calibration: Calibration, out: str | os.PathLike[str]) -> list[Path]:
    """Write the scenario folder (stages, deals, arrivals, scenario) plus calibration.parquet."""
    sc = calibration.scenario
    settings = pd.DataFrame(
        {
            "as_of": [sc.as_of],
            "horizon_months": [sc.horizon_months],
            "name": [sc.name],
            "currency": [sc.currency],
        }
    )
    return parquet.write_tables(
        out,
        {
            "stages": sc.stages,
            "deals": sc.deals,
            "arrivals": sc.arrivals,
            "scenario": settings,
            "calibration": calibration.report,
        },
        {"as_of": str(sc.as_of), "command": "calibrate"},
    )
