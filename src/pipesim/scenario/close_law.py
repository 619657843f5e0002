"""The slippage law of stated close dates: ``close_dates.parquet``, checked.

One row per stage, pushes bucket (0, 1, 2 and 3 for "3 or more") and overdue bucket
(how far past its stated date the deal already is: 0 not past, 1 for 1-7 days, 2 for
8-30, 3 for 31-90, 4 for more), as ``calibrate`` writes it from close-date histories
(:mod:`pipesim.calibration.close_dates`) or a planner edits it:

- ``p_win``: the chance that an open deal of that stage, pushes and overdue bucket is
  won at all (``p_win_se`` its standard error: the trial-to-trial spread of that
  chance; ``p_by_date`` the chance it is won on or before its date, shown, not
  simulated);
- the lateness law, the won date minus the stated date in days: its quantiles
  ``lateness_min``, ``lateness_p5`` .. ``lateness_p90`` joined by straight lines, and
  above ``lateness_p90`` an exponential tail of mean ``lateness_tail_days``.

A deal draws its lateness from its row's law conditioned on being won on or after
as_of (beyond ``lateness_p90``: the date it has reached plus the
exponential tail, which has no memory).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.errors import ScenarioError

PUSH_BUCKETS = 4  # pushes 0, 1, 2 and 3 or more
# Overdue buckets: days past the stated date from which each starts (0: not past).
OVERDUE_FROM = (0.0, 1.0, 8.0, 31.0, 91.0)
OVERDUE_BUCKETS = len(OVERDUE_FROM)
# The lateness quantiles' levels (minimum first) and their columns.
LATENESS_LEVELS = (0.0, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90)
LATENESS_COLUMNS = (
    "lateness_min",
    "lateness_p5",
    "lateness_p10",
    "lateness_p25",
    "lateness_p50",
    "lateness_p75",
    "lateness_p90",
)
NUMBER_COLUMNS = ("p_win", *LATENESS_COLUMNS, "lateness_tail_days")
KEY = ("stage", "pushes", "overdue")


def overdue_bucket(days: np.ndarray) -> np.ndarray:
    """Each overdue (days past the stated date, 0 or less: not past) as its bucket."""
    return np.searchsorted(np.asarray(OVERDUE_FROM), np.asarray(days, dtype=float), "right") - 1


def check_close_law(table: pd.DataFrame, source: str, funnel: list[str]) -> pd.DataFrame:
    """The law with its stages in the funnel, pushes 0-3, numbers in range; sorted."""
    missing = [c for c in (*KEY, *NUMBER_COLUMNS) if c not in table.columns]
    if missing:
        raise ScenarioError(
            f"{source}: column(s) {', '.join(missing)} missing. The slippage law needs stage, "
            f"pushes, overdue, {', '.join(NUMBER_COLUMNS)} (calibrate writes it from close-date "
            "histories)."
        )
    out = table.reset_index(drop=True).copy()
    out["stage"] = out["stage"].astype(str)
    unknown = ~out["stage"].isin(funnel)
    _fail(source, "stage", out, unknown, f"name a stage not in the funnel {funnel}")
    pushes = pd.to_numeric(out["pushes"], errors="coerce")
    bad = ~pushes.isin(range(PUSH_BUCKETS))
    _fail(source, "pushes", out, bad, "are not 0, 1, 2 or 3 (3: three or more)")
    out["pushes"] = pushes.astype(np.int64)
    overdue = pd.to_numeric(out["overdue"], errors="coerce")
    bad = ~overdue.isin(range(OVERDUE_BUCKETS))
    _fail(
        source, "overdue", out, bad, "are not 0 to 4 (0: not past; 1-7, 8-30, 31-90, 91+ days past)"
    )
    out["overdue"] = overdue.astype(np.int64)
    for col in NUMBER_COLUMNS:
        values = pd.to_numeric(out[col], errors="coerce")
        _fail(source, col, out, ~np.isfinite(values.to_numpy(dtype=float)), "are not numbers")
        out[col] = values.astype(float)
    _fail(source, "p_win", out, ~out["p_win"].between(0.0, 1.0), "are not chances in [0, 1]")
    _fail(source, "lateness_tail_days", out, ~(out["lateness_tail_days"] > 0), "are not > 0")
    late = out[list(LATENESS_COLUMNS)].to_numpy(dtype=float)
    _fail(
        source,
        "lateness_min .. lateness_p90",
        out,
        pd.Series((np.diff(late, axis=1) < 0).any(axis=1)),
        "decrease (the quantiles must rise from lateness_min to lateness_p90)",
    )
    if "p_win_se" in out.columns:
        se = pd.to_numeric(out["p_win_se"], errors="coerce").fillna(0.0).astype(float)
        _fail(source, "p_win_se", out, ~(se >= 0), "are negative")
        out["p_win_se"] = se
    else:
        out["p_win_se"] = 0.0
    dup = out.duplicated(list(KEY))
    _fail(source, "stage, pushes, overdue", out, dup, "repeat a stage, pushes and overdue bucket")
    order = {name: k for k, name in enumerate(funnel)}
    rank = (out["stage"].map(order) * OVERDUE_BUCKETS + out["overdue"]) * PUSH_BUCKETS
    rank = rank + out["pushes"]
    return out.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def _fail(source: str, column: str, table: pd.DataFrame, bad: pd.Series, problem: str) -> None:
    mask = np.asarray(bad, dtype=bool)
    if mask.any():
        rows = np.flatnonzero(mask)
        shown = ", ".join(str(r + 1) for r in rows[:5])
        raise ScenarioError(
            f"{source}: column {column}, row(s) {shown} ({len(rows)} in all) {problem}. "
            "Fix them, or run calibrate again with the close-date history."
        )


def lateness_cdf(knots: np.ndarray, tail: float, days: float) -> float:
    """P(lateness < ``days``) under the law of quantile ``knots`` and exponential ``tail``."""
    levels = np.asarray(LATENESS_LEVELS)
    if days <= knots[0]:
        return 0.0
    if days >= knots[-1]:
        return 1.0 - (1.0 - levels[-1]) * float(np.exp(-(days - knots[-1]) / tail))
    return float(np.interp(days, knots, levels))


def lateness_quantile(knots: np.ndarray, tail: float, u: float) -> float:
    """The lateness (days) at level ``u`` (the inverse of :func:`lateness_cdf`)."""
    levels = np.asarray(LATENESS_LEVELS)
    if u >= levels[-1]:
        return float(knots[-1] - tail * np.log((1.0 - u) / (1.0 - levels[-1])))
    return float(np.interp(u, levels, knots))
