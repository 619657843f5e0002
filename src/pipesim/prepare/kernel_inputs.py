"""Turn a validated :class:`Scenario` into the flat arrays the kernels read.

Two steps, so that a book too large for memory can be prepared chunk by chunk:

- :func:`prepare_context` builds everything book-wide (funnel parameters per
  parameter group, arrivals, periods, by-groups) from the stages, the arrivals
  and one pass over only the deals' segment and ``by`` columns;
- :func:`prepare_deals` turns one chunk of deal rows into the kernel's deal
  table, given that context.

The canonical deal order (the same for every engine and every way of reading
the book): file order, cut into chunks of :data:`DEAL_CHUNK` rows, each chunk
sorted stably by (parameter group, stage). :func:`prepare` is the context plus
every chunk's table, concatenated: the one code path for books in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.kernels.dated_deals import DatedTable
from pipesim.kernels.tables import MONTHS_BACK, ArrivalTable, DealShocks, DealTable, FunnelTable
from pipesim.prepare import dated_deals
from pipesim.prepare.closing_calendar import month_paces, operational_bounds, slip_table
from pipesim.prepare.funnel_table import age_strips, build_funnel
from pipesim.prepare.loss_clock import survival_ratio
from pipesim.scenario.calendar import (
    add_months,
    calendar_paces,
    first_month,
    month_index,
    operational_days,
    period_bounds,
    period_labels,
)
from pipesim.scenario.currency import Currencies, currencies, day_rates, row_slots
from pipesim.scenario.keys import deal_keys, stable_hash
from pipesim.scenario.scenario import DEAL_CHUNK, Scenario

__all__ = [
    "NONE_LABEL",
    "DealContext",
    "Prepared",
    "prepare",
    "prepare_context",
    "prepare_deals",
]

NONE_LABEL = "(none)"
# Reserved deal columns that may still select stage rows and break results down
# (stages.parquet rows keyed by a forecast category; --by forecast_category).
SELECTORS = ("forecast_category",)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Kernel inputs for one scenario and one choice of ``by`` columns."""

    funnel: FunnelTable
    deals: DealTable
    arrivals: ArrivalTable
    bounds: np.ndarray
    day_period: np.ndarray
    periods: list[str]
    by: tuple[str, ...]
    by_values: pd.DataFrame  # one row per by-group, in kernel column order (1 + index)
    notes: tuple[str, ...]
    # Per (group, stage) parameters in plain form, for the NumPy reference engine.
    conversion: np.ndarray
    dwell_mean: np.ndarray
    dwell_cv: np.ndarray
    dwell_dist: np.ndarray
    # The loss clock (pipesim.prepare.loss_clock): NaN mean for none, inf for never.
    loss_mean: np.ndarray
    loss_cv: np.ndarray
    loss_dist: np.ndarray
    loss_recorded: np.ndarray  # share of the losses recorded (1: all)
    # [currency slot, day]: company currency per unit on each whole day of the clock
    # (pipesim.scenario.currency; slot 0, the company's, all ones).
    day_rate: np.ndarray
    # Wins booked later than due (pipesim.prepare.closing_calendar.slip_table): [3, period],
    # no columns when none.
    slips: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((3, 0)))
    # The open deals' odds shocks by the month they entered their stage (none by default).
    deal_shocks: DealShocks = dataclasses.field(default_factory=DealShocks.none)
    # Deals timed by their stated close dates (pipesim.prepare.dated_deals; None: none)
    # and the period of each calendar day after as_of, which they are booked on.
    dated: DatedTable | None = None
    calendar_day_period: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class DealContext:
    """Book-wide context to turn chunks of deals into kernel tables (:func:`prepare_deals`).

    Attributes
    ----------
    prepared : Prepared
        Every kernel input of the book except the deals (an empty deal table):
        funnel, arrivals, periods, by-groups. Give it to the engines with each
        chunk's deal table (``pipesim.engines.numba.accumulate``).
    deal_count : int
        Open deals in the book.
    stage_index : dict
        Stage name -> position in the funnel.
    segments : tuple of str
        The stages table's segment columns (they select the parameter group).
    group_codes, by_codes : dict
        Values of the segment columns (tuple) -> parameter group; values of the
        ``by`` columns (tuple, missing as ``"(none)"``) -> by-group.
    """

    prepared: Prepared
    deal_count: int
    stage_index: dict[str, int]
    segments: tuple[str, ...]
    group_codes: dict[tuple, int]
    by_codes: dict[tuple, int]
    deal_columns: tuple[str, ...]
    as_of: dt.date
    paces: np.ndarray | None = None  # the clocks' pace by calendar month (None: even)
    currencies: Currencies | None = None
    deal_source: str = "deals table"
    # The arrivals' segment columns and segment -> column of DealShocks (own odds shocks).
    shock_columns: tuple[str, ...] = ()
    shock_segments: dict[str, int] = dataclasses.field(default_factory=dict)
    # The slippage law of deals with a stated close date (None: every deal on its clocks).
    close_law: pd.DataFrame | None = None


Factor = tuple[np.ndarray, list]  # (code per row, value per code)


def _factors(table: pd.DataFrame, columns: Sequence[str], missing: object = None) -> list[Factor]:
    """Each column as codes and values; a missing value (or column) reads ``missing``."""
    n = len(table)
    out: list[Factor] = []
    for c in columns:
        if c not in table.columns:
            out.append((np.zeros(n, dtype=np.int64), [missing]))
            continue
        codes, uniques = pd.factorize(table[c], use_na_sentinel=True)
        codes = np.asarray(codes, dtype=np.int64)
        values = [*np.asarray(uniques, dtype=object).tolist(), missing]
        codes[codes < 0] = len(values) - 1
        out.append((codes, values))
    return out


def _row_groups(factors: list[Factor], n: int) -> tuple[np.ndarray, list[tuple]]:
    """Group identical rows: (code per row, one tuple of values per group in first-seen order)."""
    if not factors or n == 0:
        return np.zeros(n, dtype=np.int64), [()] if n else []
    # One integer per combination of codes, kept below n² by refactorizing.
    combined = np.zeros(n, dtype=np.int64)
    for codes, values in factors:
        combined = pd.factorize(combined * len(values) + codes)[0]
    firsts = np.flatnonzero(~pd.Series(combined).duplicated().to_numpy())
    rows = zip(*[[values[k] for k in codes[firsts]] for codes, values in factors], strict=True)
    return combined.astype(np.int64), list(rows)


class _FirstSeen:
    """Codes for rows of values in first-seen order, over chunk after chunk."""

    def __init__(self) -> None:
        self.codes: dict[tuple, int] = {}

    def add(self, factors: list[Factor], n: int) -> None:
        for values in _row_groups(factors, n)[1]:
            self.codes.setdefault(values, len(self.codes))

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        rows = list(self.codes)
        return pd.DataFrame(
            {c: pd.Series([r[k] for r in rows], dtype=object) for k, c in enumerate(columns)},
            index=range(len(rows)),
        )


def _codes_of(factors: list[Factor], n: int, codes: dict[tuple, int], what: str) -> np.ndarray:
    """Each row's code from the book-wide table ``codes`` (unseen rows: an error)."""
    local, values = _row_groups(factors, n)
    try:
        table = np.array([codes[v] for v in values], dtype=np.int64)
    except KeyError as exc:
        raise InputError(
            f"deals: {what} {exc.args[0]!r} was not in the book when it was prepared "
            "(did deals.parquet change since it was read?). Load the scenario again."
        ) from None
    return table[local] if len(table) else np.zeros(n, dtype=np.int64)


def _arrival_months(scenario: Scenario) -> tuple[np.ndarray, list[str]]:
    base = first_month(scenario.as_of, scenario.fiscal)
    months = np.array(
        [month_index(int(p[:4]), int(p[5:7]), base) for p in scenario.arrivals["period"]],
        dtype=np.int64,
    )
    notes = []
    before = months < 0
    after = months >= scenario.horizon_months
    if before.any():
        notes.append(
            f"arrivals: {int(before.sum())} row(s) for months before "
            f"{base:%Y-%m} ignored (the forecast starts {scenario.as_of})."
        )
    if after.any():
        notes.append(f"arrivals: {int(after.sum())} row(s) after the horizon not simulated.")
    inside = months[~before & ~after]
    last = int(inside.max()) if len(inside) else -1
    if len(months) and last < scenario.horizon_months - 1:
        first_empty = add_months(base, last + 1).strftime("%Y-%m")
        end = add_months(base, scenario.horizon_months - 1).strftime("%Y-%m")
        notes.append(
            f"arrivals: no row for {first_empty} to {end} (the horizon's last "
            f"{scenario.horizon_months - 1 - last} month(s)): no new leads are simulated then. "
            "Add rows to arrivals.parquet for those months, or extend the arrivals "
            "(extend_arrivals: each such month takes the same month a year before)."
        )
    return months, notes


def _check_by(scenario: Scenario, by: Sequence[str]) -> None:
    known = set(scenario.deal_segments) | set(scenario.arrival_segments)
    known |= set(SELECTORS) & set(scenario.deal_columns)
    unknown = [c for c in by if c not in known]
    if unknown:
        where = ", ".join(sorted(known)) or "none"
        raise InputError(
            f"by={','.join(by)}: column(s) {', '.join(map(repr, unknown))} are in neither "
            f"deals.parquet nor arrivals.parquet (segment columns there: {where}). "
            "Choose segment columns the deals or arrivals have.",
            parameters=("by",),
        )


def prepare_context(scenario: Scenario, by: Sequence[str] = ()) -> DealContext:
    """The book-wide part of :func:`prepare`: all but the deals' kernel table.

    Reads only the deals' segment and ``by`` columns, chunk by chunk (a book on
    disk is never held whole). Parameter groups and by-groups are numbered in
    first-seen order over the deals, then the arrivals.
    """
    source = (scenario.path and f"{scenario.path}/stages.parquet") or "stages table"
    by = tuple(by)
    if by:
        _check_by(scenario, by)
    funnel = list(scenario.funnel)
    segs = list(scenario.stage_segments)
    arrivals = scenario.arrivals
    months, notes = _arrival_months(scenario)
    keep = (months >= 0) & (months < scenario.horizon_months)
    arr = arrivals[keep].reset_index(drop=True)
    months = months[keep]

    groups, by_groups = _FirstSeen(), _FirstSeen()
    selectors = set(scenario.deal_segments) | (set(SELECTORS) & set(scenario.deal_columns))
    wanted = [c for c in dict.fromkeys([*segs, *by]) if c in selectors]
    fx_source = (scenario.path and f"{scenario.path}/fx.parquet") or "fx table"
    money = currencies(scenario.fx, scenario.currency, fx_source)
    for chunk in scenario.deal_chunks(DEAL_CHUNK, columns=wanted):
        groups.add(_factors(chunk, segs), len(chunk))
        if by:
            by_groups.add(_factors(chunk, by, NONE_LABEL), len(chunk))
    groups.add(_factors(arr, segs), len(arr))
    group_frame = groups.frame(segs)
    if len(group_frame) == 0:
        group_frame = pd.DataFrame({c: [None] for c in segs}) if segs else pd.DataFrame(index=[0])
        groups.codes = {tuple(None for _ in segs): 0}
    if by:
        by_groups.add(_factors(arr, by, NONE_LABEL), len(arr))
        by_values = by_groups.frame(by)
    else:
        by_groups.codes = {(): 0}
        by_values = pd.DataFrame(index=range(0))

    shocks, shock_columns, shock_segments = _deal_shocks(scenario, arr, notes)
    funnel_arrays, plain, rows = build_funnel(scenario, group_frame, source)
    records = scenario.stages.to_dict("records")
    for i in np.flatnonzero(~scenario.default_rows.to_numpy()):
        if not any((rows[p] == i).any() for p in rows):
            row = records[i]
            cond = {c: row[c] for c in segs if row[c] is not None}
            notes.append(
                f"stages: row {i + 1} ({row['stage']}, {cond}) matches no "
                "deal and no arrival: check the segment values for typos."
            )

    arr_g = _codes_of(_factors(arr, segs), len(arr), groups.codes, "segment")
    arr_by = (
        _codes_of(_factors(arr, by, NONE_LABEL), len(arr), by_groups.codes, "by-group")
        if by
        else np.zeros(len(arr), dtype=np.int64)
    )
    bounds = period_bounds(scenario.as_of, scenario.horizon_months, scenario.fiscal)
    labels = period_labels(scenario.as_of, scenario.horizon_months, scenario.fiscal)
    paces = calendar_paces(scenario.close_paces, scenario.fiscal.year_start)
    if paces is not None:
        # Every clock on operational time: fast months longer, slow ones shorter.
        by_month = month_paces(labels, paces)
        calendar, bounds = bounds, operational_bounds(bounds, by_month)
        notes.append(
            "closing paces by month of the quarter "
            f"{', '.join(f'{p:.2f}' for p in scenario.close_paces or ())}: the clocks run on them"
        )
    else:
        calendar = bounds
    prepared = Prepared(
        funnel=funnel_arrays,
        deals=DealTable.empty(),
        arrivals=_arrival_arrays(
            scenario,
            arr,
            months,
            calendar,
            bounds,
            arr_g,
            arr_by,
            notes,
            money,
            np.flatnonzero(keep),
        ),
        bounds=bounds,
        day_period=np.repeat(
            np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds).astype(np.int64)
        ),
        periods=labels,
        by=by,
        by_values=by_values,
        notes=tuple(notes),
        conversion=plain["conversion"],
        dwell_mean=plain["dwell_mean"],
        dwell_cv=plain["dwell_cv"],
        dwell_dist=plain["dwell_dist"],
        loss_mean=plain["loss_mean"],
        loss_cv=plain["loss_cv"],
        loss_dist=plain["loss_dist"],
        loss_recorded=plain["loss_recorded"],
        day_rate=day_rates(scenario.fx, money, scenario.as_of, calendar, bounds),
        slips=slip_table(
            labels, scenario.rush_slips, scenario.month_slips, scenario.fiscal.year_start
        ),
        deal_shocks=shocks,
        calendar_day_period=None if scenario.close_law is None else _days(calendar),
    )
    return DealContext(
        prepared=prepared,
        deal_count=scenario.deal_count,
        stage_index={name: s for s, name in enumerate(funnel)},
        segments=tuple(segs),
        group_codes=groups.codes,
        by_codes=by_groups.codes,
        deal_columns=(
            "deal_id",
            "stage",
            "amount",
            "days_in_stage",
            *(["currency"] if "currency" in scenario.deal_columns else []),
            *(
                [c for c in ("close_date", "pushes") if c in scenario.deal_columns]
                if scenario.close_law is not None
                else []
            ),
            *wanted,
            *[c for c in shock_columns if c not in wanted],
        ),
        as_of=scenario.as_of,
        paces=paces,
        currencies=money,
        deal_source=(scenario.path and f"{scenario.path}/deals.parquet") or "deals table",
        shock_columns=shock_columns,
        shock_segments=shock_segments,
        close_law=scenario.close_law,
    )


# Arrival columns that are not segments (the rows' label is the rest).
ARRIVAL_VALUES = (
    "leads",
    "amount",
    "amount_cv",
    "leads_n",
    "leads_trend_sd",
    "segment_shock_sd",
    "segment_leads_shock_sd",
    "currency",  # not in the rows' keys: giving rows a currency keeps their draws
)


def _segment_labels(arr: pd.DataFrame) -> pd.Series:
    """Each arrival row's segment: its segment columns' values joined (period left out)."""
    cols = arr.drop(columns=[c for c in (*ARRIVAL_VALUES, "period") if c in arr.columns])
    cols = cols.astype(object).map(str)
    return pd.Series(["|".join(row) for row in cols.itertuples(index=False)], dtype=object)


def _deal_shocks(
    scenario: Scenario, arr: pd.DataFrame, notes: list[str]
) -> tuple[DealShocks, tuple[str, ...], dict[str, int]]:
    """The open deals' odds shocks, the columns naming a deal's segment, segment -> column.

    The market's (``market_shock_sd``) reaches every deal; a segment's own
    (``segment_shock_sd`` of its arrival rows, the largest when they differ) the deals
    whose values of the arrivals' segment columns are that segment's.
    """
    market = max(scenario.market_shock_sd, 0.0)
    rho = scenario.shock_persistence
    market_only = DealShocks(
        np.zeros(1, dtype=np.uint64), np.zeros(1), np.array([market]), np.array([rho])
    )
    own = _optional(arr, "segment_shock_sd")
    if not (own > 0).any():
        return market_only, (), {}
    labels = _segment_labels(arr)
    sd = pd.Series(own).groupby(labels.to_numpy()).max()
    sd = sd[sd > 0]
    columns = tuple(c for c in arr.columns if c not in ARRIVAL_VALUES and c != "period")
    missing = [c for c in columns if c not in scenario.deal_columns]
    if missing:
        notes.append(
            f"open deals take the market's odds shock only: deals.parquet has no "
            f"{', '.join(missing)} column, so no deal is in an arrivals segment with its own shock."
        )
        return market_only, (), {}
    segments = {label: k + 1 for k, label in enumerate(sd.index)}
    keys = stable_hash([f"rate|{label}" for label in sd.index])
    shocks = DealShocks(
        seg_key=np.concatenate([np.zeros(1, dtype=np.uint64), keys]),
        own_sd=np.concatenate([[0.0], sd.to_numpy(dtype=np.float64)]),
        market_sd=np.array([market]),
        rho=np.array([rho]),
    )
    return shocks, columns, segments


def _shock_columns(context: DealContext, rows: pd.DataFrame) -> np.ndarray:
    """Each deal's column of :class:`DealShocks`: the month it entered its stage, its segment."""
    shocks = context.prepared.deal_shocks
    n = len(rows)
    if not shocks.active:
        return np.zeros(n, dtype=np.int64)
    days = np.floor(np.nan_to_num(rows["days_in_stage"].to_numpy(dtype=np.float64), nan=0.0))
    entered = np.datetime64(context.as_of, "D") - days.astype(np.int64).astype("timedelta64[D]")
    now = np.datetime64(context.as_of, "M").astype(np.int64)
    back = np.clip(now - entered.astype("datetime64[M]").astype(np.int64), 0, MONTHS_BACK)
    segment = np.zeros(n, dtype=np.int64)
    if context.shock_columns:
        cols = rows[list(context.shock_columns)].astype(object).map(str)
        labels = ["|".join(row) for row in cols.itertuples(index=False)]
        segment = np.array([context.shock_segments.get(x, 0) for x in labels], dtype=np.int64)
    return back.astype(np.int64) * len(shocks.seg_key) + segment


def _arrival_arrays(
    scenario: Scenario,
    arr: pd.DataFrame,
    months: np.ndarray,
    calendar: np.ndarray,
    bounds: np.ndarray,
    arr_g: np.ndarray,
    arr_by: np.ndarray,
    notes: list[str],
    money: Currencies,
    positions: np.ndarray,
) -> ArrivalTable:
    # Rows repeating the same month and segment get distinct random streams.
    # (Element by element: a missing segment value reads "None", never NaN.)
    label_cols = arr.drop(columns=[c for c in ARRIVAL_VALUES if c in arr.columns]).astype(object)
    label_cols = label_cols.map(str)
    labels = pd.Series(["|".join(row) for row in label_cols.itertuples(index=False)], dtype=object)
    occurrence = labels.groupby(labels).cumcount().to_numpy()
    t0 = bounds[months]
    t1 = bounds[months + 1]
    # Pro-rated by day: a row's month's daily rate over its period's days (the days
    # left in as_of's period; a week calendar's 4- or 5-week period, its month's rate).
    base = first_month(scenario.as_of, scenario.fiscal)
    month_days = np.array(
        [(add_months(base, int(m) + 1) - add_months(base, int(m))).days for m in months],
        dtype=np.float64,
    )
    days = calendar[months + 1] - calendar[months]
    leads = arr["leads"].to_numpy(dtype=np.float64) * days / np.maximum(month_days, 1.0)
    amount = arr["amount"].to_numpy(dtype=np.float64)
    acv = arr["amount_cv"].to_numpy(dtype=np.float64)
    sigma2 = np.log1p(acv**2)
    with np.errstate(divide="ignore"):
        amount_mu = np.log(amount) - 0.5 * sigma2
    amount_mu[amount <= 0] = -np.inf
    arr_keys = stable_hash(
        [f"arr|{label}|{occ}" for label, occ in zip(labels, occurrence, strict=True)]
    )
    # The rate's uncertainty is drawn once per trial and segment (every month alike).
    segment = _segment_labels(arr)
    leads_n = segment_evidence(segment, arr["leads_n"].to_numpy(dtype=np.float64), notes)
    return ArrivalTable(
        key=arr_keys,
        group=arr_g.astype(np.int64),
        t0=t0,
        t1=t1,
        leads=leads,
        leads_n=leads_n,
        rate_key=stable_hash([f"rate|{label}" for label in segment]),
        trend_sd=_optional(arr, "leads_trend_sd"),
        trend_months=months.astype(np.float64) + 1.0,
        month=months.astype(np.int64),
        market_shock_sd=np.full(len(arr), scenario.market_shock_sd),
        segment_shock_sd=_optional(arr, "segment_shock_sd"),
        market_leads_shock_sd=np.full(len(arr), scenario.market_leads_shock_sd),
        segment_leads_shock_sd=_optional(arr, "segment_leads_shock_sd"),
        shock_rho=np.full(len(arr), scenario.shock_persistence),
        amount_mu=amount_mu,
        amount_sigma=np.sqrt(sigma2),
        amount=np.maximum(amount, 0.0),
        by=arr_by.astype(np.int64),
        fx=_arrival_slots(scenario, arr, calendar[months], money, positions),
    )


def _optional(arr: pd.DataFrame, column: str) -> np.ndarray:
    """An optional number column of the arrivals as float64, 0 where absent or empty."""
    if column not in arr.columns:
        return np.zeros(len(arr))
    return np.nan_to_num(arr[column].to_numpy(dtype=np.float64), nan=0.0)


def _arrival_slots(
    scenario: Scenario,
    arr: pd.DataFrame,
    start: np.ndarray,
    money: Currencies,
    positions: np.ndarray,
) -> np.ndarray:
    """Each arrival row's currency slot (its leads may win from its period's first day).

    ``start``: each row's period's first day, in calendar days after as_of (a week
    calendar's period may start before its month); ``positions``: the rows' numbers in
    the arrivals table (those outside the horizon were dropped), for messages.
    """
    if "currency" not in arr.columns:
        return np.zeros(len(arr), dtype=np.int64)
    source = (scenario.path and f"{scenario.path}/arrivals.parquet") or "arrivals table"
    first = np.array([scenario.as_of + dt.timedelta(days=int(s)) for s in start], dtype=object)
    rows = arr["currency"].set_axis(positions)
    return row_slots(rows, money, source, first, "new leads")


def segment_evidence(segment: pd.Series, leads_n: np.ndarray, notes: list[str]) -> np.ndarray:
    """Each arrival row's ``leads_n`` for a rate drawn once per trial and segment.

    The rows of one segment share one draw, so they share its evidence: the
    smallest positive ``leads_n`` among them (the widest spread they state; a
    row without one keeps its rate exact). A note counts the segments whose rows
    disagreed.
    """
    n = np.nan_to_num(leads_n, nan=0.0)
    positive = pd.Series(np.where(n > 0, n, np.nan))
    low = positive.groupby(segment.to_numpy()).transform("min").to_numpy()
    high = positive.groupby(segment.to_numpy()).transform("max").to_numpy()
    mixed = (n > 0) & (low < high)
    if mixed.any():
        count = segment[mixed].nunique()
        notes.append(
            f"arrivals: {count} segment(s) give different leads_n in different months; the "
            "lead rate's uncertainty is drawn once per trial and segment, with the smallest "
            "leads_n of each (the widest spread stated)."
        )
    return np.where(n > 0, low, 0.0)


def prepare_deals(context: DealContext, rows: pd.DataFrame) -> DealTable:
    """The kernel's deal table for one chunk of validated deal rows, sorted stably by group/stage.

    ``rows`` are consecutive rows of the book (``Scenario.deal_chunks`` or
    ``Scenario.deal_rows``), at least ``context.deal_columns``. For the canonical
    order give whole chunks of :data:`DEAL_CHUNK` rows starting at a multiple of it.
    """
    if len(rows) == 0:
        return DealTable.empty()
    funnel = context.prepared.funnel
    plain = context.prepared
    segs, by = list(context.segments), list(context.prepared.by)
    n_stages = len(context.stage_index)
    n = len(rows)
    deal_g = _codes_of(_factors(rows, segs), n, context.group_codes, "segment")
    deal_by = (
        _codes_of(_factors(rows, by, NONE_LABEL), n, context.by_codes, "by-group")
        if by
        else np.zeros(len(rows), dtype=np.int64)
    )
    stage = _stage_codes(rows["stage"], context.stage_index)
    gs = deal_g * n_stages + stage
    # Deals of one group and stage side by side: the kernel's branches then repeat
    # the same path (same stages left, same dwell laws) and predict well.
    # Within one, by odds-shock column (the fast path's cells share one).
    shock = _shock_columns(context, rows)
    order = np.lexsort((shock, gs))
    gs = gs[order]
    age = rows["days_in_stage"].to_numpy(dtype=np.float64)[order]
    if context.paces is not None:  # the days lived on the paced clock
        end = np.datetime64(context.as_of, "D")
        whole = np.floor(age)
        start = end - whole.astype(np.int64) * np.timedelta64(1, "D")
        lived = operational_days(start, np.full(len(age), end), context.paces)
        before = context.as_of - dt.timedelta(days=1)  # the fraction is of a day before as_of
        age = lived + (age - whole) * context.paces[before.month - 1]
    return DealTable(
        key=deal_keys(rows["deal_id"])[order],
        cell=gs,
        amount=rows["amount"].to_numpy(dtype=np.float64)[order],
        age=age,
        by=deal_by[order],
        strip=age_strips(funnel, gs, age),
        survival_ratio=survival_ratio(
            gs,
            age,
            plain.dwell_dist,
            plain.dwell_mean,
            plain.dwell_cv,
            plain.loss_dist,
            plain.loss_mean,
            plain.loss_cv,
            plain.loss_recorded,
        ),
        fx=_deal_slots(context, rows)[order],
        shock=shock[order],
    )


def _deal_slots(context: DealContext, rows: pd.DataFrame) -> np.ndarray:
    """Each deal's currency slot (an open deal may be won from as_of on)."""
    if "currency" not in rows.columns or context.currencies is None:
        return np.zeros(len(rows), dtype=np.int64)
    return row_slots(
        rows["currency"], context.currencies, context.deal_source, context.as_of, "deals"
    )


def _stage_codes(stages: pd.Series, index: dict[str, int]) -> np.ndarray:
    codes, uniques = pd.factorize(stages)
    table = np.array([index[u] for u in uniques], dtype=np.int64)
    return table[codes]


def prepare(scenario: Scenario, by: Sequence[str] = (), *, chunk: int = DEAL_CHUNK) -> Prepared:
    """Build the kernel inputs for ``scenario``, with results broken down by ``by``.

    The deal table is in the canonical order: chunks of ``chunk`` rows (default
    :data:`DEAL_CHUNK`; tests pass smaller ones), each sorted by group and stage.
    """
    context = prepare_context(scenario, by)
    parts, dated = [], []
    for rows in scenario.deal_chunks(chunk, columns=context.deal_columns):
        rows, table = dated_part(context, rows)
        if table is not None:
            dated.append(table)
        parts.append(prepare_deals(context, rows))
    prepared = dataclasses.replace(context.prepared, deals=DealTable.concat(parts))
    return with_dated(prepared, dated_deals.concat(dated))


def dated_part(context: DealContext, rows: pd.DataFrame) -> tuple[pd.DataFrame, DatedTable | None]:
    """Split a chunk of deal rows: those on their stage's clocks, and the dated kernel's table.

    The second is None when no row of the chunk is timed by a stated close date
    (``context.close_law``).
    """
    law = context.close_law
    mask = dated_deals.dated_mask(rows, law)
    if not mask.any():
        return rows, None
    assert law is not None
    clocks = prepare_deals(context, rows[mask])
    sigma = context.prepared.funnel.value_sigma
    as_of = np.datetime64(context.as_of, "D")
    return rows[~mask], dated_deals.dated_table(rows[mask], clocks, sigma, law, as_of)


def with_dated(prepared: Prepared, table: DatedTable | None) -> Prepared:
    """``prepared`` with the dated deals' table, and a note (unchanged for None)."""
    if table is None:
        return prepared
    note = (
        f"close dates: {table.rows:,} deal(s) timed by their stated close date and the "
        "slippage law (close_dates.parquet); the others by their stage's clocks"
    )
    return dataclasses.replace(prepared, dated=table, notes=(*prepared.notes, note))


def _days(bounds: np.ndarray) -> np.ndarray:
    """Each whole day's period, from the periods' bounds in days."""
    return np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds).astype(np.int64))
