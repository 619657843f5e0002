"""Unit tests of pipesim.calibration.survival: one stage's censored conversion and dwell.

Every expected value is worked out by hand in the comments (Aalen-Johansen
increments on 3-6 deals) or by an independent formula written in the test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import optimize, special

from pipesim.calibration.survival import (
    ADVANCE,
    LOST,
    OPEN,
    StageFit,
    fit_stage,
    pooled_conversion,
)

A, L, C = ADVANCE, LOST, OPEN  # C: censored (still open)


def test_outcome_codes_are_advance_1_lost_0_open_minus_1():
    assert (ADVANCE, LOST, OPEN) == (1, 0, -1)


def test_stage_fit_is_frozen_and_stalled_defaults_to_zero():
    fit = StageFit(0.5, 2.0, 1.0, 1.0, 0, 0, 0, 0.5, 1.0, 1.0)
    assert fit.stalled == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.conversion = 0.7  # type: ignore[misc]


def test_empty_stage_gives_the_uniform_prior_and_no_dwell():
    fit = fit_stage(np.array([]), np.array([], dtype=int))
    assert fit.conversion == 0.5  # Beta(1, 1) posterior mean with no data: 1/2
    assert fit.conversion_n == 2.0
    assert (fit.advanced, fit.lost, fit.still_open) == (0, 0, 0)
    assert math.isnan(fit.dwell_days) and math.isnan(fit.dwell_cv)
    assert math.isnan(fit.naive_conversion) and math.isnan(fit.naive_dwell)
    assert math.isnan(fit.max_advance_days)
    assert fit.stalled == 0.0


def test_all_open_stage_gives_the_uniform_prior_and_counts_the_open_deals():
    fit = fit_stage(np.array([1.0, 5.0, 9.0]), np.array([C, C, C]))
    assert fit.conversion == 0.5
    assert fit.conversion_n == 2.0  # no outcome seen: only the prior's weight
    assert (fit.advanced, fit.lost, fit.still_open) == (0, 0, 3)
    assert math.isnan(fit.dwell_days) and math.isnan(fit.dwell_cv)
    assert math.isnan(fit.naive_conversion)


def test_only_losses_give_no_dwell_and_the_prior_pulled_conversion():
    fit = fit_stage(np.array([2.0, 4.0, 6.0]), np.array([L, L, L]))
    assert fit.conversion == pytest.approx(1.0 / 5.0)  # (0 + 1) / (3 + 2)
    assert fit.conversion_n == 5.0
    assert fit.naive_conversion == 0.0
    assert math.isnan(fit.dwell_days) and math.isnan(fit.max_advance_days)


def test_no_open_deal_naive_conversion_is_advanced_over_closed_exactly():
    days = np.array([2.0, 3.0, 4.0, 6.0, 7.0])
    outcome = np.array([A, A, A, L, L])
    fit = fit_stage(days, outcome)
    assert fit.naive_conversion == 3 / 5
    assert (fit.advanced, fit.lost, fit.still_open) == (3, 2, 0)
    assert fit.conversion_n == 7.0  # 5 outcomes + 2 for the uniform prior


def test_no_open_deal_conversion_is_the_uniform_prior_posterior_mean():
    # The module docstring: with nothing open a uniform prior gives the conversion,
    # i.e. the Beta(1, 1) posterior mean (a + 1) / (a + l + 2), not a / (a + l).
    fit = fit_stage(np.array([2.0, 3.0, 4.0, 6.0, 7.0]), np.array([A, A, A, L, L]))
    assert fit.conversion == pytest.approx(4 / 7)
    assert fit.stalled == 0.0


def test_open_deal_outliving_early_losses_raises_the_conversion_above_the_naive_one():
    # L@1, L@2, C@3, A@4, A@5.  At risk 5, 4, 3, 2, 1.
    # t=1: lost 1/5, S=4/5; t=2: lost 4/5*1/4=1/5, S=3/5; t=3: censored, no jump;
    # t=4: advance 3/5*1/2=3/10, S=3/10; t=5: advance 3/10*1/1=3/10, S=0.
    # CIF_adv = 0.6, CIF_lost = 0.4, nothing left: conversion 0.6 > naive 2/4 = 0.5
    # (the open deal has outlived the losses, so its mass goes to the later advances).
    days = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    outcome = np.array([L, L, C, A, A])
    fit = fit_stage(days, outcome)
    assert fit.conversion == pytest.approx(0.6, abs=1e-12)
    assert fit.naive_conversion == 0.5
    assert fit.conversion > fit.naive_conversion
    assert fit.stalled == 0.0
    # dwell: advance increments 3/10 at 4 and 3/10 at 5 -> weights 1/2, 1/2
    assert fit.dwell_days == pytest.approx(4.5, abs=1e-12)
    assert fit.dwell_cv == pytest.approx(0.5 / 4.5, abs=1e-12)
    assert fit.naive_dwell == 4.5
    assert fit.max_advance_days == 5.0
    assert (fit.advanced, fit.lost, fit.still_open) == (2, 2, 1)
    assert fit.conversion_n == 6.0


def test_open_deal_outliving_early_advances_lowers_the_conversion_below_the_naive_one():
    # The mirror image: A@1, A@2, C@3, L@4, L@5 -> CIF_adv = 1/5 + 1/5 = 0.4 < 0.5.
    fit = fit_stage(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([A, A, C, L, L]))
    assert fit.conversion == pytest.approx(0.4, abs=1e-12)
    assert fit.naive_conversion == 0.5
    # advance increments 1/5 at 1 and 1/5 at 2: mean 1.5, sd 0.5
    assert fit.dwell_days == pytest.approx(1.5, abs=1e-12)
    assert fit.dwell_cv == pytest.approx(0.5 / 1.5, abs=1e-12)


def test_open_deals_outliving_every_outcome_are_stalled_not_converted():
    # A@1, L@2, C@3.  At risk 3, 2, 1.  t=1: adv 1/3, S=2/3; t=2: lost 2/3*1/2=1/3, S=1/3.
    # The open deal (3 days) has outlived the last outcome (2 days): the remaining 1/3
    # is stalled, and the conversion is CIF_adv = 1/3 (not 1/3 / (2/3) = 1/2).
    fit = fit_stage(np.array([1.0, 2.0, 3.0]), np.array([A, L, C]))
    assert fit.conversion == pytest.approx(1 / 3, abs=1e-12)
    assert fit.stalled == pytest.approx(1 / 3, abs=1e-12)
    assert fit.naive_conversion == 0.5
    assert fit.dwell_days == pytest.approx(1.0, abs=1e-12)
    assert fit.dwell_cv == 0.05  # one advance time: sd 0, cv floored at 0.05


def test_open_mass_tied_with_the_last_outcome_is_shared_between_outcomes():
    # A@1, L@2, A@3, C@3.  At risk 4, 3, 2.
    # t=1: adv 1/4, S=3/4; t=2: lost 3/4*1/3=1/4, S=1/2; t=3: adv 1/2*1/2=1/4, S=1/4.
    # No open deal outlived the last outcome (3 is not > 3): the 1/4 left is shared
    # in proportion, conversion = (1/2) / (1/2 + 1/4) = 2/3, nothing stalled.
    fit = fit_stage(np.array([1.0, 2.0, 3.0, 3.0]), np.array([A, L, A, C]))
    assert fit.conversion == pytest.approx(2 / 3, abs=1e-12)
    assert fit.stalled == 0.0
    # advance increments 1/4 at 1 and 1/4 at 3: mean 2, sd 1
    assert fit.dwell_days == pytest.approx(2.0, abs=1e-12)
    assert fit.dwell_cv == pytest.approx(0.5, abs=1e-12)
    assert fit.max_advance_days == 3.0


def test_dwell_moments_on_exact_data_are_the_weighted_advance_times():
    # C@0.5 (censored before anything: no information), A@2, L@3, A@4, A@6.
    # At risk 4, 3, 2, 1 at the four outcome times; each increment is S(t-) / at risk,
    # computed here from the product-limit formula: 1/4 each, so the advances have
    # equal weights at 2, 4, 6 (mean 4, sd sqrt(8/3)) and CIF_adv = 3/4.
    days = np.array([0.5, 2.0, 3.0, 4.0, 6.0])
    outcome = np.array([C, A, L, A, A])
    at_risk = np.array([4.0, 3.0, 2.0, 1.0])  # at 2, 3, 4, 6
    surv = np.cumprod(np.r_[1.0, 1.0 - 1.0 / at_risk[:-1]])  # S just before each time
    inc = surv / at_risk  # each time has exactly one outcome
    adv_times, adv_inc = np.array([2.0, 4.0, 6.0]), inc[[0, 2, 3]]
    w = adv_inc / adv_inc.sum()
    mean = float(w @ adv_times)
    sd = float(np.sqrt(w @ (adv_times - mean) ** 2))
    fit = fit_stage(days, outcome)
    assert fit.conversion == pytest.approx(adv_inc.sum(), abs=1e-12)
    assert fit.conversion == pytest.approx(3 / 4, abs=1e-12)  # nothing censored in between
    assert fit.dwell_days == pytest.approx(mean, abs=1e-12)
    assert fit.dwell_cv == pytest.approx(sd / mean, abs=1e-12)
    assert fit.naive_dwell == pytest.approx(4.0)


def test_same_day_moves_count_as_half_a_day():
    fit = fit_stage(np.array([0.0, 0.0, 2.0, 3.0]), np.array([A, A, L, C]))
    assert fit.max_advance_days == 0.5
    assert fit.naive_dwell == 0.5
    assert fit.dwell_days == pytest.approx(0.5, abs=1e-12)


def test_rows_with_unknown_days_count_towards_the_outcomes_only():
    # NaN days: counted in advanced/lost (and the prior-pulled conversion), not in the dwell.
    fit = fit_stage(np.array([2.0, np.nan, 3.0]), np.array([A, A, L]))
    assert (fit.advanced, fit.lost, fit.still_open) == (2, 1, 0)
    assert fit.conversion == pytest.approx(3 / 5)  # (2 + 1) / (3 + 2)
    assert fit.naive_conversion == pytest.approx(2 / 3)
    assert fit.naive_dwell == 2.0  # the known advance only
    assert fit.max_advance_days == 2.0
    assert fit.conversion_n == 5.0


def test_unknown_days_rows_leave_the_aalen_johansen_estimate_unchanged():
    days = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    outcome = np.array([L, L, C, A, A])
    base = fit_stage(days, outcome)
    more = fit_stage(np.append(days, [np.nan, np.nan]), np.append(outcome, [A, C]))
    assert more.conversion == pytest.approx(base.conversion, abs=1e-12)
    assert more.dwell_days == pytest.approx(base.dwell_days, abs=1e-12)
    assert (more.advanced, more.lost, more.still_open) == (3, 2, 2)
    assert more.conversion_n == 7.0  # 5 outcomes + 2


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


def test_uncensored_advances_only_give_the_gamma_mle_dwell():
    x = np.array([3.0, 5.0, 8.0, 13.0, 21.0])
    fit = fit_stage(x, np.full(5, A))
    assert fit.conversion == pytest.approx(6 / 7)  # (5 + 1) / (5 + 2)
    assert fit.naive_conversion == 1.0
    # the gamma MLE of the mean is the sample mean (10); Nelder-Mead stops at
    # xatol 1e-6 on log(mean), so 1e-5 relative is ample
    assert fit.dwell_days == pytest.approx(10.0, rel=1e-5)
    # cv from the independent stationarity condition; the optimiser's tolerance on
    # log(cv) is 1e-6 but the objective is flat near the optimum: 1e-3 relative
    k = _penalised_gamma_shape(x)
    assert fit.dwell_cv == pytest.approx(1.0 / math.sqrt(k), rel=1e-3)
    assert fit.max_advance_days == 21.0


def test_open_deals_older_than_the_advances_lengthen_the_censored_dwell():
    x = np.array([3.0, 5.0, 8.0, 13.0, 21.0])
    closed = fit_stage(x, np.full(5, A))
    censored = fit_stage(np.r_[x, 30.0, 40.0], np.r_[np.full(5, A), C, C])
    # nothing lost: the conversion ignores the open deals, the dwell does not
    assert censored.conversion == closed.conversion
    assert censored.still_open == 2
    assert censored.naive_dwell == 10.0
    assert censored.dwell_days > closed.dwell_days + 5.0


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
