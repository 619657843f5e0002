"""Unit tests of pipesim.calibration.survival: one stage's conversion and two clocks, jointly.

Expected values come from closed forms where the likelihood separates (no open deal:
the conversion is Laplace's (advanced + 1) / (closed + 2), each clock a plain gamma fit)
or from an independent implementation written here (scipy.stats laws on the natural
scale, another optimiser, another Hessian).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from pipesim.calibration.survival import (
    ADVANCE,
    LOST,
    MIN_LOSSES,
    OPEN,
    Prior,
    fit_stage,
    log_density,
    log_survival,
    pooled_conversion,
)

A, L, C = ADVANCE, LOST, OPEN  # C: censored (still open)


def _law(dist, mean, cv):
    if dist == "gamma":
        shape = 1.0 / cv**2
        return stats.gamma(shape, scale=mean / shape)
    s2 = math.log1p(cv**2)
    return stats.lognorm(math.sqrt(s2), scale=math.exp(math.log(mean) - s2 / 2))


def _penalised_nll(theta, days, outcome, dwell_dist, loss_dist, never_lost=False):
    """The module docstring's likelihood, written on the natural scale with scipy.stats."""
    c, m_a, cv_a = theta[:3]
    if not (0 < c < 1) or min(theta[1:]) <= 0:
        return 1e10  # outside the parameter space (finite: the optimiser does arithmetic on it)
    t = np.maximum(days, 0.5)
    adv, lost, open_ = outcome == A, outcome == L, outcome == C
    fa = _law(dwell_dist, m_a, cv_a)
    ll = adv.sum() * np.log(c) + lost.sum() * np.log1p(-c) + np.log(c) + np.log1p(-c)
    ll += fa.logpdf(t[adv]).sum() - 0.5 * (np.log(cv_a) / 1.5) ** 2
    if never_lost:
        ll += np.log(c * fa.sf(t[open_]) + 1 - c).sum()
    else:
        m_l, cv_l = theta[3:]
        fl = _law(loss_dist, m_l, cv_l)
        ll += fl.logpdf(t[lost]).sum() - 0.5 * (np.log(cv_l) / 1.5) ** 2
        ll += np.log(c * fa.sf(t[open_]) + (1 - c) * fl.sf(t[open_])).sum()
    return -ll


def _sample(seed, n=400, c=0.4, adv=(20.0, 0.6), loss=(45.0, 1.2), horizon=60.0):
    """One stage: entries uniform over ``horizon`` days before the calibration date."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(0, horizon, n)
    win = rng.uniform(size=n) < c
    t = np.where(win, _law("gamma", *adv).rvs(n, random_state=rng), 0.0)
    t = np.where(win, t, _law("lognormal", *loss).rvs(n, random_state=rng))
    done = t < age
    outcome = np.where(done, np.where(win, A, L), C)
    return np.round(np.where(done, t, age)), outcome


def test_outcome_codes_are_advance_1_lost_0_open_minus_1():
    assert (ADVANCE, LOST, OPEN) == (1, 0, -1)


def test_laws_match_scipy_stats():
    t = np.array([0.5, 3.0, 17.0, 90.0, 400.0])
    for dist in ("gamma", "lognormal"):
        law = _law(dist, 20.0, 0.7)
        np.testing.assert_allclose(log_density(dist, t, 20.0, 0.7), law.logpdf(t), rtol=1e-10)
        np.testing.assert_allclose(log_survival(dist, t, 20.0, 0.7), law.logsf(t), rtol=1e-8)


def test_stage_fit_is_frozen():
    fit = fit_stage(np.array([1.0]), np.array([A]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.conversion = 0.7  # type: ignore[misc]


def test_empty_stage_gives_the_prior_a_half_and_no_dwell():
    fit = fit_stage(np.array([]), np.array([], dtype=int))
    assert fit.conversion == pytest.approx(0.5, abs=1e-6)  # the Beta(2, 2) mode
    assert fit.conversion_n == 2.0  # the floor: no evidence
    assert (fit.advanced, fit.lost, fit.still_open) == (0, 0, 0)
    assert math.isnan(fit.dwell_days) and math.isnan(fit.dwell_cv)
    assert math.isnan(fit.loss_days)  # nothing advanced: one clock, no loss law
    assert math.isnan(fit.naive_conversion) and math.isnan(fit.naive_dwell)


def test_without_open_deals_the_conversion_is_laplaces_rule_and_its_evidence_closed_plus_one():
    # Nothing open: the likelihood separates, c^(a+1) (1-c)^(l+1) gives c = (a+1)/(n+2);
    # its curvature on the logit scale is (n+2) c (1-c), so se^2 = c (1-c) / (n+2) and
    # conversion_n = c (1-c) / se^2 - 1 = n + 1. Central differences: error ~h^2 = 1e-6.
    days = np.array([2.0, 3.0, 4.0, 6.0, 7.0, 9.0, 1.0, 2.0, 5.0, 8.0, 12.0])
    outcome = np.array([A, A, A, A, A, A, L, L, L, L, L])
    fit = fit_stage(days, outcome)
    assert fit.conversion == pytest.approx(7 / 13, abs=1e-6)
    assert fit.conversion_se == pytest.approx(math.sqrt(7 / 13 * 6 / 13 / 13), rel=1e-4)
    assert fit.conversion_n == pytest.approx(12.0, rel=1e-4)
    assert fit.naive_conversion == 6 / 11
    assert not fit.never_lost  # five timed losses: a loss clock is fitted


def _penalised_gamma_shape(x: np.ndarray) -> float:
    """Shape k maximising the gamma log-likelihood minus (log cv / 1.5)^2 / 2, cv = k^-1/2.

    With the mean profiled out (its MLE is the sample mean for any shape), the
    stationarity condition is n (mean log x - digamma(k) - log mean x + log k)
    = d/dk [(log k)^2 / 18] = log k / (9 k).
    """
    n = len(x)

    def score(k: float) -> float:
        return n * (np.log(x).mean() - special.digamma(k) - np.log(x.mean()) + np.log(k)) - np.log(
            k
        ) / (9.0 * k)

    return optimize.brentq(score, 1e-3, 1e3, xtol=1e-12)


def test_without_open_deals_each_clock_is_the_gamma_fit_of_its_own_times():
    adv = np.array([3.0, 5.0, 8.0, 13.0, 21.0])
    lost = np.array([1.0, 2.0, 4.0, 30.0, 50.0, 60.0])
    fit = fit_stage(
        np.r_[adv, lost], np.r_[np.full(5, A), np.full(6, L)], dwell_dist="gamma", loss_dist="gamma"
    )
    assert fit.dwell_days == pytest.approx(adv.mean(), rel=1e-5)
    assert fit.loss_days == pytest.approx(lost.mean(), rel=1e-5)
    # the objective is flat in the cv near its optimum: 1e-3 relative
    assert fit.dwell_cv == pytest.approx(1 / math.sqrt(_penalised_gamma_shape(adv)), rel=1e-3)
    assert fit.loss_cv == pytest.approx(1 / math.sqrt(_penalised_gamma_shape(lost)), rel=1e-3)
    assert (fit.dwell_dist, fit.loss_dist) == ("gamma", "gamma")


@pytest.mark.parametrize(
    ("dwell_dist", "loss_dist"), [("gamma", "lognormal"), ("lognormal", "gamma")]
)
def test_censored_fit_matches_an_independent_maximum_likelihood(dwell_dist, loss_dist):
    days, outcome = _sample(5)
    assert (outcome == C).sum() > 100  # young: the open deals matter
    fit = fit_stage(days, outcome, dwell_dist=dwell_dist, loss_dist=loss_dist)
    nll = lambda th: _penalised_nll(th, days, outcome, dwell_dist, loss_dist)  # noqa: E731
    start = np.array([0.5, 20.0, 1.0, 40.0, 1.0])
    tight = {"xatol": 1e-9, "fatol": 1e-12, "maxfev": 20000}
    ref = optimize.minimize(nll, start, method="Nelder-Mead", options=tight)
    got = np.array([fit.conversion, fit.dwell_days, fit.dwell_cv, fit.loss_days, fit.loss_cv])
    assert nll(got) <= ref.fun + 1e-6  # at least as good an optimum
    np.testing.assert_allclose(got, ref.x, rtol=2e-3)
    assert fit.log_likelihood == pytest.approx(-nll(got), abs=1e-6)
    # standard errors: inverse of the natural-scale Hessian (invariant at the optimum),
    # from scipy's own finite differences
    hess = _natural_hessian(nll, got)
    se = np.sqrt(np.diag(np.linalg.inv(hess)))
    names = ["conversion", "dwell_days", "dwell_cv", "loss_days", "loss_cv"]
    for name, s in zip(names, se, strict=True):
        assert fit.se[name] == pytest.approx(s, rel=0.02), name


def _natural_hessian(f, x):
    k = len(x)
    h = 1e-4 * np.maximum(np.abs(x), 1e-2)
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            out[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * h[i] * h[j]
            )
    return out


def test_open_deals_outliving_the_losses_raise_the_conversion_above_the_naive_one():
    # Losses fast, wins slow: the deals still open are mostly future wins.
    days, outcome = _sample(6, c=0.5, adv=(40.0, 0.4), loss=(8.0, 0.5), horizon=60.0)
    fit = fit_stage(days, outcome)
    assert fit.naive_conversion < 0.35
    assert abs(fit.conversion - 0.5) < 4 * fit.conversion_se


def test_too_few_losses_fit_the_never_recorded_model_and_count_them_as_not_advancing():
    days = np.array([3.0, 5.0, 8.0, 13.0, 21.0, 4.0, 40.0, 80.0, 120.0, 160.0])
    outcome = np.array([A, A, A, A, A, L, C, C, C, C])
    assert (outcome == L).sum() < MIN_LOSSES
    fit = fit_stage(days, outcome, dwell_dist="gamma")
    assert fit.never_lost and math.isinf(fit.loss_days)
    nll = lambda th: _penalised_nll(th, days, outcome, "gamma", None, never_lost=True)  # noqa: E731
    tight = {"xatol": 1e-9, "fatol": 1e-12}
    ref = optimize.minimize(nll, [0.5, 10.0, 1.0], method="Nelder-Mead", options=tight)
    np.testing.assert_allclose([fit.conversion, fit.dwell_days, fit.dwell_cv], ref.x, rtol=2e-3)
    # the open deals, long past every advance, are nearly all non-advancing
    assert fit.conversion < 7 / 12
    assert set(fit.se) == {"conversion", "dwell_days", "dwell_cv"}


def test_never_recorded_without_open_deals_is_laplaces_rule():
    fit = fit_stage(np.array([2.0, 3.0, 9.0]), np.array([A, A, L]))
    assert fit.never_lost
    assert fit.conversion == pytest.approx(3 / 5, abs=1e-6)


def test_no_advance_holds_the_default_advance_clock_and_reports_no_dwell():
    fit = fit_stage(np.array([2.0, 4.0, 6.0]), np.array([L, L, L]))
    assert fit.conversion == pytest.approx(1 / 5, abs=1e-6)  # (0 + 1) / (3 + 2)
    assert math.isnan(fit.dwell_days) and math.isnan(fit.dwell_cv)


def test_rows_with_unknown_days_count_towards_the_outcomes_only():
    days = np.array([2.0, np.nan, 3.0, 5.0, 6.0, 7.0, 8.0, 9.0, np.nan])
    outcome = np.array([A, A, L, L, L, L, L, A, C])
    fit = fit_stage(days, outcome, dwell_dist="gamma", loss_dist="gamma")
    assert (fit.advanced, fit.lost, fit.still_open) == (3, 5, 1)
    assert fit.conversion == pytest.approx(4 / 10, abs=1e-6)  # (3 + 1) / (8 + 2)
    assert fit.dwell_days == pytest.approx(5.5, rel=1e-5)  # the two timed advances
    assert fit.naive_dwell == 5.5


def test_same_day_moves_count_as_half_a_day():
    fit = fit_stage(np.array([0.0, 0.0, 0.0]), np.array([A, A, A]), dwell_dist="gamma")
    assert fit.naive_dwell == 0.5
    assert fit.dwell_days == pytest.approx(0.5, rel=1e-5)


def test_auto_picks_the_law_with_the_higher_likelihood():
    rng = np.random.default_rng(7)
    heavy = np.round(_law("lognormal", 20.0, 2.0).rvs(800, random_state=rng)) + 0.5
    light = np.round(_law("gamma", 30.0, 0.5).rvs(800, random_state=rng)) + 0.5
    days = np.r_[light, heavy]
    outcome = np.r_[np.full(800, A), np.full(800, L)]
    fit = fit_stage(days, outcome)
    assert (fit.dwell_dist, fit.loss_dist) == ("gamma", "lognormal")
    each = [
        fit_stage(days, outcome, dwell_dist=a, loss_dist=b).log_likelihood
        for a in ("gamma", "lognormal")
        for b in ("gamma", "lognormal")
    ]
    assert fit.log_likelihood == pytest.approx(max(each), abs=1e-6)


def test_a_prior_pulls_a_small_segments_clock_towards_the_whole_stage():
    days = np.array([40.0, 50.0, 60.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    outcome = np.array([A, A, A, L, L, L, L, L])
    own = fit_stage(days, outcome, dwell_dist="gamma", loss_dist="gamma", fixed={"dwell_cv": 0.5})
    pulled = fit_stage(
        days,
        outcome,
        dwell_dist="gamma",
        loss_dist="gamma",
        fixed={"dwell_cv": 0.5, "loss_cv": 0.5},
        prior=Prior(dwell_days=10.0, loss_days=7.0, cv_dwell=0.5, cv_loss=0.5, weight=20.0),
    )
    assert own.dwell_days == pytest.approx(50.0, rel=1e-5)
    assert 10.0 < pulled.dwell_days < 30.0  # 3 deals against 20 pseudo-deals at 10
    assert pulled.dwell_cv == 0.5 and pulled.loss_cv == 0.5  # held
    assert math.isnan(pulled.se["dwell_cv"]) if "dwell_cv" in pulled.se else True


def test_reported_standard_errors_are_honest_over_replicates():
    # 40 young samples from one truth: the z-scores (estimate - truth) / se should have
    # sd 1. The sd of a sample sd of 40 normals is ~1/sqrt(80) = 0.11: 4 SE is [0.55, 1.45].
    z = []
    for seed in range(40):
        days, outcome = _sample(100 + seed, n=300, c=0.4)
        fit = fit_stage(days, outcome, dwell_dist="gamma", loss_dist="lognormal")
        z.append((fit.conversion - 0.4) / fit.conversion_se)
    z = np.array(z)
    assert 0.55 < z.std(ddof=1) < 1.45, z.std(ddof=1)
    assert abs(z.mean()) < 4 / math.sqrt(40) + 0.2, z.mean()  # small-sample MLE bias allowed


def test_pooled_conversion_of_homogeneous_segments_uses_the_maximum_prior_weight():
    # rates 0.5 and 0.5 around overall 0.5: no spread beyond noise, m = 500
    pooled, evidence, m = pooled_conversion(0.5, np.array([5, 5]), np.array([10, 10]))
    assert m == 500.0
    np.testing.assert_allclose(pooled, [0.5, 0.5])
    np.testing.assert_allclose(evidence, [510.0, 510.0])


def test_pooled_conversion_prior_weight_stays_below_cap():
    pooled, evidence, m = pooled_conversion(0.4, np.array([5, 3]), np.array([10, 10]), cap=100.0)
    assert m == 100.0
    np.testing.assert_allclose(pooled, [(5 + 40) / 110, (3 + 40) / 110])
    np.testing.assert_allclose(evidence, [110.0, 110.0])


def test_pooled_conversion_prior_weight_by_the_method_of_moments():
    # rates 0.4, 0.6 on 100 deals each around 0.5: weighted spread 0.01, binomial
    # noise 0.25 * 2 / 200 = 0.0025, tau^2 = 0.0075, m = 0.25 / 0.0075 - 1 = 97/3
    pooled, evidence, m = pooled_conversion(0.5, np.array([40, 60]), np.array([100, 100]))
    assert m == pytest.approx(97 / 3)
    np.testing.assert_allclose(
        pooled, [(40 + 97 / 6) / (100 + 97 / 3), (60 + 97 / 6) / (100 + 97 / 3)]
    )
    np.testing.assert_allclose(evidence, [100 + 97 / 3] * 2)


def test_pooled_conversion_never_gives_a_small_segment_zero_or_one():
    # 0/5 and 5/5 around 0.5: tau^2 = 0.25 - 0.05, m = 0.25 / 0.2 - 1 = 0.25 -> floor 2
    pooled, evidence, m = pooled_conversion(0.5, np.array([0, 5]), np.array([5, 5]))
    assert m == 2.0
    np.testing.assert_allclose(pooled, [1 / 7, 6 / 7])
    np.testing.assert_allclose(evidence, [7.0, 7.0])
    assert ((pooled > 0) & (pooled < 1)).all()


def test_pooled_conversion_floor_of_two_wins_over_a_smaller_cap():
    pooled, _, m = pooled_conversion(0.3, np.array([0, 5]), np.array([5, 5]), cap=1.0)
    assert m == 2.0
    np.testing.assert_allclose(pooled, [0.6 / 7, 5.6 / 7])


def test_pooled_conversion_segment_without_outcomes_gets_the_overall_rate():
    pooled, evidence, m = pooled_conversion(0.5, np.array([0, 5, 0]), np.array([5, 5, 0]))
    assert m == 2.0  # from the two segments with outcomes, as above
    assert pooled[2] == 0.5
    assert evidence[2] == 2.0


def test_pooled_conversion_with_one_segment_keeps_the_default_weight():
    # fewer than two segments with outcomes: no spread to measure, m = 500 (or the cap)
    pooled, evidence, m = pooled_conversion(0.3, np.array([0]), np.array([5]))
    assert m == 500.0
    assert pooled[0] == pytest.approx(150 / 505)
    assert evidence[0] == 505.0
    assert pooled_conversion(0.3, np.array([0]), np.array([5]), cap=20.0)[2] == 20.0


def test_weights_count_rows_as_repeats():
    # A weight of 2 on every row is the data twice: same estimates, se shrunk by sqrt(2).
    rng = np.random.default_rng(8)
    n = 400
    win = rng.uniform(size=n) < 0.4
    days = np.where(win, rng.gamma(2.0, 15.0, n), rng.gamma(1.0, 60.0, n))
    age = rng.uniform(0, 120, n)
    outcome = np.where(days > age, OPEN, np.where(win, ADVANCE, LOST))
    days = np.minimum(days, age)
    kw = {"dwell_dist": "gamma", "loss_dist": "gamma"}
    weighted = fit_stage(days, outcome, weights=np.full(n, 2.0), **kw)
    twice = fit_stage(np.tile(days, 2), np.tile(outcome, 2), **kw)
    assert weighted.conversion == pytest.approx(twice.conversion, rel=1e-6)
    assert weighted.dwell_days == pytest.approx(twice.dwell_days, rel=1e-6)
    assert weighted.conversion_se == pytest.approx(twice.conversion_se, rel=1e-3)
    assert (weighted.advanced, weighted.lost) == (
        int((outcome == ADVANCE).sum()),
        int((outcome == LOST).sum()),
    )
