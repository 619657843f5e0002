"""Checks of the deals table, chunk after chunk, with one message for the whole book.

A book read in chunks gets exactly the message the whole table would get: each
kind of problem is counted over every chunk (rows numbered in the whole book),
and the first kind in the order below that occurs anywhere is reported, with
its total count and first rows. A table in memory is one chunk.

Order of the checks: ``deal_id`` missing, ``deal_id`` repeated (by the deal's
64-bit key, i.e. its id as text, which is what its random numbers depend on),
``stage`` not in the funnel, ``amount`` not a number, ``amount`` negative or
missing, ``days_in_stage`` not a number, ``days_in_stage`` negative or missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pipesim.errors import ScenarioError, show_rows
from pipesim.scenario.forecast_category import CATEGORIES, categories
from pipesim.scenario.keys import deal_keys
from pipesim.scenario.table_checks import (
    MAX_AMOUNT,
    as_segment,
    require_columns,
    segment_columns,
)

SHOWN = 5  # rows quoted in a message
CORE_COLUMNS = ("deal_id", "stage", "amount", "days_in_stage")
DATED_COLUMNS = ("close_date", "pushes")  # the stated close date and its moves later
_FIXES = {
    "number": "Write plain numbers there.",
    "amount": "Write each deal's expected value (0 or more).",
    "amount_big": "Write each deal's value in the scenario's currency (extra zeros?).",
    "days_in_stage": "Write how many days the deal has been in its stage (0 for a new one).",
}


@dataclasses.dataclass
class _Problem:
    """One kind of problem, counted over the whole book."""

    column: str
    problem: str
    fix: str
    count: int = 0
    rows: list[int] = dataclasses.field(default_factory=list)
    values: list[object] = dataclasses.field(default_factory=list)

    def add(self, rows: np.ndarray, values: np.ndarray) -> None:
        self.count += len(rows)
        room = SHOWN - len(self.rows)
        if room > 0:
            self.rows += [int(r) for r in rows[:room]]
            self.values += list(values[:room])

    def message(self, source: str) -> str:
        shown = show_rows(self.values, self.rows, limit=SHOWN)
        if self.count > SHOWN:
            shown += f" and {self.count - SHOWN} more"
        return (
            f"{source}, column '{self.column}': {self.count} row(s) {self.problem}: "
            f"{shown}. {self.fix}"
        )


class DealChecker:
    """Validate and normalise a deals table given chunk after chunk.

    Parameters
    ----------
    source : str
        The table's name in messages (``/x/deals.parquet``).
    columns : sequence of str
        The table's columns (checked for the required ones at once).
    known : sequence of str
        The columns pipesim knows (the others are segment columns).
    funnel : sequence of str
        The stage names a deal may be in.

    Call :meth:`check` with each chunk in order (its index: the rows' numbers in
    the book), then :meth:`finish`, which raises the book's first problem.
    """

    def __init__(
        self, source: str, columns: Sequence[str], known: Sequence[str], funnel: Sequence[str]
    ) -> None:
        require_columns(pd.DataFrame(columns=list(columns)), source, ("deal_id", "stage", "amount"))
        self.source = source
        self.funnel = list(funnel)
        self.segments = segment_columns(pd.DataFrame(columns=list(columns)), known)
        # Reserved text columns beyond the four read as numbers and ids (currency, ...).
        self.texts = [c for c in columns if c in known and c not in CORE_COLUMNS + DATED_COLUMNS]
        self.dated = [c for c in DATED_COLUMNS if c in columns]
        self.rows = 0
        self.keys: list[np.ndarray] = []
        self.stage_deals = {s: 0 for s in self.funnel}
        self.stage_value = {s: 0.0 for s in self.funnel}
        stage_problem = f"name a stage not in the funnel {self.funnel}"
        stage_fix = (
            "Use a stage of stages.parquet (won and lost deals are not open: leave them out)."
        )
        self.problems = {
            "missing_id": _Problem("deal_id", "have no deal_id", "Give every deal an id."),
            "duplicate_id": _Problem(
                "deal_id",
                "repeat an earlier deal_id",
                "Each open deal appears once; remove or rename the duplicates.",
            ),
            "stage": _Problem("stage", stage_problem, stage_fix),
            "amount_nan": _Problem("amount", "are not numbers", _FIXES["number"]),
            "amount": _Problem("amount", "are negative or missing", _FIXES["amount"]),
            "amount_big": _Problem(
                "amount", f"are infinite or above {MAX_AMOUNT:,.0f}", _FIXES["amount_big"]
            ),
            "age_nan": _Problem("days_in_stage", "are not numbers", _FIXES["number"]),
            "age": _Problem("days_in_stage", "are negative or missing", _FIXES["days_in_stage"]),
            "close_date": _Problem(
                "close_date",
                "are not dates",
                "Write the stated close date as YYYY-MM-DD (or leave it empty: the stage's "
                "clocks then time the deal).",
            ),
            "pushes": _Problem(
                "pushes",
                "are not whole numbers >= 0",
                "Write how many times the close date moved later (0 if never; empty is 0).",
            ),
            "category": _Problem(
                "forecast_category",
                "are not a forecast category of an open deal",
                f"Use one of {', '.join(CATEGORIES)} (or leave it empty).",
            ),
        }

    def _flag(self, kind: str, table: pd.DataFrame, column: str, bad: np.ndarray) -> bool:
        if not bad.any():
            return False
        where = np.flatnonzero(bad)
        values = table[column].to_numpy()[where[:SHOWN]]
        self.problems[kind].add(table.index.to_numpy()[where], values)
        return True

    def _numeric(
        self, table: pd.DataFrame, column: str, kind: str, default: float | None
    ) -> np.ndarray:
        if column not in table.columns:
            return np.full(len(table), np.nan if default is None else default, dtype=np.float64)
        col = table[column]
        converted = pd.to_numeric(col, errors="coerce")
        bad = converted.isna().to_numpy() & col.notna().to_numpy()
        self._flag(kind, table, column, bad)
        return converted.to_numpy(dtype=np.float64, na_value=np.nan)

    def check(self, table: pd.DataFrame, normalise: bool = True) -> pd.DataFrame | None:
        """Check one chunk; return it normalised (None: it has a problem, or not ``normalise``)."""
        before = sum(p.count for p in self.problems.values())
        ids = table["deal_id"]
        self._flag("missing_id", table, "deal_id", ids.isna().to_numpy())
        self.keys.append(deal_keys(ids))
        stage = as_segment(table["stage"])
        codes, names = pd.factorize(stage)  # a missing stage: code -1
        known = np.array([*(n in self.funnel for n in names), False], dtype=bool)
        self._flag("stage", table, "stage", ~known[codes])
        amount = self._numeric(table, "amount", "amount_nan", None)
        self._flag("amount", table, "amount", ~(amount >= 0))
        self._flag("amount_big", table, "amount", amount > MAX_AMOUNT)
        age = self._numeric(table, "days_in_stage", "age_nan", 0.0)
        self._flag("age", table, "days_in_stage", ~(age >= 0) | np.isinf(age))
        if "forecast_category" in table.columns:
            called, unknown = categories(table["forecast_category"])
            self._flag("category", table, "forecast_category", unknown | (called == "Closed"))
        if "close_date" in table.columns:
            close = close_dates(table["close_date"])
            self._flag(
                "close_date",
                table,
                "close_date",
                close.isna().to_numpy() & table["close_date"].notna().to_numpy(),
            )
        pushes = np.nan_to_num(self._numeric(table, "pushes", "pushes", 0.0), nan=0.0)
        self._flag("pushes", table, "pushes", ~(pushes >= 0) | (pushes != np.floor(pushes)))
        self.rows += len(table)
        if sum(p.count for p in self.problems.values()) > before:
            return None
        self.count_stages(codes, names, amount)
        if not normalise:
            return None
        out = pd.DataFrame(
            {
                "deal_id": ids.astype(object).to_numpy(),
                "stage": stage.to_numpy(dtype=object),
                "amount": amount,
                "days_in_stage": age,
            },
            index=table.index,
        )
        for seg in [*self.texts, *self.segments]:
            out[seg] = as_segment(table[seg]).to_numpy()
        if "forecast_category" in out.columns:  # CRM spellings to the category names
            out["forecast_category"] = categories(table["forecast_category"])[0]
        if "close_date" in table.columns:
            out["close_date"] = close_dates(table["close_date"]).to_numpy()
        if "pushes" in table.columns:
            out["pushes"] = pushes
        return out

    def count_stages(self, codes: np.ndarray, names: object, amount: np.ndarray) -> None:
        """Add a chunk's deals and value to the per-stage totals (stage codes and names)."""
        labels = list(names)  # type: ignore[call-overload]
        deals = np.bincount(codes, minlength=len(labels))
        value = np.bincount(codes, weights=amount, minlength=len(labels))
        for k, name in enumerate(labels):
            self.stage_deals[str(name)] += int(deals[k])
            self.stage_value[str(name)] += float(value[k])

    def finish(self, ids_at: Callable[[np.ndarray], np.ndarray]) -> None:
        """Look for repeated ids over the whole book; raise the first problem found.

        ``ids_at(rows)`` returns the ``deal_id`` values at the given row numbers
        (to quote the repeated ones).
        """
        if not self.problems["missing_id"].count:
            keys = np.concatenate(self.keys) if self.keys else np.empty(0, np.uint64)
            ordered = np.sort(keys)  # faster than a hash table; rows only when needed
            if (ordered[1:] == ordered[:-1]).any():
                dup = pd.Series(keys).duplicated(keep="first").to_numpy()
                where = np.flatnonzero(dup)
                self.problems["duplicate_id"].add(where, ids_at(where[:SHOWN]))
        self.keys = []
        for problem in self.problems.values():
            if problem.count:
                raise ScenarioError(problem.message(self.source))


def close_dates(values: pd.Series) -> pd.Series:
    """Stated close dates as datetime64 days (NaT where empty or unreadable)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[ns]").dt.normalize()
    text = values.astype(object).where(values.notna(), None)
    parsed = pd.to_datetime(text.map(lambda v: None if v is None else str(v)), errors="coerce")
    return parsed.astype("datetime64[ns]").dt.normalize()


def check_deals(
    table: pd.DataFrame, source: str, known: Sequence[str], funnel: Sequence[str]
) -> pd.DataFrame:
    """Validate and normalise a deals table held in memory (one chunk)."""
    table = table.reset_index(drop=True)
    checker = DealChecker(source, list(table.columns), known, funnel)
    out = checker.check(table)
    checker.finish(lambda rows: table["deal_id"].to_numpy()[rows])
    assert out is not None
    return out


def normalise_deals(table: pd.DataFrame) -> pd.DataFrame:
    """Normalise rows of a deals table already checked (any subset of its columns).

    Only the columns given are converted (a missing ``days_in_stage`` column is
    the caller's to add, as 0); segment values become text (missing: None), as
    :func:`check_deals` makes them.
    """
    out: dict[str, object] = {}
    for col in table.columns:
        if col == "deal_id":
            out[col] = table[col].astype(object).to_numpy()
        elif col == "forecast_category":
            out[col] = categories(table[col])[0]
        elif col == "close_date":
            out[col] = close_dates(table[col]).to_numpy()
        elif col == "pushes":
            pushes = pd.to_numeric(table[col], errors="coerce").fillna(0.0)
            out[col] = pushes.to_numpy(dtype=np.float64)
        elif col in ("amount", "days_in_stage"):
            out[col] = pd.to_numeric(table[col], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        elif pd.api.types.is_string_dtype(table[col].dtype) and table[col].dtype != object:
            out[col] = table[col]  # text already (a str column): kept as it is
        else:  # stage and segment columns
            out[col] = as_segment(table[col]).to_numpy(dtype=object)
    return pd.DataFrame(out, index=table.index)
