"""Backtests: no leakage from after the cutoff, scores computed right, the command's output."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import ROOT
from crm_synth import pipeline_history
from pipesim.calibration.backtest import backtest_history, crps_sample, pinball
from pipesim.calibration.fit import calibrate_history
from pipesim.calibration.history import make_history
from pipesim.cli import main
from pipesim.datasets import load_maven_crm, maven_crm_path
from pipesim.errors import InputError

CUT = pd.Timestamp("2017-06-01")


def _rewrite_future(history, cut):
    """Change everything dated on or after ``cut``: later deals, later outcomes and amounts."""
    d = history.deals.copy()
    later = d["created_at"] >= cut
    d = d[~later | (np.arange(len(d)) % 3 == 0)].copy()  # drop two thirds of the later deals
    d.loc[d["created_at"] >= cut, "open_amount"] *= 7.0
    resolved_later = d["closed_at"] >= cut
    flip = resolved_later & (d["status"] == "won")
    d.loc[flip, "status"] = "lost"
    d.loc[flip, "amount"] = 0.0
    d.loc[resolved_later, "closed_at"] += pd.Timedelta(days=9)
    return dataclasses.replace(history, deals=d.reset_index(drop=True))


def test_no_row_after_the_cutoff_changes_the_calibration():
    h = load_maven_crm()
    a = calibrate_history(h, CUT.date(), segments=["product"])
    b = calibrate_history(_rewrite_future(h, CUT), CUT.date(), segments=["product"])
    for name in ("stages", "deals", "arrivals"):
        pd.testing.assert_frame_equal(
            getattr(a.scenario, name), getattr(b.scenario, name), check_exact=True
        )


def test_no_event_after_the_cutoff_changes_the_calibration():
    deals, events, _export = pipeline_history(seed=5, n=1200)
    cut = pd.Timestamp("2021-01-01")
    h = make_history(deals, events, source="synth")
    ev = h.events.copy()
    late = ev["entered_at"] >= cut
    ev = ev[~late | (np.arange(len(ev)) % 2 == 0)]  # lose half the later stage entries
    h2 = dataclasses.replace(h, events=ev.reset_index(drop=True))
    a = calibrate_history(h, cut.date())
    b = calibrate_history(h2, cut.date())
    for name in ("stages", "deals", "arrivals"):
        pd.testing.assert_frame_equal(getattr(a.scenario, name), getattr(b.scenario, name))


def test_no_row_after_the_cutoff_changes_the_forecast():
    h = load_maven_crm()
    cols = ["mean", "p5", "p10", "p50", "p90", "p95", "weighted_pipeline", "run_rate"]
    a = backtest_history(h, [CUT.date()], trials=300)
    b = backtest_history(_rewrite_future(h, CUT), [CUT.date()], trials=300)
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    assert a["realized"].iloc[0] != b["realized"].iloc[0]  # only the truth moved


def test_pinball_and_crps():
    assert pinball(10.0, 8.0, 0.9) == pytest.approx(1.8)
    assert pinball(10.0, 12.0, 0.9) == pytest.approx(0.2)
    assert crps_sample(3.0, np.full(50, 5.0)) == pytest.approx(2.0)  # a point: |error|
    # CRPS of N(0,1) at 0 is (sqrt(2) - 1)/sqrt(pi) = 0.23370; a sample of 20,000
    # quantiles reproduces it to ~1e-4.
    x = np.sort(np.random.default_rng(0).standard_normal(20_000))
    assert crps_sample(0.0, x) == pytest.approx((np.sqrt(2) - 1) / np.sqrt(np.pi), abs=0.01)


def test_backtest_command_writes_the_table(tmp_path):
    out = tmp_path / "bt"
    res = CliRunner().invoke(
        main,
        [
            "backtest",
            str(maven_crm_path()),
            "--format",
            "maven",
            "--cutoff",
            "2017-07-01",
            "--cutoff",
            "2017-09-01",
            "--horizon-months",
            "3",
            "--trials",
            "300",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out / "backtest.parquet")
    assert table["cutoff"].tolist() == ["2017-07-01", "2017-09-01", "overall"]
    needed = {
        "realized",
        "mean",
        "p10",
        "p50",
        "p90",
        "inside_p10_p90",
        "inside_p5_p95",
        "pinball_10",
        "pinball_50",
        "pinball_90",
        "crps",
        "weighted_pipeline_crps",
        "weighted_pipeline_pinball_50",
        "run_rate_crps",
        "run_rate_pinball_90",
        "chain_ladder",
        "chain_ladder_crps",
        "chain_ladder_pinball_10",
    }
    assert needed <= set(table.columns)
    # realized revenue of Jul-Sep 2017: the won close_value of deals closed then
    d = load_maven_crm().deals
    won = d[(d["status"] == "won") & d["closed_at"].between("2017-07-01", "2017-09-30")]
    assert table["realized"].iloc[0] == pytest.approx(won["amount"].sum())
    assert "overall" in res.output


def test_backtest_of_a_history_without_dates_exits_2(tmp_path):
    # The IBM win-loss export has durations but no dates: no cutoff can be placed in it.
    fixture = ROOT / "tests" / "fixtures" / "crm" / "ibm_win_loss.csv"
    out = tmp_path / "bt"
    res = CliRunner().invoke(
        main,
        ["backtest", str(fixture), "--format", "ibm", "--cutoff", "2020-01-01", "--out", str(out)],
    )
    assert res.exit_code == 2, res.output
    assert "ibm_win_loss.csv" in res.output and "no real dates" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_span_of_cutoffs_is_every_first_of_a_month_both_ends_included():
    from pipesim.calibration.backtest import month_starts

    assert [d.isoformat() for d in month_starts("2017-01..2017-03")] == [
        "2017-01-01",
        "2017-02-01",
        "2017-03-01",
    ]
    assert [d.isoformat() for d in month_starts("2017-01-15..2017-03-01")] == [
        "2017-02-01",
        "2017-03-01",
    ]
    for bad in ("2017-03..2017-01", "2017-01", "soon..later", "2017-01-02..2017-01-20"):
        with pytest.raises(InputError, match="cutoffs"):
            month_starts(bad)


def test_backtest_counts_won_deals_over_a_span_of_cutoffs(tmp_path):
    out = tmp_path / "bt"
    args = ["backtest", str(maven_crm_path()), "--format", "maven", "--cutoff", "2017-05-01"]
    args += ["--cutoffs", "2017-07..2017-08", "--metric", "won_deals", "--horizon-months", "1"]
    res = CliRunner().invoke(main, [*args, "--trials", "100", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out / "backtest.parquet")
    assert table["cutoff"].tolist() == ["2017-05-01", "2017-07-01", "2017-08-01", "overall"]
    assert set(table["metric"]) == {"won_deals"}
    d = load_maven_crm().deals
    for row in table.iloc[:3].itertuples():
        lo = pd.Timestamp(row.cutoff)
        hi = lo + pd.DateOffset(months=1)
        won = (d["status"] == "won") & (d["closed_at"] >= lo) & (d["closed_at"] < hi)
        assert row.realized == int(won.sum())  # a count, exactly
        assert float(row.p50).is_integer() or row.p50 * 2 == round(row.p50 * 2)
    bad = CliRunner().invoke(main, [*args[:6], "--cutoffs", "2017-07", "--out", str(out)])
    assert bad.exit_code == 2 and "FROM..TO" in bad.output


def test_kept_calibrations_are_what_each_forecast_ran_on(tmp_path):
    import warnings

    import pipesim

    out = tmp_path / "bt"
    args = ["backtest", str(maven_crm_path()), "--format", "maven", "--cutoffs", "2017-07..2017-08"]
    args += ["--horizon-months", "2", "--trials", "200", "--seed", "3", "--keep-calibrations"]
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "P5" in res.output.splitlines()[0] and "P95" in res.output.splitlines()[0]
    table = pd.read_parquet(out / "backtest.parquet").set_index("cutoff")
    for cutoff in ("2017-07-01", "2017-08-01"):
        folder = out / f"calibration_{cutoff}"
        assert (folder / "calibration.parquet").exists()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pipesim.PipesimWarning)  # a one-stage funnel
            draws = pipesim.simulate(pipesim.load_scenario(folder), 200, 3).total_revenue()
        assert draws.mean() == pytest.approx(table.loc[cutoff, "mean"], rel=1e-12)
        assert np.quantile(draws, 0.9) == pytest.approx(table.loc[cutoff, "p90"], rel=1e-12)


def _ladder_history():
    """Cohorts of 10 deals created in Jan, Feb, Mar 2020: in each, 2 won (100 each) in the
    month created and 1 won (50) the month after; the rest open."""
    rows = []
    for m, month in enumerate(("2020-01", "2020-02", "2020-03")):
        for i in range(10):
            status, closed, amount = "open", None, 100.0
            if i < 2:
                status, closed = "won", f"{month}-20"
            elif i == 2:
                nxt = ("2020-02", "2020-03", "2020-04")[m]
                status, closed, amount = "won", f"{nxt}-10", 50.0
            rows.append(
                {
                    "deal_id": f"{month}-{i}",
                    "created_at": f"{month}-05",
                    "stage": "Won" if status == "won" else "Lead",
                    "status": status,
                    "closed_at": closed,
                    "amount": amount,
                }
            )
    return make_history(pd.DataFrame(rows), stages=["Lead"])


def test_chain_ladder_by_hand():
    from pipesim.calibration.backtest import chain_ladder

    # f(0) = 600 / 30 = 20 per deal (all three cohorts lived through their first month);
    # f(1) = (50 + 50) / 20 = 5 (January and February only: March's second month is April,
    # after the cutoff); f(2) = 0. Open cohorts: March (age 1) adds 10 x (f1 + f2) = 50;
    # January and February add 0. New cohorts of 10 (the last three months' mean):
    # April adds 10 x (f0 + f1) = 250, May adds 10 x f0 = 200. Total 500.
    assert chain_ladder(_ladder_history(), dt.date(2020, 4, 1), 2) == pytest.approx(500.0)
    # counting deals: f0 = 6/30, f1 = 2/20: 10 x 0.1 + 10 x 0.3 + 10 x 0.2 = 6
    assert chain_ladder(_ladder_history(), dt.date(2020, 4, 1), 2, counts=True) == pytest.approx(
        6.0
    )


def test_progress_over_the_cutoffs_changes_no_number(capsys):
    history = make_history(*pipeline_history(seed=5, n=800)[:2], source="synth")
    kw = {"cutoffs": ["2021-03-01", "2021-06-01"], "horizon_months": 2, "trials": 50}
    quiet = backtest_history(history, **kw)
    shown = backtest_history(history, **kw, progress=True)
    pd.testing.assert_frame_equal(quiet, shown)
