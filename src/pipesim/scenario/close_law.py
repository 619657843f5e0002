"""The slippage law of stated close dates: ``close_dates.parquet``, checked.

One row per stage and pushes bucket (0, 1, 2 and 3 for "3 or more"), as
``calibrate`` writes it from close-date histories
(:mod:`pipesim.calibration.close_dates`) or a planner edits it:

- ``p_win``: the chance that an open deal of that stage and pushes, not yet past its
  stated date, is won at all (``p_win_se`` its standard error: the trial-to-trial
  spread of that chance; ``p_by_date`` the chance it is won on or before the date,
  shown, not simulated);
- ``overdue_slope``: the change of the odds' logarithm per 30 days a deal is already
  past its stated date (0: none; negative: the chance falls);
- the lateness law, the won date minus the stated date in days: its quantiles
  ``lateness_min``, ``lateness_p5`` .. ``lateness_p90`` joined by straight lines, and
  above ``lateness_p90`` an exponential tail of mean ``lateness_tail_days``.

A deal past its stated date draws its lateness from that law conditioned on being
won on or after as_of (beyond ``lateness_p90``: the date it has reached plus the
exponential tail, which has no memory).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipesim.errors import ScenarioError

PUSH_BUCKETS = 4  # pushes 0, 1, 2 and 3 or more
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
NUMBER_COLUMNS = ("p_win", "overdue_slope", *LATENESS_COLUMNS, "lateness_tail_days")
OVERDUE_MONTH = 30.0  # days per step of overdue_slope


def check_close_law(table: pd.DataFrame, source: str, funnel: list[str]) -> pd.DataFrame:
    """The law with its stages in the funnel, pushes 0-3, numbers in range; sorted."""
    missing = [c for c in ("stage", "pushes", *NUMBER_COLUMNS) if c not in table.columns]
    if missing:
        raise ScenarioError(
            f"{source}: column(s) {', '.join(missing)} missing. The slippage law needs stage, "
            f"pushes, {', '.join(NUMBER_COLUMNS)} (calibrate writes it from close-date "
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
    dup = out.duplicated(["stage", "pushes"])
    _fail(source, "stage, pushes", out, dup, "repeat a stage and pushes bucket")
    order = {name: k for k, name in enumerate(funnel)}
    rank = out["stage"].map(order) * PUSH_BUCKETS + out["pushes"]
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
