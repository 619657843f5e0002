"""What a report shows, read from a results folder: summary, per-trial totals, funnel, extras."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.io import parquet
from pipesim.reports import identity
from pipesim.simulation.precision import ERROR_COLUMNS

RESULT_FILES = (
    "summary",
    "quarters",
    "quota",
    "trials",
    "funnel",
    "compare",
    "sensitivity",
    "odds",
    "forecast_call",
    "deal_odds",
    "close_dates",
)
PLAN_FILES = ("target", "health", "drift")
ODDS_NEEDS = ("stage", "age_days", "odds")
CLOSE_DATE_NEEDS = ("stage", "pushes", "overdue", "rows", "p_win", "p_by_date")
SUMMARY_COLUMNS = ("period", "cumulative", "metric", "mean", "p10", "p50", "p90")
FUNNEL_NEEDS = ("stage", "deals", "value", "conversion")
COMPARE_NEEDS = ("variant", "mean", "p10", "p50", "p90")
TARGET_NEEDS = ("period", "leads_current", "leads_needed")
HEALTH_NEEDS = ("stage", "deals_now", "value_now", "deals_needed", "coverage", "bottleneck")
DRIFT_NEEDS = ("period", "stage", "metric", "actual", "p10", "p50", "p90", "flag")
QUARTER_NEEDS = ("fiscal_year", "quarter", "start", "end", "complete", "metric", "p10", "p50")
QUOTA_NEEDS = ("period", "quota", "p10", "p50", "p90", "p_attain", "p_attain_80", "expected_gap")
CALL_NEEDS = (
    *("quarter", "start", "end", "complete", "booked", "commit", "commit_best_case"),
    *("weighted_pipeline", "commit_deals", "best_case_deals", "mean", "p10", "p50", "p90"),
    "p_commit",
)
DEAL_ODDS_NEEDS = (
    *("deal_id", "stage", "amount", "days_in_stage", "p_win", "p_win_quarter"),
    *("expected_revenue", "expected_revenue_quarter", "close_p50"),
)
NEEDS = {
    "quarters": QUARTER_NEEDS,
    "quota": QUOTA_NEEDS,
    "forecast_call": CALL_NEEDS,
    "funnel": FUNNEL_NEEDS,
    "compare": COMPARE_NEEDS,
    "odds": ODDS_NEEDS,
    "close_dates": CLOSE_DATE_NEEDS,
    "target": TARGET_NEEDS,
    "health": HEALTH_NEEDS,
    "drift": DRIFT_NEEDS,
    "deal_odds": DEAL_ODDS_NEEDS,
}
WHOLE_BOOK = "All"
# Files of other commands that a run's report never shows, and why.
OTHER_RUNS = {
    "backtest": "a backtest of a CRM history, not a forecast of this run (its report is "
    "drawn from a folder without summary.parquet)",
    "movement": "pipesim explain's steps between two snapshots, not a forecast of this run "
    "(its report is drawn from a folder without summary.parquet)",
}


@dataclasses.dataclass(frozen=True)
class ReportData:
    """The tables of one results folder that belong to its run, checked, with the run's settings.

    ``summary`` is the long-form summary (``by`` columns null on whole-book
    rows); ``totals`` the whole-book revenue of each trial over the horizon (or
    None without ``trials.parquet``); ``funnel``, ``compare``, ``sensitivity``
    are None when their file is absent; so is ``odds`` (the chance to advance by
    age, written for scenarios with loss clocks), ``forecast_call`` (the reps' call
    next to the model's, written when deals carry forecast categories),
    ``target_plan`` and ``health`` (with ``drift``); ``file_settings`` holds the
    metadata of each file used. A file whose identity (scenario fingerprint, trials,
    seed) is not the run's is left out: ``left_out`` says which and why, one line per
    file. ``skipped`` says, for the reader, what else is missing and why.
    """

    folder: Path
    settings: dict[str, str]
    by: tuple[str, ...]
    summary: pd.DataFrame
    totals: np.ndarray | None
    funnel: pd.DataFrame | None
    compare: pd.DataFrame | None
    sensitivity: pd.DataFrame | None
    target: float | None
    skipped: tuple[str, ...] = ()
    odds: pd.DataFrame | None = None
    close_dates: pd.DataFrame | None = None  # the slippage law a run used (close_dates.parquet)
    target_plan: pd.DataFrame | None = None
    health: pd.DataFrame | None = None
    drift: pd.DataFrame | None = None
    left_out: tuple[str, ...] = ()
    file_settings: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    quarters: pd.DataFrame | None = None
    quota: pd.DataFrame | None = None
    forecast_call: pd.DataFrame | None = None
    deal_odds: pd.DataFrame | None = None  # each open deal's odds (run --deal-odds)

    def whole_quarters(self, metric: str) -> pd.DataFrame:
        """Whole-book rows of ``quarters.parquet`` for one metric (empty without the file)."""
        q = self.quarters
        if q is None:
            return pd.DataFrame(columns=[*QUARTER_NEEDS, "mean", "p90", "label"])
        mask = q["metric"] == metric
        for col in self.by:
            if col in q.columns:
                mask &= q[col].isna()
        rows = q[mask].reset_index(drop=True)
        label = [
            str(f) if str(k) == "FY" else f"{f}-{k}"
            for f, k in zip(rows["fiscal_year"], rows["quarter"], strict=True)
        ]
        return rows.assign(label=label)

    @property
    def currency(self) -> str:
        """The scenario's currency label (may be empty)."""
        return self.settings.get("currency", "")

    @property
    def periods(self) -> list[str]:
        """The periods of the horizon, in order."""
        return list(dict.fromkeys(self.summary["period"].astype(str)))

    def whole(self, metric: str, cumulative: bool) -> pd.DataFrame:
        """Whole-book rows of one metric, indexed by period."""
        return self.block(None, metric, cumulative)

    def block(
        self, labels: tuple[object, ...] | None, metric: str, cumulative: bool
    ) -> pd.DataFrame:
        """Rows of one segment (None: the whole book) for one metric, indexed by period."""
        s = self.summary
        mask = (s["metric"] == metric) & (s["cumulative"] == cumulative)
        for i, col in enumerate(self.by):
            if labels is None:
                mask &= s[col].isna()
            else:
                mask &= s[col].astype(object) == labels[i]
        return s[mask].set_index("period")

    def segments(self) -> list[tuple[object, ...]]:
        """The segment label tuples of the summary, in its order (whole book excluded)."""
        if not self.by:
            return []
        rows = self.summary[self.summary[list(self.by)].notna().any(axis=1)]
        keys = rows[list(self.by)].astype(object).itertuples(index=False, name=None)
        return list(dict.fromkeys(keys))


def segment_name(by: tuple[str, ...], labels: tuple[object, ...] | None) -> str:
    """``region=North, product_line=Software`` (or All for the whole book)."""
    if labels is None:
        return WHOLE_BOOK
    return ", ".join(f"{c}={'(none)' if v is None else v}" for c, v in zip(by, labels, strict=True))


def _missing(frame: pd.DataFrame, needs: tuple[str, ...]) -> list[str]:
    return [c for c in needs if c not in frame.columns]


def load_report_data(folder: str | os.PathLike[str], target: float | None = None) -> ReportData:
    """Read a results folder written by ``pipesim run`` (and maybe the planning commands).

    Parameters
    ----------
    folder : path
        Holds ``summary.parquet`` (required); ``trials.parquet``, ``funnel.parquet``,
        ``quarters.parquet``, ``quota.parquet``, ``forecast_call.parquet``, ``deal_odds.parquet``,
        ``odds.parquet``, ``compare.parquet``, ``sensitivity.parquet``, ``target.parquet``,
        ``health.parquet`` and ``drift.parquet`` are used when present and of the same
        run: the same scenario fingerprint, trials and seed as ``summary.parquet``
        (:mod:`pipesim.reports.identity`). The others are listed in ``left_out``.
    target : float, optional
        Revenue target over the horizon; default: the ``target`` key of the
        results' metadata, if any.

    Raises
    ------
    InputError
        When the folder or its ``summary.parquet`` is missing or not a pipesim summary.
    """
    path = Path(folder)
    summary_path = path / "summary.parquet"
    if not summary_path.is_file():
        raise InputError(
            f"{summary_path}: missing. Give a results folder that `pipesim run` or "
            "pipesim.write_results wrote (it holds summary.parquet and trials.parquet), "
            "or one that `pipesim backtest` wrote (backtest.parquet)."
        )
    settings = parquet.read_metadata(summary_path)
    left_out: list[str] = []
    kept: dict[str, dict[str, str]] = {}
    for name in (*RESULT_FILES, *PLAN_FILES, *OTHER_RUNS):
        file = path / f"{name}.parquet"
        if name == "summary" or not file.is_file():
            continue
        meta = parquet.read_metadata(file)
        why = OTHER_RUNS.get(name) or identity.mismatch(settings, meta)
        if why is None:
            kept[name] = meta
        else:
            left_out.append(f"{file} left out of the report: {why}.")
    tables = parquet.read_tables(path, ("summary", *kept))
    summary = tables["summary"]
    absent = _missing(summary, SUMMARY_COLUMNS)
    if absent:
        raise InputError(
            f"{summary_path}: column(s) {', '.join(absent)} missing; this is not a pipesim "
            "summary. Write it again with `pipesim run` or pipesim.write_results."
        )
    by = tuple(c for c in settings.get("by", "").split(",") if c)
    by = tuple(c for c in by if c in summary.columns) or tuple(
        c for c in summary.columns if c not in SUMMARY_COLUMNS and c not in ERROR_COLUMNS
    )
    skipped: list[str] = []
    totals = None
    if "trials" in tables:
        trials = tables["trials"]
        if by:
            trials = trials[trials[list(by)].isna().all(axis=1)]
        totals = trials.groupby("trial")["revenue"].sum().to_numpy(dtype=float)
    else:
        skipped.append("trials.parquet is absent: no histogram of total revenue.")
    optional: dict[str, pd.DataFrame | None] = {}
    for name, needs in NEEDS.items():
        frame = tables.get(name)
        if frame is not None and _missing(frame, needs):
            left_out.append(
                f"{path / name}.parquet left out of the report: it lacks column(s) "
                f"{', '.join(_missing(frame, needs))}."
            )
            frame = None
        elif name == "funnel" and not (path / "funnel.parquet").is_file():
            skipped.append("funnel.parquet is absent (results of an older pipesim): no funnel.")
        optional[name] = frame
    if optional["quarters"] is None and "quarters" not in kept:
        skipped.append("quarters.parquet is absent (results of an older pipesim): no quarters.")
    if target is None and settings.get("target"):
        try:
            target = float(settings["target"])
        except ValueError:
            skipped.append(f"the target in the metadata ({settings['target']!r}) is not a number.")

    return ReportData(
        folder=path,
        settings=settings,
        by=by,
        summary=summary,
        totals=totals,
        funnel=optional["funnel"],
        compare=optional["compare"],
        sensitivity=tables.get("sensitivity"),
        target=target,
        skipped=tuple(skipped),
        odds=optional["odds"],
        close_dates=optional["close_dates"],
        target_plan=optional["target"],
        health=optional["health"],
        drift=optional["drift"] if optional["health"] is not None else None,
        left_out=tuple(left_out),
        file_settings={k: v for k, v in kept.items() if k in tables},
        quarters=optional["quarters"],
        quota=optional["quota"],
        forecast_call=optional["forecast_call"],
        deal_odds=optional["deal_odds"],
    )


LABEL_COLUMNS = ("input", "parameter", "label", "name")
_DOWN = {"down", "low", "-", "minus", "decrease"}
_UP = {"up", "high", "+", "plus", "increase"}


def _pick(numeric: list[str], key: str, side: str = "") -> str | None:
    """The numeric column naming ``key`` (and ``side``), preferring a delta/change column."""
    found = [c for c in numeric if key in c.lower() and side in c.lower()]
    preferred = [c for c in found if any(w in c.lower() for w in ("delta", "change", "diff"))]
    return next(iter(preferred or found), None)


def tornado_frame(sens: pd.DataFrame) -> pd.DataFrame | None:
    """``input``, ``down_p50``, ``up_p50``, ``down_p10``, ``up_p10``, widest swing first.

    Reads ``sensitivity.parquet`` in either shape: long (a text column of
    down/up, and columns holding ``p50`` / ``p10`` changes) or wide (columns
    such as ``delta_p50_down`` and ``delta_p50_up``). Returns None when no
    change in P50 can be found.
    """
    numeric = [c for c in sens.columns if pd.api.types.is_numeric_dtype(sens[c])]
    text = [c for c in sens.columns if c not in numeric]

    def is_direction(col: str) -> bool:
        values = {str(v).strip().lower() for v in sens[col].dropna()}
        return bool(values) and values <= _DOWN | _UP

    direction = next((c for c in text if is_direction(c)), None)
    names = [c for c in text if c != direction]
    # sensitivity.parquet names each input whole ("conversion Offer") next to its parts
    # (quantity, stage): that name alone is the label, not the parts repeated after it.
    named = next((c for c in LABEL_COLUMNS if c in names), None)
    names = [named] if named else names
    if names:
        label = sens[names].astype(object).where(sens[names].notna(), "").astype(str)
        labels = label.agg(" ".join, axis=1).str.strip()
    else:
        labels = pd.Series([f"input {i + 1}" for i in range(len(sens))], index=sens.index)
    out: dict[str, pd.Series] = {}
    if direction is not None:
        d = sens[direction].astype(str).str.strip().str.lower()
        for key in ("p50", "p10"):
            col = _pick(numeric, key)
            if col is None:
                continue
            for side, words in (("down", _DOWN), ("up", _UP)):
                rows = d.isin(words)
                out[f"{side}_{key}"] = (
                    pd.Series(sens.loc[rows, col].to_numpy(dtype=float), index=labels[rows])
                    .groupby(level=0, sort=False)
                    .first()
                )
    else:
        for key in ("p50", "p10"):
            for side, alt in (("down", "low"), ("up", "high")):
                col = _pick(numeric, key, side) or _pick(numeric, key, alt)
                if col is not None:
                    out[f"{side}_{key}"] = (
                        pd.Series(sens[col].to_numpy(dtype=float), index=labels)
                        .groupby(level=0, sort=False)
                        .first()
                    )
    if "down_p50" not in out or "up_p50" not in out:
        return None
    frame = pd.DataFrame(out)
    for col in ("down_p10", "up_p10"):
        if col not in frame:
            frame[col] = np.nan
    frame = frame[["down_p50", "up_p50", "down_p10", "up_p10"]]
    swing = frame[["down_p50", "up_p50"]].abs().max(axis=1)
    frame = frame.loc[swing.sort_values(ascending=False, kind="stable").index]
    return frame.rename_axis("input").reset_index()
