"""Where a stage's conversion stands now: a local level over the monthly cohorts.

The censored fit (:mod:`pipesim.calibration.survival`) gives one conversion for the
whole history. When the conversion moved (a new market, a new sales process), the
deals that entered the stage recently say so first, though most of them are still
open. Here, with the stage's clocks held at the fit, each calendar month of entry (a
cohort) gets its own conversion by maximum likelihood (its advances, losses and open
deals at their ages; a Beta(1.5, 1.5) penalty keeps a cohort of 3 deals finite), on
the logit scale with its standard error. A local level model then reads the series:

    theta_k = theta_(k-1) + eta_k,  eta ~ N(0, q)      (the conversion wanders)
    y_k     = theta_k + e_k,        e ~ N(0, s_k^2)    (each cohort's estimate)

``q`` by maximum likelihood (the Kalman filter's marginal likelihood over a grid);
the level at the last cohort and its variance come from the filter. The level is
used, in place of the whole history's conversion, only when ``q`` > 0 is a clear
improvement (a likelihood ratio above :data:`LR_MIN`, the 5% level of a test on the
boundary): on a steady history nothing changes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import optimize, special

from pipesim.calibration.survival import ADVANCE, LOST, OPEN, StageFit, log_survival

LR_MIN = 1.35  # half of chi2(1)'s 90% point: a 5% test for a variance on its boundary
MIN_COHORTS = 4
Q_GRID = np.concatenate([[0.0], np.geomspace(1e-4, 4.0, 60)])


@dataclasses.dataclass(frozen=True)
class Level:
    """The stage's conversion now (``conversion``, ``se``) and the monthly step ``step_sd``."""

    conversion: float
    se: float
    step_sd: float
    cohorts: int
    log_lr: float


def _cohort_estimate(
    n_adv: float, n_lost: float, a: np.ndarray, b: np.ndarray
) -> tuple[float, float]:
    """Logit MLE of one cohort's conversion and its variance, the clocks held."""

    def nll(theta: float) -> float:
        c = special.expit(theta)
        ll = (n_adv + 0.5) * math.log(c) + (n_lost + 0.5) * math.log1p(-c)
        ll += float(np.log(c * a + (1.0 - c) * b).sum())
        return -ll

    res = optimize.minimize_scalar(nll, bounds=(-12.0, 12.0), method="bounded")
    theta = float(res.x)
    h = 1e-3
    curv = (nll(theta + h) - 2.0 * nll(theta) + nll(theta - h)) / (h * h)
    return theta, 1.0 / curv if curv > 1e-9 else math.inf


def _filter(y: np.ndarray, v: np.ndarray, q: float) -> tuple[float, float, float]:
    """Kalman filter of the local level: (log-likelihood, last level, its variance)."""
    level, var = y[0], v[0]  # the first cohort starts the level
    ll = 0.0
    for k in range(1, len(y)):
        var_pred = var + q
        s = var_pred + v[k]
        innov = y[k] - level
        ll += -0.5 * (math.log(2.0 * math.pi * s) + innov * innov / s)
        gain = var_pred / s
        level += gain * innov
        var = (1.0 - gain) * var_pred
    return ll, level, var


def stage_level(
    fit: StageFit,
    days: np.ndarray,
    outcome: np.ndarray,
    entered: np.ndarray,
) -> Level | None:
    """The local level of one stage's conversion over its entry months (None: too few)."""
    if not np.isfinite(fit.dwell_days):
        return None
    known = np.isfinite(days)
    month = pd.Series(entered).dt.to_period("M").to_numpy()
    t = np.maximum(np.where(known, days, 1.0), 0.5)
    log_a = log_survival(fit.dwell_dist, t, fit.dwell_days, fit.dwell_cv)
    if fit.never_lost:
        b = np.ones_like(t)
    else:
        s_loss = np.exp(log_survival(fit.loss_dist, t, fit.loss_days, fit.loss_cv))
        b = 1.0 - fit.loss_recorded + fit.loss_recorded * s_loss
    a = np.exp(log_a)
    ys, vs = [], []
    for m in sorted(set(month[~pd.isna(month)])):
        these = month == m
        still = these & (outcome == OPEN) & known
        theta, var = _cohort_estimate(
            float((these & (outcome == ADVANCE)).sum()),
            float((these & (outcome == LOST)).sum()),
            a[still],
            b[still],
        )
        if np.isfinite(var):
            ys.append(theta)
            vs.append(var)
    if len(ys) < MIN_COHORTS:
        return None
    y, v = np.array(ys), np.array(vs)
    scores = [(_filter(y, v, q), q) for q in Q_GRID]
    (ll0, _, _), _ = scores[0]
    (ll, level, var), q = max(scores, key=lambda s: s[0][0])
    c = float(special.expit(level))
    return Level(
        conversion=c,
        se=float(math.sqrt(var) * c * (1.0 - c)),
        step_sd=float(math.sqrt(q)),
        cohorts=len(ys),
        log_lr=float(ll - ll0),
    )
