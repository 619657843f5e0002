"""Two clocks per stage: how a deal's age changes its odds of advancing.

A deal entering a stage is destined to advance (probability ``c``, after a time
from the advance law: the stage's dwell law) or to be lost (after a time from the
loss law). Still open at age ``a``, it advances with probability

    c S_adv(a) / (c S_adv(a) + (1 - c) S_loss(a)) = c / (c + (1 - c) r),

where ``r = S_loss(a) / S_adv(a)`` is the deal's *survival ratio*, and then waits
the advance law's remaining time given ``a``. ``r`` depends on the deal and its
stage only (not on the trial), so it is computed here once per deal; the kernels
combine it with each trial's conversion. A stage without its own loss clock has
the advance law as its loss law: ``r = 1`` exactly, and the odds are ``c``, as in
the one-clock model. Losses never recorded (``loss_days = inf``): ``S_loss = 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from pipesim.scenario.scenario import Scenario


def log_survival(dist: np.ndarray, mean: np.ndarray, cv: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Log P(T > t) element by element, for laws given by distribution, mean and cv.

    ``cv == 0`` is a fixed time; ``gamma`` (``cv == 1``: exponential) and
    ``lognormal`` by mean and cv; an infinite mean never ends (log S = 0).
    """
    dist, mean, cv, t = np.broadcast_arrays(
        np.asarray(dist, dtype=object), np.asarray(mean, float), np.asarray(cv, float), t
    )
    out = np.zeros(t.shape)
    finite = np.isfinite(mean)
    fixed = finite & (cv <= 0)
    out[fixed] = np.where(t[fixed] < mean[fixed], 0.0, -np.inf)
    gam = finite & (cv > 0) & (dist == "gamma")
    if gam.any():
        shape = 1.0 / cv[gam] ** 2
        out[gam] = stats.gamma.logsf(t[gam], shape, scale=mean[gam] / shape)
    logn = finite & (cv > 0) & (dist == "lognormal")
    if logn.any():
        sigma2 = np.log1p(cv[logn] ** 2)
        mu = np.log(mean[logn]) - 0.5 * sigma2
        out[logn] = stats.lognorm.logsf(t[logn], np.sqrt(sigma2), scale=np.exp(mu))
    return out


def survival_ratio(
    cells: np.ndarray,
    age: np.ndarray,
    dwell_dist: ArrayLike,
    dwell_mean: ArrayLike,
    dwell_cv: ArrayLike,
    loss_dist: ArrayLike,
    loss_mean: ArrayLike,
    loss_cv: ArrayLike,
    loss_recorded: ArrayLike | None = None,
) -> np.ndarray:
    """Each deal's ``S_loss(age) / S_adv(age)`` in its cell; exactly 1 without a loss clock.

    The law arrays are per (group, stage) and ``cells`` index them flat
    (``g * n_stages + s``). A deal of age 0 has ratio 1. When both survivals are 0
    (a deal older than both laws allow) the ratio is 1: its age says nothing. With a
    share ``rho = loss_recorded`` of the losses recorded, a deal bound to be lost is
    still open at ``a`` with probability ``1 - rho + rho S_loss(a)``.
    """
    ratio = np.ones(age.shape)
    loss_mean = np.asarray(loss_mean, dtype=np.float64).ravel()
    timed = ~np.isnan(loss_mean[cells]) & (age > 0)
    if not timed.any():
        return ratio
    c, a = cells[timed], age[timed]
    log_adv = log_survival(
        np.asarray(dwell_dist, dtype=object).ravel()[c],
        np.asarray(dwell_mean, dtype=np.float64).ravel()[c],
        np.asarray(dwell_cv, dtype=np.float64).ravel()[c],
        a,
    )
    log_loss = log_survival(
        np.asarray(loss_dist, dtype=object).ravel()[c],
        loss_mean[c],
        np.asarray(loss_cv, dtype=np.float64).ravel()[c],
        a,
    )
    if loss_recorded is not None:
        rho = np.asarray(loss_recorded, dtype=np.float64).ravel()[c]
        part = rho < 1.0
        with np.errstate(divide="ignore"):
            log_loss[part] = np.logaddexp(np.log1p(-rho[part]), np.log(rho[part]) + log_loss[part])
    both_over = np.isneginf(log_adv) & np.isneginf(log_loss)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.exp(log_loss - log_adv)
    r[both_over] = 1.0
    ratio[timed] = r
    return ratio


def row_odds(row: dict, ages: np.ndarray) -> np.ndarray:
    """The chance to advance at each age of a deal of a stage row (its point conversion)."""
    c = float(row["conversion"])
    ages = np.asarray(ages, dtype=np.float64)
    out = np.full(ages.shape, c)
    aged = ages > 0
    if not aged.any() or c <= 0 or c >= 1:
        return out
    t = ages[aged]
    r = survival_ratio(
        np.zeros(t.size, dtype=np.int64), t,
        [row["dwell_dist"]], [row["dwell_days"]], [row["dwell_cv"]],
        [row["loss_dist"]], [row["loss_days"]], [row["loss_cv"]],
        [row.get("loss_recorded", 1.0) if pd.notna(row.get("loss_recorded")) else 1.0],
    )  # fmt: skip
    out[aged] = c / (c + (1 - c) * r)
    return out


def _clocked_rows(scenario: Scenario) -> list[dict]:
    stages = scenario.stages
    if "loss_days" not in stages.columns:
        return []
    funnel = stages[scenario.default_rows.to_numpy()]
    return funnel[funnel["loss_days"].notna()].to_dict("records")


def _oldest(scenario: Scenario, names: Sequence[str]) -> dict[str, float]:
    oldest = {name: np.nan for name in names}
    for rows in scenario.deal_chunks(columns=["stage", "days_in_stage"]):
        for name, age in rows.groupby("stage")["days_in_stage"].max().items():
            if name in oldest:
                oldest[name] = np.nanmax([oldest[name], float(age)])
    return oldest


def odds_by_age(scenario: Scenario, ages: Sequence[float] = (30.0, 90.0)) -> pd.DataFrame:
    """Per stage with a loss clock: the chance to advance of a deal open at each age.

    Funnel rows only (segment overrides aside), at the point conversions: columns
    ``stage``, ``conversion`` (a fresh deal's odds), one ``odds_<age>d`` column per age,
    ``oldest_days`` (the oldest open deal of the stage, NaN when none) and
    ``odds_oldest``. Empty when no stage has a loss clock of its own.
    """
    rows = _clocked_rows(scenario)
    if not rows:
        return pd.DataFrame()
    oldest = _oldest(scenario, [r["stage"] for r in rows])
    out = []
    for row in rows:
        at = row_odds(row, np.array([*ages, oldest[row["stage"]]]))
        record = {"stage": row["stage"], "conversion": float(row["conversion"])}
        record.update({f"odds_{a:g}d": float(v) for a, v in zip(ages, at[:-1], strict=True)})
        record["oldest_days"] = oldest[row["stage"]]
        record["odds_oldest"] = float(at[-1]) if np.isfinite(oldest[row["stage"]]) else np.nan
        out.append(record)
    return pd.DataFrame(out)


def odds_curve(scenario: Scenario, points: int = 61) -> pd.DataFrame:
    """The chance to advance by age, per stage with a loss clock (``odds.parquet``).

    Long form: ``stage``, ``age_days``, ``odds`` (funnel rows, point conversions), at
    ``points`` ages from 0 to three times the stage's longer mean clock (or its oldest
    open deal, if older), plus 30 and 90 days. Empty without loss clocks.
    """
    rows = _clocked_rows(scenario)
    if not rows:
        return pd.DataFrame(columns=["stage", "age_days", "odds"])
    oldest = _oldest(scenario, [r["stage"] for r in rows])
    frames = []
    for row in rows:
        clock = max(float(row["dwell_days"]), float(row["loss_days"]))
        if not np.isfinite(clock):
            clock = float(row["dwell_days"])
        top = max(3.0 * clock, np.nan_to_num(oldest[row["stage"]]))
        ages = np.unique(np.r_[np.linspace(0.0, top, points), 30.0, 90.0])
        frames.append(
            pd.DataFrame({"stage": row["stage"], "age_days": ages, "odds": row_odds(row, ages)})
        )
    return pd.concat(frames, ignore_index=True)
