"""Checks of the scenario tables: one clear message per problem, naming where and the fix."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.errors import PipesimWarning, ScenarioError, show_rows
from pipesim.scenario.calendar import to_date

_PERIOD = re.compile(r"^\s*(\d{4})-(\d{1,2})(-\d{1,2})?\s*$")


def _check(
    source: str, column: str, problem: str, table: pd.DataFrame, bad: np.ndarray, fix: str
) -> None:
    """Raise a ScenarioError naming the rows flagged in ``bad``, if any."""
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    values = table[column].to_numpy()[rows] if column in table.columns else rows
    raise ScenarioError(
        f"{source}, column '{column}': {len(rows)} row(s) {problem}: "
        f"{show_rows(values, rows)}. {fix}"
    )


def require_columns(table: pd.DataFrame, source: str, required: Sequence[str]) -> None:
    """Fail naming ``source`` and the columns missing from ``table``."""
    missing = [c for c in required if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns)) or "none"
        raise ScenarioError(
            f"{source}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(columns present: {have}). Add the column(s); the README lists each table's columns."
        )


MAX_AMOUNT = 1e15  # no deal is worth more: a bigger amount is a typo (its sums print 150 digits)


def _numeric(table: pd.DataFrame, source: str, column: str, default: float | None) -> np.ndarray:
    """Return a column as float64 (missing column: ``default``), failing on non-numbers."""
    if column not in table.columns:
        return np.full(len(table), np.nan if default is None else default, dtype=np.float64)
    col = table[column]
    converted = pd.to_numeric(col, errors="coerce")
    bad = converted.isna().to_numpy() & col.notna().to_numpy()
    _check(source, column, "are not numbers", table, bad, "Write plain numbers there.")
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def as_segment(col: pd.Series) -> pd.Series:
    """Segment values as Python strings, missing values as None (2024.0 reads as "2024")."""
    missing = col.isna().to_numpy()
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        values = col.to_numpy(dtype=object)  # already text: no per-value work
        values[missing] = None
    elif isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories):
        # Per category, not per value: large books store segments as dictionaries.
        labels = np.array([_segment_text(v) for v in col.cat.categories], dtype=object)
        values = labels[col.cat.codes.to_numpy()]
        values[missing] = None
    else:
        values = np.array(
            [None if m else _segment_text(v) for v, m in zip(col, missing, strict=True)],
            dtype=object,
        )
    return pd.Series(values, index=col.index, dtype=object)


def _segment_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def segment_columns(table: pd.DataFrame, known: Sequence[str]) -> list[str]:
    """The columns of ``table`` that are not ``known`` ones: its segment columns."""
    return [c for c in table.columns if c not in known]


def check_as_of(value: object, source: str) -> dt.date:
    """Return ``as_of`` as a date, or fail naming the scenario file."""
    try:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise ValueError
        return to_date(value)
    except (ValueError, TypeError):
        raise ScenarioError(
            f"{source}, column 'as_of': {value!r} is not a date. "
            "Write the forecast's start date, e.g. 2027-01-01."
        ) from None


MAX_HORIZON = 240  # months (20 years): a longer horizon is a typo, not a forecast


def check_horizon(value: object, source: str) -> int:
    """Return ``horizon_months`` as a whole number of months in [1, MAX_HORIZON], or fail."""
    shown = value.item() if isinstance(value, np.generic) else value
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number != int(number) or number <= 0:
        raise ScenarioError(
            f"{source}, column 'horizon_months': {shown!r} is not a positive whole number "
            "of months. Set it to 1 or more, e.g. 12."
        )
    if number > MAX_HORIZON:
        raise ScenarioError(
            f"{source}, column 'horizon_months': {int(number):,} months is more than "
            f"{MAX_HORIZON} ({MAX_HORIZON // 12} years), the longest horizon pipesim forecasts. "
            "Set it to the months you need, e.g. 12 or 36."
        )
    return int(number)


def _dist(table: pd.DataFrame, source: str, column: str, dists: Sequence[str]) -> pd.Series:
    """A distribution-name column, lower case, missing as None (absent column: all None)."""
    if column not in table.columns:
        return pd.Series([None] * len(table), dtype=object)
    dist = table[column].astype(object).where(table[column].notna(), None)
    dist = dist.map(lambda v: v if v is None else str(v).strip().lower())
    bad = (dist.notna() & ~dist.isin(list(dists))).to_numpy()
    _check(
        source,
        column,
        "name an unknown distribution",
        table,
        bad,
        f"Use one of {', '.join(dists)} (or leave it empty for gamma).",
    )
    return dist


def _loss_columns(
    table: pd.DataFrame, source: str, default: np.ndarray, dists: Sequence[str]
) -> dict[str, np.ndarray]:
    """The loss clock's columns, checked (none when the table has none of them).

    ``loss_days`` empty: the stage's own dwell law (one clock, as before loss clocks);
    ``inf``: losses are never recorded; ``loss_recorded`` (default 1): the share of the
    losses recorded, the others stay open for ever. On a funnel row, ``loss_cv``,
    ``loss_dist`` or ``loss_recorded`` without ``loss_days`` is an error; an override
    row may set them alone when it inherits ``loss_days`` (checked once inherited, when
    the funnel is resolved).
    """
    if not any(c in table.columns for c in ("loss_days", "loss_cv", "loss_dist", "loss_recorded")):
        return {}
    days = _numeric(table, source, "loss_days", None)
    bad = ~np.isnan(days) & ~(days > 0)
    _check(
        source,
        "loss_days",
        "are not a positive number of days",
        table,
        bad,
        "loss_days is the mean time from entering the stage to being lost, for the deals "
        "that are lost (> 0; inf when losses are never recorded); leave it empty for the "
        "stage's own dwell law.",
    )
    cv = _numeric(table, source, "loss_cv", None)
    bad = ~np.isnan(cv) & ~((cv >= 0) & np.isfinite(cv))
    _check(
        source,
        "loss_cv",
        "are negative or not finite",
        table,
        bad,
        "loss_cv is the coefficient of variation of the time to a loss: 0 for a fixed "
        "time, 1 for exponential (the default).",
    )
    dist = _dist(table, source, "loss_dist", dists)
    recorded = _numeric(table, source, "loss_recorded", None)
    bad = ~np.isnan(recorded) & ~((recorded >= 0) & (recorded <= 1))
    _check(
        source,
        "loss_recorded",
        "are not a share between 0 and 1",
        table,
        bad,
        "loss_recorded is the share of the stage's losses that are recorded (1, the "
        "default: all; the others stay open for ever).",
    )
    given = ~np.isnan(cv) | dist.notna().to_numpy() | ~np.isnan(recorded)
    orphan = default & np.isnan(days) & given
    _check(
        source,
        "loss_days",
        "set loss_cv, loss_dist or loss_recorded without loss_days",
        table,
        orphan,
        "Give loss_days on the same row, or leave loss_cv, loss_dist and loss_recorded empty.",
    )
    timed = default & ~np.isnan(days)
    cv = cv.copy()
    cv[timed & np.isnan(cv)] = 1.0
    dist = dist.copy()
    dist[timed & dist.isna().to_numpy()] = "gamma"
    out = {"loss_days": days, "loss_cv": cv, "loss_dist": dist.to_numpy()}
    if "loss_recorded" in table.columns:
        recorded = recorded.copy()
        recorded[timed & np.isnan(recorded)] = 1.0
        out["loss_recorded"] = recorded
    return out


def _pool_column(table: pd.DataFrame, source: str, default: np.ndarray) -> np.ndarray | None:
    """``conversion_pool``: a segment row's pooling weight towards its stage's funnel row.

    Only segment rows pool (a funnel row has nothing to pool towards); a weight is
    a number of pseudo-deals, >= 0 and finite. None when the table has no such column.
    """
    if "conversion_pool" not in table.columns:
        return None
    pool = _numeric(table, source, "conversion_pool", None)
    bad = ~np.isnan(pool) & ~((pool >= 0) & np.isfinite(pool))
    _check(
        source,
        "conversion_pool",
        "are negative or not finite",
        table,
        bad,
        "conversion_pool is the weight, in deals, of the stage's funnel-row conversion in "
        "this segment's (>= 0); leave it empty for a segment drawn on its own.",
    )
    _check(
        source,
        "conversion_pool",
        "are set on a funnel row",
        table,
        default & ~np.isnan(pool),
        "conversion_pool pools a segment row towards its stage's funnel row; leave it "
        "empty on the funnel rows (segment columns empty).",
    )
    return pool


def check_stages(
    table: pd.DataFrame,
    source: str,
    known: Sequence[str],
    dists: Sequence[str],
    funnel_size_warning: bool = True,
) -> pd.DataFrame:
    """Validate and normalise the stages table.

    A funnel of fewer than 3 or more than 6 stages draws a warning when
    ``funnel_size_warning``: that is for funnels built by hand (a calibrated one has
    the stages its history records).
    """
    require_columns(table, source, ("stage", "conversion", "dwell_days"))
    table = table.reset_index(drop=True)
    segs = segment_columns(table, known)
    out = pd.DataFrame({"stage": table["stage"].astype(object)})
    bad = table["stage"].isna().to_numpy()
    _check(source, "stage", "have no stage name", table, bad, "Name every stage.")
    out["stage"] = table["stage"].map(str).astype(object)
    for seg in segs:
        out[seg] = as_segment(table[seg])
    default = out[segs].isna().all(axis=1).to_numpy() if segs else np.ones(len(out), bool)
    if not default.any():
        raise ScenarioError(
            f"{source}: the funnel is empty: no row defines a stage"
            + (f" (every row has a value in a segment column: {', '.join(segs)})" if segs else "")
            + ". Add one row per stage, top of the funnel first, with the segment columns empty."
        )
    names = out["stage"].to_numpy()
    dup = default & pd.Series(names).where(default).duplicated(keep="first").to_numpy()
    _check(
        source,
        "stage",
        "repeat a stage of the funnel",
        table,
        dup,
        "Give each stage one row (segment columns empty); put per-segment values in "
        "rows that name the segment.",
    )
    funnel = list(names[default])
    override = ~default
    unknown = override & ~np.isin(names, funnel)
    _check(
        source,
        "stage",
        f"override a stage that is not in the funnel {funnel}",
        table,
        unknown,
        "Use one of the funnel's stage names.",
    )
    if segs and override.any():
        key = out.loc[override, ["stage", *segs]].astype(str)
        dup_o = np.zeros(len(out), bool)
        dup_o[np.flatnonzero(override)] = key.duplicated(keep="first").to_numpy()
        _check(
            source,
            "stage",
            "repeat the same stage and segment values",
            table,
            dup_o,
            "Keep one row per stage and segment.",
        )

    conv = _numeric(table, source, "conversion", None)
    bad = (default & np.isnan(conv)) | (~np.isnan(conv) & ((conv < 0) | (conv > 1)))
    _check(
        source,
        "conversion",
        "are outside [0, 1] or missing",
        table,
        bad,
        "A conversion is the probability of reaching the next stage: write it between "
        "0 and 1 (e.g. 0.35 for 35%).",
    )
    dwell = _numeric(table, source, "dwell_days", None)
    bad = (default & np.isnan(dwell)) | (~np.isnan(dwell) & ~(dwell > 0)) | np.isinf(dwell)
    _check(
        source,
        "dwell_days",
        "are not a positive number of days",
        table,
        bad,
        "Write the mean time a deal spends in the stage, in days (> 0).",
    )
    cv = _numeric(table, source, "dwell_cv", None)
    bad = ~np.isnan(cv) & ~((cv >= 0) & np.isfinite(cv))
    _check(
        source,
        "dwell_cv",
        "are negative",
        table,
        bad,
        "dwell_cv is the coefficient of variation of the dwell time: 0 for a fixed time, "
        "1 for exponential (the default).",
    )
    vcv = _numeric(table, source, "value_cv", None)
    bad = ~np.isnan(vcv) & ~((vcv >= 0) & np.isfinite(vcv))
    _check(
        source,
        "value_cv",
        "are negative",
        table,
        bad,
        "value_cv is the spread of the won value around the amount (0: exactly the amount).",
    )
    n = _numeric(table, source, "conversion_n", None)
    bad = ~np.isnan(n) & ~((n > 0) & np.isfinite(n))
    _check(
        source,
        "conversion_n",
        "are not positive",
        table,
        bad,
        "conversion_n is the effective number of deals behind the conversion (> 0); leave "
        "it empty for a conversion known exactly.",
    )
    pool = _pool_column(table, source, default)
    dist = _dist(table, source, "dwell_dist", dists)
    loss = _loss_columns(table, source, default, dists)

    def fill(values: np.ndarray, default_value: float) -> np.ndarray:
        values = values.copy()
        values[default & np.isnan(values)] = default_value
        return values

    out["conversion"] = conv
    out["dwell_days"] = dwell
    out["dwell_cv"] = fill(cv, 1.0)
    dist = dist.copy()
    dist[default & dist.isna().to_numpy()] = "gamma"
    out["dwell_dist"] = dist.to_numpy()
    out["value_cv"] = fill(vcv, 0.0)
    out["conversion_n"] = n
    if pool is not None:
        out["conversion_pool"] = pool
    for col, values in loss.items():
        out[col] = values
    out = out[[*(c for c in known if c in out.columns), *segs]]  # reserved order, then segments
    if funnel_size_warning and (len(funnel) > 6 or len(funnel) < 3):
        warnings.warn(
            f"{source}: the funnel has {len(funnel)} stage(s); 4 to 6 keep a pipeline workable "
            "(3 to 6 accepted without this warning). Running it as given.",
            PipesimWarning,
            stacklevel=4,
        )
    return out


def _parse_period(value: object) -> tuple[int, int] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, dt.date | pd.Timestamp):
        return value.year, value.month
    match = _PERIOD.match(str(value))
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return (year, month) if 1 <= month <= 12 else None


def check_arrivals(
    table: pd.DataFrame, source: str, known: Sequence[str], as_of: dt.date
) -> pd.DataFrame:
    """Validate and normalise the arrivals table (``period`` becomes ``YYYY-MM``)."""
    require_columns(table, source, ("period", "leads", "amount"))
    table = table.reset_index(drop=True)
    parsed = [_parse_period(v) for v in table["period"].astype(object)]
    bad = np.array([p is None for p in parsed], dtype=bool)
    _check(
        source,
        "period",
        "are not a month",
        table,
        bad,
        "Write the month as YYYY-MM (e.g. 2027-03) or as a date in that month.",
    )
    leads = _numeric(table, source, "leads", None)
    bad = ~(leads >= 0) | np.isinf(leads)
    _check(
        source,
        "leads",
        "are negative or missing",
        table,
        bad,
        "Write the expected number of new leads in the month (0 or more).",
    )
    amount = _numeric(table, source, "amount", None)
    _check(
        source,
        "amount",
        "are negative or missing",
        table,
        ~(amount >= 0),
        "Write the mean amount of a new lead (0 or more).",
    )
    _check(
        source,
        "amount",
        f"are infinite or above {MAX_AMOUNT:,.0f}",
        table,
        amount > MAX_AMOUNT,
        "Write the mean amount of a new lead in the scenario's currency (extra zeros?).",
    )
    acv = _numeric(table, source, "amount_cv", 0.0)
    bad = ~(acv >= 0) | np.isinf(acv)
    _check(
        source,
        "amount_cv",
        "are negative or missing",
        table,
        bad,
        "amount_cv is the coefficient of variation of a new lead's amount (0 or more).",
    )
    n = _numeric(table, source, "leads_n", None)
    bad = ~np.isnan(n) & ~((n > 0) & np.isfinite(n))
    _check(
        source,
        "leads_n",
        "are not positive",
        table,
        bad,
        "leads_n is the evidence behind the lead rate (> 0); leave it empty for a rate "
        "known exactly.",
    )
    out = pd.DataFrame(
        {
            "period": [f"{y:04d}-{m:02d}" for y, m in parsed],  # type: ignore[misc]
            "leads": leads,
            "amount": amount,
            "amount_cv": acv,
            "leads_n": n,
        }
    )
    spreads = {
        "leads_trend_sd": "the standard error of the lead rate's monthly growth on the log "
        "scale (0 or more); leave it empty for no trend uncertainty.",
        "segment_shock_sd": "the sd, on the logit scale, of the monthly shock on this "
        "segment's new leads' odds of winning (0 or more); leave it empty for none.",
        "segment_leads_shock_sd": "the sd, on the log scale, of the monthly shock on this "
        "segment's lead volume (0 or more); leave it empty for none.",
    }
    for col, meaning in spreads.items():
        if col not in table.columns:
            continue
        values = _numeric(table, source, col, None)
        bad = ~np.isnan(values) & ~((values >= 0) & np.isfinite(values))
        _check(source, col, "are negative or not finite", table, bad, f"{col} is {meaning}")
        out[col] = values
    texts = [c for c in table.columns if c in known and c not in out.columns]  # currency, ...
    for seg in [*texts, *segment_columns(table, known)]:
        out[seg] = as_segment(table[seg]).to_numpy()
    return out


def check_rows(
    source: str, column: str, problem: str, table: pd.DataFrame, bad: np.ndarray, fix: str
) -> None:
    """Raise a ScenarioError naming ``source``, ``column`` and the rows flagged in ``bad``."""
    _check(source, column, problem, table, bad, fix)


def numeric_column(
    table: pd.DataFrame, source: str, column: str, default: float | None
) -> np.ndarray:
    """A column as float64 (missing column: ``default``), failing on non-numbers."""
    return _numeric(table, source, column, default)
