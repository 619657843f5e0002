"""Monte Carlo error in every output (issue 15, item 3): standard errors and trials="auto"."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy import stats

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.engines import numba as numba_engine
from pipesim.errors import InputError
from pipesim.prepare.kernel_inputs import prepare
from pipesim.reports.terminal import MARK, run_report
from pipesim.simulation import auto_trials
from pipesim.simulation.precision import QUANTILES, mean_se, quantile_se

STATS = ["mean", "p10", "p50", "p90"]


def _small(months=6):
    """30 open deals and 30 leads a month, conversions known from 40-80 deals, spread values."""
    stages = stages_frame(
        [0.5, 0.4, 0.5], dwell_days=20.0, conversion_n=[80.0, 60.0, 40.0], value_cv=0.3
    )
    periods = [f"2027-{m:02d}" for m in range(1, months + 1)]
    arrivals = pd.DataFrame({"period": periods, "leads": 30.0, "amount": 1000.0, "amount_cv": 0.5})
    return build(
        stages, deals_frame(["S1", "S2", "S3"] * 10, 2000.0), arrivals, horizon_months=months
    )


def test_the_standard_errors_match_the_spread_over_many_seeds():
    """R seeds of n trials: the sd of each estimate across seeds vs the mean se reported.

    Tolerance: the sd of R near-normal estimates has a relative standard error of
    1/sqrt(2 (R - 1)) (0.041 for R = 300), so the ratio is 1 within Z of those (the
    mean of R reported se's adds little: each varies ~10 %, /sqrt(R)). Revenue at the
    horizon and in month 3 (continuous). Counts of won deals are steps: their quantile
    errors follow the steps only roughly (see pipesim.simulation.precision).
    The kernel is called directly (one preparation, R seeds) to keep this fast.
    """
    prepared = prepare(_small())
    runs, n = 300, 1_000
    est, ses = [], []
    for seed in range(runs):
        rev, _ = numba_engine.run(prepared, n, seed)
        cols = np.stack([rev[:, :, 0].sum(axis=1), rev[:, 2, 0]], axis=1)
        est.append(np.vstack([cols.mean(axis=0), np.quantile(cols, QUANTILES, axis=0)]))
        ses.append(np.vstack([mean_se(cols), quantile_se(cols, QUANTILES)]))
    ratio = np.std(est, axis=0, ddof=1) / np.mean(ses, axis=0)
    tol = Z / math.sqrt(2 * (runs - 1))
    assert np.all(np.abs(ratio - 1) <= tol), ratio


def test_the_quantile_error_is_the_asymptotic_one():
    """Normal data: se(P_p) -> sqrt(p(1-p)/n) / pdf(quantile) (asymptotic), within 15 %.

    The exact bootstrap se of a sample quantile has a relative error of order
    n^(-1/4) (Hall and Martin, 1988): 0.056 at n = 100,000; 15 % is 2.7 of it (the
    repeated-runs test above is the sharper check). A column of equal values has se 0;
    a single trial, none (NaN).
    """
    n = 100_000
    data = np.random.default_rng(1).standard_normal((n, 1))
    q = (0.1, 0.5, 0.9)
    se = quantile_se(data, q)[:, 0]
    exact = [math.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p)) for p in q]
    assert np.allclose(se, exact, rtol=0.15), (se, exact)
    assert np.all(quantile_se(np.ones((50, 2)), q) == 0.0)  # all equal: known exactly
    assert np.isnan(quantile_se(np.ones((1, 2)), q)).all()  # one trial: unknown


def test_summary_has_the_error_columns(tmp_path):
    res = pipesim.simulate(_small(), 300, seed=1)
    s = res.summary()
    assert list(s.columns[-8:]) == [*STATS, *(f"{c}_se" for c in STATS)]
    rev = s[s["metric"] == "revenue"]
    raw = res.revenue[:, :, 0]
    assert np.allclose(rev["mean_se"][:6], raw.std(axis=0, ddof=1) / math.sqrt(300))
    assert (s[[f"{c}_se" for c in STATS]] >= 0).all(axis=None)
    pipesim.write_results(res, tmp_path)
    assert "p90_se" in pq.read_table(tmp_path / "summary.parquet").column_names


@pytest.mark.parametrize(
    ("engine", "precision"), [("numba", 0.01), ("fast", 0.01), ("numpy", 0.01)]
)
def test_auto_equals_a_plain_run_with_the_final_count(engine, precision):
    """Blocks of trials 0.., n.. add up to the same bits as one run (numpy: re-run at the count)."""
    sc = _small()
    auto = pipesim.simulate(sc, "auto", seed=3, engine=engine, precision=precision)
    assert auto.auto is not None and auto.auto.reached
    assert auto.auto.blocks >= 2 and auto.trials_count > auto_trials.FIRST_BLOCK
    assert auto.auto.relative_se <= precision
    assert auto_trials.horizon_error(auto.revenue) == auto.auto.relative_se
    plain = pipesim.simulate(sc, auto.trials_count, seed=3, engine=engine)
    assert np.array_equal(auto.revenue, plain.revenue)
    assert np.array_equal(auto.won, plain.won)
    meta = auto.metadata()
    assert meta["trials"] == str(auto.trials_count) and meta["trials_auto"] == "true"
    assert meta["precision_reached"] == "true" and float(meta["precision"]) == precision


def test_auto_stops_at_the_maximum_and_says_so():
    res = pipesim.simulate(_small(), "auto", seed=3, precision=0.001, max_trials=3_000)
    assert res.trials_count == 3_000 and res.auto is not None and not res.auto.reached
    assert res.auto.relative_se > 0.001
    assert any("stopped at the maximum of 3,000 trials" in n for n in res.notes)
    assert res.metadata()["precision_reached"] == "false"
    assert "the maximum reached" in run_report(res)


def test_the_floor_for_quantiles_near_zero():
    """A P10 of 0 with a spread above it is judged against 10 % of the mean, not 0."""
    rev = np.zeros((1000, 1, 1))
    rev[200:, 0, 0] = np.linspace(1.0, 2.0, 800)  # P10 = 0 (200 ties around rank 100): se 0
    assert auto_trials.horizon_error(rev) < 0.1
    assert auto_trials.next_count(2_000, 0.01, 0.005, 200_000) == 9_000  # 2000 x 4 x 1.1
    assert auto_trials.next_count(2_000, math.inf, 0.005, 5_000) == 5_000


def test_bad_auto_settings():
    sc = _small()
    with pytest.raises(InputError, match="precision= applies to trials='auto' only"):
        pipesim.simulate(sc, 100, precision=0.01)
    with pytest.raises(InputError, match="precision=2"):
        pipesim.simulate(sc, "auto", precision=2)
    with pytest.raises(InputError, match="max_trials=0"):
        pipesim.simulate(sc, "auto", max_trials=0)
    with pytest.raises(InputError, match="or 'auto'"):
        pipesim.simulate(sc, "many")


def test_terminal_marks_rough_figures():
    """100 trials: some figures have errors over 1 %: marked, with the footnote; none without."""
    text = run_report(pipesim.simulate(_small(), 100, seed=0))
    assert f" {MARK}" in text and "Monte Carlo standard error is over 1%" in text
    # Every trial the same (sure conversions, fixed times and amounts): errors 0, no mark.
    sure = build(stages_frame([1.0, 1.0, 1.0], dwell_days=5.0, dwell_cv=0.0),
                 deals_frame(["S1", "S2", "S3"], 1000.0))  # fmt: skip
    calm = run_report(pipesim.simulate(sure, 100, seed=0))
    assert MARK not in calm and "standard error" not in calm


def test_cli_trials_auto(tmp_path):
    """The demo: one block of 2,000 trials reaches 2 %; the count is in the metadata."""
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        ["run", "--trials", "auto", "--precision", "0.02", "--max-trials", "4000", "--out",
         str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = pq.read_schema(out / "summary.parquet").metadata
    settings = json.loads(meta[b"pipesim"])
    assert settings["trials_auto"] == "true" and int(settings["trials"]) <= 4000
    assert f"{int(settings['trials']):,} trials (auto:" in res.output
    bad = CliRunner().invoke(main, ["run", "--trials", "100", "--precision", "0.01", "--out",
                                    str(tmp_path / "o2")])  # fmt: skip
    assert bad.exit_code == 2 and "--precision applies to --trials 'auto' only" in bad.output
    worse = CliRunner().invoke(main, ["run", "--trials", "lots", "--out", str(tmp_path / "o3")])
    assert worse.exit_code == 2 and "positive whole number or 'auto'" in worse.output
