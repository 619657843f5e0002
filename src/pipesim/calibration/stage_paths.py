"""Each deal's path through the funnel as it was known at a date.

Only what happened strictly before ``as_of`` (00:00) is used: deals created
later do not exist yet, closes and stage entries on or after ``as_of`` have
not happened yet. This module is the one place that looks at dates, so the
no-leak guarantee lives here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipesim.calibration.history import History
from pipesim.calibration.survival import ADVANCE, LOST, OPEN


@dataclasses.dataclass(frozen=True)
class Paths:
    """Per-stage observations and the open book at ``as_of``.

    Attributes
    ----------
    deals : DataFrame
        The deals known at ``as_of`` (created before it), with ``reached`` (index
        of the furthest stage entered), ``state`` (``won``/``lost``/``open`` at
        ``as_of``), ``days_in_stage`` for the open ones.
    obs : DataFrame
        One row per (deal, stage entered): ``row`` (index into ``deals``),
        ``stage`` (index), ``days`` (time in the stage until its outcome or
        until ``as_of``; NaN when the dates do not tell), ``outcome``,
        ``exit_at`` (when the outcome happened, if known).
    cycle : bool
        True when the durations are on the creation clock (no events: time
        since creation), not per stage.
    notes : list of (reason, rows, rule)
    """

    deals: pd.DataFrame
    obs: pd.DataFrame
    cycle: bool
    notes: list[tuple[str, int, str]]


def paths_at(history: History, as_of: pd.Timestamp) -> Paths:
    """What the history said at ``as_of``: reached stages, outcomes, ages."""
    cut = pd.Timestamp(as_of)
    notes: list[tuple[str, int, str]] = []
    deals = history.deals[history.deals["created_at"] < cut].reset_index(drop=True)
    n, n_st = len(deals), len(history.funnel)
    index = {s: i for i, s in enumerate(history.funnel)}
    closed = deals["closed_at"] < cut
    state = np.where(closed, deals["status"], "open")
    stage_now = deals["stage"].map(index).fillna(n_st - 1).to_numpy(dtype=np.int64)
    cycle = history.events is None and n_st > 1
    entry = np.full((n, n_st), np.datetime64("NaT"), dtype="datetime64[ns]")
    entry[:, 0] = deals["created_at"].to_numpy()
    if history.events is not None:
        ev = history.events[history.events["entered_at"] < cut]
        ev = ev.assign(row=ev["deal_id"].map(pd.Series(np.arange(n), index=deals["deal_id"])))
        ev = ev.dropna(subset=["row"])
        first = ev.groupby(["row", "stage"])["entered_at"].min().reset_index()
        rows = first["row"].to_numpy(dtype=np.int64)
        cols = first["stage"].map(index).to_numpy(dtype=np.int64)
        entry[rows, cols] = first["entered_at"].to_numpy()
        entry[:, 0] = np.where(
            np.isnat(entry[:, 0]) | (entry[:, 0] > deals["created_at"].to_numpy()),
            deals["created_at"].to_numpy(),
            entry[:, 0],
        )
        has = ~np.isnat(entry)
        seen = np.where(has, np.arange(n_st), -1).max(axis=1)
        reached = np.where(closed, np.where(state == "won", n_st - 1, stage_now), seen)
        reached = np.maximum(reached, seen) if n else reached
        # Entries earlier than the stage before them contradict the funnel: made monotone.
        filled = entry.copy()
        filled_i = np.where(np.isnat(filled), np.iinfo(np.int64).min, filled.view(np.int64))
        mono = np.maximum.accumulate(filled_i, axis=1)
        bad = (filled_i < mono) & has
        if bad.any():
            notes.append(
                (
                    "stage order contradicts dates",
                    int(bad.any(axis=1).sum()),
                    "an entry dated before the previous stage's entry is moved to that date",
                )
            )
        entry = np.where(has, mono.view("datetime64[ns]"), entry)
    else:
        reached = np.where(closed, np.where(state == "won", n_st - 1, stage_now), 0)
        if cycle:
            unknown = ~closed & (stage_now > 0)
            if cut > history.last_date:
                reached = np.where(closed, reached, stage_now)
            elif unknown.any():
                notes.append(
                    (
                        "stage at as_of unknown (no events)",
                        int(unknown.sum()),
                        "an open deal's stage before the export date is not known without "
                        "events: it is placed in the first stage",
                    )
                )
    close = deals["closed_at"].to_numpy()
    # for each stage, the first entry at or after it (skipped stages have none of their own)
    # and a won deal leaves the last stage at its close
    won_close = np.where(state == "won", close, np.datetime64("NaT")).astype("datetime64[ns]")
    wide = pd.DataFrame(np.column_stack([entry, won_close]))
    following = wide.bfill(axis=1).to_numpy(dtype="datetime64[ns]")[:, :n_st]
    cut64 = cut.to_datetime64().astype("datetime64[ns]")
    recs = []
    for s in range(n_st):
        take = reached >= s
        rows = np.flatnonzero(take)
        if not len(rows):
            continue
        last = reached[rows] == s
        st = state[rows]
        outcome = np.where(
            ~last,
            ADVANCE,
            np.where(st == "won", ADVANCE, np.where(st == "lost", LOST, OPEN)),
        )
        end = np.where(last & (st != "open"), close[rows], cut64)
        if cycle:
            start = entry[rows, 0]
            end = np.where(st != "open", close[rows], cut64)
        else:
            nxt = np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[ns]")
            if s + 1 < n_st:
                nxt = following[rows, s + 1]  # a skipped stage: the next one entered
            end = np.where(~last, nxt, end)
            start = entry[rows, s]
        days = (end - start) / np.timedelta64(1, "D")
        exit_at = np.where(outcome != OPEN, end, np.datetime64("NaT"))
        recs.append(
            pd.DataFrame(
                {"row": rows, "stage": s, "days": days, "outcome": outcome, "exit_at": exit_at}
            )
        )
    obs = (
        pd.concat(recs, ignore_index=True)
        if recs
        else pd.DataFrame({"row": [], "stage": [], "days": [], "outcome": [], "exit_at": []})
    )
    open_rows = state == "open"
    if n:
        at = entry[np.arange(n), np.minimum(reached, n_st - 1)]
        at = np.where(np.isnat(at), entry[:, 0], at)
        age = (cut64 - at) / np.timedelta64(1, "D")
        if cycle:
            age = age / (reached + 1.0)  # no events: the age is split evenly over the stages passed
    else:
        age = np.zeros(0)
    out = deals.assign(reached=reached, state=state, days_in_stage=np.where(open_rows, age, np.nan))
    return Paths(deals=out, obs=obs, cycle=cycle, notes=notes)
