"""Fiscal quarters and years of a run: quantiles of the summed trials, exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.io.scenario_folder import write_scenario

D = dt.date


def _scenario(**kw):
    stages = stages_frame([0.6, 0.7, 0.8], dwell_days=40.0)
    deals = deals_frame(["S1", "S2", "S3"] * 20, 1_000.0, region=["N", "S"] * 30)
    arrivals = pd.DataFrame(
        {
            "period": [f"2026-{m:02d}" for m in range(5, 13)] * 2,
            "leads": 3.0,
            "amount": 500.0,
            "region": ["N"] * 8 + ["S"] * 8,
        }
    )
    return build(stages, deals, arrivals, calibrated=True, **kw)


def test_quarter_quantiles_are_those_of_the_summed_trials():
    # Fiscal year from April, as_of mid-May, 8 months: FY2027-Q1 (Apr-Jun) cut by as_of,
    # Q2 and Q3 whole, Q4 (Jan-Mar) cut by the horizon (ends 2026-12-31).
    sc = _scenario(as_of="2026-05-15", horizon_months=8, fiscal_year_start=4)
    res = pipesim.simulate(sc, trials=500, seed=3, by="region")
    quarters = res.quarters("region")
    trials = res.trials("region")
    expected_windows = {
        ("FY2027", "Q1"): (D(2026, 4, 1), D(2026, 6, 30), False, ["2026-05", "2026-06"]),
        ("FY2027", "Q2"): (D(2026, 7, 1), D(2026, 9, 30), True, ["2026-07", "2026-08", "2026-09"]),
        ("FY2027", "Q3"): (
            D(2026, 10, 1),
            D(2026, 12, 31),
            True,
            ["2026-10", "2026-11", "2026-12"],
        ),
        ("FY2027", "FY"): (D(2026, 4, 1), D(2027, 3, 31), False, res.periods),
    }
    whole = quarters[quarters["region"].isna()]
    assert len(whole) == 2 * len(expected_windows)
    for region in (None, "N", "S"):
        rows = quarters[
            quarters["region"].isna() if region is None else quarters["region"] == region
        ]
        t = trials[trials["region"].isna() if region is None else trials["region"] == region]
        for (fy, q), (start, end, complete, months) in expected_windows.items():
            for metric in ("revenue", "won_deals"):
                row = rows[(rows["fiscal_year"] == fy) & (rows["quarter"] == q)]
                row = row[row["metric"] == metric].iloc[0]
                assert (row["start"], row["end"], row["complete"]) == (start, end, complete)
                totals = t[t["period"].isin(months)].groupby("trial")[metric].sum()
                want = np.quantile(totals.to_numpy(dtype=float), [0.1, 0.5, 0.9])
                # Exact: the same per-trial totals, the same quantile definition.
                assert [row["p10"], row["p50"], row["p90"]] == want.tolist()
                assert row["mean"] == totals.to_numpy(dtype=float).mean()
    # A team (here: the whole book) is its segments' sum trial by trial, not their quantiles.
    n_q = quarters[(quarters["region"] == "N") & (quarters["quarter"] == "Q2")]
    s_q = quarters[(quarters["region"] == "S") & (quarters["quarter"] == "Q2")]
    w_q = whole[whole["quarter"] == "Q2"]
    np.testing.assert_allclose(
        w_q["mean"].to_numpy(), n_q["mean"].to_numpy() + s_q["mean"].to_numpy()
    )


def test_a_4_4_5_calendar_buckets_by_fiscal_period():
    # Start April, 4-4-5: FY2027-Q1 is 2026-03-29..2026-06-27, exactly the first 3 periods.
    sc = _scenario(
        as_of="2026-03-29", horizon_months=6, fiscal_year_start=4, fiscal_calendar="4-4-5"
    )
    res = pipesim.simulate(sc, trials=200, seed=1)
    q = res.quarters()
    rev = q[q["metric"] == "revenue"].set_index("quarter")
    assert (rev.loc["Q1", "start"], rev.loc["Q1", "end"]) == (D(2026, 3, 29), D(2026, 6, 27))
    assert bool(rev.loc["Q1", "complete"]) and bool(rev.loc["Q2", "complete"])
    assert not bool(rev.loc["FY", "complete"])
    total = res.revenue[:, :3, 0].sum(axis=1)
    assert rev.loc["Q1", "p50"] == np.quantile(total, 0.5)


def test_run_writes_quarters_parquet(tmp_path):
    write_scenario(
        tmp_path / "s", _scenario(as_of="2026-05-15", horizon_months=8, fiscal_year_start=4)
    )
    out = tmp_path / "r"
    res = CliRunner().invoke(
        main, ["run", str(tmp_path / "s"), "--trials", "200", "--by", "region", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "Per fiscal quarter and year" in res.output and "FY2027-Q2" in res.output
    table = pq.read_table(out / "quarters.parquet")
    assert table.column_names == [
        "region",
        "fiscal_year",
        "quarter",
        "start",
        "end",
        "complete",
        "metric",
        "mean",
        "p10",
        "p50",
        "p90",
    ]
    assert str(table.schema.field("start").type) == "date32[day]"
    frame = table.to_pandas()
    assert set(frame["quarter"]) == {"Q1", "Q2", "Q3", "FY"}
    assert set(frame["metric"]) == {"revenue", "won_deals"}


def test_report_shows_the_quarters(tmp_path):
    sc = _scenario(as_of="2026-05-15", horizon_months=8, fiscal_year_start=4)
    pipesim.write_results(pipesim.simulate(sc, trials=200, seed=2), tmp_path / "r")
    written = pipesim.report(tmp_path / "r", xlsx=tmp_path / "book.xlsx")
    page = written[0].read_text(encoding="utf-8")
    assert "Fiscal quarters and years" in page and 'id="chart-quarters"' in page
    assert "no: as_of or the horizon cuts it" in page  # FY2027-Q1 starts before as_of
    import openpyxl

    sheet = openpyxl.load_workbook(tmp_path / "book.xlsx")["Quarters"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("segment", "quarter", "start", "end", "complete")
    quarters = pd.read_parquet(tmp_path / "r" / "quarters.parquet")
    rev = quarters[quarters["metric"] == "revenue"].reset_index(drop=True)
    assert [r[1] for r in rows[1:]] == ["FY2027-Q1", "FY2027-Q2", "FY2027-Q3", "FY2027"]
    assert [r[6] for r in rows[1:]] == rev["p50"].tolist()  # Revenue P50, as written
