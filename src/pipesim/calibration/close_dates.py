"""Stated close dates and slippage: the law of how outcomes follow the date a rep states.

Input: the history's close-date changes (``deal_id``, ``changed_at``, ``close_date``;
a generic ``close_date_changes.csv``, or Salesforce OpportunityHistory's
``CloseDate``), checked by :func:`attach_changes` (rows set aside are counted in the
data-quality report). A deal's first recorded date is its stated date; each later
change to a later date is a *push*.

Fit (:func:`fit_close_law`), with only what was recorded before as_of: on the first
day of each month before as_of (at most :data:`SNAPSHOT_MONTHS` of them), every deal
open then with a stated date gives one *snapshot row*: its stage (from the stage
history), its pushes so far (buckets 0, 1, 2, 3+), its stated date then, whether it
was already past it, and what became of it before as_of (won when, lost, or still
open: censored at as_of). A row's follow-up is the time from its snapshot to as_of,
the same for every deal of a snapshot, so a win ``T`` days after the snapshot is
weighted by 1 / G(T), G(T) the share of rows followed longer than T (inverse
probability of censoring, within each stage, pushes bucket and overdue state: unbiased
when the follow-up does not depend on the deal within them).
Per stage, pushes bucket and overdue bucket (not past the date; 1-7, 8-30, 31-90, 91+ days
past it: how the chance falls, or rises, with how far past the date a deal is):

- ``p_win`` = sum of weighted wins / rows, ``p_win_se`` its standard error with the
  rows of one deal as one cluster; ``p_by_date`` the same for wins on or before the
  stated date (rows not yet past it);
- the lateness law: weighted quantiles of won date minus stated date, and above the
  90th the mean excess as an exponential tail.

A cell with fewer than :data:`MIN_ROWS` rows takes the ``p_win`` of the bucket of one
push fewer, else of one overdue bucket less, else the stage's clocks' chance; one with
fewer than :data:`MIN_WINS` wins takes the lateness law of its stage and overdue bucket
over all pushes, else the whole funnel's, else the bucket before's. ``basis`` says which.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.calibration.history import History, Issue, parse_dates
from pipesim.calibration.stage_paths import paths_at
from pipesim.scenario.close_law import (
    LATENESS_COLUMNS,
    LATENESS_LEVELS,
    OVERDUE_BUCKETS,
    PUSH_BUCKETS,
    overdue_bucket,
)

CHANGE_COLUMNS = ("deal_id", "changed_at", "close_date")
SNAPSHOT_MONTHS = 24  # snapshot dates: the first of each month, this many before as_of
MIN_ROWS = 20  # snapshot rows a stage and pushes bucket needs for its own p_win
MIN_WINS = 30  # wins a cell needs for its own lateness law
DAY = np.timedelta64(1, "D")


def attach_changes(history: History, changes: pd.DataFrame, source: str) -> History:
    """``history`` with its close-date changes checked; the rows set aside are counted.

    Set aside: rows without a readable ``changed_at`` or ``close_date``, rows of a
    deal not in the history, and stated dates before the deal was created.
    """
    missing = [c for c in CHANGE_COLUMNS if c not in changes.columns]
    if missing:
        from pipesim.errors import InputError

        raise InputError(
            f"{source}: required column(s) {', '.join(missing)} missing (columns present: "
            f"{', '.join(map(str, changes.columns))}). A close-date history has deal_id, "
            "changed_at (when the date was entered) and close_date (the date stated then).",
            parameters=("close_dates",),
        )
    frame = pd.DataFrame(
        {
            "deal_id": changes["deal_id"].map(lambda v: None if pd.isna(v) else str(v).strip()),
            "changed_at": parse_dates(changes["changed_at"]),
            "close_date": parse_dates(changes["close_date"]),
        }
    )
    created = frame["deal_id"].map(history.deals.set_index("deal_id")["created_at"])
    found = list(history.issues)
    keep = np.ones(len(frame), dtype=bool)
    rules = (
        (
            frame["changed_at"].isna() | frame["close_date"].isna(),
            "close date unreadable",
            "a close-date change without a readable changed_at or close_date is set aside",
        ),
        (
            created.isna(),
            "close date of an unknown deal",
            "the deal is not in the deals file (or was set aside)",
        ),
        (
            frame["close_date"] < created.dt.normalize(),
            "close date before created",
            "a stated close date before the deal was created is set aside",
        ),
    )
    for mask, reason, rule in rules:
        bad = mask.to_numpy(dtype=bool) & keep
        if bad.any():
            found.append(Issue(reason, int(bad.sum()), "set aside", rule))
        keep &= ~mask.to_numpy(dtype=bool)
    kept = frame[keep].sort_values(["deal_id", "changed_at"], kind="stable")
    found.append(Issue("close-date changes used", int(keep.sum()), "note", source))
    return dataclasses.replace(
        history, close_changes=kept.reset_index(drop=True), issues=tuple(found)
    )


def stated_at(changes: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Each deal's stated date and pushes as recorded before ``day``: ``deal_id`` index."""
    known = changes[changes["changed_at"] < day]
    if not len(known):
        return pd.DataFrame({"close_date": [], "pushes": []}, index=pd.Index([], name="deal_id"))
    before = known.groupby("deal_id")["close_date"].shift()
    pushed = (known["close_date"] > before).astype(int)
    grouped = pushed.groupby(known["deal_id"])
    out = pd.DataFrame(
        {
            "close_date": known.groupby("deal_id")["close_date"].last(),
            "pushes": grouped.sum(),
        }
    )
    return out


def snapshot_rows(history: History, cut: pd.Timestamp) -> pd.DataFrame:
    """One row per snapshot date and deal open then with a stated date (see the module).

    Columns: ``deal_id``, ``snapshot``, ``stage`` (index in the funnel), ``pushes``
    (recorded so far), ``stated``, ``overdue`` (days past the stated date, 0 if not),
    ``won`` (won before as_of), ``won_at``, ``follow`` (days from the snapshot to as_of).
    """
    changes = history.close_changes
    assert changes is not None
    first = changes["changed_at"].min()
    start = max(first, cut - pd.DateOffset(months=SNAPSHOT_MONTHS))
    days = [d for d in pd.date_range(start.to_period("M").to_timestamp(), cut, freq="MS")]
    days = [d for d in days if first < d < cut]
    frames = []
    for day in days:
        paths = paths_at(history, day).deals
        open_ = paths[paths["state"] == "open"][["deal_id", "reached"]]
        stated = stated_at(changes, day)
        rows = open_.join(stated, on="deal_id", how="inner")
        if not len(rows):
            continue
        frames.append(rows.assign(snapshot=day))
    if not frames:
        return pd.DataFrame(
            columns=[
                "deal_id",
                "snapshot",
                "stage",
                "pushes",
                "stated",
                "overdue",
                "won",
                "won_at",
                "follow",
            ]
        )
    found = pd.concat(frames, ignore_index=True)
    return _outcomes(found, history, cut)


def _outcomes(rows: pd.DataFrame, history: History, cut: pd.Timestamp) -> pd.DataFrame:
    """The snapshot rows with their outcome before ``cut``."""
    deals = history.deals.set_index("deal_id")
    closed = rows["deal_id"].map(deals["closed_at"])
    status = rows["deal_id"].map(deals["status"])
    won = (status == "won") & (closed < cut)
    snap = _days(rows["snapshot"])
    stated = _days(rows["close_date"])
    return pd.DataFrame(
        {
            "deal_id": rows["deal_id"].to_numpy(),
            "snapshot": rows["snapshot"].to_numpy(dtype="datetime64[ns]"),
            "stage": rows["reached"].to_numpy(dtype=np.int64),
            "pushes": rows["pushes"].to_numpy(dtype=np.int64),
            "stated": rows["close_date"].to_numpy(dtype="datetime64[ns]"),
            "overdue": np.maximum(snap - stated, 0.0),
            "won": won.to_numpy(dtype=bool),
            "won_at": closed.where(won).to_numpy(dtype="datetime64[ns]"),
            "follow": _days(pd.Series([cut]))[0] - snap,
        }
    )


def _days(column: pd.Series) -> np.ndarray:
    """Dates as float days since 1970 (NaT: NaN)."""
    values = column.to_numpy(dtype="datetime64[ns]")
    out = (values - np.datetime64(0, "ns")) / DAY
    return np.where(np.isnat(values), np.nan, out)


def censoring_weights(rows: pd.DataFrame) -> np.ndarray:
    """1 / G(T) for each won row (T: days from its snapshot to the win), 0 for the others."""
    follow = np.sort(rows["follow"].to_numpy(dtype=float))
    t = _days(rows["won_at"]) - _days(rows["snapshot"])
    won = rows["won"].to_numpy(dtype=bool)
    n = len(follow)
    longer = n - np.searchsorted(follow, np.where(won, t, 0.0), side="right")
    return np.where(won, n / np.maximum(longer, 1), 0.0)


@dataclasses.dataclass(frozen=True)
class CellFit:
    """One stage and pushes bucket's estimates."""

    rows: int
    deals: int
    wins: int
    p_win: float
    se: float
    p_by_date: float


def _cell(rows: pd.DataFrame, w: np.ndarray) -> CellFit:
    n = len(rows)
    gain = w * rows["won"].to_numpy(dtype=float)
    on_time = (rows["won_at"] <= rows["stated"]).to_numpy(dtype=bool)
    p = float(gain.sum() / n)
    z = pd.Series(gain - p).groupby(rows["deal_id"].to_numpy()).sum().to_numpy()
    se = float(np.sqrt((z**2).sum()) / n)
    return CellFit(
        rows=n,
        deals=int(rows["deal_id"].nunique()),
        wins=int(rows["won"].sum()),
        p_win=min(p, 1.0),
        se=se,
        p_by_date=min(float((gain * on_time).sum() / n), 1.0),
    )


def weighted_quantiles(x: np.ndarray, w: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles of ``x`` weighted by ``w`` (the lowest value at level 0), by interpolation."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cum = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return np.interp(levels, cum, xs)


def lateness_law(rows: pd.DataFrame, w: np.ndarray) -> tuple[np.ndarray, float]:
    """The lateness knots (days) and tail mean of the won rows among ``rows``."""
    won = rows["won"].to_numpy(dtype=bool)
    late = (_days(rows["won_at"]) - _days(rows["stated"]))[won]
    ww = w[won]
    knots = weighted_quantiles(late, ww, LATENESS_LEVELS)
    knots[0] = late.min()
    knots = np.maximum.accumulate(knots)
    above = late > knots[-1]
    tail = float(np.average(late[above] - knots[-1], weights=ww[above])) if above.any() else 1.0
    return knots, max(tail, 1.0)


def fit_close_law(
    history: History, cut: pd.Timestamp, win_probability: dict[str, float]
) -> tuple[pd.DataFrame | None, list[dict[str, object]]]:
    """The slippage law (``close_dates.parquet``) and the report's rows.

    ``win_probability`` (stage -> P(won), from the clocks) fills a stage without rows.
    None when no snapshot row was found.
    """
    funnel = list(history.funnel)
    rows = snapshot_rows(history, cut)
    report: list[dict[str, object]] = []
    if not len(rows):
        report.append(
            {
                "item": "close dates: no deal open with a stated date",
                "rows": 0,
                "action": "note",
                "rule": "no close-date change recorded before a month start before as_of: "
                "no slippage law; every deal runs on its stage's clocks",
            }
        )
        return None, report
    pooled = history.events is None and len(funnel) > 1  # stages at past dates unknown
    bucket = np.minimum(rows["pushes"].to_numpy(), PUSH_BUCKETS - 1)
    late = overdue_bucket(rows["overdue"].to_numpy())
    stage = rows["stage"].to_numpy() if not pooled else np.zeros(len(rows), dtype=np.int64)
    # Censoring weights within each cell: deals with more pushes, or further past their
    # date, are seen at later snapshots, so their follow-up is shorter.
    w = np.zeros(len(rows))
    cells = pd.Series((stage * OVERDUE_BUCKETS + late) * PUSH_BUCKETS + bucket)
    for _, at in cells.groupby(cells.to_numpy()).indices.items():
        w[at] = censoring_weights(rows.iloc[at])
    won = rows["won"].to_numpy(dtype=bool)

    def law_of(mask: np.ndarray) -> tuple[np.ndarray, float] | None:
        return lateness_law(rows[mask], w[mask]) if won[mask].sum() >= MIN_WINS else None

    funnel_laws = [law_of(late == o) for o in range(OVERDUE_BUCKETS)]
    done: dict[tuple[int, int, int], dict[str, object]] = {}
    for s, name in enumerate(funnel):
        in_stage = stage == (0 if pooled else s)
        for o in range(OVERDUE_BUCKETS):
            here = in_stage & (late == o)
            stage_law = law_of(here)
            for k in range(PUSH_BUCKETS):
                mask = here & (bucket == k)
                if mask.sum() >= MIN_ROWS:
                    fit, basis = _cell(rows[mask], w[mask]), "own"
                elif k > 0:
                    fit, basis = done[(s, k - 1, o)]["fit"], f"pushes {k - 1}"  # type: ignore[assignment]
                elif o > 0:
                    fit, basis = done[(s, k, o - 1)]["fit"], f"overdue {o - 1}"  # type: ignore[assignment]
                else:
                    fit = CellFit(0, 0, 0, win_probability.get(name, 0.0), 0.0, float("nan"))
                    basis = "stage clocks"
                fit = dataclasses.replace(fit, rows=int(mask.sum()), wins=int(won[mask].sum()))
                own = law_of(mask)
                if own is not None:
                    (knots, tail), late_basis = own, "own"
                elif stage_law is not None:
                    (knots, tail), late_basis = stage_law, "all pushes"
                elif funnel_laws[o] is not None:
                    (knots, tail), late_basis = funnel_laws[o], "funnel"  # type: ignore[misc]
                elif o > 0:
                    prior = done[(s, k, o - 1)]
                    knots = np.array([prior[c] for c in LATENESS_COLUMNS], dtype=float)
                    tail, late_basis = float(prior["lateness_tail_days"]), f"overdue {o - 1}"  # type: ignore[arg-type]
                else:
                    knots, tail, late_basis = np.zeros(len(LATENESS_LEVELS)), 1.0, "none"
                done[(s, k, o)] = {
                    "stage": name,
                    "pushes": k,
                    "overdue": o,
                    "rows": fit.rows,
                    "deals": int(rows.loc[mask, "deal_id"].nunique()),
                    "wins": fit.wins,
                    "p_win": fit.p_win,
                    "p_win_se": fit.se,
                    "p_by_date": fit.p_by_date if o == 0 else 0.0,
                    **dict(zip(LATENESS_COLUMNS, knots.tolist(), strict=True)),
                    "lateness_tail_days": tail,
                    "basis": f"p_win: {basis}; lateness: {late_basis}"
                    + ("; stages pooled (no stage history)" if pooled else ""),
                    "fit": fit,
                }
    law = pd.DataFrame([{k: v for k, v in r.items() if k != "fit"} for r in done.values()])
    report.append(
        {
            "item": "close dates: snapshot rows",
            "rows": len(rows),
            "action": "note",
            "rule": f"{rows['deal_id'].nunique():,} deals open with a stated date on "
            f"{rows['snapshot'].nunique()} month starts before as_of; {int((late > 0).sum()):,} "
            "rows already past their date; outcomes known before as_of, wins weighted "
            "for censoring at as_of",
        }
    )
    return law, report


def book_dates(history: History, cut: pd.Timestamp, deal_ids: pd.Series) -> pd.DataFrame:
    """``close_date`` and ``pushes`` of the given open deals, as recorded before ``cut``."""
    assert history.close_changes is not None
    stated = stated_at(history.close_changes, cut)
    found = stated.reindex(deal_ids.to_numpy())
    return pd.DataFrame(
        {
            "close_date": found["close_date"].to_numpy(dtype="datetime64[ns]"),
            "pushes": found["pushes"].fillna(0).to_numpy(dtype=float),
        }
    )


def law_text(law: pd.DataFrame) -> str:
    """The law as the calibration prints it: per stage and pushes, P(won by date), P(won)."""
    head = (
        f"{'stage':<16} {'pushes':>6} {'past date':>9} {'rows':>6} {'wins':>5} "
        f"{'P(won by date)':>14} {'P(won)':>12} {'late p50':>8} {'late p90':>8}  basis"
    )
    lines = ["Stated close dates (close_dates.parquet)", head, "-" * len(head)]
    past = ("no", "1-7d", "8-30d", "31-90d", "91d+")
    for r in law.to_dict("records"):
        k = f"{r['pushes']}+" if r["pushes"] == PUSH_BUCKETS - 1 else str(r["pushes"])
        p_by = float(r["p_by_date"])
        by_date = "" if np.isnan(p_by) or r["overdue"] else f"{p_by:.2f}"
        won = f"{float(r['p_win']):.2f} ±{float(r['p_win_se']):.2f}"
        lines.append(
            f"{r['stage']!s:<16} {k:>6} {past[int(r['overdue'])]:>9} {int(r['rows']):>6} "
            f"{int(r['wins']):>5} {by_date:>14} {won:>12} {float(r['lateness_p50']):>8.0f} "
            f"{float(r['lateness_p90']):>8.0f}  {r['basis']}"
        )
    return "\n".join(lines)
