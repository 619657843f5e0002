"""Each deal's survival ratio S_loss(age) / S_adv(age): exact 1 without a loss clock."""

from __future__ import annotations

import numpy as np
from scipy import stats

from pipesim.prepare.loss_clock import log_survival, survival_ratio

CELLS = np.array([0, 0, 1, 1, 2, 2])
AGES = np.array([0.0, 40.0, 0.0, 40.0, 10.0, 40.0])
# Per cell: (advance dist, mean, cv), (loss dist, mean, cv); cell 0 has no loss clock.
DWELL = (["gamma", "lognormal", "gamma"], [30.0, 30.0, 20.0], [0.6, 0.8, 0.0])
LOSS = (["gamma", "gamma", "lognormal"], [np.nan, 90.0, np.inf], [1.0, 0.5, 1.0])


def ratio():
    return survival_ratio(CELLS, AGES, *DWELL, *LOSS)


def test_no_loss_clock_or_no_age_gives_exactly_one():
    r = ratio()
    assert r[0] == 1.0 and r[1] == 1.0  # cell 0: the advance law is the loss law
    assert r[2] == 1.0  # a deal of age 0


def test_the_ratio_of_the_laws_survivals():
    r = ratio()
    sigma = np.sqrt(np.log1p(0.8**2))
    s_adv = stats.lognorm(sigma, scale=30.0 * np.exp(-0.5 * sigma**2)).sf(40.0)
    s_loss = stats.gamma(4.0, scale=90.0 / 4.0).sf(40.0)
    assert abs(r[3] / (s_loss / s_adv) - 1) < 1e-12
    # Fixed 20-day advance, losses never recorded: at 10 days S_adv = 1 and S_loss = 1;
    # at 40 days the advance clock has run out: the deal will not advance (ratio inf).
    assert r[4] == 1.0
    assert np.isinf(r[5])


def test_log_survival_of_each_law():
    t = np.array([5.0, 50.0])
    got = log_survival(np.array(["gamma", "lognormal"]), np.array([20.0, 20.0]),
                       np.array([1.0, 0.5]), t)  # fmt: skip
    sigma = np.sqrt(np.log1p(0.25))
    expected = [
        -5.0 / 20.0,  # exponential
        stats.lognorm(sigma, scale=20.0 * np.exp(-0.5 * sigma**2)).logsf(50.0),
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    never = log_survival(np.array(["gamma"]), np.array([np.inf]), np.array([1.0]), t[:1])
    assert never[0] == 0.0
