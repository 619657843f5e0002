"""Forecast categories: the CRM spellings, the call's sums and P(revenue >= Commit), exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.reports.forecast_call import forecast_call, won_label
from pipesim.scenario.fiscal import FiscalCalendar
from pipesim.scenario.forecast_category import canonical


@pytest.mark.parametrize(
    ("spelling", "category"),
    [
        ("Pipeline", "Pipeline"), ("PIPELINE", "Pipeline"),
        ("Best Case", "Best Case"), ("BestCase", "Best Case"), ("BEST_CASE", "Best Case"),
        ("Commit", "Commit"), ("COMMIT", "Commit"), ("Forecast", "Commit"),
        ("Omitted", "Omitted"), ("OMIT", "Omitted"),
        ("Closed", "Closed"), ("CLOSED", "Closed"),
        ("Maybe", None), ("", None), (None, None), (float("nan"), None),
    ],
)  # fmt: skip
def test_crm_spellings_map_to_the_categories(spelling, category):
    assert canonical(spelling) == category


def _book(n_commit=4, n_best=3, n_pipe=5, c=0.5):
    # Every deal in the last stage, converting with probability c after 3 days: each is
    # won in January or never, so the quarter's revenue is 100 x Binomial(n, c).
    stages = stages_frame([1.0, 1.0, c], dwell_days=[1.0, 1.0, 3.0], dwell_cv=0.0)
    n = n_commit + n_best + n_pipe + 1
    deals = deals_frame(["S3"] * n, 100.0)
    deals["forecast_category"] = (
        ["commit"] * n_commit + ["BestCase"] * n_best + ["Pipeline"] * n_pipe + ["Omitted"]
    )
    return build(stages, deals, as_of="2027-01-01", horizon_months=4), n


def test_the_call_sums_are_exact_and_p_commit_is_the_binomial_tail():
    sc, n = _book()
    trials = 20_000
    call = forecast_call(pipesim.simulate(sc, trials=trials, seed=3)).iloc[0]
    assert call["quarter"] == "FY2027-Q1" and bool(call["complete"]) and call["booked"] == 0.0
    assert str(call["start"]) == "2027-01-01" and str(call["end"]) == "2027-03-31"
    assert call["commit"] == 400.0 and call["commit_best_case"] == 700.0
    assert call["weighted_pipeline"] == pytest.approx(12 * 100.0 * 0.5)  # Omitted left out
    assert (call["commit_deals"], call["best_case_deals"]) == (4, 3)
    # Revenue = 100 x Bin(13, 0.5); P(revenue >= 400) = P(Bin >= 4), exactly.
    exact = stats.binom(n, 0.5).sf(3)
    se = np.sqrt(exact * (1 - exact) / trials)  # Monte Carlo se of a share
    assert abs(call["p_commit"] - exact) < Z * se, (call["p_commit"], exact, se)
    law = stats.binom(n, 0.5)
    assert call["mean"] == pytest.approx(100 * n * 0.5, abs=Z * 100 * np.sqrt(law.var() / trials))
    assert call["p50"] == 100 * law.median()


def test_a_quarter_cut_by_as_of_counts_its_remaining_months_only():
    sc, _ = _book()
    late = sc.replace(as_of="2027-02-15", horizon_months=1)
    call = forecast_call(pipesim.simulate(late, trials=50, seed=1)).iloc[0]
    assert call["quarter"] == "FY2027-Q1" and not bool(call["complete"])


def test_the_fiscal_quarter_of_as_of_with_its_revenue_already_won():
    # Fiscal year from February: 2027-01-01 lies in FY2027-Q4 (2026-11-01 to 2027-01-31),
    # under way. 250 won in it before as_of (and 1,000 in the quarter before: not counted)
    # join every trial and the Commit totals; the same trials, shifted by exactly 250.
    sc, _ = _book()
    won = pd.DataFrame(
        {
            "deal_id": ["w1", "w2", "w3"],
            "closed_at": pd.to_datetime(["2026-11-03", "2026-12-31", "2026-10-31"]),
            "amount": [200.0, 50.0, 1000.0],
        }
    )
    fiscal = sc.replace(fiscal=FiscalCalendar(year_start=2))
    plain = forecast_call(pipesim.simulate(fiscal, trials=2_000, seed=5)).iloc[0]
    call = forecast_call(pipesim.simulate(fiscal.replace(won=won), trials=2_000, seed=5)).iloc[0]
    assert call["quarter"] == "FY2027-Q4" and not bool(call["complete"])
    assert str(call["start"]) == "2026-11-01" and str(call["end"]) == "2027-01-31"
    assert call["booked"] == 250.0 and plain["booked"] == 0.0
    assert won_label(call) == "won 2026-11-01 to 2026-12-31"  # the days booked, as_of's excluded
    assert (call["commit"], call["commit_best_case"]) == (650.0, 950.0)
    assert call["weighted_pipeline"] == plain["weighted_pipeline"]  # open deals only
    for c in ("mean", "p10", "p50", "p90"):
        assert call[c] == pytest.approx(plain[c] + 250.0, abs=1e-9)
    assert call["p_commit"] == plain["p_commit"]  # both sides moved by the same 250


def test_no_category_no_call_and_an_unknown_one_exits_2(tmp_path):
    stages = stages_frame([1.0, 1.0, 0.5], dwell_days=3.0)
    plain = build(stages, deals_frame(["S3"] * 3, 10.0))
    assert forecast_call(pipesim.simulate(plain, trials=10, seed=1)) is None
    folder = tmp_path / "sc"
    folder.mkdir()
    stages.to_parquet(folder / "stages.parquet")
    deals_frame(["S3"] * 3, 10.0).assign(
        forecast_category=["Commit", "Maybe", "Closed"]
    ).to_parquet(folder / "deals.parquet")
    pd.DataFrame(
        {"as_of": ["2027-01-01"], "horizon_months": [3], "format_version": [5]}
    ).to_parquet(folder / "scenario.parquet")
    res = CliRunner().invoke(
        main, ["run", str(folder), "--trials", "5", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "column 'forecast_category': 2 row(s) are not a forecast category" in text
    assert "row 2 ('Maybe'), row 3 ('Closed')" in text


def test_run_writes_forecast_call_parquet_and_prints_the_call(tmp_path):
    sc, _ = _book()
    folder = tmp_path / "sc"
    pipesim.io.scenario_folder.write_scenario(folder, sc)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(folder), "--trials", "200", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Forecast call, FY2027-Q1" in res.output and "P(revenue >= Commit)" in res.output
    table = pd.read_parquet(out / "forecast_call.parquet")
    assert list(table.columns) == [
        "quarter", "start", "end", "as_of", "complete", "booked", "commit", "commit_best_case",
        "weighted_pipeline", "commit_deals", "best_case_deals", "mean", "p10", "p50", "p90",
        "p_commit",
    ]  # fmt: skip
    assert table["commit"].item() == 400.0


def test_run_json_holds_the_call(tmp_path):
    import json

    sc, _ = _book()
    folder = tmp_path / "sc"
    pipesim.io.scenario_folder.write_scenario(folder, sc)
    args = ["run", str(folder), "--trials", "100", "--out", str(tmp_path / "o"), "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["forecast_call"][0]["commit"] == 400.0
    assert doc["forecast_call"][0]["quarter"] == "FY2027-Q1"
