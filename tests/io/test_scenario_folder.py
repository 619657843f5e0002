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
