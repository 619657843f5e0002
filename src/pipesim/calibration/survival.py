"""Censored estimation of one stage: the conversion and two competing clocks, jointly.

A deal entering a stage is destined to advance (probability ``c``, after a time
from the *advance law*) or to be lost (after a time from the *loss law*), the
model the engine simulates. Its history is one of three things, and the
likelihood multiplies, over the deals of the stage:

    advanced after t        c f_adv(t)
    lost after t            (1 - c) f_loss(t)
    still open at age a     c S_adv(a) + (1 - c) S_loss(a)      (right-censored)

(``f`` densities, ``S`` survival functions; a row whose time the dates do not
tell contributes ``c`` or ``1 - c``, or nothing when open). Each law is a gamma
or a lognormal given by its mean and cv. The maximum of the penalised
likelihood gives every parameter at once; its standard errors come from the
curvature there (the inverse of the numerical Hessian, then the delta method).
Penalties, so that a stage with few deals still gets finite answers: ``log c +
log(1 - c)`` (a Beta(2, 2) prior: with every outcome known, the conversion is
Laplace's ``(advanced + 1) / (closed + 2)``) and ``-(log cv / 1.5)^2 / 2`` on
each clock's cv.

*Some losses never recorded* (deals abandoned without being closed): a share
``rho`` (``loss_recorded``) of the losses is recorded, the rest stay open for ever;
a lost row contributes ``(1 - c) rho f_loss(t)`` and an open one ``c S_adv(a) +
(1 - c) (1 - rho + rho S_loss(a))``. ``rho`` is fitted next to ``rho = 1`` and kept
only when it earns its parameter (likelihood-ratio test, 5%).

*Losses never recorded* (a CRM where a deal that is not won simply stays open;
fewer than :data:`MIN_LOSSES` losses with a known time): the loss clock is
infinite, ``S_loss = 1``, and an open deal contributes ``c S_adv(a) + 1 - c``:
the conversion follows from how the advances die out with age. A recorded loss
then only says that the deal did not advance (``1 - c``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy import optimize, special

ADVANCE, LOST, OPEN = 1, 0, -1
LAWS = ("gamma", "lognormal")
MIN_LOSSES = 5  # losses with a known time needed to fit a loss clock; fewer: never recorded
DEFAULT_DWELL = 30.0  # days: the advance clock of a stage where nothing has advanced yet
_MIN_DAYS = 0.5  # same-day moves are counted as half a day: the laws have no mass at 0
_CV_PRIOR_SD = 1.5  # sd of the normal penalty on log cv
_SHARES = ("c", "loss_recorded")  # on the logit scale; the rest on the log scale
_RECORDED_PENALTY = 1.35  # log-likelihood a share of unrecorded losses must gain (LR test 5%)
_BOUNDS = {  # on the optimiser's scale: logit c, log mean, log cv
    "c": (-14.0, 14.0),
    "days": (math.log(0.05), math.log(1e5)),
    "cv": (math.log(0.05), math.log(20.0)),
}


def log_density(dist: str, t: np.ndarray, mean: float, cv: float) -> np.ndarray:
    """Log density at ``t`` of a gamma or lognormal law given by its mean and cv."""
    if dist == "gamma":
        shape = 1.0 / (cv * cv)
        x = t * shape / mean
        return (shape - 1.0) * np.log(x) - x - special.gammaln(shape) + np.log(shape / mean)
    s2 = math.log1p(cv * cv)
    z = (np.log(t) - math.log(mean) + 0.5 * s2) / math.sqrt(s2)
    return -0.5 * z * z - np.log(t) - 0.5 * math.log(2.0 * math.pi * s2)


def log_survival(dist: str, t: np.ndarray, mean: float, cv: float) -> np.ndarray:
    """Log P(T > t) of a gamma or lognormal law given by its mean and cv."""
    if dist == "gamma":
        shape = 1.0 / (cv * cv)
        with np.errstate(divide="ignore"):
            return np.maximum(np.log(special.gammaincc(shape, t * shape / mean)), -745.0)
    s2 = math.log1p(cv * cv)
    z = (np.log(t) - math.log(mean) + 0.5 * s2) / math.sqrt(s2)
    return special.log_ndtr(-z)


@dataclasses.dataclass(frozen=True)
class StageFit:
    """What one stage's history says.

    Attributes
    ----------
    conversion, conversion_se : float
        Probability of advancing and its standard error.
    conversion_n : float
        The conversion's evidence as a Beta prior's weight: ``c (1 - c) / se^2 - 1``
        (what the engine draws each trial's conversion with), at least 2.
    dwell_days, dwell_cv, dwell_dist : float, float, str
        The advance clock (NaN days when nothing has advanced: the caller picks one).
    loss_days, loss_cv, loss_dist : float, float, str
        The loss clock; ``loss_days`` is ``inf`` when losses are never recorded, NaN
        when nothing has advanced (no clock to weigh the ages against: one clock).
    loss_recorded : float
        The share of the losses recorded (1: all; the others stay open for ever); 0
        with ``loss_days`` inf. A share below 1 is fitted only when it raises the
        log-likelihood by more than 1.35 (a 5% likelihood-ratio test on the boundary).
    se : dict
        Standard error of each estimate by parameter name (NaN when the curvature
        does not tell, e.g. a parameter held at a bound or fixed).
    advanced, lost, still_open : int
        Counts of each outcome.
    naive_conversion, naive_dwell : float
        The closed-deals-only estimates, for comparison.
    log_likelihood : float
        The penalised log-likelihood at the estimate (less 1.35 when it fits a share of
        unrecorded losses).
    """

    conversion: float
    conversion_se: float
    conversion_n: float
    dwell_days: float
    dwell_cv: float
    dwell_dist: str
    loss_days: float
    loss_cv: float
    loss_dist: str
    loss_recorded: float
    se: dict[str, float]
    advanced: int
    lost: int
    still_open: int
    naive_conversion: float
    naive_dwell: float
    log_likelihood: float

    @property
    def never_lost(self) -> bool:
        """True when the fit is the *losses never recorded* model (``loss_days`` infinite)."""
        return math.isinf(self.loss_days)

    def advanced_by(self, days: np.ndarray) -> np.ndarray:
        """Probability that a deal entering the stage has advanced within ``days``."""
        if not np.isfinite(self.dwell_days):
            return np.zeros(np.shape(days))
        t = np.maximum(np.asarray(days, dtype=np.float64), _MIN_DAYS)
        return self.conversion * -np.expm1(
            log_survival(self.dwell_dist, t, self.dwell_days, self.dwell_cv)
        )

    def estimates(self) -> list[tuple[str, float, float]]:
        """(parameter, value, se) rows, as ``calibration.parquet`` lists them."""
        values = {
            "conversion": self.conversion,
            "dwell_days": self.dwell_days,
            "dwell_cv": self.dwell_cv,
            "loss_days": self.loss_days,
            "loss_cv": self.loss_cv,
            "loss_recorded": self.loss_recorded,
        }
        return [(k, float(v), float(self.se.get(k, math.nan))) for k, v in values.items()]


@dataclasses.dataclass(frozen=True)
class _Data:
    """One stage's rows, grouped by distinct time (CRM durations are whole days)."""

    t_adv: np.ndarray
    w_adv: np.ndarray
    t_lost: np.ndarray
    w_lost: np.ndarray
    t_open: np.ndarray
    w_open: np.ndarray
    n_adv: float  # all advances, timed or not
    n_lost: float


def _ties(t: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, inverse = np.unique(t, return_inverse=True)
    return values, np.bincount(inverse, weights=w, minlength=len(values)).astype(np.float64)


def _data(days: np.ndarray, outcome: np.ndarray, weights: np.ndarray | None = None) -> _Data:
    raw = np.asarray(days, dtype=np.float64)
    known = np.isfinite(raw)
    t = np.maximum(np.where(known, raw, 1.0), _MIN_DAYS)
    o = np.asarray(outcome)
    w = np.ones(len(o)) if weights is None else np.asarray(weights, dtype=np.float64)
    adv, lost, still = (o == ADVANCE), (o == LOST), (o == OPEN)
    return _Data(
        *_ties(t[adv & known], w[adv & known]),
        *_ties(t[lost & known], w[lost & known]),
        *_ties(t[still & known], w[still & known]),
        float(w[adv].sum()),
        float(w[lost].sum()),
    )


@dataclasses.dataclass(frozen=True)
class Prior:
    """A pull of each clock's log mean towards another fit's (segment rows).

    ``weight`` pseudo-deals: the penalty is ``weight (log m - log m0)^2 / (2 s^2)``,
    ``s^2 = log(1 + cv^2)`` (the spread of one deal's log time).
    """

    dwell_days: float
    loss_days: float
    cv_dwell: float
    cv_loss: float
    weight: float


class _Model:
    """The penalised negative log-likelihood of one stage, on the optimiser's scale."""

    def __init__(
        self,
        data: _Data,
        dwell_dist: str,
        loss_dist: str,
        never_lost: bool,
        fixed: dict[str, float],
        prior: Prior | None,
        share_free: bool = False,
    ) -> None:
        self.d, self.dwell_dist, self.loss_dist = data, dwell_dist, loss_dist
        self.never_lost = never_lost
        names = ["c", "dwell_days", "dwell_cv"]
        if not never_lost:
            names += ["loss_days", "loss_cv", "loss_recorded"]
        if not share_free:
            fixed = {"loss_recorded": 1.0, **fixed}
        self.fixed = {k: v for k, v in fixed.items() if k in names}
        self.free = [k for k in names if k not in self.fixed]
        self.prior = prior

    def values(self, x: np.ndarray) -> dict[str, float]:
        """Natural-scale parameters from the free ones on the optimiser's scale."""
        v = dict(self.fixed)
        for k, xi in zip(self.free, x, strict=True):
            v[k] = float(special.expit(xi)) if k in _SHARES else math.exp(xi)
        return v

    def bounds(self) -> list[tuple[float, float]]:
        return [_BOUNDS["c" if k in _SHARES else k.split("_")[1]] for k in self.free]

    def nll(self, x: np.ndarray) -> float:
        v = self.values(x)
        d = self.d
        c = min(max(v["c"], 1e-300), 1.0 - 1e-16)
        log_c, log_1c = math.log(c), math.log1p(-c)
        ll = d.n_adv * log_c + d.n_lost * log_1c + log_c + log_1c  # Beta(2, 2) penalty
        ll += d.w_adv @ log_density(self.dwell_dist, d.t_adv, v["dwell_days"], v["dwell_cv"])
        ll -= 0.5 * (math.log(v["dwell_cv"]) / _CV_PRIOR_SD) ** 2
        s_adv = log_survival(self.dwell_dist, d.t_open, v["dwell_days"], v["dwell_cv"])
        if self.never_lost:
            s_loss = np.zeros_like(s_adv)
        else:
            ll += d.w_lost @ log_density(self.loss_dist, d.t_lost, v["loss_days"], v["loss_cv"])
            ll -= 0.5 * (math.log(v["loss_cv"]) / _CV_PRIOR_SD) ** 2
            s_loss = log_survival(self.loss_dist, d.t_open, v["loss_days"], v["loss_cv"])
            rho = v["loss_recorded"]
            if rho < 1.0:  # a share 1 - rho of the losses is never recorded: open for ever
                ll += d.n_lost * math.log(max(rho, 1e-300))
                s_loss = np.logaddexp(math.log1p(-rho), math.log(max(rho, 1e-300)) + s_loss)
        ll += d.w_open @ np.logaddexp(log_c + s_adv, log_1c + s_loss)
        if self.prior is not None:
            p = self.prior
            ll -= _pull(v["dwell_days"], p.dwell_days, p.cv_dwell, p.weight)
            if not self.never_lost:
                ll -= _pull(v["loss_days"], p.loss_days, p.cv_loss, p.weight)
        return -float(ll) if np.isfinite(ll) else 1e300


def _pull(mean: float, centre: float, cv: float, weight: float) -> float:
    return 0.5 * weight * math.log(mean / centre) ** 2 / math.log1p(cv * cv)


def _hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x``."""
    k = len(x)
    out = np.zeros((k, k))
    e = np.eye(k) * h
    f0 = f(x)
    for i in range(k):
        out[i, i] = (f(x + e[i]) - 2.0 * f0 + f(x - e[i])) / (h * h)
        for j in range(i):
            out[i, j] = out[j, i] = (
                f(x + e[i] + e[j]) - f(x + e[i] - e[j]) - f(x - e[i] + e[j]) + f(x - e[i] - e[j])
            ) / (4.0 * h * h)
    return out


def _start(data: _Data, model: _Model) -> np.ndarray:
    closed = data.n_adv + data.n_lost
    guess = {
        "c": math.log((data.n_adv + 1.0) / (data.n_lost + 1.0)) if closed else 0.0,
        "dwell_days": math.log(_weighted_mean(data.t_adv, data.w_adv)),
        "loss_days": math.log(_weighted_mean(data.t_lost, data.w_lost)),
        "dwell_cv": 0.0,
        "loss_cv": 0.0,
        "loss_recorded": 0.0,
    }
    return np.array([guess[k] for k in model.free])


def _weighted_mean(t: np.ndarray, w: np.ndarray) -> float:
    return float(w @ t / w.sum()) if w.sum() else DEFAULT_DWELL


def _optimise(model: _Model, start: np.ndarray) -> tuple[np.ndarray, float]:
    bounds = model.bounds()
    x0 = np.clip(start, [b[0] for b in bounds], [b[1] for b in bounds])
    res = optimize.minimize(
        model.nll,
        x0,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-14, "gtol": 1e-8, "maxls": 50},
    )
    if res.success:
        return np.asarray(res.x, dtype=float), float(res.fun)
    # L-BFGS-B's finite-difference gradient can stall on a flat likelihood: Nelder-Mead
    res2 = optimize.minimize(
        model.nll,
        res.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-7, "fatol": 1e-10, "maxfev": 4000},
    )
    best = res2 if res2.fun <= res.fun else res
    return np.asarray(best.x, dtype=float), float(best.fun)


def _standard_errors(model: _Model, x: np.ndarray) -> dict[str, float]:
    """Delta-method standard errors on the natural scale; NaN where the curvature fails."""
    out = {k: math.nan for k in model.free}
    if not len(x):
        return out
    bounds = model.bounds()
    inner = np.array([lo + 1e-3 < xi < hi - 1e-3 for xi, (lo, hi) in zip(x, bounds, strict=True)])
    if not inner.any():
        return out
    idx = np.flatnonzero(inner)
    sub = x[idx]

    def f(y: np.ndarray) -> float:
        full = x.copy()
        full[idx] = y
        return model.nll(full)

    hess = _hessian(f, sub)
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return out
    var = np.diag(cov)
    if not (np.all(np.isfinite(var)) and np.all(var > 0)):
        return out
    v = model.values(x)
    for i, j in enumerate(idx):
        k = model.free[j]
        value = v[k]
        scale = value * (1.0 - value) if k == "c" else value  # d(natural)/d(optimiser scale)
        out[k] = float(scale * math.sqrt(var[i]))
    return out


def _averaged_errors(
    fitted: list[tuple[float, _Model, np.ndarray]], best: float, chosen: dict[str, float]
) -> dict[str, float]:
    """Standard errors of the chosen fit, widened by what the choice of laws leaves open.

    With several candidate laws (``auto``), each fit ``k`` gets the weight
    ``exp(loglik_k - loglik_best)`` (equal priors; every candidate has as many
    parameters), and a parameter's variance is ``sum_k w_k (se_k^2 + (v_k - v)^2)``
    around the chosen value ``v``: on a young history, where the laws' tails are not
    seen yet and they disagree on the conversion, the error says so.
    """
    total: dict[str, float] = {}
    weight: dict[str, float] = {}
    for fun, model, x in fitted:
        w = math.exp(best - fun)
        if w < 1e-6:
            continue
        values = model.values(x)
        for k, s in _standard_errors(model, x).items():
            spread = (values[k] - chosen[k]) ** 2
            total[k] = total.get(k, 0.0) + w * (s * s + spread)
            weight[k] = weight.get(k, 0.0) + w
    return {("conversion" if k == "c" else k): math.sqrt(t / weight[k]) for k, t in total.items()}


def fit_stage(
    days: np.ndarray,
    outcome: np.ndarray,
    *,
    dwell_dist: str = "auto",
    loss_dist: str = "auto",
    prior: Prior | None = None,
    fixed: dict[str, float] | None = None,
    never_lost: bool | None = None,
    weights: np.ndarray | None = None,
) -> StageFit:
    """Fit conversion and both clocks of one stage from durations and outcomes.

    Parameters
    ----------
    days : array of float
        Time in the stage: until the outcome, or until the calibration date
        for deals still open (NaN when unknown: the row then counts towards
        the outcomes only).
    outcome : array of int
        ``ADVANCE`` (1), ``LOST`` (0) or ``OPEN`` (-1, right-censored).
    dwell_dist, loss_dist : str
        ``gamma``, ``lognormal`` or ``auto`` (the one with the higher likelihood;
        gamma on a tie).
    prior : Prior, optional
        Pull the clocks' means towards another fit's (segment rows).
    fixed : dict, optional
        Parameters held at a value (``dwell_cv``, ``loss_cv``...), not estimated.
    never_lost : bool, optional
        Force (True) or forbid (False) the losses-never-recorded model; by
        default it is used when fewer than :data:`MIN_LOSSES` losses have a time.
    weights : array of float, optional
        Each row's weight in the likelihood (recency: recent cohorts count more);
        the evidence, and so the standard errors, follow the weights. 1 by default.

    Returns
    -------
    StageFit
    """
    data = _data(days, outcome, weights)
    o = np.asarray(outcome)
    n_a, n_l = int((o == ADVANCE).sum()), int((o == LOST).sum())
    n_o = int(np.sum(o == OPEN))
    closed = n_a + n_l
    naive_p = n_a / closed if closed else math.nan
    naive_d = _weighted_mean(data.t_adv, data.w_adv) if data.w_adv.sum() else math.nan
    if never_lost is None:
        timed = np.isfinite(np.asarray(days, dtype=float))
        never_lost = int(((o == LOST) & timed).sum()) < MIN_LOSSES
    held = dict(fixed or {})
    if not data.w_adv.sum() and prior is None:
        # Nothing has advanced with a known time: the open deals' ages say nothing
        # without an advance clock, so the conversion is Laplace's on the closed deals
        # and the stage keeps one clock (the caller sets a default dwell).
        seen = data.n_adv + data.n_lost  # weighted
        p = (data.n_adv + 1.0) / (seen + 2.0)
        return StageFit(
            conversion=p,
            conversion_se=math.sqrt(p * (1.0 - p) / (seen + 3.0)),
            conversion_n=seen + 2.0,
            dwell_days=math.nan,
            dwell_cv=math.nan,
            dwell_dist="gamma",
            loss_days=math.nan,
            loss_cv=math.nan,
            loss_dist="gamma",
            loss_recorded=1.0,
            se={},
            advanced=n_a,
            lost=n_l,
            still_open=n_o,
            naive_conversion=naive_p,
            naive_dwell=naive_d,
            log_likelihood=math.nan,
        )
    dwell_laws = LAWS if dwell_dist == "auto" else (dwell_dist,)
    loss_laws = LAWS if loss_dist == "auto" and not never_lost else (loss_dist,)
    if loss_laws == ("auto",):
        loss_laws = ("gamma",)
    fitted = []
    shares = [{}] if never_lost or "loss_recorded" in held else [{}, {"loss_recorded": None}]
    for da in dwell_laws:
        for dl in loss_laws:
            for share in shares:
                free = {k: v for k, v in held.items() if k not in share}
                model = _Model(data, da, dl, never_lost, free, prior, share_free=bool(share))
                x, fun = _optimise(model, _start(data, model))
                # a share of unrecorded losses is one more parameter: it must earn it
                fitted.append((fun + (_RECORDED_PENALTY if share else 0.0), model, x))
    fun, model, x = min(fitted, key=lambda f: f[0])  # first (gamma, all recorded) on a tie
    v = model.values(x)
    se = _averaged_errors(fitted, fun, v)
    if "loss_recorded" not in model.free:
        se.pop("loss_recorded", None)  # held (every loss recorded): no error to give
    c, c_se = v["c"], se.get("conversion", math.nan)
    n_eff = c * (1.0 - c) / c_se**2 - 1.0 if c_se > 0 else data.n_adv + data.n_lost + 2.0
    return StageFit(
        conversion=c,
        conversion_se=c_se,
        conversion_n=float(max(n_eff, 2.0)),
        dwell_days=v["dwell_days"],
        dwell_cv=v["dwell_cv"],
        dwell_dist=model.dwell_dist,
        loss_days=math.inf if never_lost else v["loss_days"],
        loss_cv=1.0 if never_lost else v["loss_cv"],
        loss_dist=model.loss_dist if not never_lost else "gamma",
        loss_recorded=0.0 if never_lost else v["loss_recorded"],
        se=se,
        advanced=n_a,
        lost=n_l,
        still_open=n_o,
        naive_conversion=naive_p,
        naive_dwell=naive_d,
        log_likelihood=-fun,
    )


def pooled_conversion(
    overall: float, advanced: np.ndarray, closed: np.ndarray, cap: float = 500.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Partially pool segment conversions towards the overall one (beta-binomial, empirical Bayes).

    Returns the pooled conversions, their evidence (own closed deals plus the
    prior weight ``m``) and ``m``. ``m`` comes from the method of moments: the
    between-segment variance beyond binomial noise; it is kept in [2, 500] so a
    segment with 5 deals never gets 0 or 1, and below ``cap`` (the overall
    estimate's own evidence: the prior cannot know more than the whole book).
    """
    a = np.asarray(advanced, dtype=float)
    n = np.asarray(closed, dtype=float)
    m = 500.0
    use = n > 0
    if use.sum() >= 2:
        rates = a[use] / n[use]
        spread = np.average((rates - overall) ** 2, weights=n[use])
        noise = overall * (1 - overall) * use.sum() / n[use].sum()
        tau2 = spread - noise
        if tau2 > 0:
            m = float(np.clip(overall * (1 - overall) / tau2 - 1.0, 2.0, 500.0))
    m = float(np.clip(min(m, cap), 2.0, 500.0))
    pooled = (a + m * overall) / (n + m)
    return pooled, n + m, m
