"""sensitivity's moved inputs on fewer, paired trials, with each swing's standard error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.plan import common_random_numbers
from pipesim.plan.compare import total_revenue
from pipesim.plan.levers import Lever, apply_lever
from pipesim.plan.sensitivity import paired_trials, swing_se


def test_the_swing_se_matches_the_spread_over_repetitions():
    """Paired samples: hi = lo + noise; the sd of P50(hi) - P50(lo) over R draws vs swing_se.

    Tolerance: the sd of R estimates has a relative standard error of 1/sqrt(2 (R - 1))
    (0.071 for R = 200): Z of them; the mean of R bootstrap se's (each ~8 % noisy) adds
    little.
    """
    rng = np.random.default_rng(12)
    runs, n = 200, 500
    swings, ses = [], []
    for r in range(runs):
        lo = rng.lognormal(0.0, 0.5, n)
        hi = lo * 1.1 + rng.normal(0.0, 0.05, n)
        swings.append(np.quantile(hi, 0.5) - np.quantile(lo, 0.5))
        ses.append(swing_se(lo, hi, r))
    ratio = np.std(swings, ddof=1) / np.mean(ses)
    assert abs(ratio - 1.0) <= Z / math.sqrt(2 * (runs - 1)), ratio


def test_moved_inputs_run_on_the_base_first_trials():
    stages = stages_frame([0.5, 0.4, 0.5], dwell_days=10.0, conversion_n=[60.0, 50.0, 40.0])
    arrivals = pd.DataFrame({"period": ["2027-01", "2027-02"], "leads": 50.0, "amount": 1000.0})
    sc = build(stages, deals_frame(["S1", "S2", "S3"] * 5, 2000.0), arrivals, horizon_months=3)
    assert paired_trials(300) == 300 and paired_trials(10_000) == 2_500
    trials = 2_400
    res = pipesim.sensitivity(sc, trials=trials, seed=3)
    paired = paired_trials(trials)
    assert paired == 2_000 and res.metadata["paired_trials"] == "2000"
    row = res.table.set_index("input").loc["leads"]
    # The same change as the variant and the base compared on the base's first 2,000 trials.
    up = apply_lever(sc, Lever("leads", "scale", 1.1, None))
    pb, (pv,) = common_random_numbers.prepare_pair(sc, [up])
    base = total_revenue(common_random_numbers.run(pb, trials, 3)[0])
    moved = total_revenue(common_random_numbers.run(pv, paired, 3)[0])
    change = np.quantile(moved, 0.5) - np.quantile(base[:paired], 0.5)
    assert row["delta_p50_up"] == change
    assert row["p50_up"] == np.quantile(base, 0.5) + change
    assert 0 < row["swing_se"] < row["swing"]
    assert "first 2,000 trials" in res.text and "± se" in res.text
