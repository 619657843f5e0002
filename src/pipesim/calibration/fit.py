"""CRM history -> scenario: conversions, dwell times, the open book and new leads at a date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from pipesim.calibration.close_dates import book_dates, fit_close_law, law_text
from pipesim.calibration.conversion_level import LR_MIN, stage_level
from pipesim.calibration.history import History, as_of_date
from pipesim.calibration.lead_rates import HALF_LIFE_MONTHS, arrivals_table
from pipesim.calibration.lead_shocks import lead_residuals, lead_shocks
from pipesim.calibration.odds_shocks import cohort_residuals, odds_shocks
from pipesim.calibration.quarter_pace import (
    booked_counts,
    due_dates,
    month_slips,
    quarter_paces,
    rush_slips,
)
from pipesim.calibration.shock_variance import persistence
from pipesim.calibration.stage_paths import paths_at
from pipesim.calibration.survival import (
    ADVANCE,
    DEFAULT_DWELL,
    MIN_LOSSES,
    OPEN,
    Prior,
    StageFit,
    fit_stage,
    pooled_conversion,
)
from pipesim.errors import InputError, PipesimWarning
from pipesim.io import parquet
from pipesim.io.scenario_folder import scenario_tables
from pipesim.scenario.scenario import Scenario, make_scenario

SEGMENT_DWELL_WEIGHT = 20.0  # pseudo-deals pulling a segment's clocks towards the overall ones
LATE_CLOSES_EXPECTED = 10.0  # closes expected before the first recorded one: recorded late
MIN_SEGMENT_N = 0.5  # a segment row's conversion_n is at least this (its own share, > 0)
LEAK_MIN_BLANK = 10  # blank deals of the other kind that make a segment column a leak
STALE_EXPORT_DAYS = 31  # as_of this long after the history's last date gets a note
DISTRIBUTIONS = ("auto", "gamma", "lognormal")  # choices of dwell_dist= and loss_dist=
# calibration.parquet's estimate rows (segment columns go between stage and parameter)
ESTIMATE_COLUMNS = ("item", "rows", "action", "rule", "stage", "parameter", "value", "se")


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
    estimates : DataFrame
        Every stage row's parameters with standard errors: ``stage``, segment
        columns, ``parameter``, ``value``, ``se`` (written to
        ``calibration.parquet`` after the data-quality rows).
    """

    scenario: Scenario
    report: pd.DataFrame
    fits: dict[str, StageFit]
    win_probability: dict[str, float]
    estimates: pd.DataFrame

    def summary(self) -> str:
        """The printed summary: rows read, used, set aside by reason, and the stage estimates.

        Each estimate of a whole-stage row is printed with its standard error
        (``±``); ``loss_days`` ``never`` is the losses-never-recorded model.
        """
        lines = []
        for row in self.report.itertuples():
            lines.append(f"{row.item:<48} {row.rows:>8,}  {row.action:<9}  {row.rule}")
        lines.append("")
        lines.append(
            f"{'stage':<16} {'conversion':>15} {'n':>7} {'dwell_days':>15} {'dwell_cv':>8} "
            f"{'law':<9} {'loss_days':>15} {'loss_cv':>7} {'law':<9} "
            f"{'advanced':>8} {'lost':>6} {'open':>6}"
        )
        rows = self.scenario.stages[self.scenario.default_rows]
        est = self.estimates
        segs = [c for c in est.columns if c not in ESTIMATE_COLUMNS]
        est = est[est[segs].isna().all(axis=1)] if segs else est  # whole-stage rows only
        by: dict[tuple[str, str], tuple[float, float]] = {
            (str(stage), str(name)): (float(value), float(se))
            for stage, name, value, se in zip(
                est["stage"], est["parameter"], est["value"], est["se"], strict=True
            )
        }
        for row, f in zip(rows.itertuples(), self.fits.values(), strict=True):
            stage = str(row.stage)

            def pm(name: str, digits: int, stage: str = stage) -> str:
                value, se = by.get((stage, name), (np.nan, np.nan))
                if np.isinf(value):
                    return "never"
                if np.isnan(value):
                    return ""
                tail = f" ±{se:.{digits}f}" if np.isfinite(se) else ""
                return f"{value:.{digits}f}{tail}"

            lost = by.get((stage, "loss_days"))
            loss_law = "" if lost is None or not np.isfinite(lost[0]) else f.loss_dist
            lines.append(
                f"{stage!s:<16} {pm('conversion', 3):>15} {row.conversion_n:>7.0f} "
                f"{pm('dwell_days', 1):>15} {row.dwell_cv:>8.2f} {f.dwell_dist:<9} "
                f"{pm('loss_days', 1):>15} {pm('loss_cv', 2).split(' ')[0]:>7} {loss_law:<9} "
                f"{f.advanced:>8} {f.lost:>6} {f.still_open:>6}"
            )
        if self.scenario.close_law is not None:
            lines += ["", law_text(self.scenario.close_law)]
        return "\n".join(lines)

    def table(self) -> pd.DataFrame:
        """``calibration.parquet``: the data-quality rows, then the estimates with their se."""
        return pd.concat([self.report, self.estimates], ignore_index=True)


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
    window_months: int = 24,
    dwell_dist: str = "auto",
    loss_dist: str = "auto",
    since: object | None = None,
    leads_until: object | None = None,
    half_life: float = HALF_LIFE_MONTHS,
    moving_conversions: bool = False,
    fiscal_year_start: int = 1,
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
        Months of recent creations the lead rate is fitted on (weighted by recency).
    dwell_dist, loss_dist : str
        Law of the advance clock and of the loss clock: ``gamma``, ``lognormal``
        or ``auto`` (per stage, the one with the higher likelihood).
    since : date-like, optional
        Ignore the deals created before this date for every estimate (conversions,
        clocks, lead rates); those still open stay in the book.
    leads_until : date-like, optional
        The lead rate is fitted on the deals created before this date (default
        as_of): leave out a month known to be odd, or an export's partial month.
    half_life : float
        Months after which a month's weight in the lead rate's fit halves
        (``inf``: every month alike). Default :data:`HALF_LIFE_MONTHS`.
    moving_conversions : bool
        Read where each stage's conversion stands now from its entry months
        (:mod:`pipesim.calibration.conversion_level`) and use it when it clearly
        moved. Off by default: it holds the clocks at the whole history's fit, and
        where those are off for recent deals (the Maven export's late-recorded
        closes) it reads the gap as a moved conversion.
    fiscal_year_start : int
        The month the fiscal year starts in: the quarter-end rush is read on its quarters.

    Returns
    -------
    Calibration
    """
    for param, value in (("dwell_dist", dwell_dist), ("loss_dist", loss_dist)):
        if value not in DISTRIBUTIONS:
            raise InputError(
                f"{param}={value!r} is not a law pipesim fits: choose "
                f"{param}= among {', '.join(DISTRIBUTIONS)}.",
                parameters=(param,),
            )
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
    start, lead_end = _history_window(since, leads_until, half_life, cut)
    if not len(deals):
        raise InputError(
            f"{history.source}: no deal was created before {day}; nothing to calibrate on. "
            "Choose a later as_of=.",
            parameters=("as_of",),
        )
    _refuse_leaks(history.source, deals, segs)
    report = [
        {"item": "rows read", "rows": history.rows_read, "action": "note", "rule": ""},
        *_issue_rows(history),
    ]
    gap = (cut - history.last_date).days
    if history.dated and gap > STALE_EXPORT_DAYS:
        report.append(
            {
                "item": "as_of long after the history ends",
                "rows": int((deals["state"] == "open").sum()),
                "action": "note",
                "rule": f"as_of is {gap:,} days after the last date in the history "
                f"({history.last_date.date()}): the deals open in the export are taken as still "
                "open at as_of, older by those days; export the CRM again, or choose as_of= "
                "within the history",
            }
        )
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
    if start is not None:
        old = (deals["created_at"] < start).to_numpy()
        obs = obs[~old[obs["row"].to_numpy()]]
        report.append(
            {
                "item": "created before since",
                "rows": int(old.sum()),
                "action": "not fitted",
                "rule": f"older than since={start.date()}: left out of the conversions, clocks "
                "and lead rates; those still open stay in the book",
            }
        )
        if not len(obs):
            raise InputError(
                f"{history.source}: no deal was created between since={start.date()} and "
                f"as_of={day}; nothing to calibrate on. Choose an earlier since=.",
                parameters=("since",),
            )
    rush: tuple[float, float] | None = None
    late: tuple[float, ...] | None = None
    if history.dated:
        won = deals[(deals["state"] == "won") & (deals["closed_at"] < cut)]
        if start is not None:
            won = won[won["created_at"] >= start]
        # Booked later than due: the rush as slips, and the months that slip to the next.
        found, why = quarter_paces(won["closed_at"], cut, fiscal_year_start)
        rush = rush_slips(None if found == (1.0, 1.0, 1.0) else found)
        if rush is not None:
            why += (
                f": {rush[0]:.0%} of the wins due in a quarter's first month and {rush[1]:.0%} "
                "of its second are booked in its last"
            )
        late, why_late = month_slips(won["closed_at"], cut, rush, fiscal_year_start)
        for item, rule in (
            ("closing pace by month of quarter", why),
            ("wins booked the month after", why_late),
        ):
            if rule:
                report.append({"item": item, "rows": len(won), "action": "note", "rule": rule})
    obs = obs.assign(entered=_entered(obs, cut))
    if rush is not None or late is not None:  # the clocks on the wins' due dates
        obs = obs.assign(days=_unslipped(obs, len(funnel) - 1, rush, late, fiscal_year_start))
    fits: dict[str, StageFit] = {}
    stage_rows = []
    if history.dated:
        _late_closes(deals, cut, report)
    for s, stage in enumerate(funnel):
        o = obs[obs["stage"] == s]
        fits[stage] = fit_stage(
            o["days"].to_numpy(),
            o["outcome"].to_numpy(),
            dwell_dist=dwell_dist,
            loss_dist=loss_dist,
        )
    # With a quarter-end rush the recent cohorts' outcomes follow the quarter's calendar
    # (wins pulled to its end), which a level would read as a moved conversion: not read.
    level_read = moving_conversions and history.dated and not paths.cycle and rush is None
    shifts = _levels(fits, obs, report) if level_read else {}
    fits = {stage: shifts[stage][0] if stage in shifts else fit for stage, fit in fits.items()}
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
                "number of stages (cv scaled by its square root); no loss clock (the time in "
                "a stage is unknown): an open deal keeps its stage's conversion at any age",
            }
        )
    stages = pd.DataFrame(stage_rows)
    stages["value_cv"] = _value_cv(deals, report)
    moved = {s for s, stage in enumerate(fits) if stage in shifts}  # their level has the drift
    phi = 1.0
    if history.dated:
        phi = _overdispersion(obs, list(fits.values()), cut, moved, (rush, late), fiscal_year_start)
    stages["conversion_n"] = np.maximum(stages["conversion_n"] / phi, 2.0)
    if segs:
        stages, seg_fits = _segment_rows(stages, fits, obs, deals, segs, paths.cycle, phi)
    else:
        seg_fits = {}
    for stage, (_, shift) in shifts.items():  # segments move with their stage's level
        rows = (stages["stage"] == stage).to_numpy() & (np.arange(len(stages)) >= len(funnel))
        c = stages.loc[rows, "conversion"].to_numpy(dtype=float)
        stages.loc[rows, "conversion"] = special.expit(special.logit(c) + shift)
    if paths.cycle:
        stages = stages.drop(columns=["loss_days", "loss_cv", "loss_dist", "loss_recorded"])
    elif not (stages["loss_recorded"] < 1.0).any():
        stages = stages.drop(columns="loss_recorded")  # every loss recorded: the default
    if phi > 1.0:
        report.append(
            {
                "item": "conversion drifts month to month",
                "rows": int((obs["outcome"] != OPEN).sum()),
                "action": "note",
                "rule": f"monthly advances vary {phi:.1f}x more than the fitted stages allow: "
                "each stage's conversion_n is divided by that (quasi-binomial)",
            }
        )
    win = _win_probability(stages, funnel)
    first = history.deals["created_at"].min()
    arrivals, mean_amount, lead_notes = arrivals_table(
        deals if start is None else deals[deals["created_at"] >= start],
        day,
        horizon_months,
        segs,
        first if start is None else max(first, start),
        window_months,
        leads_until=lead_end,
        half_life=half_life,
    )
    report += [
        {"item": "new leads trend", "rows": 0, "action": "note", "rule": t} for t in lead_notes
    ]
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
    book = _book(deals, funnel, mean_amount, segs)
    market_sd = market_leads_sd = 0.0
    if history.dated and len(arrivals):
        market_leads_sd, segment_leads_sd, why = lead_shocks(
            deals if start is None else deals[deals["created_at"] >= start],
            cut,
            segs,
            first if start is None else max(first, start),
            window_months,
            leads_until=lead_end,
        )
        if why:
            item = "lead volumes move month to month"
            report.append({"item": item, "rows": 0, "action": "note", "rule": why})
        if segment_leads_sd > 0:
            arrivals["segment_leads_shock_sd"] = segment_leads_sd
    if history.dated:
        market_sd, segment_sd, why = odds_shocks(
            deals if start is None else deals[deals["created_at"] >= start], cut, segs
        )
        if why:
            report.append(
                {
                    "item": "new deals' odds move month to month",
                    "rows": len(deals),
                    "action": "note",
                    "rule": why,
                }
            )
        if segment_sd > 0 and len(arrivals):
            arrivals["segment_shock_sd"] = segment_sd
    rho = 0.0
    if history.dated and max(market_sd, market_leads_sd) > 0:
        sample = deals if start is None else deals[deals["created_at"] >= start]
        begin = first if start is None else max(first, start)
        series = [
            cohort_residuals(sample, cut)[:2],
            lead_residuals(sample, cut, begin, window_months, lead_end),
        ]
        rho, months = persistence(series)
        if rho > 0:
            # The shocks' variances were read on month-to-month differences, which see
            # only 1 - rho of a persistent path's variance.
            widen = 1.0 / np.sqrt(1.0 - rho)
            market_sd, market_leads_sd = market_sd * widen, market_leads_sd * widen
            for col in ("segment_shock_sd", "segment_leads_shock_sd"):
                if col in arrivals.columns:
                    arrivals[col] = arrivals[col] * widen
            item = "monthly shocks persist"
            rule = (
                f"the cohorts' odds and lead counts correlate {rho:.2f} from one month to "
                f"the next (over {months} pairs of months): every shock is a path of that "
                "persistence (shock_persistence), its sd widened by 1/sqrt(1 - persistence)"
            )
            report.append({"item": item, "rows": 0, "action": "note", "rule": rule})
    used = len(deals)
    report.insert(
        1 + len(history.issues),
        {"item": "rows used", "rows": used, "action": "note", "rule": "deals known at as_of"},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PipesimWarning)
        scenario = make_scenario(
            stages,
            book,
            arrivals,
            as_of=day,
            horizon_months=horizon_months,
            name=name,
            calibrated=True,  # a funnel read from the history: no funnel-size warning
            rush_slips=rush,
            month_slips=late,
            market_shock_sd=market_sd,
            market_leads_shock_sd=market_leads_sd,
            shock_persistence=rho,
        )
    for w in caught:
        report.append({"item": str(w.message), "rows": 0, "action": "note", "rule": "warning"})
    if history.dated and history.close_changes is not None and len(history.close_changes):
        scenario = _with_close_dates(scenario, history, cut, win, report)
    laws = {s: fits[funnel[-1]] if paths.cycle else f for s, f in fits.items()}
    estimates = _estimates(stages, laws, seg_fits, segs, len(funnel) if paths.cycle else 0)
    return Calibration(scenario, pd.DataFrame(report), fits, win, estimates)


def _with_close_dates(
    scenario: Scenario,
    history: History,
    cut: pd.Timestamp,
    win: dict[str, float],
    report: list[dict[str, object]],
) -> Scenario:
    """The scenario with its slippage law and its open deals' stated dates as of ``cut``."""
    law, rows = fit_close_law(history, cut, win)
    report += rows
    if law is None:
        return scenario
    book = scenario.deals
    dates = book_dates(history, cut, book["deal_id"])
    book = book.assign(close_date=dates["close_date"].to_numpy(), pushes=dates["pushes"].to_numpy())
    report.append(
        {
            "item": "close dates: open deals with a stated date",
            "rows": int(book["close_date"].notna().sum()),
            "action": "note",
            "rule": "timed by the slippage law (close_dates.parquet); the others by the clocks",
        }
    )
    return scenario.replace(deals=book, close_law=law)


def _stage_end(obs: pd.DataFrame, cut: pd.Timestamp) -> np.ndarray:
    """When each observation left its stage (as_of while still open)."""
    exit_at = obs["exit_at"].to_numpy(dtype="datetime64[ns]")
    return np.where(np.isnat(exit_at), cut.to_datetime64(), exit_at).astype("datetime64[ns]")


def _entered(obs: pd.DataFrame, cut: pd.Timestamp) -> np.ndarray:
    """Each observation's date of entry into its stage (NaT when its time there is unknown)."""
    end = _stage_end(obs, cut)
    days = obs["days"].to_numpy(dtype=float)
    known = np.isfinite(days)
    out = np.full(len(obs), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[known] = end[known] - (days[known] * 86_400e9).astype("timedelta64[ns]")
    return out


def _levels(
    fits: dict[str, StageFit], obs: pd.DataFrame, report: list[dict[str, object]]
) -> dict[str, tuple[StageFit, float]]:
    """Stages whose conversion moved: the fit at today's level, and the logit shift.

    :func:`pipesim.calibration.conversion_level.stage_level` on each stage's entry
    months; used when the moving level clearly beats a fixed one. The conversion's
    variance is the filtered level's.
    """
    out = {}
    for s, (stage, fit) in enumerate(fits.items()):
        o = obs[obs["stage"] == s]
        level = stage_level(
            fit,
            o["days"].to_numpy(dtype=float),
            o["outcome"].to_numpy(),
            o["entered"].to_numpy(dtype="datetime64[ns]"),
        )
        if level is None or level.log_lr <= LR_MIN:
            continue
        c = level.conversion
        var = level.se**2
        n = max(c * (1.0 - c) / var - 1.0, 2.0)
        moved = dataclasses.replace(fit, conversion=c, conversion_se=math.sqrt(var), conversion_n=n)
        out[stage] = (moved, float(special.logit(c) - special.logit(fit.conversion)))
        report.append(
            {
                "item": f"stage {stage}: conversion moved",
                "rows": len(o),
                "action": "note",
                "rule": f"over {level.cohorts} entry months the conversion wanders (monthly "
                f"step {level.step_sd:.2f} on the logit scale, likelihood ratio "
                f"{level.log_lr:.1f}): it stands at {c:.3f} now against {fit.conversion:.3f} "
                "over the whole history; the forecast uses today's level",
            }
        )
    return out


def _unslipped(
    obs: pd.DataFrame,
    last: int,
    rush: tuple[float, ...] | None,
    late: tuple[float, ...] | None,
    year_start: int,
) -> np.ndarray:
    """Each observation's days, the last stage's wins counted to their due dates."""
    days = obs["days"].to_numpy(dtype=float).copy()
    wins = ((obs["stage"] == last) & (obs["outcome"] == ADVANCE)).to_numpy().copy()
    wins &= ~np.isnat(obs["entered"].to_numpy(dtype="datetime64[ns]"))
    won_at = obs["exit_at"].to_numpy(dtype="datetime64[ns]")[wins]
    entered = obs["entered"].to_numpy(dtype="datetime64[ns]")[wins]
    due = due_dates(won_at, entered, rush, late, year_start)
    days[wins] -= (won_at - due) / np.timedelta64(1, "D")
    return days


def _history_window(
    since: object | None, leads_until: object | None, half_life: float, cut: pd.Timestamp
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """``since`` and ``leads_until`` as timestamps, checked against as_of; ``half_life`` > 0."""
    if not half_life > 0:  # NaN too
        raise InputError(
            f"half_life={half_life!r}: the lead rate's recency half-life is a number of "
            "months > 0 (inf: every month weighs the same).",
            parameters=("half_life",),
        )
    out: list[pd.Timestamp | None] = []
    for name, value in (("since", since), ("leads_until", leads_until)):
        if value is None:
            out.append(None)
            continue
        day = pd.Timestamp(value if isinstance(value, dt.date) else as_of_date(value))
        if day >= cut:
            raise InputError(
                f"{name}={day.date()} is not before as_of={cut.date()}: nothing before it "
                f"would be left to calibrate on. Choose {name}= before as_of=.",
                parameters=(name, "as_of"),
            )
        out.append(day)
    return out[0], out[1]


def _refuse_leaks(source: str, deals: pd.DataFrame, segs: list[str]) -> None:
    """Refuse a segment column filled only for won (or only for closed) deals.

    Such a value is known only once the outcome is: used as a segment, it would
    tell the forecast which deals win. At least :data:`LEAK_MIN_BLANK` deals of
    the other kind must be blank, so a small history is not refused on chance.
    """
    state = deals["state"].to_numpy()
    for col in segs:
        filled = deals[col].notna().to_numpy()
        for kind, inside in (("won", state == "won"), ("closed", state != "open")):
            blank_outside = int((~filled & ~inside).sum())
            if filled.any() and not (filled & ~inside).any() and blank_outside >= LEAK_MIN_BLANK:
                others = "open or lost" if kind == "won" else "open"
                raise InputError(
                    f"{source}, column '{col}': filled only for {kind} deals "
                    f"({int(filled.sum()):,} of them; blank on all {blank_outside:,} {others} "
                    "ones): it is known only after the outcome, so as a segment it would tell "
                    f"the forecast which deals win. Leave '{col}' out of segments=.",
                    parameters=("segments",),
                )


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
                "rule": f"dwell set to {DEFAULT_DWELL:g} days, cv 1, no loss clock; the "
                "conversion from the closed deals and a uniform prior; edit stages.parquet",
            }
        )
    if fit.never_lost and not cycle:
        report.append(
            {
                "item": f"stage {stage}: no recorded loss",
                "rows": fit.lost,
                "action": "note",
                "rule": f"fewer than {MIN_LOSSES} losses with a date: losses are taken as never "
                "recorded (loss_days = inf); the conversion follows from how advances die out "
                "with age, and an old open deal keeps only its small odds",
            }
        )
    return {
        "stage": stage,
        "conversion": fit.conversion,
        "dwell_days": float(dwell),
        "dwell_cv": float(cv),
        "dwell_dist": law.dwell_dist,
        "conversion_n": fit.conversion_n,
        "loss_days": np.nan if cycle else fit.loss_days,
        "loss_cv": np.nan if cycle else fit.loss_cv,
        "loss_dist": None if cycle or np.isnan(fit.loss_days) else fit.loss_dist,
        "loss_recorded": np.nan
        if cycle or fit.never_lost or np.isnan(fit.loss_days)
        else fit.loss_recorded,
    }


def _segment_rows(
    stages: pd.DataFrame,
    fits: dict[str, StageFit],
    obs: pd.DataFrame,
    deals: pd.DataFrame,
    segs: list[str],
    cycle: bool,
    phi: float,
) -> tuple[pd.DataFrame, dict[tuple[str, tuple[object, ...]], StageFit]]:
    """Per segment combination, each stage's conversion and clocks pooled towards the overall.

    Each segment's stage is fitted like the whole stage (same laws and cvs), its
    clocks' means pulled towards the overall ones by ``SEGMENT_DWELL_WEIGHT``
    pseudo-deals; its conversion is then pooled (beta-binomial, the pooling weight
    ``m`` from the spread between segments) and written as the pooled estimate
    with the weights the engine draws it with around the whole stage's draw
    (:func:`segment_weights`: each deal counted once, the whole stage's spread
    shared). The evidence is divided by ``phi``, the drift's dispersion. Without
    events only the conversions are segmented: the clocks are on the creation
    clock and stay the funnel row's.
    """
    stages["conversion_pool"] = np.nan
    for col in segs:
        stages[col] = None
    keyed = obs.join(deals[segs], on="row").dropna(subset=segs)
    rows = []
    seg_fits: dict[tuple[str, tuple[object, ...]], StageFit] = {}
    for s, (stage, base_fit) in enumerate(fits.items()):
        base = stages.iloc[s]
        o = keyed[keyed["stage"] == s]
        groups = list(o.groupby(segs))
        if not groups:
            continue
        held = {
            "dwell_cv": base_fit.dwell_cv,
            "loss_cv": base_fit.loss_cv,
            "loss_recorded": base_fit.loss_recorded,
        }
        prior: Prior | None = Prior(
            dwell_days=base_fit.dwell_days,
            loss_days=base_fit.loss_days,
            cv_dwell=base_fit.dwell_cv,
            cv_loss=base_fit.loss_cv,
            weight=SEGMENT_DWELL_WEIGHT,
        )
        if not np.isfinite(base_fit.dwell_days):  # nothing advanced: conversions only
            prior, held = None, {}
        group_fits = [
            fit_stage(
                g["days"].to_numpy(),
                g["outcome"].to_numpy(),
                dwell_dist=base_fit.dwell_dist,
                loss_dist=base_fit.loss_dist,
                prior=prior,
                fixed=held,
                never_lost=base_fit.never_lost,
            )
            for _, g in groups
        ]
        n = np.array([f.conversion_n for f in group_fits]) / phi
        own = np.array([f.conversion for f in group_fits])
        c, n_book = float(base["conversion"]), float(base["conversion_n"])
        pooled, _, m = pooled_conversion(c, own * n, n, cap=n_book)
        evidence, pool = segment_weights(c, n_book, pooled, n, m)
        for (key, _), f, p, e, k in zip(groups, group_fits, pooled, evidence, pool, strict=True):
            values = key if isinstance(key, tuple) else (key,)
            seg_fits[(stage, values)] = f
            row: dict[str, object] = {
                "stage": stage,
                "conversion": float(p),
                "conversion_n": float(e),
                "conversion_pool": float(k),
            }
            if not cycle and np.isfinite(f.dwell_days):
                row.update(dwell_days=f.dwell_days, dwell_cv=f.dwell_cv, loss_cv=f.loss_cv)
                row.update(loss_days=f.loss_days, loss_dist=f.loss_dist)
                if not f.never_lost:
                    row.update(loss_recorded=f.loss_recorded)
                row.update(dwell_dist=f.dwell_dist)
            row.update(dict(zip(segs, values, strict=True)))
            rows.append(row)
    return pd.concat([stages, pd.DataFrame(rows)], ignore_index=True), seg_fits


def segment_weights(
    c: float, n_book: float, pooled: np.ndarray, n: np.ndarray, m: float
) -> tuple[np.ndarray, np.ndarray]:
    """``conversion_n`` and ``conversion_pool`` of segment rows drawn around the whole stage.

    ``c``, ``n_book``: the whole stage's conversion and evidence; ``pooled``, ``n``:
    each segment's pooled conversion and own evidence; ``m``: the pooling weight.
    The engine draws a segment as ``L`` times the whole stage's deviation plus a
    deviation of its own (variance ``C``); two things fix them:

    - each segment keeps its spread ``T = p(1-p)/(n+m+1) + k² Ve + r² Vs``: its
      own posterior given the stage (``k = m/(n+m)``), the stage's sampling
      variance ``Ve = c(1-c)/(N+1)`` (``N`` the segments' evidence together)
      carried at the conjugate weight, and the rest ``Vs = V - Ve`` of the stage's
      variance ``V = c(1-c)/(n_book+1)``, which the segments' own fits do not see
      (the laws and shares they hold at the whole stage's values) and share whole
      (``r = p(1-p)/(c(1-c))``, to the segment's scale);
    - the whole book, the segments mixed by their evidence shares ``π``, is as
      wide as the stage: ``L² V + Σ π² C = V``, so ``L² = (V - Σ π² T) / (V (1 -
      Σ π²))`` (clipped to [0, 1]) and ``C = T - L² V``.

    Returned as the engine's weights: ``w`` the Beta weight of ``C``, pool = ``L w``
    and n = ``w - pool`` (:func:`pipesim.kernels.trial.conversions`).
    """
    v = c * (1.0 - c) / (n_book + 1.0)
    if v <= 0.0 or not len(n):
        return n, np.full(n.shape, m)
    vs = max(v - c * (1.0 - c) / (float(n.sum()) + 1.0), 0.0)
    k = m / (n + m)
    q = pooled * (1.0 - pooled)
    r = q / (c * (1.0 - c))
    t = q / (n + m + 1.0) + k**2 * (v - vs) + r**2 * vs
    share = n / n.sum()
    s2 = float((share**2).sum())
    load2 = 1.0 if s2 > 1.0 - 1e-9 else (v - float(share**2 @ t)) / (v * (1.0 - s2))
    load2 = float(np.clip(load2, 0.0, 1.0))
    cond = np.maximum(t - load2 * v, 0.01 * t)  # a segment never just copies the stage
    w = np.maximum(q / cond - 1.0, 2.0)
    own = np.maximum(w * (1.0 - np.sqrt(load2)), MIN_SEGMENT_N)
    return own, w - own


def _late_closes(deals: pd.DataFrame, cut: pd.Timestamp, report: list[dict[str, object]]) -> None:
    """Say so when the CRM plainly did not record closes before its first recorded one.

    At the pace seen later (among deals created on or after the first close and
    known for at least ``x`` days, the share closed within ``x`` days), the deals
    created before the first close should have closed before it ``expected``
    times; :data:`LATE_CLOSES_EXPECTED` or more expected and none seen is not
    chance (Poisson: p < 5e-5). Their recorded close dates, and the clocks fitted
    on them, are then doubtful: a note, since no fix is safe for every CRM.
    """
    closed = (deals["state"] != "open").to_numpy()
    if not closed.any():
        return
    created = deals["created_at"].to_numpy(dtype="datetime64[ns]")
    close_at = deals["closed_at"].to_numpy(dtype="datetime64[ns]")
    first = close_at[closed].min()
    day = np.timedelta64(1, "D")
    before = created < first
    later = ~before
    exposure = (cut.to_datetime64() - created[later]) / day
    took = np.where(closed[later], (close_at[later] - created[later]) / day, np.inf)
    expected = 0.0
    for x in (first - created[before]) / day:
        known = exposure >= x
        if known.any():
            expected += float((took[known] <= x).mean())
    if expected < LATE_CLOSES_EXPECTED:
        return
    report.append(
        {
            "item": "closes recorded late",
            "rows": int((before & closed).sum()),
            "action": "note",
            "rule": f"no close is recorded before {pd.Timestamp(first).date()}, although about "
            f"{expected:,.0f} of the deals created earlier should have closed by then at the "
            "pace seen later: their close dates (and the clocks fitted on them) are doubtful; "
            "fix the close dates, or calibrate from a later as_of=",
        }
    )


def _overdispersion(
    obs: pd.DataFrame,
    fits: Sequence[StageFit],
    cut: pd.Timestamp,
    skip: set[int] | frozenset[int] = frozenset(),
    slips: tuple[tuple[float, ...] | None, tuple[float, ...] | None] = (None, None),
    year_start: int = 1,
) -> float:
    """How much more each stage's monthly advances vary than the fitted model allows.

    For each stage and calendar month before ``cut``, the fitted stage says how
    many advances to expect: each deal that entered the stage ``e`` days before
    the month's start advances inside it with probability ``c (F_adv(end - e) -
    F_adv(start - e))`` (both clocks and the censoring are in the fit, so fast
    losses and slow wins do not look like drift). The Pearson chi-square of the
    observed against the expected counts (months expecting at least 10), over all
    groups, divided by its degrees of freedom, is the quasi-binomial dispersion
    (at least 1): conversions that drift, or a calendar that bunches the wins beyond
    the booking ``slips`` (rush, month) the last stage's wins are expected with
    (:func:`~pipesim.calibration.quarter_pace.booked_counts`).
    """
    chi2, dof = 0.0, 0
    cut64 = cut.to_datetime64().astype("datetime64[ns]")
    day = np.timedelta64(1, "D")
    for s, fit in enumerate(fits):
        part = obs[(obs["stage"] == s) & obs["days"].notna()]
        if s in skip or not len(part) or not np.isfinite(fit.dwell_days):
            continue
        exit_at = part["exit_at"].to_numpy(dtype="datetime64[ns]")
        end = np.where(np.isnat(exit_at), cut64, exit_at)
        entry = (end - cut64) / day - part["days"].to_numpy(dtype=float)  # days, <= 0
        entered, count = np.unique(entry, return_counts=True)
        adv_at = ((exit_at - cut64) / day)[(part["outcome"] == ADVANCE).to_numpy()]
        start = pd.Timestamp(cut64 + entered[0] * day).to_period("M").to_timestamp()
        months = pd.date_range(start, cut, freq="MS").append(pd.DatetimeIndex([cut]))
        edges = np.unique((months.to_numpy(dtype="datetime64[ns]") - cut64) / day)
        o = np.histogram(adv_at, bins=edges)[0].astype(float)
        e = np.zeros(len(edges) - 1)
        v = np.zeros(len(edges) - 1)
        for m, (lo, hi) in enumerate(itertools.pairwise(edges)):
            live = entered < hi
            if not live.any():
                continue
            t0 = np.maximum(lo, entered[live]) - entered[live]
            p = fit.advanced_by(hi - entered[live]) - fit.advanced_by(t0)
            p = np.where(t0 > 0, p, fit.advanced_by(hi - entered[live]))
            e[m] = float(count[live] @ p)
            v[m] = float(count[live] @ (p * (1.0 - p)))
        if s == len(fits) - 1 and (slips[0] is not None or slips[1] is not None):
            first_days = cut64 + np.rint(edges[:-1] * 86_400e9).astype("timedelta64[ns]")
            calendar_month = first_days.astype("datetime64[M]").astype(np.int64) % 12 + 1
            booked = booked_counts(e, calendar_month, *slips, year_start)
            v *= booked / np.maximum(e, 1e-12)
            e = booked
        use = e >= 10.0
        if use.sum() < 3:
            continue
        chi2 += float((((o[use] - e[use]) ** 2) / v[use]).sum())
        dof += int(use.sum()) - 1
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
    mean_amount: float,
    segs: list[str],
) -> pd.DataFrame:
    """The deals open at as_of, in their stage then, with their age there.

    Every open deal stays, however old: the stage's loss clock gives an old deal
    its (small) odds.
    """
    open_ = deals[deals["state"] == "open"]
    stage = np.asarray(funnel, dtype=object)[open_["reached"].to_numpy(dtype=np.int64)]
    age = open_["days_in_stage"].to_numpy(dtype=float)
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
    return book


def _estimates(
    stages: pd.DataFrame,
    laws: dict[str, StageFit],
    seg_fits: dict[tuple[str, tuple[object, ...]], StageFit],
    segs: list[str],
    cycle_stages: int,
) -> pd.DataFrame:
    """Long rows: each stage row's parameters as the scenario holds them, with standard errors.

    A conversion's se is the one its ``conversion_n`` gives the engine
    (``sqrt(c (1 - c) / (n + 1))``, drift included); a pooled segment's adds the
    whole stage's spread it moves with (``conversion_pool``). Without events
    (``cycle_stages`` > 0) the dwell is the creation-to-win law's share: its se
    is scaled the same way, and there is no loss clock.
    """
    out = []
    parent = {
        str(stage): (float(c), float(n))
        for stage, c, n in zip(
            stages["stage"][: len(laws)],
            stages["conversion"][: len(laws)],
            stages["conversion_n"][: len(laws)],
            strict=True,
        )
    }
    for row in stages.to_dict("records"):
        values = tuple(row[c] for c in segs)
        seg = bool(segs) and any(v is not None and v == v for v in values)
        fit = seg_fits[(row["stage"], values)] if seg else laws[row["stage"]]
        c, n = float(row["conversion"]), float(row["conversion_n"])
        var = c * (1.0 - c) / (n + 1.0)
        if seg:  # around the whole stage's draw: its spread, moved m / (n + m), adds
            m = float(row.get("conversion_pool", 0.0))
            w = n + m
            c_p, n_p = parent[row["stage"]]
            var = c * (1.0 - c) / (w + 1.0) + (m / w) ** 2 * c_p * (1.0 - c_p) / (n_p + 1.0)
        ses = {"conversion": float(np.sqrt(var))}
        names = ["conversion"]
        if not (cycle_stages and seg):
            names += ["dwell_days", "dwell_cv"]
            scale = {"dwell_days": 1.0, "dwell_cv": 1.0}
            if cycle_stages:
                scale = {"dwell_days": 1.0 / cycle_stages, "dwell_cv": np.sqrt(cycle_stages)}
            for k, f in scale.items():
                ses[k] = fit.se.get(k, np.nan) * f
        if not cycle_stages:
            names += ["loss_days", "loss_cv", "loss_recorded"]
            ses.update({k: fit.se.get(k, np.nan) for k in names[-3:]})
        if cycle_stages:
            rule = "no events: dwell from the creation-to-win time"
        elif fit.never_lost:
            rule = f"censored MLE; advance clock {fit.dwell_dist}; losses never recorded"
        else:
            rule = f"censored MLE; advance clock {fit.dwell_dist}, loss clock {fit.loss_dist}"
        if seg:
            rule += "; conversion pooled towards the whole stage's (conversion_pool)"
        for name in names:
            value = row.get(name)
            if name == "loss_recorded" and (value is None or value != value):
                value = fit.loss_recorded  # the column is left out when every loss is
            out.append(
                {
                    "item": "estimate",
                    "rows": fit.advanced + fit.lost + fit.still_open,
                    "action": "fit",
                    "rule": rule,
                    "stage": row["stage"],
                    **dict(zip(segs, values, strict=True)),
                    "parameter": name,
                    "value": float(value) if value is not None else np.nan,
                    "se": float(ses.get(name, np.nan)),
                }
            )
    columns = [*ESTIMATE_COLUMNS[:5], *segs, *ESTIMATE_COLUMNS[5:]]
    return pd.DataFrame(out, columns=columns)


def write_calibration(calibration: Calibration, out: str | os.PathLike[str]) -> list[Path]:
    """Write the scenario folder (its tables, fx and won included) and calibration.parquet."""
    sc = calibration.scenario
    return parquet.write_tables(
        out,
        {**scenario_tables(sc), "calibration": calibration.table()},
        {"as_of": str(sc.as_of), "command": "calibrate"},
    )
