"""explain(): why the forecast of a window moved between two snapshots of one pipeline.

The window's revenue is the revenue won in it before the forecast starts (NEW's
``won.parquet``) plus what the simulation wins in it from as_of on. OLD's forecast of the
window is OLD's book simulated from OLD's as_of, with the revenue NEW's ``won.parquet``
records before OLD's as_of (and never in OLD's open book); NEW's is NEW's own. Between
them the steps of :mod:`pipesim.plan.movement_steps` are applied one after another, each
state simulated with the same seed: a deal's draws come from the stream (seed, trial,
deal id) and a lead's from (seed, trial, arrivals row's month and segment), so a state
differs from the one before only where the step changed something. Each step's delta is
the change of the window's mean, P10, P50 and P90 from the state before it; the last
state is NEW, so the deltas add up to NEW minus OLD. Every state ends its horizon on the
same day (NEW's, lengthened when the window ends later), so only its start moves.
The one thing ``time`` draws anew is the monthly shocks (on new leads, and on open deals by
the month they entered their stage): they are keyed by the month counted from as_of, so a
later as_of gives a calendar month other shocks.

The split depends on the order: a step applied later meets a book the earlier ones
already changed (a lost deal's revenue is smaller after its parameters fell, say).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import InputError, PipesimWarning
from pipesim.plan import common_random_numbers
from pipesim.plan.movement_steps import (
    PARAMETER_FIELDS,
    STEPS,
    Changes,
    changes,
    parse_order,
    state_deals,
)
from pipesim.plan.plan_result import PlanResult, as_scenario, base_metadata, check_run
from pipesim.prepare.kernel_inputs import prepare
from pipesim.progress import Progress
from pipesim.scenario.booked import booked
from pipesim.scenario.fiscal import FiscalCalendar, parse_window, window_label
from pipesim.scenario.scenario import Scenario

MOVEMENT_COLUMNS = ("step", "deals", "delta_mean", "delta_p10", "delta_p50", "delta_p90")
MAX_HORIZON = 240
QUANTILES = (0.1, 0.5, 0.9)


def _name(scenario: Scenario, given: object, default: str) -> str:
    return str(given) if isinstance(given, str | os.PathLike) else scenario.path or default


def check_same_pipeline(old: Scenario, new: Scenario, names: tuple[str, str]) -> None:
    """Refuse two snapshots that are not of one pipeline (funnel, currency, fiscal calendar)."""
    a, b = names
    if old.funnel != new.funnel:
        only_old = [s for s in old.funnel if s not in new.funnel]
        only_new = [s for s in new.funnel if s not in old.funnel]
        what = "; ".join(
            part
            for part in (
                f"stage(s) only in {a}: {', '.join(only_old)}" if only_old else "",
                f"stage(s) only in {b}: {', '.join(only_new)}" if only_new else "",
            )
            if part
        ) or (f"the same stages in another order ({a}: {', '.join(old.funnel)}; {b}: "
              f"{', '.join(new.funnel)})")  # fmt: skip
        raise InputError(
            f"{a} and {b} have different funnels ({what}). explain compares two snapshots of "
            "one pipeline: give two scenarios with the same stages in the same order.",
        )
    for what, x, y in (
        ("currency", old.currency, new.currency),
        ("fiscal calendar", old.fiscal, new.fiscal),
    ):
        if x != y:
            raise InputError(
                f"{a} and {b} have different {what}s ({x or 'none'} and {y or 'none'}); "
                "explain compares two snapshots of one pipeline. Give two with the same one.",
            )
    if old.as_of > new.as_of:
        raise InputError(
            f"{a} (as_of {old.as_of}) is later than {b} (as_of {new.as_of}): OLD is the "
            "earlier snapshot. Swap them.",
        )


def window_bounds(fiscal: FiscalCalendar, label: str) -> tuple[dt.date, dt.date] | None:
    """First and last day of ``FY2027-Q2``, ``FY2027`` or a month ``2026-04`` (else None)."""
    wanted = parse_window(label)
    if wanted is not None:
        fy, quarter = wanted
        return fiscal.year_bounds(fy) if quarter == 0 else fiscal.quarter_bounds(fy, quarter)
    if not (len(label) == 7 and label[4] == "-" and label[:4].isdigit() and label[5:].isdigit()):
        return None
    year, month = int(label[:4]), int(label[5:])
    if not 1 <= month <= 12:
        return None
    for fy in (year, year + 1):  # the fiscal period standing for that month
        for period in range(1, 13):
            if fiscal.period_label(fy, period) == label:
                return fiscal.period_bounds(fy, period)
    return None  # pragma: no cover (every month has its period)


def explain_window(new: Scenario, window: str | None) -> tuple[str, dt.date, dt.date]:
    """The window's label and first and last day (default: NEW's current fiscal quarter)."""
    label = (window or window_label(*new.fiscal.quarter_of(new.as_of))).strip().upper()
    bounds = window_bounds(new.fiscal, label)
    if bounds is None:
        raise InputError(
            f"window={window!r}: not a fiscal quarter (FY2027-Q2), a fiscal year (FY2027) or "
            "a month (2026-04).",
            parameters=("window",),
        )
    if bounds[1] < new.as_of:
        raise InputError(
            f"window={label}: ended ({bounds[1]}) before NEW's as_of ({new.as_of}); nothing is "
            "left to forecast in it. Give a window that ends on or after it.",
            parameters=("window",),
        )
    return label, bounds[0], bounds[1]


def horizon_to(scenario: Scenario, as_of: dt.date, end: dt.date) -> int:
    """The fewest periods from ``as_of``'s that reach ``end``."""
    n = 1
    while scenario.fiscal.horizon_periods(as_of, n)[-1][2] < end:
        n += 1
        if n > MAX_HORIZON:
            raise InputError(
                f"window=: it ends ({end}) more than {MAX_HORIZON} months after {as_of}. "
                "Give a nearer window.",
                parameters=("window",),
            )
    return n


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Both snapshots, what changed, and the horizons every state runs to."""

    old: Scenario
    new: Scenario
    changes: Changes
    start: dt.date
    end: dt.date
    horizon_old: int
    horizon_new: int


def _parameters_differ(old: Scenario, new: Scenario) -> bool:
    for name in PARAMETER_FIELDS:
        x, y = getattr(old, name), getattr(new, name)
        if isinstance(x, pd.DataFrame) or isinstance(y, pd.DataFrame):
            if x is None or y is None or not x.equals(y):
                return True
        elif x != y:
            return True
    return False


def state_scenario(plan: _Plan, applied: frozenset[str]) -> Scenario:
    """The scenario after the ``applied`` steps: none is OLD, all is NEW."""
    if not applied:
        return dataclasses.replace(plan.old, horizon_months=plan.horizon_old)
    if applied >= set(STEPS):
        return dataclasses.replace(plan.new, horizon_months=plan.horizon_new)
    params = plan.new if "parameters" in applied else plan.old
    timed = "time" in applied
    with warnings.catch_warnings():
        # The two snapshots' own warnings were shown when they were read.
        warnings.simplefilter("ignore", PipesimWarning)
        return _between(plan, applied, params, timed)


def _between(plan: _Plan, applied: frozenset[str], params: Scenario, timed: bool) -> Scenario:
    return plan.old.replace(
        deals=state_deals(plan.changes, applied),
        **{name: getattr(params, name) for name in PARAMETER_FIELDS},
        as_of=plan.new.as_of if timed else plan.old.as_of,
        horizon_months=plan.horizon_new if timed else plan.horizon_old,
        calibrated=plan.new.calibrated,
        won=None,
        quotas=None,
    )


def window_revenue(
    plan: _Plan, applied: frozenset[str], trials: int, seed: int, bar: Progress
) -> np.ndarray:
    """Each trial's revenue in the window after the ``applied`` steps (booked included)."""
    try:
        sc = state_scenario(plan, applied)
        prepared = prepare(sc)
    except InputError as exc:
        if not applied or applied >= set(STEPS):
            raise
        steps = ", ".join(s for s in STEPS if s in applied)
        raise InputError(
            f"OLD with NEW's {steps} applied cannot be simulated (its tables mix the two "
            f"snapshots'): {exc} Try another order.",
            parameters=exc.parameters,
        ) from None
    revenue = common_random_numbers.run(prepared, trials, seed, bar)[0]
    periods = sc.fiscal.horizon_periods(sc.as_of, sc.horizon_months)
    inside = [k for k, (_, _, last) in enumerate(periods) if plan.start <= last <= plan.end]
    known = plan.changes.booked + (plan.changes.won_booked if "won" in applied else 0.0)
    return revenue[:, inside, 0].sum(axis=1) + known


def _moves(plan: _Plan, step: str) -> bool:
    """Whether a step changes the state at all (else its delta is exactly 0, unsimulated)."""
    if step == "parameters":
        return _parameters_differ(plan.old, plan.new)
    if step == "time":
        return plan.old.as_of != plan.new.as_of or plan.changes.deals["time"] > 0
    return plan.changes.deals[step] > 0


def _levels(totals: np.ndarray) -> dict[str, float]:
    q = np.quantile(totals, QUANTILES)
    return {"mean": float(totals.mean()), "p10": q[0], "p50": q[1], "p90": q[2]}


def explain(
    old: Scenario | str | os.PathLike[str],
    new: Scenario | str | os.PathLike[str],
    *,
    window: str | None = None,
    order: str | Sequence[str] | None = None,
    trials: int = 10_000,
    seed: int = 0,
    progress: bool = False,
) -> PlanResult:
    """Why the forecast of a window moved from snapshot ``old`` to snapshot ``new``.

    Parameters
    ----------
    old, new : Scenario or path
        Two scenarios of one pipeline (same funnel, currency and fiscal calendar) at two
        dates, OLD the earlier (e.g. two folders of ``pipesim snapshot``).
    window : str, optional
        ``FY2027-Q2``, ``FY2027`` or a month ``2026-04`` (default: the fiscal quarter
        holding NEW's as_of). Its revenue already won is counted in both, from NEW's
        ``won.parquet``: what was won before OLD's as_of from the start, the rest in ``won``.
    order : str or list of str, optional
        The order of the steps (default ``won, lost, new, advanced, pushed, pulled_in,
        amount, parameters, time``); steps left out follow in that order. The split
        depends on it: a step meets the book the steps before it left.
    trials, seed : int
        Monte Carlo settings; every state runs on the same seed (common random numbers).
    progress : bool
        Show a bar counting the trials of every state on stderr.

    Returns
    -------
    PlanResult
        ``tables["movement"]`` (movement.parquet): ``step``, ``deals`` (the deals the step
        moved; 0 for ``parameters``), ``delta_mean``, ``delta_p10``, ``delta_p50``,
        ``delta_p90``, in the order applied. They add up to NEW minus OLD (float rounding
        aside); the metadata holds both levels (``old_mean``, ..., ``new_p90``).
    """
    steps = parse_order(order)
    o, n = as_scenario(old), as_scenario(new)
    names = (_name(o, old, "OLD"), _name(n, new, "NEW"))
    check_run(trials, None, n)
    check_same_pipeline(o, n, names)
    label, start, end = explain_window(n, window)
    horizon_new = max(n.horizon_months, horizon_to(n, n.as_of, end))
    last_day = n.fiscal.horizon_periods(n.as_of, horizon_new)[-1][2]
    plan = _Plan(
        old=o,
        new=n,
        changes=changes(o, n, start, end, names[1]),
        start=start,
        end=end,
        horizon_old=horizon_to(o, o.as_of, last_day),
        horizon_new=horizon_new,
    )
    moving = [s for s in steps if _moves(plan, s)]
    # A step that moves nothing changes no state: counted as applied from the start, so
    # that the last state simulated is NEW itself (the same bits as NEW's own forecast).
    idle = {s for s in steps if s not in moving}
    rows = []
    with Progress((1 + len(moving)) * trials, enabled=progress, desc="explain") as bar:
        before = window_revenue(plan, frozenset(), trials, seed, bar)
        first = levels = _levels(before)
        applied: set[str] = set(idle)
        for step in steps:
            applied.add(step)
            if step in moving:
                after = _levels(window_revenue(plan, frozenset(applied), trials, seed, bar))
            else:
                after = levels
            rows.append(
                {
                    "step": step,
                    "deals": plan.changes.deals[step],
                    **{f"delta_{k}": after[k] - levels[k] for k in ("mean", "p10", "p50", "p90")},
                }
            )
            levels = after
    frame = pd.DataFrame(rows, columns=list(MOVEMENT_COLUMNS))
    frame["deals"] = frame["deals"].astype(np.int64)
    meta = base_metadata("explain", n, trials, seed)
    meta.update(
        {
            "old": str(Path(o.path).resolve()) if o.path else o.name,
            "old_as_of": o.as_of.isoformat(),
            "window": label,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "order": ",".join(steps),
            "booked_old": repr(plan.changes.booked),
            "booked_new": repr(plan.changes.booked + plan.changes.won_booked),
            **{f"old_{k}": repr(float(v)) for k, v in first.items()},
            **{f"new_{k}": repr(float(v)) for k, v in levels.items()},
        }
    )
    messages = list(plan.changes.notes)
    own = booked(o.won, start, min(end, o.as_of - dt.timedelta(days=1)), {})[0]
    if o.won is not None and abs(own - plan.changes.booked) > 0.005:
        messages.append(
            f"{names[0]}'s won.parquet books {own:,.0f} in {label} before its as_of, "
            f"{names[1]}'s {plan.changes.booked:,.0f} (deals never open in OLD): both levels "
            "count NEW's."
        )
    if horizon_new > n.horizon_months:
        messages.append(
            f"the horizon was lengthened to {horizon_new} months to cover {label} (NEW's is "
            f"{n.horizon_months}); months without arrivals rows get no new leads."
        )
    result = PlanResult("explain", n, {"movement": frame}, meta, messages)
    from pipesim.plan.printed_movement import movement_report

    result.text = movement_report(result)
    return result
