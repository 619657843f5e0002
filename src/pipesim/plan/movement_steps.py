"""What changed between two snapshots of a pipeline, deal by deal, as steps (``pipesim explain``).

Every deal of the two books falls in one place: in OLD only (``won`` when NEW's
``won.parquet`` holds it, else ``lost``), in NEW only (``new``), or in both. A deal in
both owns each of its columns to one step: ``stage`` and ``days_in_stage`` to
``advanced`` when its stage moved; ``close_date`` and ``pushes`` to ``pushed`` or
``pulled_in`` when both snapshots give it a close date and NEW's is later or earlier;
``amount`` and ``currency`` to ``amount`` when they changed; every other column (the
age of a deal whose stage did not move, a close date only one snapshot gives, segment
columns, the forecast category) to ``time``. :func:`state_deals` builds the book after
any set of steps: all of them give NEW's book, none OLD's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.scenario.scenario import Scenario

STEPS = ("won", "lost", "new", "advanced", "pushed", "pulled_in", "amount", "parameters", "time")
# Columns a step owns for a deal it moves (the rest of a deal's columns move with ``time``).
STEP_COLUMNS = {
    "advanced": ("stage", "days_in_stage"),
    "pushed": ("close_date", "pushes"),
    "pulled_in": ("close_date", "pushes"),
    "amount": ("amount", "currency"),
}
# Scenario settings of the ``parameters`` step (conversions, clocks, leads, shocks, rates,
# the slippage law of stated close dates).
PARAMETER_FIELDS = (
    "stages",
    "arrivals",
    "close_paces",
    "rush_slips",
    "month_slips",
    "market_shock_sd",
    "market_leads_shock_sd",
    "shock_persistence",
    "fx",
    "close_law",
)


def parse_order(order: str | Sequence[str] | None) -> tuple[str, ...]:
    """The steps in the order to apply: those named first, the others after in default order."""
    if order is None:
        return STEPS
    names = [s.strip() for s in order.split(",")] if isinstance(order, str) else list(order)
    names = [s for s in names if s]
    unknown = [s for s in names if s not in STEPS]
    if unknown:
        raise InputError(
            f"order={','.join(names)}: unknown step(s) {', '.join(map(repr, unknown))}. "
            f"The steps are {', '.join(STEPS)}.",
            parameters=("order",),
        )
    twice = sorted({s for s in names if names.count(s) > 1})
    if twice:
        raise InputError(
            f"order={','.join(names)}: step(s) {', '.join(map(repr, twice))} named twice. "
            "Name each step once (the ones left out follow in the default order).",
            parameters=("order",),
        )
    return (*names, *(s for s in STEPS if s not in names))


def _missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


def differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element by element: the two values differ (two missing values are the same)."""
    na, nb = _missing(a), _missing(b)
    both = ~na & ~nb
    out = na != nb
    out[both] = np.asarray(a[both] != b[both], dtype=bool)  # element by element (objects too)
    return out


def _dates(values: np.ndarray) -> np.ndarray:
    """Values as days (NaT where missing or not a date)."""
    if not len(values):
        return np.empty(0, dtype="datetime64[D]")
    days = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", format="mixed")
    return days.dt.tz_localize(None).to_numpy(dtype="datetime64[D]")


@dataclasses.dataclass(frozen=True)
class Changes:
    """The two books side by side, one row per deal of either (NEW's order, then OLD's).

    ``old`` and ``new`` hold every column of either book (missing: empty), ``owner``
    the step that moves each column of each deal, ``won_booked`` the revenue won in the
    window that the ``won`` step adds, ``booked`` what both count from the start.
    """

    old: pd.DataFrame
    new: pd.DataFrame
    in_old: np.ndarray
    in_new: np.ndarray
    won_open: np.ndarray  # OLD's open deals that NEW's won.parquet holds
    owner: dict[str, np.ndarray]
    deals: dict[str, int]
    booked: float
    won_booked: float
    notes: tuple[str, ...]

    @property
    def both(self) -> np.ndarray:
        """Deals open in both snapshots."""
        return self.in_old & self.in_new


def _aligned(table: pd.DataFrame, ids: list[str], columns: list[str]) -> pd.DataFrame:
    # As objects: an integer column with gaps would turn to floats (id 5 to 5.0: another key).
    keyed = table.astype(object).set_axis(table["deal_id"].astype(str).to_numpy())
    out = keyed.reindex(ids)
    for c in columns:
        if c not in out.columns:
            out[c] = pd.Series([None] * len(out), dtype=object, index=out.index)
    return out[columns].reset_index(drop=True)


def changes(
    old: Scenario, new: Scenario, start: dt.date, end: dt.date, new_source: str = "NEW"
) -> Changes:
    """Every deal's step between ``old`` and ``new``, and the revenue won in [start, end]."""
    o, n = old.deals, new.deals
    o_ids = o["deal_id"].astype(str).tolist()
    n_ids = n["deal_id"].astype(str).tolist()
    n_set, o_set = set(n_ids), set(o_ids)
    ids = [*n_ids, *(i for i in o_ids if i not in n_set)]
    columns = list(dict.fromkeys([*n.columns, *o.columns]))
    left, right = _aligned(o, ids, columns), _aligned(n, ids, columns)
    in_old = np.array([i in o_set for i in ids], dtype=bool)
    in_new = np.arange(len(ids)) < len(n_ids)
    notes: list[str] = []

    won = new.won
    if won is None:
        won = pd.DataFrame({"deal_id": [], "closed_at": [], "amount": []})
        gone = int((in_old & ~in_new).sum())
        if gone:
            notes.append(
                f"{new_source} has no won.parquet: the {gone} deal(s) that left the book "
                "count as lost, and no revenue as booked."
            )
    won_ids = won["deal_id"].astype(str).to_numpy()
    closed = np.asarray(won["closed_at"].to_numpy(), dtype="datetime64[D]")
    inside = (closed >= np.datetime64(start, "D")) & (closed <= np.datetime64(end, "D"))
    amount = won["amount"].to_numpy(dtype=np.float64)
    # Known to both: won before OLD's as_of, and never in OLD's open book.
    known = (closed < np.datetime64(old.as_of, "D")) & ~np.isin(won_ids, o_ids)
    won_open = in_old & ~in_new & np.isin(np.array(ids, dtype=object), won_ids)
    lost = in_old & ~in_new & ~won_open
    added = ~known & inside
    won_deals = set(np.array(ids, dtype=object)[won_open]) | set(won_ids[added])

    both = in_old & in_new
    moved = {
        "advanced": both & differs(left["stage"].to_numpy(object), right["stage"].to_numpy(object))
    }
    if "close_date" in columns:
        od = _dates(left["close_date"].to_numpy(object))
        nd = _dates(right["close_date"].to_numpy(object))
        dated = both & ~np.isnat(od) & ~np.isnat(nd)
        moved["pushed"] = dated & (nd > od)
        moved["pulled_in"] = dated & (nd < od)
    else:
        moved["pushed"] = moved["pulled_in"] = np.zeros(len(ids), dtype=bool)
    money = np.zeros(len(ids), dtype=bool)
    for c in STEP_COLUMNS["amount"]:
        if c in columns:
            money |= differs(left[c].to_numpy(object), right[c].to_numpy(object))
    moved["amount"] = both & money

    owner: dict[str, np.ndarray] = {}
    timed = np.zeros(len(ids), dtype=bool)
    for c in columns:
        if c == "deal_id":
            continue
        own = np.full(len(ids), "time", dtype=object)
        for step, cols in STEP_COLUMNS.items():
            if c in cols:
                own[moved[step]] = step
        owner[c] = own
        timed |= (
            (own == "time") & both & differs(left[c].to_numpy(object), right[c].to_numpy(object))
        )
    deals = {
        "won": len(won_deals),
        "lost": int(lost.sum()),
        "new": int((in_new & ~in_old).sum()),
        **{k: int(v.sum()) for k, v in moved.items()},
        "parameters": 0,
        "time": int(timed.sum()),
    }
    return Changes(
        old=left,
        new=right,
        in_old=in_old,
        in_new=in_new,
        won_open=won_open,
        owner=owner,
        deals=deals,
        booked=float(amount[known & inside].sum()),
        won_booked=float(amount[added].sum()),
        notes=tuple(notes),
    )


def state_deals(ch: Changes, applied: Collection[str]) -> pd.DataFrame:
    """The open book after the ``applied`` steps (NEW's values where they apply, else OLD's)."""
    keep = ch.in_old.copy()
    if "won" in applied:
        keep &= ~ch.won_open
    if "lost" in applied:
        keep &= ~(ch.in_old & ~ch.in_new & ~ch.won_open)
    fresh = ch.in_new & ~ch.in_old
    if "new" in applied:
        keep |= fresh
    steps = np.array(sorted(applied), dtype=object)
    out = {}
    for c in ch.old.columns:
        take = fresh if c == "deal_id" else fresh | (ch.both & np.isin(ch.owner[c], steps))
        out[c] = np.where(take, ch.new[c].to_numpy(object), ch.old[c].to_numpy(object))
    table = pd.DataFrame(out)[keep].reset_index(drop=True)
    for c in ("amount", "days_in_stage"):
        table[c] = table[c].astype(np.float64)
    return table
