"""calibrate writes won.parquet: the deals won this fiscal year before as_of, as booked."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner

import pipesim
import pipesim.api
from pipesim.cli import main


def test_calibrate_writes_this_fiscal_years_wins(tmp_path):
    pipesim.api.example_history(tmp_path)
    out = tmp_path / "sc"
    res = CliRunner().invoke(
        main,
        ["calibrate", str(tmp_path / "deals.csv"), "--events", str(tmp_path / "events.csv"),
         "--as-of", "2017-07-01", "--out", str(out), "--stages", "Lead,Demo,Proposal",
         "--segments", "region", "--fiscal-year-start", "4", "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    deals = pd.read_csv(tmp_path / "deals.csv", parse_dates=["closed_at"])
    # By hand: FY2018 starts 2017-04-01; wins closed from then to 2017-06-30.
    hand = deals[
        (deals["status"] == "won")
        & (deals["closed_at"] >= "2017-04-01")
        & (deals["closed_at"] < "2017-07-01")
    ]
    won = pq.read_table(out / "won.parquet").to_pandas()
    assert list(won.columns) == ["deal_id", "closed_at", "amount", "region"]
    assert sorted(won["deal_id"]) == sorted(hand["deal_id"].astype(str))
    assert won["amount"].sum() == hand["amount"].sum()
    sc = pipesim.load_scenario(out)
    assert sc.fiscal.year_start == 4 and len(sc.won) == len(hand)
    # The run adds them to FY2018 (the forecast starts in its Q2).
    result = pipesim.simulate(sc, trials=50, seed=0)
    q = result.quarters()
    year = q[(q["quarter"] == "FY") & (q["metric"] == "revenue")].iloc[0]
    q2_to_q4 = q[q["quarter"].isin(["Q2", "Q3", "Q4"]) & (q["metric"] == "revenue")]
    assert year["fiscal_year"] == "FY2018"
    assert abs(year["mean"] - q2_to_q4["mean"].sum() - hand["amount"].sum()) < 1e-6 * year["mean"]
