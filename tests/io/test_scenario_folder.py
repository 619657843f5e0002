"""Scenario folders: the format version read and written, and a bad one named (exit 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.io import scenario_folder
from pipesim.scenario.scenario import FORMAT_VERSION


def _copy(demo_copy, version):
    settings = pd.read_parquet(demo_copy / "scenario.parquet")
    settings["format_version"] = [version]
    settings.to_parquet(demo_copy / "scenario.parquet")
    return demo_copy


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        ("two", "format_version 'two' is not a whole number"),
        (1.5, "format_version '1.5' is not a whole number"),
        (7, f"format_version 7 is not one this pipesim reads (1 to {FORMAT_VERSION})"),
    ],
)
def test_a_bad_format_version_exits_2_naming_the_file(demo_copy, tmp_path, version, needle):
    folder = _copy(demo_copy, version)
    res = CliRunner().invoke(main, ["run", str(folder), "--trials", "5", "--out",
                                    str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert needle in res.output and "scenario.parquet" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out").exists()


def test_an_empty_or_whole_format_version_reads(demo_copy):
    assert scenario_folder.load_scenario(_copy(demo_copy, 2.0)).format_version == FORMAT_VERSION
    assert scenario_folder.load_scenario(_copy(demo_copy, None)).format_version == FORMAT_VERSION


def test_a_format_1_folder_may_gain_loss_clocks_once_read(demo_copy, tmp_path):
    # The demo folder has no format_version (format 1); once checked, a change may add
    # the reserved loss columns, and writing it says format 2.
    sc = pipesim.load_scenario(demo_copy)
    stages = sc.stages.assign(loss_days=np.where(sc.stages["stage"] == "Offer", 90.0, np.nan))
    clocked = sc.replace(stages=stages)
    scenario_folder.write_scenario(tmp_path / "out", clocked)
    written = pd.read_parquet(tmp_path / "out" / "scenario.parquet")
    assert list(written["format_version"]) == [FORMAT_VERSION]
    back = scenario_folder.load_scenario(tmp_path / "out")
    pd.testing.assert_series_equal(back.stages["loss_days"], clocked.stages["loss_days"])
    # Without loss columns nothing new is written: the format-1 file as it was.
    scenario_folder.write_scenario(tmp_path / "plain", sc)
    assert "format_version" not in pd.read_parquet(tmp_path / "plain" / "scenario.parquet")


@pytest.fixture(scope="module")
def two_stage_calibrated(tmp_path_factory):
    """A 2-stage funnel written by calibrate, from a generated history."""
    from crm_synth import pipeline_history

    deals, events, export = pipeline_history(seed=3, n=600, conversion=(0.6, 0.5), dwell=(10, 20))
    folder = tmp_path_factory.mktemp("cal") / "two"
    history = pipesim.make_history(deals, events, stages=["S1", "S2"])
    pipesim.calibrate(history, as_of=export.date(), out=folder)
    return folder


def test_a_calibrated_small_funnel_runs_without_the_funnel_size_warning(
    two_stage_calibrated, tmp_path
):
    # The warning is for hand-built funnels: calibrate's folder is marked in its metadata
    # (filterwarnings=error: a warning here fails the test).
    sc = scenario_folder.load_scenario(two_stage_calibrated)
    assert sc.calibrated and len(sc.funnel) == 2
    assert sc.replace(horizon_months=6).calibrated  # a changed copy keeps the mark
    res = CliRunner().invoke(main, ["run", str(two_stage_calibrated), "--trials", "20", "--quiet",
                                    "--out", str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Warning" not in res.output
    # write_scenario keeps the mark; the same tables rewritten by hand do not have it.
    scenario_folder.write_scenario(tmp_path / "copy", sc)
    assert scenario_folder.load_scenario(tmp_path / "copy").calibrated
    hand = tmp_path / "hand"
    hand.mkdir()
    for name in ("stages", "deals", "arrivals", "scenario"):
        pd.read_parquet(two_stage_calibrated / f"{name}.parquet").to_parquet(
            hand / f"{name}.parquet"
        )
    with pytest.warns(pipesim.PipesimWarning, match="the funnel has 2 stage"):
        assert not scenario_folder.load_scenario(hand).calibrated


@pytest.mark.parametrize("name", ["stages", "arrivals", "levers"])
def test_a_csv_table_in_a_scenario_folder_says_how_to_convert_it(demo_copy, tmp_path, name):
    table = demo_copy / f"{name}.parquet"
    frame = pd.read_parquet(table) if table.exists() else pd.DataFrame({"variant": ["a"]})
    frame.to_csv(demo_copy / f"{name}.csv", index=False)
    table.unlink(missing_ok=True)
    res = CliRunner().invoke(main, ["run", str(demo_copy), "--trials", "5",
                                    "--out", str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert f"{name}.csv: pipesim reads scenario tables from Parquet files, not CSV" in res.output
    assert ".to_parquet(" in res.output and "pipesim scenario import FILE.xlsx DIR" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out").exists()
