"""Carrying the last year's new leads over horizon months without any."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from conftest import build, stages_frame
from pipesim.cli import main
from pipesim.io import scenario_folder
from pipesim.scenario.extend_arrivals import extend_arrivals


def _arrivals():
    # region N: 2026-03 and 2026-11..2027-02; region S: 2027-01 only
    return pd.DataFrame(
        {
            "period": ["2026-03", "2026-11", "2026-12", "2027-01", "2027-02", "2027-01"],
            "leads": [3.0, 11.0, 12.0, 1.0, 2.0, 50.0],
            "amount": 100.0,
            "region": ["N", "N", "N", "N", "N", "S"],
        }
    )


def test_each_empty_month_takes_the_same_month_a_year_before_else_the_latest():
    sc = build(stages_frame([0.5, 0.5, 0.5]), None, _arrivals(), horizon_months=12)
    extended, added = extend_arrivals(sc)
    arr = extended.arrivals
    north = arr[arr["region"] == "N"].set_index("period")["leads"]
    south = arr[arr["region"] == "S"].set_index("period")["leads"]
    # N: 2027-03 <- 2026-03; 2027-11, 2027-12 <- a year before; others <- latest (2027-02)
    assert north["2027-03"] == 3.0 and north["2027-11"] == 11.0 and north["2027-12"] == 12.0
    assert north["2027-04"] == 2.0 and north["2027-10"] == 2.0
    assert north["2027-01"] == 1.0 and north["2027-02"] == 2.0  # given months kept
    # S: only 2027-01 given: every other horizon month takes it
    assert len(south) == 12 and (south == 50.0).all()
    assert added == 10 + 11
    assert extend_arrivals(extended)[1] == 0  # nothing left to fill


def test_run_extend_arrivals_adds_the_months_and_says_so(tmp_path):
    sc = build(stages_frame([0.5, 0.5, 0.5]), None, _arrivals(), horizon_months=12)
    scenario_folder.write_scenario(tmp_path / "sc", sc)
    plain = CliRunner().invoke(
        main, ["run", str(tmp_path / "sc"), "--trials", "50", "--out", str(tmp_path / "a")]
    )
    assert plain.exit_code == 0 and "no row for 2027-03 to 2027-12" in plain.output
    res = CliRunner().invoke(
        main,
        ["run", str(tmp_path / "sc"), "--trials", "50", "--extend-arrivals", "--out",
         str(tmp_path / "b")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "arrivals: 21 row(s) added for horizon months without new leads" in res.output

    # the same seed: the book's draws are shared, the added months only add won deals
    def won(folder: str) -> float:
        t = pd.read_parquet(tmp_path / folder / "summary.parquet")
        pick = (t["period"] == "2027-12") & t["cumulative"] & (t["metric"] == "won_deals")
        return float(t.loc[pick, "mean"].item())

    assert won("b") > won("a")
