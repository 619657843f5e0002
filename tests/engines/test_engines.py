"""The numba engine against the NumPy reference: equal within sampling error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import Z, build, deals_frame, stages_frame


def _compare(scenario, trials, by=None):
    fast = pipesim.simulate(scenario, trials=trials, seed=1, by=by)
    ref = pipesim.simulate(scenario, trials=trials, seed=2, by=by, engine="numpy")
    for name in ("revenue", "won"):
        a, b = getattr(fast, name), getattr(ref, name)
        for data_a, data_b in ((a, b), (np.cumsum(a, axis=1), np.cumsum(b, axis=1))):
            se = np.sqrt(data_a.var(axis=0) / trials + data_b.var(axis=0) / trials)
            gap = np.abs(data_a.mean(axis=0) - data_b.mean(axis=0))
            assert (gap <= Z * se + 1e-9).all(), (name, gap.max(), se.max())
            # Standard deviations agree too (SE of a SD ~ sd / sqrt(2T) for near-normal data).
            sd_a, sd_b = data_a.std(axis=0), data_b.std(axis=0)
            se_sd = np.sqrt((sd_a**2 + sd_b**2) / (2 * trials)) * 1.5  # 1.5: tails heavier
            assert (np.abs(sd_a - sd_b) <= Z * se_sd + 1e-9).all(), name
    return fast, ref


@pytest.mark.slow
def test_demo_numba_matches_numpy_reference(demo):
    _compare(demo, 2_000, by="region")


def test_mixed_dwell_laws_match_reference():
    stages = stages_frame(
        [0.5, 0.6, 0.7, 0.8],
        dwell_days=[12.0, 20.0, 30.0, 15.0],
        dwell_cv=[1.0, 0.4, 2.0, 0.0],
        dwell_dist=["gamma", "gamma", "gamma", "gamma"],
        value_cv=[0.0, 0.1, 0.2, 0.5],
        conversion_n=[50.0, np.nan, 20.0, 80.0],
    )
    stages.loc[2, "dwell_dist"] = "lognormal"
    rng = np.random.default_rng(1)
    n = 3_000
    deals = deals_frame(
        rng.choice(["S1", "S2", "S3", "S4"], n),
        rng.uniform(10, 1_000, n),
        ages=rng.exponential(25, n),
        region=rng.choice(["N", "S"], n),
    )
    arrivals = pd.DataFrame(
        {
            "period": ["2027-01", "2027-02", "2027-03", "2027-04"],
            "leads": [200.0, 180.0, 220.0, 150.0],
            "amount": 400.0,
            "amount_cv": 0.5,
            "leads_n": [10.0, np.nan, 30.0, 5.0],
            "region": ["N", "S", "N", "S"],
        }
    )
    sc = build(stages, deals, arrivals, as_of="2027-01-10", horizon_months=6)
    _compare(sc, 3_000, by="region")
