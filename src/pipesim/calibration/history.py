"""The generic CRM history format, its validation, and what was known at a date.

Every adapter maps its CRM export onto this format:

- deals: ``deal_id``, ``created_at``, ``stage`` (the stage it is in now; for a
  lost deal the stage it was lost from; ``Won`` for won deals), ``status``
  (``open`` / ``won`` / ``lost``), ``closed_at`` (blank while open), ``amount``
  (for a won deal, the amount booked), optional ``open_amount`` (the amount as
  it stood while the deal was open, e.g. a list price; default ``amount``),
  optional ``currency`` (the amounts' currency; empty: the company's),
  ``forecast_category`` (the rep's call, any CRM spelling), plus any segment columns.
- events (optional): ``deal_id``, ``stage``, ``entered_at``: one row per stage
  entry; optional ``forecast_category`` (the category then: a field history).

Messy rows are never dropped silently: each rule below sets a row aside or
keeps it with a fix, and counts it under a reason in :attr:`History.issues`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.scenario.forecast_category import categories

DEAL_COLUMNS = ("deal_id", "created_at", "stage", "status", "closed_at", "amount")
# Read as parameters, not segments: the amounts' currency, the rep's forecast category.
OPTIONAL_COLUMNS = ("open_amount", "currency", "forecast_category")
EVENT_COLUMNS = ("deal_id", "stage", "entered_at")
STATUSES = {
    "open": "open",
    "won": "won",
    "lost": "lost",
    "closed won": "won",
    "closed lost": "lost",
}

_ISO = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DMY = re.compile(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{2,4})")


@dataclasses.dataclass(frozen=True)
class Issue:
    """One data-quality finding: how many rows, and the rule applied to them."""

    reason: str
    rows: int
    action: str  # "set aside", "kept" or "note"
    rule: str


@dataclasses.dataclass(frozen=True)
class History:
    """A validated CRM history in the generic format.

    Attributes
    ----------
    deals : DataFrame
        One row per deal: ``deal_id`` (str), ``created_at``, ``closed_at``
        (datetime64, NaT while open), ``stage``, ``status``, ``amount`` (float,
        NaN when unknown) and the segment columns (str or None).
    events : DataFrame or None
        Stage entries: ``deal_id``, ``stage``, ``entered_at``.
    funnel : tuple of str
        Open stages in funnel order; Won follows the last.
    segments : tuple of str
        The segment columns.
    rows_read : int
        Deal rows in the source before any was set aside.
    issues : tuple of Issue
        Every rule applied, with its row count.
    source : str
        Where the history came from (for messages).
    dated : bool
        False when the export has no real dates (IBM win-loss): only conversions
        and durations are meaningful.
    close_changes : DataFrame or None
        Close-date changes (``deal_id``, ``changed_at``, ``close_date``), checked by
        :func:`pipesim.calibration.close_dates.attach_changes`; None when not recorded.
    """

    deals: pd.DataFrame
    events: pd.DataFrame | None
    funnel: tuple[str, ...]
    segments: tuple[str, ...]
    rows_read: int
    issues: tuple[Issue, ...] = ()
    source: str = "history"
    dated: bool = True
    close_changes: pd.DataFrame | None = None

    @property
    def last_date(self) -> pd.Timestamp:
        """The latest date anywhere in the history (the export date, as far as known)."""
        dates = [self.deals["created_at"].max(), self.deals["closed_at"].max()]
        if self.events is not None and len(self.events):
            dates.append(self.events["entered_at"].max())
        return max(d for d in dates if pd.notna(d))


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse ISO (2017-03-01), US (3/1/2017) and European (01/03/2017) dates.

    A slash date whose first number is above 12 is day-first, one whose second
    number is above 12 is month-first; an ambiguous one (both 12 or less)
    follows its column: day-first if the column has day-first dates and no
    month-first ones, else month-first (the US export default). A time after
    the date is ignored. Unreadable values become NaT (callers count them).
    """
    text = values.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    iso = text.str.extract(_ISO).astype("float64")
    slash = text.str.extract(_DMY).astype("float64")
    forced_dmy = slash[0] > 12
    forced_mdy = slash[1] > 12
    column_dmy = bool(forced_dmy.any()) and not bool(forced_mdy.any())
    dmy = forced_dmy | (column_dmy & ~forced_mdy)
    day = slash[0].where(dmy, slash[1])
    month = slash[1].where(dmy, slash[0])
    year = slash[2].where(slash[2] >= 100, slash[2] + 2000)
    is_iso = iso[0].notna()
    y = iso[0].where(is_iso, year)
    m = iso[1].where(is_iso, month)
    d = iso[2].where(is_iso, day)
    ok = y.notna() & m.between(1, 12) & d.between(1, 31)
    if ok.any():
        parts = pd.DataFrame({"year": y[ok], "month": m[ok], "day": d[ok]}).astype(int)
        out[ok] = pd.to_datetime(parts, errors="coerce")
    return out


def read_csv(path: str | os.PathLike[str], **options: object) -> pd.DataFrame:
    """Read a CSV export (any line endings, optional BOM) or fail with a clear message."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file. Give the path of the CRM export (a CSV file).")
    try:
        frame = pd.read_csv(p, encoding="utf-8-sig", dtype=str, keep_default_na=False, **options)  # type: ignore[call-overload]
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"{p}: cannot be read as a CSV file ({first}). Export the CRM report as CSV "
            "(comma-separated, UTF-8) and try again."
        ) from None
    if frame.shape[1] < 2:
        raise InputError(
            f"{p}: has {frame.shape[1]} column(s); a CRM export has several. "
            "Check that it is comma-separated."
        )
    return frame.replace({"": None})


def _blank(col: pd.Series) -> pd.Series:
    return col.isna() | (col.astype("string").str.strip() == "")


def make_history(
    deals: pd.DataFrame,
    events: pd.DataFrame | None = None,
    *,
    stages: Sequence[str] | None = None,
    source: str = "history",
    issues: Sequence[Issue] = (),
    rows_read: int | None = None,
) -> History:
    """Validate a history in the generic format and apply the data-quality rules.

    Rules (each counted in the report): a duplicate ``deal_id`` keeps its first
    row; rows without a readable ``created_at``, with an unknown ``status``,
    closed without ``closed_at``, closed before they were created, or in a stage
    outside the funnel are set aside; a missing or non-positive ``amount`` is kept
    for the rates (conversion, dwell) but not for the amounts.

    Raises
    ------
    InputError
        When a required column is missing or the stage order cannot be known.
    """
    found = list(issues)
    missing = [c for c in DEAL_COLUMNS if c not in deals.columns]
    if missing:
        raise InputError(
            f"{source}: required column(s) {', '.join(missing)} missing (columns present: "
            f"{', '.join(map(str, deals.columns))}). The README describes the generic history "
            "format; or name the CRM that wrote it with format=.",
            parameters=("format",),
        )
    n_read = len(deals) if rows_read is None else rows_read
    frame = deals.reset_index(drop=True).copy()
    segs = [c for c in frame.columns if c not in DEAL_COLUMNS + OPTIONAL_COLUMNS]
    frame["deal_id"] = frame["deal_id"].map(_text)
    frame["stage"] = frame["stage"].map(_text)
    frame["created_at"] = parse_dates(frame["created_at"])
    frame["closed_at"] = parse_dates(frame["closed_at"])
    frame["status"] = frame["status"].map(lambda v: STATUSES.get(str(v).strip().lower()))
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce").astype(float)
    if "open_amount" in frame.columns:
        frame["open_amount"] = pd.to_numeric(frame["open_amount"], errors="coerce").astype(float)
    else:
        frame["open_amount"] = frame["amount"]
    for seg in [*segs, *(["currency"] if "currency" in frame.columns else [])]:
        frame[seg] = frame[seg].map(_text)
    unknown_category = np.zeros(len(frame), dtype=bool)
    if "forecast_category" in frame.columns:
        frame["forecast_category"], unknown_category = categories(frame["forecast_category"])
    keep = np.ones(len(frame), dtype=bool)

    def rule(mask: np.ndarray, reason: str, action: str, text: str) -> None:
        count = int((mask & keep).sum())
        if count:
            found.append(Issue(reason, count, action, text))

    def set_aside(mask: np.ndarray, reason: str, text: str) -> None:
        rule(mask, reason, "set aside", text)
        keep[mask] = False

    set_aside(
        frame["deal_id"].isna().to_numpy(), "no deal_id", "rows without an id cannot be tracked"
    )
    set_aside(
        frame["deal_id"].duplicated(keep="first").to_numpy() & frame["deal_id"].notna().to_numpy(),
        "duplicate deal_id",
        "the first row of each id is used, later ones are set aside",
    )
    set_aside(
        frame["created_at"].isna().to_numpy(),
        "no readable created_at",
        "a deal that cannot be placed in time is set aside",
    )
    set_aside(
        frame["status"].isna().to_numpy(),
        "unknown status",
        "status must be open, won or lost",
    )
    closed = frame["status"].isin(["won", "lost"]).to_numpy()
    set_aside(
        closed & frame["closed_at"].isna().to_numpy(),
        "closed without closed_at",
        "a won or lost deal needs its close date",
    )
    set_aside(
        (frame["closed_at"] < frame["created_at"]).to_numpy(),
        "closed before created",
        "the dates contradict each other; the row is set aside",
    )
    funnel = _funnel(frame, events, stages, source, keep)
    won = frame["status"].eq("won").to_numpy()
    frame.loc[won, "stage"] = "Won"
    known = frame["stage"].isin(funnel).to_numpy() | won
    in_funnel = known & ~won & keep
    outside = ~known & keep
    if stages and outside.any() and not in_funnel.any():
        others = frame.loc[outside, "stage"].value_counts()
        named = ", ".join(f"{name} ({count:,})" for name, count in others.head(8).items())
        raise InputError(
            f"{source}: no open or lost deal is in the stages given ({', '.join(funnel)}): "
            f"{int(outside.sum()):,} deals are in other stages: {named}. Only won deals would "
            "be left, and every conversion would come out near 100%. Give stages= in funnel "
            "order among those the file uses.",
            parameters=("stages",),
        )
    set_aside(~known, "unknown stage", f"stages outside the funnel ({', '.join(funnel)})")
    rule(
        ~(frame["open_amount"] > 0).to_numpy() | ~(frame["amount"] > 0).to_numpy(),
        "amount missing or 0",
        "kept",
        "used for conversion and dwell, not for amounts; an open one is booked at the "
        "mean amount of new deals",
    )
    rule(
        unknown_category,
        "unknown forecast_category",
        "kept",
        "not a forecast category (Pipeline, Best Case, Commit, Omitted, Closed): read as none",
    )
    for seg in segs:
        rule(
            frame[seg].isna().to_numpy(),
            f"blank {seg}",
            "kept",
            "kept; the overall (not segment) parameters apply to it",
        )
    frame.loc[frame["status"] == "open", "closed_at"] = pd.NaT
    kept = frame[keep].reset_index(drop=True)
    ev = _events(events, kept, funnel, source, found) if events is not None else None
    return History(
        deals=kept,
        events=ev,
        funnel=tuple(funnel),
        segments=tuple(segs),
        rows_read=n_read,
        issues=tuple(found),
        source=source,
    )


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _funnel(
    frame: pd.DataFrame,
    events: pd.DataFrame | None,
    stages: Sequence[str] | None,
    source: str,
    keep: np.ndarray,
) -> list[str]:
    """The open stages in funnel order: given, or inferred from the events' dates."""
    if stages:
        return [s.strip() for s in stages if s.strip() and s.strip().lower() != "won"]
    if events is None:
        raise InputError(
            f"{source}: the stage order is unknown. Give it with stages=A,B,C "
            "(top of the funnel first) or give the stage history with events=.",
            parameters=("stages", "events"),
        )
    ev = events.copy()
    ev["entered_at"] = parse_dates(ev["entered_at"])
    ev["stage"] = ev["stage"].map(_text)
    ev = ev.dropna(subset=["stage", "entered_at"]).sort_values(["deal_id", "entered_at"])
    ev = ev[~ev["stage"].str.lower().isin(["won", "lost", "closed won", "closed lost"])]
    rank = ev.groupby("deal_id").cumcount()
    order = rank.groupby(ev["stage"]).mean().sort_values(kind="stable")
    return [str(s) for s in order.index]


def _events(
    events: pd.DataFrame,
    deals: pd.DataFrame,
    funnel: Sequence[str],
    source: str,
    found: list[Issue],
) -> pd.DataFrame:
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise InputError(
            f"{source} events: required column(s) {', '.join(missing)} missing. "
            "Events need deal_id, stage, entered_at (one row per stage entry)."
        )
    called = ["forecast_category"] if "forecast_category" in events.columns else []
    ev = events[[*EVENT_COLUMNS, *called]].copy()
    if called:  # a field history of the category
        ev["forecast_category"] = categories(ev["forecast_category"])[0]
    ev["deal_id"] = ev["deal_id"].map(_text)
    ev["stage"] = ev["stage"].map(_text)
    ev["entered_at"] = parse_dates(ev["entered_at"])
    n = len(ev)
    bad_date = ev["entered_at"].isna()
    closing = ev["stage"].fillna("").str.lower().isin(["won", "lost", "closed won", "closed lost"])
    unknown_stage = ~ev["stage"].isin(funnel) & ~closing & ~bad_date
    unknown_deal = ~ev["deal_id"].isin(deals["deal_id"]) & ~bad_date & ~unknown_stage & ~closing
    for mask, reason, rule in (
        (bad_date, "event without a readable date", "set aside"),
        (unknown_stage, "event in an unknown stage", "set aside"),
        (unknown_deal, "event of a deal not in the deals file (or set aside)", "set aside"),
    ):
        if int(mask.sum()):
            found.append(Issue(reason, int(mask.sum()), "set aside", rule))
    if int(closing.sum()):
        found.append(
            Issue(
                "event entering Won/Lost",
                int(closing.sum()),
                "note",
                "outcomes come from the deals' status and closed_at",
            )
        )
    ev = ev[~(bad_date | unknown_stage | unknown_deal | closing)].reset_index(drop=True)
    if n and not len(ev):
        found.append(Issue("events unusable", n, "note", "no event could be used"))
    return ev


def as_of_date(value: object) -> dt.date:
    """Parse a date given on the command line (ISO, US or European)."""
    parsed = parse_dates(pd.Series([str(value)]))[0]
    if pd.isna(parsed):
        raise InputError(f"{value!r} is not a date. Write it as YYYY-MM-DD, e.g. 2017-07-01.")
    return parsed.date()
