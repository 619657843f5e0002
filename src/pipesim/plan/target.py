"""target(): working backwards from a revenue target to the leads (and stage volumes) it needs.

The search scales the scenario's arrivals by one factor (so the mix of months and
segments is kept). Under common random numbers the revenue of every trial is
non-decreasing in that factor (the count of winning leads is a Poisson quantile
of a fixed uniform, and lead j keeps its own draws), so P(revenue >= X) is
monotone and a bisection with a fixed seed gives a repeatable answer. The open
deals do not depend on the factor: they are simulated once, the arrivals alone
at every step of the search (the sum is the full forecast, draw for draw).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipesim.engines import numba as numba_engine
from pipesim.errors import InputError
from pipesim.plan import common_random_numbers
from pipesim.plan.owners import owner_quota, owner_scenario, parse_owner
from pipesim.plan.plan_result import PlanResult, ScenarioLike, as_scenario, base_metadata, check_run
from pipesim.prepare.kernel_inputs import Prepared, prepare
from pipesim.progress import Progress
from pipesim.scenario.booked import booked
from pipesim.scenario.calendar import first_month, month_index
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.quarters import Window, find_window
from pipesim.simulation.reaching import reaches
from pipesim.simulation.result import by_columns

LIMIT = 20.0  # beyond this many times the funnel arithmetic's leads, call the target unreachable
MAX_SCALE = 100.0  # beyond this many times today's new leads, out of reach (not simulated)
_TOL = 2e-4  # relative precision of the scale factor


@dataclasses.dataclass(frozen=True)
class Search:
    """The outcome of the lead-volume search."""

    scale: float
    probability: float
    se: float
    reachable: bool
    first_guess_scale: float
    deals_probability: float
    in_window_share: float
    too_many_leads: bool = False  # the arithmetic alone asks for more than MAX_SCALE x today
    probability_now: float = math.nan  # P(revenue >= X) with today's new leads (scale 1)


def reach(prepared: Prepared) -> np.ndarray:
    """Per parameter group and stage: P(a new lead reaches the stage), point conversions."""
    conv = prepared.conversion
    out = np.ones_like(conv)
    out[:, 1:] = np.cumprod(conv[:, :-1], axis=1)
    return out


def funnel_guess(scenario: Scenario, revenue: float, months: int) -> float:
    """The deterministic first guess: new leads per month = X / (deal size x P(win)) / months.

    Deal size and P(win from the top) are averaged over the scenario's arrivals in
    the first ``months`` months, weighted by their leads; timing and the open
    deals are ignored.
    """
    prepared = prepare(arrivals_only(scenario))
    lam, g, amount = _lead_arrays(prepared, months)
    pwin = np.prod(prepared.conversion, axis=1)[g]
    per_lead = float((lam * amount * pwin).sum() / lam.sum()) if lam.sum() > 0 else 0.0
    if per_lead <= 0:
        raise InputError(
            "the arrivals win nothing on average (amount or conversion is zero), so no lead "
            "volume reaches a revenue target."
        )
    return revenue / per_lead / months


def _lead_arrays(prepared: Prepared, months: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected leads, parameter group and mean amount of the arrival rows in the first months."""
    arr = prepared.arrivals
    g, t0, lam, amount = arr.group, arr.t0, arr.leads, arr.amount
    inside = prepared.day_period[t0.astype(np.int64)] < months if t0.size else np.zeros(0, bool)
    # In the company currency at the rate of the row's first day.
    amount = amount * prepared.day_rate[arr.fx, t0.astype(np.int64)]
    return lam[inside], g[inside], amount[inside]


def arrivals_only(sc: Scenario, months: int | None = None) -> Scenario:
    """The scenario without its open deals (and without the leads after ``months``)."""
    arrivals = sc.arrivals
    if months is not None and len(arrivals):
        base = first_month(sc.as_of, sc.fiscal)
        idx = (
            arrivals["period"].map(lambda p: month_index(int(p[:4]), int(p[5:7]), base)).to_numpy()
        )
        arrivals = arrivals[idx < months]
    return sc.replace(deals=sc.deal_rows(0, 0), arrivals=arrivals)


def _scaled(prepared: Prepared, scale: float) -> Prepared:
    arrivals = prepared.arrivals._replace(leads=prepared.arrivals.leads * scale)
    return dataclasses.replace(prepared, arrivals=arrivals)


def open_deal_revenue(
    scenario: Scenario,
    months: int,
    trials: int,
    seed: int,
    progress: Progress | None = None,
    first: int = 0,
) -> np.ndarray:
    """Each trial's revenue in periods ``first`` to ``months`` - 1 from the open deals alone."""
    deals_sc = scenario.replace(arrivals=scenario.arrivals.iloc[:0])
    rev = common_random_numbers.run(prepare(deals_sc), trials, seed, progress)[0]
    return rev[:, first:months, 0].sum(axis=1)


class _Reach:
    """Which trials reach X at a scale of the leads, remembered; each new scale runs few trials.

    A trial's revenue never falls as the scale grows (see the module), so a trial that
    reaches X at a scale already run reaches it at every larger one, and one that misses
    it misses it at every smaller one: only the trials in between are simulated, by
    number, the same bits as in a run of every trial.
    """

    def __init__(
        self,
        deals_rev: np.ndarray,
        arrivals: Prepared,
        revenue: float,
        window: tuple[int, int],
        seed: int,
        progress: Progress | None,
    ) -> None:
        self.deals_rev, self.arrivals, self.revenue = deals_rev, arrivals, revenue
        self.window, self.seed, self.progress = window, seed, progress
        self.known: dict[float, np.ndarray] = {0.0: reaches(deals_rev, revenue)}

    def lead_revenue(self, scale: float, ids: np.ndarray | None = None) -> np.ndarray:
        """Trials' revenue from the leads over the window at ``scale`` (all, or trials ``ids``)."""
        scaled = _scaled(self.arrivals, scale)
        trials = self.deals_rev.size
        if ids is None:
            rev = common_random_numbers.run(scaled, trials, self.seed, self.progress)[0]
        else:
            rev = numba_engine.run_arrivals_of(scaled, ids, self.seed)[0]
            if self.progress is not None:
                self.progress.update(ids.size)
        first, months = self.window
        return rev[:, first:months, 0].sum(axis=1)

    def add(self, scale: float, lead_rev: np.ndarray) -> np.ndarray:
        """Record a run of every trial at ``scale``; return which trials reach X."""
        self.known[scale] = reaches(self.deals_rev + lead_rev, self.revenue)
        return self.known[scale]

    def at(self, scale: float) -> np.ndarray:
        """Which trials reach X at ``scale``."""
        if scale in self.known:
            return self.known[scale]
        below = max(s for s in self.known if s < scale)
        above = [s for s in self.known if s > scale]
        out = self.known[below].copy()
        open_ = ~out if not above else self.known[min(above)] & ~out
        ids = np.flatnonzero(open_)
        out[ids] = reaches(self.deals_rev[ids] + self.lead_revenue(scale, ids), self.revenue)
        self.known[scale] = out
        return out

    def p(self, scale: float) -> float:
        """P(revenue >= X) at ``scale`` over the trials."""
        return float(np.mean(self.at(scale)))


def _bracket(oracle: _Reach, estimate: float, confidence: float, cap: float) -> tuple[float, float]:
    """Scales (a, b) with P(a) < confidence <= P(b), around ``estimate``; (0, cap) at worst.

    Starts at estimate -/+ 1 % and doubles the width until both ends hold. The lower
    end is run first: then the upper end runs only the trials that missed X there.
    """
    if not 0.0 < estimate < cap:
        return 0.0, cap
    width = 0.01
    while width < 1.0:
        a, b = estimate * (1.0 - width), min(estimate * (1.0 + width), cap)
        if oracle.p(a) < confidence and (b >= cap or oracle.p(b) >= confidence):
            return a, b
        width *= 2.0
    return 0.0, cap


def search(
    scenario: Scenario,
    revenue: float,
    months: int,
    confidence: float,
    trials: int,
    seed: int,
    progress: Progress | None = None,
    first: int = 0,
    booked: float = 0.0,
    deals_rev: np.ndarray | None = None,
    now: bool = False,
) -> Search:
    """The smallest scale of the arrivals with P(revenue in the window >= X) >= confidence.

    The window is the periods ``first`` to ``months`` - 1 (a fiscal quarter under way or
    ahead); the arrivals scaled are those of the periods before ``months``. ``booked``
    (revenue already won in the window) is added to every trial.
    ``progress`` counts the trials of every run of the search; ``deals_rev`` is
    :func:`open_deal_revenue` (with ``booked``) when the caller has it already; with
    ``now``, ``probability_now`` is P at today's leads (scale 1). The bisection asks
    "P(scale) >= confidence?" at the same scales as a search that runs every trial at
    each step, and gets the same answers (so the same scale): from a bracket (a, b)
    checked around an estimate of the answer (each trial's crossing scale if its lead
    revenue grew in proportion to the scale; the quantile of those), every question
    outside it is answered at once, and inside it only the trials between a and b
    are run (:class:`_Reach`).
    """
    if deals_rev is None:
        deals_rev = open_deal_revenue(scenario, months, trials, seed, progress, first) + booked
    arr_p = prepare(arrivals_only(scenario, months))
    current = float(_lead_arrays(arr_p, months)[0].sum())
    if current <= 0:
        raise InputError(
            f"the scenario has no new leads in its first {months} month(s) to scale; add rows "
            "to arrivals.parquet (period, leads, amount) for those months."
        )
    guess = funnel_guess(scenario, revenue, months) * months / current
    oracle = _Reach(deals_rev, arr_p, revenue, (first, months), seed, progress)
    p0 = oracle.p(0.0)

    def found(scale: float, p: float, reachable: bool, share: float, many: bool = False) -> Search:
        """The outcome; with ``now``, P at today's leads too (a few trials more to run)."""
        today = oracle.p(1.0) if now else math.nan
        return Search(scale, p, _se(p, trials), reachable, guess, p0, share, many, today)

    if p0 < confidence and guess > MAX_SCALE:
        # Simulating that many leads would take hours: say so at once.
        return found(guess, p0, False, math.nan, many=True)
    if p0 >= confidence:
        return found(0.0, p0, True, math.nan)
    # The mean is linear in the scale: one run tells how much value lands in the window,
    # and so roughly the scale the target needs on average.
    rev1 = oracle.lead_revenue(guess)
    p1 = float(np.mean(oracle.add(guess, rev1)))
    share = float(rev1.mean()) / revenue
    gap = revenue - float(deals_rev.mean())
    need = gap / (share * revenue / guess) if share > 0 else math.inf
    cap = min(LIMIT * guess, max(MAX_SCALE, guess))
    if need > cap:
        return found(need, p1, False, share)
    # Each trial's crossing if its lead revenue grew in proportion: the estimate's quantile.
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(rev1 > 0, guess * (revenue - deals_rev) / rev1, np.inf)
    k = min(max(math.ceil(confidence * trials), 1), trials)
    estimate = float(np.partition(np.maximum(crossing, 0.0), k - 1)[k - 1])
    a, b = _bracket(oracle, estimate, confidence, cap)

    def enough(scale: float) -> bool:
        """P(scale) >= confidence, from the bracket when the scale is outside it."""
        if scale >= b and b < cap:
            return True
        if scale <= a:
            return False
        return oracle.p(scale) >= confidence

    lo, hi, ok_hi = 0.0, guess, p1 >= confidence
    if not ok_hi and need > hi:
        lo, hi = hi, need
        ok_hi = enough(hi)
    while not ok_hi:
        if hi >= cap:
            return found(hi, oracle.p(hi), False, share)
        lo, hi = hi, min(hi * 1.5, cap)
        ok_hi = enough(hi)
    while hi - lo > _TOL * hi:
        mid = 0.5 * (lo + hi)
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return found(hi, oracle.p(hi), True, share)


def _se(p: float, trials: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 0.0) / trials)


def target_table(scenario: Scenario, scale: float, months: int, by: Sequence[str]) -> pd.DataFrame:
    """target.parquet's rows: per month (and segment), leads now and needed, and stage entries."""
    prepared = prepare(arrivals_only(scenario), by)
    arr = prepared.arrivals
    g, t0, lam, by_code = arr.group, arr.t0, arr.leads, arr.by
    period = prepared.day_period[t0.astype(np.int64)] if t0.size else np.zeros(0, np.int64)
    inside = period < months
    # Expected leads of the calendar month (prepare trims the first month to as_of).
    reached = reach(prepared)[g[inside]]
    frame = pd.DataFrame(
        {
            "_p": period[inside],
            "_b": by_code[inside],
            "leads_current": lam[inside],
            "leads_needed": lam[inside] * scale,
        }
    )
    funnel = scenario.funnel
    for s, stage in enumerate(funnel):
        frame[f"needed_{stage}"] = frame["leads_needed"] * reached[:, s]
    keys = ["_p", "_b"] if by else ["_p"]
    out = frame.groupby(keys, sort=True).sum().reset_index()
    if "_b" not in out.columns:
        out["_b"] = 0
    out.insert(0, "period", [prepared.periods[p] for p in out["_p"]])
    for pos, col in enumerate(by):
        out.insert(1 + pos, col, prepared.by_values[col].to_numpy(dtype=object)[out["_b"]])
    return out.drop(columns=["_p", "_b"])


def _aimed_window(sc: Scenario, months: int | None, **labels: str | None) -> Window | None:
    """The fiscal window ``quarter=``/``fiscal_year=`` names (None: the first ``months``)."""
    given = {k: v for k, v in labels.items() if v is not None}
    if not given:
        return None
    if len(given) > 1 or months is not None:
        names = [*given, *(["months"] if months is not None else [])]
        raise InputError(
            f"{'= and '.join(names)}=: give one window (months, a quarter or a fiscal year).",
            parameters=tuple(names),
        )
    name, label = next(iter(given.items()))
    window = find_window(sc, label, name)
    wrong_kind = (name == "quarter" and window.quarter < 1) or (
        name == "fiscal_year" and window.quarter != 0
    )
    if wrong_kind:
        what = "a fiscal quarter such as FY2027-Q2" if name == "quarter" else "a year: FY2027"
        raise InputError(f"{name}={label!r}: give {what}.", parameters=(name,))
    return window


def target(
    scenario: ScenarioLike = None,
    revenue: float = 0.0,
    *,
    months: int | None = None,
    confidence: float = 0.8,
    by: str | Sequence[str] | None = None,
    trials: int = 10_000,
    seed: int = 0,
    progress: bool = False,
    quarter: str | None = None,
    fiscal_year: str | None = None,
    period: str | None = None,
    owner: str | Mapping[str, str] | None = None,
) -> PlanResult:
    """The new leads per month needed for P(revenue over the first ``months`` >= ``revenue``).

    ``quarter`` (``FY2027-Q2``), ``fiscal_year`` (``FY2027``) or ``period`` (either, or a
    month ``2026-04``) aim at the revenue won in that window instead (the leads of every
    month up to its end scaled). Revenue already booked in the window (``won.parquet``)
    counts. ``owner`` (``"rep=Ana"``, ``"team=X,region=EU"``) aims at that owner's revenue
    (its deals, leads and booked deals; only its leads scaled) and, when ``revenue`` is
    not given, at its quota for the period in ``quotas.parquet``.

    Parameters
    ----------
    scenario : Scenario or path, optional
        The scenario (default: the bundled demo).
    revenue : float
        The target X (revenue won over the first ``months`` months).
    months : int, optional
        The window, from the month of ``as_of`` (default: the whole horizon).
    confidence : float
        The probability the target must reach (0.8: met in 4 futures out of 5).
    by : str or list of str, optional
        Segment columns: the table is broken down by them (one scale factor is
        applied to every segment, so the current mix of leads is kept).
    trials, seed : int
        Monte Carlo settings; the search runs every step on the same seed.
    progress : bool
        Show a bar counting the search's trials on stderr (after ~2 s, terminals only).

    Returns
    -------
    PlanResult
        ``table`` (target.parquet): ``period``, the ``by`` columns, ``leads_current``,
        ``leads_needed`` and ``needed_<stage>`` (expected deals entering each stage
        that month from the needed leads). The metadata holds ``probability``,
        ``probability_se``, ``reachable``, ``scale`` and ``first_guess_leads_per_month``.
    """
    sc = as_scenario(scenario)
    aimed = _aimed_window(sc, months, quarter=quarter, fiscal_year=fiscal_year, period=period)
    window = check_run(trials, months, sc) if aimed is None else aimed.cut[1]
    first = 0 if aimed is None else aimed.cut[0]
    who = parse_owner(owner, sc)
    if who is not None:
        if aimed is None:
            raise InputError(
                "owner=: give the period of the owner's quota too (period=FY2027-Q2).",
                parameters=("owner", "period"),
            )
        if not revenue:
            quota = owner_quota(sc, who, aimed.label)
            if quota is None:
                raise InputError(
                    f"owner={owner!r}: quotas.parquet has no quota for it in {aimed.label}; "
                    "give revenue= (the target), or add the row.",
                    parameters=("owner", "revenue"),
                )
            revenue = quota
    periods = sc.fiscal.horizon_periods(sc.as_of, sc.horizon_months)
    start, end = (
        (periods[0][1], periods[window - 1][2]) if aimed is None else (aimed.start, aimed.end)
    )
    already = booked(sc.won, start, end, dict(who or {}))[0]
    full = sc
    if who is not None:
        sc = owner_scenario(sc, who)
    if not (isinstance(revenue, int | float) and math.isfinite(revenue) and revenue > 0):
        raise InputError(
            f"revenue={revenue!r}: give a positive revenue target"
            + (" (or owner= and period= to aim at an owner's quota)." if not revenue else "."),
            parameters=("revenue", "owner", "period"),
        )
    if not 0.0 < confidence < 1.0:
        raise InputError(
            f"confidence={confidence}: must be between 0 and 1 (e.g. 0.8).",
            parameters=("confidence",),
        )
    cols = by_columns(by)
    with Progress(None, enabled=progress, desc="target search") as bar:
        found = search(sc, float(revenue), window, confidence, trials, seed, bar, first, already)
    table = target_table(sc, found.scale, window, cols)
    current = float(table["leads_current"].sum()) / window
    needed = float(table["leads_needed"].sum()) / window
    messages = []
    span = f"within {window} month(s)" if aimed is None else f"in {aimed.label}"
    if found.too_many_leads:
        messages.append(
            f"Out of reach: the funnel arithmetic alone asks for {found.scale * current:,.0f} "
            f"new leads a month, {found.scale:,.0f} times today's {current:,.0f}, beyond the "
            f"{MAX_SCALE:g} times pipesim searches (check the target for extra zeros). The open "
            f"deals alone make it with P = {found.probability:.3f}."
        )
    elif not found.reachable:
        messages.append(
            f"The target cannot be reached {span} whatever the lead volume: "
            f"leads arriving in the window win only {found.in_window_share:.1%} of the "
            "funnel arithmetic's value inside it (the cycle times are too long for the "
            "window), so the leads would have to be about "
            f"{found.scale / found.first_guess_scale:,.0f} "
            f"times what the arithmetic asks for ({found.scale * current:,.0f} a month; "
            f"more than {LIMIT:g} times is taken as out of reach). At the arithmetic's "
            f"volume P = {found.probability:.3f}."
        )
    elif found.scale == 0.0:
        messages.append("The open deals alone reach the target: no new leads are needed.")
    if aimed is not None and aimed.start < sc.as_of:
        if full.won is None:
            messages.append(
                f"{aimed.label} is under way: revenue won from {aimed.start} to the day before "
                f"as_of ({sc.as_of}) is not counted (the scenario has no won.parquet); the "
                "target is for the rest of it."
            )
        else:
            messages.append(
                f"{aimed.label} is under way: {already:,.0f} already booked in it "
                "(won.parquet) counts in every trial."
            )
    meta = base_metadata("target", full, trials, seed)
    meta.update(
        {
            "revenue_target": repr(float(revenue)),
            "months": str(window),
            "window": aimed.label if aimed is not None else "",
            "owner": ",".join(f"{k}={v}" for k, v in (who or {}).items()),
            "booked": repr(already),
            "window_start": aimed.start.isoformat() if aimed is not None else "",
            "window_end": aimed.end.isoformat() if aimed is not None else "",
            "confidence": repr(float(confidence)),
            "by": ",".join(cols),
            "probability": repr(found.probability),
            "probability_se": repr(found.se),
            "reachable": str(found.reachable).lower(),
            "scale": repr(found.scale),
            "first_guess_leads_per_month": repr(found.first_guess_scale * current),
            "leads_current_per_month": repr(current),
            "leads_needed_per_month": repr(needed),
            "probability_open_deals_only": repr(found.deals_probability),
        }
    )
    result = PlanResult("target", full, {"target": table}, meta, messages)
    from pipesim.plan.printed import target_report

    result.text = target_report(result)
    return result
