"""Each open deal's odds, from the trials of a run: win, win this quarter, revenue, median date.

:func:`deal_odds` replays the per-deal engine's draws of trials ``0 .. trials`` deal
by deal (:mod:`pipesim.kernels.deal_odds`): the numbers describe the very trials
behind the run's summary when its engine is ``numba`` or ``dask`` (the same bits);
other engines draw otherwise and are refused. Monte Carlo, not closed forms: a
deal's chance to win within the horizon has no closed form once its stages' clocks
are gamma, aged or paced, and booking slips and currencies are the engine's own.

Columns of the table (one row per open deal, in the book's order):

- ``deal_id``, ``stage``, the deals' segment columns (these two as categories),
  ``amount`` (as given, in the deal's currency), ``days_in_stage``;
- ``p_win``: share of trials in which the deal is won and booked inside the horizon;
- ``p_win_quarter``: share in which it is booked in the current fiscal quarter (the
  quarter of as_of, from as_of to its end, the months ``quarters.parquet`` sums);
- ``expected_revenue`` / ``expected_revenue_quarter``: mean booked value over all
  trials (0 in a trial without a win), in the company currency at the won day's rate;
- ``close_p50``: the median won date given a win booked inside the horizon, from a
  per-deal histogram by day of the horizon (the first day by which half its wins
  happened); empty when ``p_win`` is 0.

Memory: the output table and five counters per deal, plus the won-day histograms
of the chunks in flight (``lanes x chunk x horizon days x 4`` bytes, lanes 2 x threads:
1024 x 365 x 4 x 2 = 3 MB per thread and year of horizon), never trials x deals; the
book is read ``DEAL_CHUNK`` rows at a time (``pwin`` adds trials x stages x 8 bytes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numba
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from pipesim.engines.numba import deal_shifts
from pipesim.errors import InputError
from pipesim.kernels import trial
from pipesim.kernels.dated_deals import DatedTable
from pipesim.kernels.deal_odds import count_dated_odds, count_deal_odds
from pipesim.kernels.streams import seed_bits
from pipesim.kernels.tables import DealTable
from pipesim.prepare.kernel_inputs import (
    DealContext,
    Prepared,
    dated_part,
    prepare_context,
    prepare_deals,
)
from pipesim.scenario.calendar import period_bounds
from pipesim.scenario.keys import deal_keys
from pipesim.scenario.scenario import DEAL_CHUNK, Scenario
from pipesim.simulation.quarters import Window, fiscal_windows

# Engines whose trials are the per-deal kernel's bits (deal odds replay those draws).
SAME_DRAWS = ("numba", "dask")
CHUNK = 1024  # deals per lane: a lane's histogram is CHUNK x horizon days
# Deal columns kept as they are (the others: categories).
PLAIN = ("deal_id", "amount", "days_in_stage", "close_date", "pushes")
ODDS_COLUMNS = (
    "p_win",
    "p_win_quarter",
    "expected_revenue",
    "expected_revenue_quarter",
    "close_p50",
)


@dataclasses.dataclass(frozen=True)
class DealOdds:
    """Each open deal's odds (``table``, see the module) and the quarter they count."""

    table: pd.DataFrame
    quarter: str  # FY2027-Q1
    quarter_start: dt.date  # as_of when the quarter is under way
    quarter_end: dt.date
    trials: int
    scratch_bytes: int = 0  # the largest won-day histograms held at once (lanes x chunk x days)


def check_engine(engine: str) -> None:
    """Refuse an engine whose trials are not the per-deal kernel's draws."""
    if engine not in SAME_DRAWS:
        raise InputError(
            f"engine={engine!r} with deal_odds=True: each deal's odds replay the per-deal "
            f"engine's draws, which only {' and '.join(SAME_DRAWS)} use ({engine} draws "
            "otherwise, so the odds would not be of the summary's trials). Run with "
            "engine='numba' (or 'dask'), or drop deal_odds=True.",
            parameters=("engine", "deal_odds"),
        )


def current_quarter(scenario: Scenario) -> Window:
    """The fiscal quarter of as_of (from as_of on), as ``quarters.parquet`` counts it."""
    return next(w for w in fiscal_windows(scenario) if w.quarter >= 1)


def deal_odds(
    scenario: Scenario,
    trials: int,
    seed: int,
    *,
    chunk: int = CHUNK,
    lanes: int | None = None,
    deal_chunk: int = DEAL_CHUNK,
) -> DealOdds:
    """Each open deal's odds over trials ``0 .. trials`` of ``seed`` (see the module).

    ``chunk``, ``lanes`` (chunks at a time; default 2 x threads) and ``deal_chunk``
    (rows read at a time) change memory and speed, never the numbers.
    """
    context = prepare_context(scenario)
    prepared = context.prepared
    funnel = prepared.funnel
    pwin = np.empty((trials, funnel.n_cells))
    trial.trial_win_probabilities(seed_bits(seed), 0, funnel, pwin)
    shift = deal_shifts(prepared, seed, 0, trials)  # the open deals' odds shocks
    window = current_quarter(scenario)
    in_window = np.zeros(len(prepared.periods), dtype=np.uint8)
    in_window[window.periods] = 1
    lanes = lanes or 2 * numba.get_num_threads()
    law = scenario.close_law
    dated_cols = [
        c for c in ("close_date", "pushes") if law is not None and c in scenario.deal_columns
    ]
    shown = ["deal_id", "stage", *scenario.deal_segments, "amount", "days_in_stage", *dated_cols]
    columns = list(dict.fromkeys([*context.deal_columns, *shown]))
    calendar = period_bounds(scenario.as_of, scenario.horizon_months, scenario.fiscal)
    conv: np.ndarray | None = None
    # The table column by column: each deal column's chunks, the odds filled in place
    # (a whole-table concat would hold the table twice).
    parts: dict[str, list[pd.Series]] = {c: [] for c in shown}
    n = scenario.deal_count
    odds = {c: np.empty(n) for c in ODDS_COLUMNS[:-1]}
    median = np.empty(n, dtype=np.int64)
    dated = np.zeros(n, dtype=bool)  # timed by the stated close date: median a calendar day
    done = 0
    scratch = 0
    for rows in scenario.deal_chunks(deal_chunk, columns=columns):
        clocked, timed = dated_part(context, rows)
        mask = ~rows.index.isin(clocked.index)  # the rows timed by their stated close date
        counts = np.empty((5, len(rows)))
        for take in (~mask, mask):
            if not take.any():
                continue
            some = rows[take]
            if timed is not None and take is mask:  # the dated kernel's draws
                days = prepared.calendar_day_period
                assert days is not None
                keys = timed.key
                hist = _histogram(lanes, chunk, timed.rows, len(days))
                found = _count_dated(timed, seed, shift, days, prepared, in_window, hist)
            else:
                deals = prepare_deals(context, some)
                if conv is None and bool(np.any(deals.survival_ratio != 1.0)):
                    conv = np.empty((trials, funnel.n_cells))
                    trial.trial_conversions(seed_bits(seed), 0, funnel, conv)
                keys = deals.key
                hist = _histogram(lanes, chunk, deals.rows, len(prepared.day_period))
                found = _count(context, deals, seed, pwin, conv, shift, in_window, hist)
            scratch = max(scratch, hist.nbytes)
            back = np.empty(keys.size, dtype=np.int64)
            back[_table_order(some, keys)] = np.arange(keys.size)
            counts[:, take] = np.stack([c[back] for c in found])
        for c in shown:
            part = rows[c].reset_index(drop=True)
            # Stages and segments as categories: one Python string per row would cost
            # ~50 bytes a cell on a 10-million-deal book.
            parts[c].append(part if c in PLAIN else part.astype("category"))
        here = slice(done, done + len(rows))
        wins, wins_q, revenue, revenue_q, days = counts
        odds["p_win"][here] = wins / trials
        odds["p_win_quarter"][here] = wins_q / trials
        odds["expected_revenue"][here] = revenue / trials
        odds["expected_revenue_quarter"][here] = revenue_q / trials
        median[here] = days.astype(np.int64)
        dated[here] = mask
        done += len(rows)
    table = pd.DataFrame(
        {
            c: _joined(parts.pop(c))
            if n
            else pd.Series(dtype=float if c in ("amount", "days_in_stage") else object)
            for c in shown
        }
    )
    for c, values in odds.items():
        table[c] = values
    clock_dates = _dates(scenario, prepared.bounds, median)
    table["close_p50"] = clock_dates.where(~dated, _dates(scenario, calendar, median))
    return DealOdds(
        table=table,
        quarter=window.label,
        quarter_start=max(window.start, scenario.as_of),
        quarter_end=window.end,
        trials=trials,
        scratch_bytes=scratch,
    )


def _count(
    context: DealContext,
    deals: DealTable,
    seed: int,
    pwin: np.ndarray,
    conv: np.ndarray | None,
    shift: np.ndarray,
    in_window: np.ndarray,
    hist: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The kernel's five counters for one table of deals (in the table's order)."""
    prepared = context.prepared
    n = deals.rows
    wins = np.zeros(n, dtype=np.int64)
    wins_q = np.zeros(n, dtype=np.int64)
    revenue = np.zeros(n)
    revenue_q = np.zeros(n)
    median = np.full(n, -1, dtype=np.int64)
    if n:
        count_deal_odds(
            seed_bits(seed), 0, pwin, np.ones((1, 1)) if conv is None else conv, shift,
            *prepared.funnel.timing(), deals.key, deals.cell, deals.amount, deals.age,
            deals.strip, deals.survival_ratio, deals.shock, deals.fx, prepared.day_period,
            prepared.slips,
            prepared.day_rate, in_window, hist, wins, wins_q, revenue, revenue_q, median,
        )  # fmt: skip
    return wins, wins_q, revenue, revenue_q, median


def _histogram(lanes: int, chunk: int, deals: int, days: int) -> np.ndarray:
    """The won-day histograms of the chunks in flight: lanes x chunk x days (uint32)."""
    return np.empty((max(1, min(lanes, -(-deals // chunk))), chunk, days), np.uint32)


def _count_dated(
    table: DatedTable,
    seed: int,
    shift: np.ndarray,
    days: np.ndarray,
    prepared: Prepared,
    in_window: np.ndarray,
    hist: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The five counters of deals timed by their stated close date (the table's order)."""
    n = table.rows
    wins = np.zeros(n, dtype=np.int64)
    wins_q = np.zeros(n, dtype=np.int64)
    revenue = np.zeros(n)
    revenue_q = np.zeros(n)
    median = np.full(n, -1, dtype=np.int64)
    fields = (*table[:9], table.fx, table.shock)  # all but ``by``
    count_dated_odds(
        seed_bits(seed), 0, shift, *fields, days, prepared.day_rate, in_window, hist,
        wins, wins_q, revenue, revenue_q, median,
    )  # fmt: skip
    return wins, wins_q, revenue, revenue_q, median


def _joined(parts: list[pd.Series]) -> pd.Series:
    """Chunks of one column as one (categories merged)."""
    if isinstance(parts[0].dtype, pd.CategoricalDtype):
        return pd.Series(union_categoricals(parts, sort_categories=True))
    return pd.concat(parts, ignore_index=True)


def _table_order(rows: pd.DataFrame, table_keys: np.ndarray) -> np.ndarray:
    """order[j]: the row of ``rows`` that is row j of a kernel table of keys ``table_keys``."""
    keys = deal_keys(rows["deal_id"])
    pos = np.argsort(keys, kind="stable")
    return pos[np.searchsorted(keys[pos], table_keys)]


def _dates(scenario: Scenario, clock: np.ndarray, day: np.ndarray) -> pd.Series:
    """Clock days after as_of as dates (NaT for -1); paced clocks mapped back to the calendar."""
    calendar = period_bounds(scenario.as_of, scenario.horizon_months, scenario.fiscal)
    days = np.floor(np.interp(day.astype(float), clock, calendar)).astype(np.int64)
    dates = np.datetime64(scenario.as_of, "D") + days.astype("timedelta64[D]")
    return pd.Series(np.where(day >= 0, dates, np.datetime64("NaT")), dtype="datetime64[s]")
