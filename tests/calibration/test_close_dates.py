"""The slippage law learnt from close-date histories, against the generator's truth.

Histories from ``close_date_synth`` (numpy, not pipesim): one Offer stage; each stated
date is a round in which the deal is won on the date plus a shifted-gamma lateness
(prob 0.45, 0.30, 0.20, 0.12 for 0, 1, 2, 3+ pushes), pushed 30 days (0.35) or lost.
The exact truth of each snapshot row (its P(won at all), the lateness law of its wins)
comes from the generator's law (:func:`close_date_synth.truth_rows`,
:func:`close_date_synth.late_quantile`), averaged over the rows the fit used.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from close_date_synth import Truth, close_date_history, late_density, late_quantile, truth_rows
from pipesim.calibration.close_dates import attach_changes, fit_close_law, snapshot_rows
from pipesim.calibration.fit import calibrate_history
from pipesim.calibration.history import make_history
from pipesim.cli import main


def history(seed=1, **kw):
    deals, changes, export = close_date_history(seed=seed, **kw)
    h = attach_changes(make_history(deals, stages=["Offer"]), changes, "changes")
    return h, pd.Timestamp(export)


@pytest.fixture(scope="module")
def fitted():
    h, cut = history(seed=1, days=1100, per_day=5.0)
    rows = snapshot_rows(h, cut)
    law, _ = fit_close_law(h, cut, {"Offer": 0.5})
    assert law is not None
    return rows, law


def test_win_chance_by_pushes_recovered_within_its_standard_error(fitted):
    rows, law = fitted
    due = rows[rows["overdue"] == 0]
    x = ((due["snapshot"] - due["stated"]) / pd.Timedelta(days=1)).to_numpy()
    k = due["pushes"].to_numpy()
    truth = truth_rows(Truth(), k, x)
    bucket = np.minimum(k, 3)
    for j in range(4):
        m = bucket == j
        row = law.iloc[j]
        # The estimate's se: its cluster-robust one, or the binomial one of the rows'
        # true chances when larger (a cell with few wins underestimates its own); 3 se.
        se = max(row["p_win_se"], np.sqrt((truth[m] * (1 - truth[m])).sum()) / m.sum())
        assert abs(row["p_win"] - truth[m].mean()) < 3 * se, (j, row["p_win"], truth[m].mean())
    # The push effect: the first and second push lower the chance by more than 3 se of
    # the difference (true steps 0.20 and 0.13); the third's true step (0.085) is under
    # 2 se of this history, so it is not asked to show.
    p, se = law["p_win"].to_numpy(), law["p_win_se"].to_numpy()
    assert (np.diff(p)[:2] < -3 * np.hypot(se[1:3], se[:2])).all(), p


def test_lateness_law_recovered_within_its_standard_error(fitted):
    rows, law = fitted
    due = rows[(rows["overdue"] == 0) & (rows["pushes"] == 0)]
    x = ((due["snapshot"] - due["stated"]) / pd.Timedelta(days=1)).to_numpy()
    k = due["pushes"].to_numpy()
    wins = due.loc[due["won"], "deal_id"].nunique()
    for level, column in ((0.5, "lateness_p50"), (0.75, "lateness_p75"), (0.9, "lateness_p90")):
        q = late_quantile(Truth(), k, x, level)
        # A quantile's se: sqrt(u (1 - u) / n) / f(q), n the deals won (a deal seen at
        # several snapshots counts once); dates are whole days, so 1 day more.
        se = np.sqrt(level * (1 - level) / wins) / late_density(Truth(), k, x, q)
        assert abs(law.iloc[0][column] - q) < 3 * se + 1.0, (column, law.iloc[0][column], q, se)


def test_bad_close_dates_are_set_aside_and_counted():
    deals, changes, _ = close_date_history(seed=2, days=200, per_day=1.0)
    bad = changes.copy()
    bad.loc[0, "close_date"] = "not a date"
    bad.loc[1, "changed_at"] = ""
    bad.loc[2, "close_date"] = "2001-01-01"  # before the deal was created
    bad.loc[3, "deal_id"] = "nobody"
    h = attach_changes(make_history(deals, stages=["Offer"]), bad, "bad.csv")
    issues = {i.reason: (i.rows, i.action) for i in h.issues}
    assert issues["close date unreadable"] == (2, "set aside")
    assert issues["close date before created"] == (1, "set aside")
    assert issues["close date of an unknown deal"] == (1, "set aside")
    assert issues["close-date changes used"][0] == len(bad) - 4
    cal = calibrate_history(h, "2020-07-01", horizon_months=3)
    report = cal.report.set_index("item")
    assert report.loc["close date before created", "rows"] == 1


def test_only_changes_recorded_before_as_of_count():
    h, _ = history(seed=3, days=500, per_day=2.0)
    cut = pd.Timestamp("2021-01-01")
    assert h.close_changes is not None
    known = h.close_changes[h.close_changes["changed_at"] < cut]
    a = calibrate_history(h, cut.date(), horizon_months=3).scenario
    b = calibrate_history(
        dataclasses_replace(h, close_changes=known), cut.date(), horizon_months=3
    ).scenario
    pd.testing.assert_frame_equal(a.close_law, b.close_law)
    pd.testing.assert_frame_equal(a.deals, b.deals)
    assert a.deals["close_date"].notna().any()


def dataclasses_replace(h, **changes):
    import dataclasses

    return dataclasses.replace(h, **changes)


def test_calibrate_shows_the_law_and_run_uses_it(tmp_path):
    deals, changes, export = close_date_history(seed=4, days=500, per_day=2.0)
    deals.to_csv(tmp_path / "deals.csv", index=False)
    changes.to_csv(tmp_path / "changes.csv", index=False)
    out = tmp_path / "sc"
    runner = CliRunner()
    args = ["calibrate", str(tmp_path / "deals.csv"), "--stages", "Offer", "--as-of"]
    args += [str(export.date()), "--close-dates", str(tmp_path / "changes.csv"), "--out", str(out)]
    result = runner.invoke(main, [*args, "--horizon-months", "3"])
    assert result.exit_code == 0, result.output
    assert "P(won by date)" in result.output and "3+" in result.output
    law = pd.read_parquet(out / "close_dates.parquet")
    assert list(law.loc[law["overdue"] == 0, "pushes"]) == [0, 1, 2, 3]
    assert sorted(set(law["overdue"])) == [0, 1, 2, 3, 4]
    assert pd.read_parquet(out / "deals.parquet")["close_date"].notna().any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipesim.PipesimWarning)
        on = runner.invoke(
            main, ["run", str(out), "--trials", "200", "--out", str(tmp_path / "a"), "--report"]
        )
        off = runner.invoke(
            main,
            ["run", str(out), "--trials", "200", "--out", str(tmp_path / "b"), "--no-close-dates"],
        )
        refused = runner.invoke(
            main,
            [
                "run",
                str(out),
                "--trials",
                "20",
                "--engine",
                "dask-fast",
                "--out",
                str(tmp_path / "c"),
            ],
        )
    assert on.exit_code == 0 and "timed by their stated close date" in on.output
    assert (tmp_path / "a" / "close_dates.parquet").is_file()
    page = (tmp_path / "a" / "report.html").read_text()
    assert "Stated close dates" in page and "P(won by the date)" in page
    assert not (tmp_path / "b" / "close_dates.parquet").exists()
    assert off.exit_code == 0 and "close dates off" in off.output
    assert refused.exit_code == 2 and "--no-close-dates" in refused.output
    odds = runner.invoke(
        main, ["run", str(out), "--trials", "20", "--deal-odds", "--out", str(tmp_path / "d")]
    )
    assert odds.exit_code == 0, odds.output  # dated deals counted on their own law
    table = pd.read_parquet(tmp_path / "d" / "deal_odds.parquet")
    assert {"close_date", "pushes", "p_win", "close_p50"} <= set(table.columns)


def test_backtest_takes_close_dates_and_the_switch(tmp_path):
    deals, changes, _ = close_date_history(seed=5, days=500, per_day=2.0)
    deals.to_csv(tmp_path / "deals.csv", index=False)
    changes.to_csv(tmp_path / "changes.csv", index=False)
    crps = {}
    for name, extra in (("on", []), ("off", ["--no-close-dates"])):
        result = CliRunner().invoke(
            main,
            [
                "backtest", str(tmp_path / "deals.csv"), "--stages", "Offer", "--cutoff",
                "2021-03-01", "--close-dates", str(tmp_path / "changes.csv"), "--trials", "200",
                "--out", str(tmp_path / name), *extra,
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        crps[name] = pd.read_parquet(tmp_path / name / "backtest.parquet")["crps"].iloc[0]
    assert crps["on"] != crps["off"]
