"""Censored estimation of one stage: how many deals advance, and how long they take.

A deal in a stage ends in one of two competing outcomes, *advance* or *lost*,
or is still open at the calibration date (right-censored). The Aalen-Johansen
estimator of the cumulative incidence of each outcome handles the censoring
without a model of the times: open deals count as neither losses nor wins, and
are not ignored. The conversion is the incidence of advancing; the dwell the
engine uses is the law of the time to advance (a lost deal's timing books no
revenue), summarised by its mean and cv. When an outcome is missing (nothing
lost, nothing open) a censored gamma maximum likelihood fit (scipy) gives the
dwell and a uniform prior the conversion.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special

ADVANCE, LOST, OPEN = 1, 0, -1
_MIN_DAYS = 0.5  # same-day moves are counted as half a day: a gamma has no mass at 0


@dataclasses.dataclass(frozen=True)
class StageFit:
    """What one stage's history says.

    Attributes
    ----------
    conversion : float
        Probability of advancing (censored competing-outcomes MLE).
    conversion_n : float
        Evidence behind it: deals with a known outcome, plus 2 for the uniform prior.
    dwell_days, dwell_cv : float
        Mean and cv of the time to advance (NaN when nothing has advanced).
    advanced, lost, still_open : int
        Counts of each outcome.
    naive_conversion, naive_dwell : float
        The closed-deals-only estimates, for comparison.
    max_advance_days : float
        Longest observed time to advance (NaN when none).
    stalled : float
        Estimated share of deals that never resolve (counted as not advancing).
    """

    conversion: float
    conversion_n: float
    dwell_days: float
    dwell_cv: float
    advanced: int
    lost: int
    still_open: int
    naive_conversion: float
    naive_dwell: float
    max_advance_days: float
    stalled: float = 0.0


def _logpdf(t: np.ndarray, mean: float, cv: float) -> np.ndarray:
    shape = 1.0 / (cv * cv)
    scale = mean / shape
    x = t / scale
    return (shape - 1.0) * np.log(x) - x - special.gammaln(shape) - np.log(scale)


def _logsf(t: np.ndarray, mean: float, cv: float) -> np.ndarray:
    shape = 1.0 / (cv * cv)
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(special.gammaincc(shape, t * shape / mean)), -745.0)


def _ties(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct times and their counts: CRM durations are whole days, so this is short."""
    values, counts = np.unique(t, return_counts=True)
    return values, counts.astype(np.float64)


def _fit_one(t_event: np.ndarray, t_cens: np.ndarray) -> tuple[float, float]:
    """Censored gamma MLE (mean, cv) from event times and censoring times."""
    te, we = _ties(t_event)
    tc, wc = _ties(t_cens)

    def nll(x: np.ndarray) -> float:
        mean, cv = np.exp(x[0]), np.exp(x[1])
        ll = we @ _logpdf(te, mean, cv) + (wc @ _logsf(tc, mean, cv) if len(tc) else 0.0)
        return -float(ll) + 0.5 * (x[1] / 1.5) ** 2

    start = np.array([np.log(max(float(t_event.mean()), _MIN_DAYS)), 0.0])
    res = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6})
    return float(np.exp(res.x[0])), float(np.exp(res.x[1]))


def fit_stage(days: np.ndarray, outcome: np.ndarray, stalled: bool = True) -> StageFit:
    """Fit conversion and dwell of one stage from durations and outcomes.

    Parameters
    ----------
    days : array of float
        Time in the stage: until the outcome, or until the calibration date
        for deals still open (NaN when unknown: the row then counts towards
        the outcomes only).
    outcome : array of int
        ``ADVANCE`` (1), ``LOST`` (0) or ``OPEN`` (-1, right-censored).

    Returns
    -------
    StageFit
    """
    raw = np.asarray(days, dtype=np.float64)
    known = np.isfinite(raw)
    t = np.where(known, np.maximum(raw, _MIN_DAYS), 1.0)
    o = np.asarray(outcome)
    n_a, n_l = int((o == ADVANCE).sum()), int((o == LOST).sum())
    adv, lost, cens = (o == ADVANCE) & known, (o == LOST) & known, (o == OPEN) & known
    n_o = int((o == OPEN).sum())
    closed = n_a + n_l
    naive_p = n_a / closed if closed else float("nan")
    naive_d = float(t[adv].mean()) if adv.any() else float("nan")
    max_adv = float(t[adv].max()) if adv.any() else float("nan")
    if not adv.any() or not lost.any() or not cens.any():
        # Without both outcomes (or any open deal) the competing-risk split is moot:
        # conversion is the posterior mean under Beta(1, 1), dwell a censored gamma fit.
        p = (n_a + 1.0) / (closed + 2.0)
        if adv.any():
            mean, cv = _fit_one(t[adv], t[cens])
        else:
            mean, cv = float("nan"), float("nan")
        return StageFit(p, closed + 2.0, mean, cv, n_a, n_l, n_o, naive_p, naive_d, max_adv)
    return _aalen_johansen(t, adv, lost, cens, n_a, n_l, n_o, naive_p, naive_d, max_adv)


def _aalen_johansen(
    t: np.ndarray,
    adv: np.ndarray,
    lost: np.ndarray,
    cens: np.ndarray,
    n_a: int,
    n_l: int,
    n_o: int,
    naive_p: float,
    naive_d: float,
    max_adv: float,
) -> StageFit:
    """Competing outcomes with right-censoring: the Aalen-Johansen cumulative incidences.

    ``CIF_adv(t)`` is the probability of having advanced by ``t``; the
    conversion is its value at the last observed outcome, and the dwell is the
    mean and cv of the advance time under its increments. Mass still open
    after the last outcome is *stalled* (never resolves) when some open deals
    have outlived every outcome, else shared between the outcomes in
    proportion (the history then covers the whole law).
    """
    use = adv | lost | cens
    times, inverse = np.unique(t[use], return_inverse=True)
    kind = np.where(adv[use], 0, np.where(lost[use], 1, 2))
    counts = np.zeros((len(times), 3))
    np.add.at(counts, (inverse, kind), 1.0)
    at_risk = counts.sum(axis=1)[::-1].cumsum()[::-1]
    hazard = (counts[:, 0] + counts[:, 1]) / at_risk
    surv_before = np.concatenate([[1.0], np.cumprod(1.0 - hazard)[:-1]])
    inc_a = surv_before * counts[:, 0] / at_risk
    inc_l = surv_before * counts[:, 1] / at_risk
    last = np.flatnonzero(counts[:, 0] + counts[:, 1])[-1]
    cif_a, cif_l = inc_a[: last + 1].sum(), inc_l[: last + 1].sum()
    rest = 1.0 - cif_a - cif_l
    outlived = bool((t[cens] > times[last]).any())
    stalled = rest if outlived else 0.0
    p = cif_a if outlived else cif_a / (cif_a + cif_l)
    w = inc_a / cif_a
    mean = float(w @ times)
    sd = float(np.sqrt(max(w @ (times - mean) ** 2, 1e-12)))
    # the conversion's evidence: outcomes seen, plus 2 for the uniform prior
    closed = n_a + n_l
    return StageFit(
        float(p),
        closed + 2.0,
        mean,
        max(sd / mean, 0.05),
        n_a,
        n_l,
        n_o,
        naive_p,
        naive_d,
        max_adv,
        float(stalled),
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
