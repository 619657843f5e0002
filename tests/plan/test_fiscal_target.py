"""target --quarter / --fiscal-year: the search aims at a fiscal window of the horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.errors import InputError
from pipesim.io.scenario_folder import write_scenario


def _funnel():
    # Fiscal year from April; as_of 2026-04-01, 12 months: FY2027 whole, Q2 = Jul-Sep.
    stages = stages_frame([0.5, 0.4, 0.5], dwell_days=10.0)
    periods = [f"2026-{m:02d}" for m in range(4, 13)] + [f"2027-{m:02d}" for m in range(1, 4)]
    arrivals = pd.DataFrame({"period": periods, "leads": 100.0, "amount": 1000.0})
    deals = deals_frame(["S1", "S2", "S3"] * 10, 1000.0)
    return build(stages, deals, arrivals, as_of="2026-04-01", fiscal_year_start=4, calibrated=True)


def test_a_quarter_target_counts_the_quarter_only():
    sc = _funnel()
    trials = 400
    res = pipesim.target(sc, 30_000, quarter="FY2027-Q2", trials=trials, seed=5)
    meta = res.metadata
    assert (meta["window"], meta["window_start"], meta["window_end"]) == (
        "FY2027-Q2",
        "2026-07-01",
        "2026-09-30",
    )
    assert meta["months"] == "6"  # leads of April to September are scaled
    assert list(res.table["period"]) == [f"2026-{m:02d}" for m in range(4, 10)]
    assert "in FY2027-Q2 (2026-07-01 to 2026-09-30)" in res.text
    # The probability found is that of July-September revenue, on the run's own trials:
    # the scaled scenario simulated with the same seed gives the same share (deals and
    # leads keep their draws, so the search's sum is the full run, draw for draw).
    scale = float(meta["scale"])
    fed = sc.replace(arrivals=sc.arrivals.assign(leads=sc.arrivals["leads"] * scale))
    months = [f"2026-{m:02d}" for m in range(4, 10)]
    fed = fed.replace(arrivals=fed.arrivals[fed.arrivals["period"].isin(months)])
    run = pipesim.simulate(fed, trials, seed=5)
    p_run = float(np.mean(run.revenue[:, 3:6, 0].sum(axis=1) >= 30_000))
    assert abs(p_run - float(meta["probability"])) <= 1 / trials  # float sums' order only
    year = pipesim.target(sc, 100_000, fiscal_year="FY2027", trials=200, seed=5)
    assert year.metadata["window"] == "FY2027" and year.metadata["months"] == "12"


def test_bad_windows_are_refused():
    sc = _funnel()
    with pytest.raises(InputError, match="outside the horizon"):
        pipesim.target(sc, 1.0, quarter="FY2029-Q1", trials=10)
    with pytest.raises(InputError, match="give one window"):
        pipesim.target(sc, 1.0, quarter="FY2027-Q1", months=3, trials=10)
    with pytest.raises(InputError, match="give a fiscal quarter"):
        pipesim.target(sc, 1.0, quarter="FY2027", trials=10)
    short = sc.replace(horizon_months=4)  # ends 2026-07-31, inside Q2
    with pytest.raises(InputError, match="ends before FY2027-Q2 does"):
        pipesim.target(short, 1.0, quarter="FY2027-Q2", trials=10)


def test_target_quarter_cli(tmp_path):
    write_scenario(tmp_path / "s", _funnel())
    args = ["target", str(tmp_path / "s"), "--revenue", "30000", "--trials", "200"]
    res = CliRunner().invoke(main, [*args, "--quarter", "FY2027-Q2", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "FY2027-Q2" in res.output
    meta = pq.read_metadata(tmp_path / "o" / "target.parquet").metadata
    assert meta[b"window"] == b"FY2027-Q2"
    bad = CliRunner().invoke(main, [*args, "--fiscal-year", "FY2031", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--fiscal-year 'FY2031': outside the horizon" in bad.output
    assert "Traceback" not in bad.output
