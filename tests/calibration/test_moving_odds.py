"""The conversion's level now (a local level over entry months) and the monthly odds shocks.

Generated histories (``crm_synth.market_history``) with a known truth: a steady one, a
conversion halved at a date, monthly shocks shared by two regions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from conftest import Z
from crm_synth import market_history
from pipesim.calibration.fit import calibrate_history
from pipesim.calibration.history import make_history
from pipesim.calibration.odds_shocks import odds_shocks
from pipesim.calibration.stage_paths import paths_at


def _calibrate(seed, segments=None, **effect):
    deals, as_of = market_history(seed=seed, days=366, after=0, **effect)
    history = make_history(deals, stages=["Offer"], source="generated")
    return calibrate_history(
        history, as_of.date(), horizon_months=3, segments=segments, moving_conversions=True
    )


def _moved(cal):
    return [r for r in cal.report["item"] if str(r).endswith("conversion moved")]


def test_a_steady_conversion_keeps_the_whole_history_estimate():
    for seed in (1, 2, 3):
        cal = _calibrate(seed)
        assert _moved(cal) == [], cal.report
        assert cal.scenario.stages["conversion"].iloc[0] == cal.fits["Offer"].conversion


def test_without_the_option_the_whole_history_conversion_stays():
    deals, as_of = market_history(seed=1, days=366, after=0, change_at=366 - 122, change=0.5)
    cal = calibrate_history(make_history(deals, stages=["Offer"]), as_of.date())
    assert _moved(cal) == [] and cal.fits["Offer"].conversion > 0.28


def test_a_halved_conversion_is_seen_within_four_months():
    # Regions win 0.45 and 0.30 (6 and 4 deals a day): 0.39 overall, 0.195 after the
    # change 122 days before as_of. The whole history's estimate stays near 0.33.
    hits = []
    for seed in (1, 2, 3, 4, 5):
        cal = _calibrate(seed, change_at=366 - 122, change=0.5)
        assert _moved(cal), cal.report
        row = cal.scenario.stages.iloc[0]
        c, n = float(row["conversion"]), float(row["conversion_n"])
        se = np.sqrt(c * (1 - c) / (n + 1))
        assert abs(c - 0.195) < Z * se, (c, se)
        hits.append(c)
        assert cal.fits["Offer"].conversion < 0.25  # the fit is at today's level
    assert np.mean(hits) < 0.25  # against ~0.33 over the whole history


def test_segments_move_with_their_stage():
    cal = _calibrate(3, segments=["region"], change_at=366 - 122, change=0.5)
    st = cal.scenario.stages.set_index("region", drop=False)
    # North 0.45 -> 0.225, South 0.30 -> 0.15: each pooled row moved down with the stage.
    assert st.loc["North", "conversion"] < 0.3 and st.loc["South", "conversion"] < 0.22


def _deals(seed, shock_sd, segments=True):
    deals, as_of = market_history(
        seed=seed,
        days=731,
        after=0,
        shock_sd=shock_sd,
        regions=(("North", 30.0, 0.4), ("South", 30.0, 0.4)),
    )
    history = make_history(deals, stages=["Offer"], source="generated")
    paths = paths_at(history, pd.Timestamp(as_of))
    return paths.deals, pd.Timestamp(as_of)


def test_odds_shocks_measure_the_shared_monthly_shock():
    # 60 deals a day, 2 years: cohorts of ~1,800 deals; a shared shock of sd 0.3 a month.
    # The estimate from ~20 settled cohorts (robust scale on differences) has a relative
    # error of about 1 / sqrt(2 * 19 * 0.37) ~ 0.27 (MAD efficiency 0.37): 4.5 x that.
    found = []
    for seed in (1, 2, 3, 4):
        deals, cut = _deals(seed, 0.3)
        market, segment, why = odds_shocks(deals, cut, ["region"])
        found.append(market)
        assert "market shock sd" in why
        assert segment < 0.15  # no shock of their own
    assert abs(np.mean(found) / 0.3 - 1) < Z * 0.27 / np.sqrt(len(found)), found
    deals, cut = _deals(5, 0.0)
    market, segment, _ = odds_shocks(deals, cut, ["region"])
    assert market < 0.1 and segment < 0.1
