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
    dwell_dist: np.ndarray,
    dwell_mean: np.ndarray,
    dwell_cv: np.ndarray,
    loss_dist: np.ndarray,
    loss_mean: np.ndarray,
    loss_cv: np.ndarray,
) -> np.ndarray:
    """Each deal's ``S_loss(age) / S_adv(age)`` in its cell; exactly 1 without a loss clock.

    The law arrays are per (group, stage) and ``cells`` index them flat
    (``g * n_stages + s``). A deal of age 0 has ratio 1. When both survivals are 0
    (a deal older than both laws allow) the ratio is 1: its age says nothing.
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
    both_over = np.isneginf(log_adv) & np.isneginf(log_loss)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.exp(log_loss - log_adv)
    r[both_over] = 1.0
    ratio[timed] = r
    return ratio


def odds_by_age(scenario: Scenario, ages: Sequence[float] = (30.0, 90.0)) -> pd.DataFrame:
    """Per stage with a loss clock: the chance to advance of a deal open at each age.

    Funnel rows only (segment overrides aside), at the point conversions: columns
    ``stage``, ``conversion`` (a fresh deal's odds), one ``odds_<age>d`` column per age,
    ``oldest_days`` (the oldest open deal of the stage, NaN when none) and
    ``odds_oldest``. Empty when no stage has a loss clock of its own.
    """
    stages = scenario.stages
    if "loss_days" not in stages.columns:
        return pd.DataFrame()
    funnel = stages[scenario.default_rows.to_numpy()]
    funnel = funnel[funnel["loss_days"].notna()]
    if funnel.empty:
        return pd.DataFrame()
    oldest = {name: np.nan for name in funnel["stage"]}
    for rows in scenario.deal_chunks(columns=["stage", "days_in_stage"]):
        ages_now = rows.groupby("stage")["days_in_stage"].max()
        for name, age in ages_now.items():
            if name in oldest:
                oldest[name] = np.nanmax([oldest[name], float(age)])
    out = []
    for row in funnel.to_dict("records"):
        c = float(row["conversion"])

        def odds(age: float, row: dict = row, c: float = c) -> float:
            if not age > 0:
                return c
            t = np.array([age])
            log_adv = log_survival(
                np.array([row["dwell_dist"]]), np.array([row["dwell_days"]]),
                np.array([row["dwell_cv"]]), t,
            )[0]  # fmt: skip
            log_loss = log_survival(
                np.array([row["loss_dist"]]), np.array([row["loss_days"]]),
                np.array([row["loss_cv"]]), t,
            )[0]  # fmt: skip
            if np.isneginf(log_adv) and np.isneginf(log_loss):
                return c
            with np.errstate(over="ignore"):
                r = float(np.exp(log_loss - log_adv))
            return c if c <= 0 or c >= 1 else c / (c + (1 - c) * r)

        record = {"stage": row["stage"], "conversion": c}
        record.update({f"odds_{a:g}d": odds(a) for a in ages})
        record["oldest_days"] = oldest[row["stage"]]
        record["odds_oldest"] = odds(oldest[row["stage"]])
        out.append(record)
    return pd.DataFrame(out)
