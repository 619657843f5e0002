"""``pipesim snapshot``: one scenario folder per date, each as ``calibrate --as-of`` writes it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

import pipesim
from pipesim import api
from pipesim.cli import main

MAVEN = Path(pipesim.datasets.__file__).parent / "maven_crm"


def test_snapshots_are_the_calibrations_of_their_dates(tmp_path):
    res = CliRunner().invoke(
        main,
        ["snapshot", str(MAVEN), "--format", "maven", "--as-of", "2017-06-01",
         "--as-of", "2017-05-01", "--segments", "product", "--out", str(tmp_path / "snaps")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Wrote" in res.output and "2017-05-01" in res.output
    for day in ("2017-05-01", "2017-06-01"):
        folder = tmp_path / "snaps" / day
        api.calibrate(
            MAVEN, as_of=day, format="maven", segments="product", out=tmp_path / f"one-{day}"
        )
        for table in ("stages", "deals", "arrivals", "scenario", "won"):
            got = pd.read_parquet(folder / f"{table}.parquet")
            want = pd.read_parquet(tmp_path / f"one-{day}" / f"{table}.parquet")
            if table == "scenario":  # named after its folder
                assert got["name"].item() == day
                got, want = got.drop(columns="name"), want.drop(columns="name")
            pd.testing.assert_frame_equal(got, want)
    assert pipesim.load_scenario(tmp_path / "snaps" / "2017-06-01").as_of.isoformat() == (
        "2017-06-01"
    )


def test_snapshot_refuses_before_writing_and_names_bad_dates(tmp_path):
    out = tmp_path / "snaps"
    args = ["snapshot", str(MAVEN), "--format", "maven", "--out", str(out)]
    assert CliRunner().invoke(main, [*args, "--as-of", "2017-06-01"]).exit_code == 0
    # 2017-05-01 is new, 2017-06-01 is there: nothing is written, exit 2.
    res = CliRunner().invoke(main, [*args, "--as-of", "2017-05-01", "--as-of", "2017-06-01"])
    assert res.exit_code == 2 and "--force" in res.output, res.output
    assert not (out / "2017-05-01").exists()
    res = CliRunner().invoke(main, [*args, "--as-of", "2017-13-01"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "2017-13-01" in res.output
