"""Do calibrated bands hold the truth when the pipeline changes? (issue: changing pipelines, item 7)

Each history comes from ``crm_synth.market_history`` (numpy, not pipesim): one Offer
stage sold in two regions (6 and 4 new deals a day at the start, win probability 0.45
and 0.30, wins after a gamma time of mean 30 days, losses after 45), a year of history
before as_of, and the months after it as the truth. pipesim calibrates on what was
known at as_of (nothing of the truth) and forecasts; the truth is the revenue won in
the forecast months. Over 40 histories the P10-P90 band should hold the truth 80% of
the time: a study passes when the 95% binomial interval of the measured coverage
overlaps 70-90%.

Measured on this machine (40 histories each, 400 trials); since the open deals take the
odds shocks of the month they entered their stage, (a) 36/40, (b) 33/40, (c) 30/40, (d)
26/40 and 22/40, (f) 36/40, (g) 26/40, (h) 16/40. Before (the history of each):
- (a) creations growing 6% a month, 6-month forecast: 32/40 (damped trend; before the lead trend,
  the rate was the last year's average: 0 of 20 held the truth, all under-forecast).
- (b) every conversion halved for the deals created in the last 4 months before as_of,
  3-month forecast, calibrated with ``moving_conversions``: 33/40 (the level of the
  entry months' conversions, P50 4% above the truth); with the whole history's
  conversion (the default): 0/40, P50 1.8x the truth.
- (c) a monthly shock on the odds of winning shared by both regions (sd 0.4 on the
  logit scale), calibrated by region, 3-month forecast: 29/40 (before the odds shocks:
  14/40).
- (d) quarter-end rush: 60% of the wins due in the first two months of a quarter slip to
  its last two weeks; two years of history (8 quarters), forecast from a quarter's start,
  calibrated as booking slips with the clocks fitted on the wins' due dates: 26/40 at 3
  months (P50 within 1% of the truth on average; the band a little narrow: the clocks'
  own uncertainty is not drawn), 22/40 at 1 month (P50 4% under). With the operational
  clock instead (the paces as clock speeds, the model before the slips): 38/40 and 25/40,
  P50 13% under at 1 month; without either, 0/40 at 1 month (P50 2.1x the truth).
- (f) monthly shocks on lead volumes, sd 0.3 shared by both regions and 0.15 each region's
  own (log scale), calibrated by region, 3-month forecast: 35/40 (21/40 without the lead
  shocks). With the market/own split of the shock variances, (c) is 30/40.
- (g) a slow December (60% of the wins due in December slip to the first two weeks of
  January), three years of history, a 1-month forecast made on December 1st: 26/40 with
  the monthly slips (0/40 without; 20/40 with month-of-year clock paces, P50 16% high: a
  slower clock is not a slip).
- (h) not reached: the shared odds shock persistent (AR(1), 0.8 a month, sd 0.4), a year of
  history, by region, 6-month forecast: 16/40, with or without the shocks' persistence
  (read only when significant: a year gives ~8 settled cohorts, too few to see it; with
  the plain variance of the residuals instead of the robust differences, 17/40; still
  16/40 once the open book takes the shocks). The calibrated shock reads 0-0.3 for a true
  0.4 and persistence is seldom found: where the market stands now is not read from the
  recent cohorts: follow-up work.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pipesim
from crm_synth import market_history
from pipesim.calibration.fit import calibrate_history
from pipesim.calibration.history import make_history

HISTORIES = 40
TRIALS = 400


def coverage(months: int, segments=None, days=366, moving=False, **effect) -> int:
    inside = 0
    for h in range(HISTORIES):
        deals, as_of = market_history(seed=7000 + h, days=days, after=months * 31 + 40, **effect)
        history = make_history(deals, stages=["Offer"], source=f"history {h}")
        d = history.deals
        end = as_of + pd.DateOffset(months=months)
        won = (d["status"] == "won") & (d["closed_at"] >= as_of) & (d["closed_at"] < end)
        truth = float(d.loc[won, "amount"].sum())
        cal = calibrate_history(
            history,
            as_of.date(),
            horizon_months=months,
            segments=segments,
            moving_conversions=moving,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pipesim.PipesimWarning)
            draws = pipesim.simulate(cal.scenario, trials=TRIALS, seed=h).total_revenue()
        p10, p90 = np.quantile(draws, [0.1, 0.9])
        inside += p10 <= truth <= p90
    return inside


def _holds(inside: int) -> bool:
    ci = stats.binomtest(inside, HISTORIES).proportion_ci(0.95)
    return ci.low <= 0.9 and ci.high >= 0.7


@pytest.mark.slow
def test_growing_leads():
    inside = coverage(6, growth=0.06)
    assert _holds(inside), (inside, HISTORIES)


@pytest.mark.slow
def test_quarter_end_rush():
    inside = coverage(3, days=731, quarter_end=0.6)
    assert _holds(inside), (inside, HISTORIES)


@pytest.mark.slow
def test_slow_december():
    inside = coverage(1, days=1065, slow_month=(12, 0.6))
    assert _holds(inside), (inside, HISTORIES)


@pytest.mark.slow
def test_conversion_halved_at_a_date():
    inside = coverage(3, moving=True, change_at=366 - 122, change=0.5)
    assert _holds(inside), (inside, HISTORIES)


@pytest.mark.slow
def test_monthly_lead_volume_shocks():
    inside = coverage(3, segments=["region"], leads_shock_sd=0.3, region_leads_shock_sd=0.15)
    assert _holds(inside), (inside, HISTORIES)


@pytest.mark.slow
def test_monthly_shock_shared_by_all_segments():
    inside = coverage(3, segments=["region"], shock_sd=0.4)
    assert _holds(inside), (inside, HISTORIES)
