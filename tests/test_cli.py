"""The command line as a user meets it: the demo run, its files, and `pipesim init`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.io import scenario_folder
from pipesim.io.parquet import read_metadata
from pipesim.scenario.demo import demo_tables


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = CliRunner().invoke(
        main, ["run", "--trials", "400", "--seed", "3", "--out", str(out), "--by", "region"]
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_run_prints_monthly_and_cumulative_bands(demo_run):
    _, result = demo_run
    text = result.output
    assert "Per month" in text and "Cumulative" in text
    for word in ("P10", "P50", "P90", "2027-01", "2027-12", "North", "EUR"):
        assert word in text


def test_summary_parquet_long_form(demo_run):
    out, _ = demo_run
    summary = pd.read_parquet(out / "summary.parquet")
    assert list(summary.columns) == [
        "region",
        "period",
        "cumulative",
        "metric",
        "mean",
        "p10",
        "p50",
        "p90",
        "mean_se",
        "p10_se",
        "p50_se",
        "p90_se",
    ]
    assert set(summary["metric"]) == {"revenue", "won_deals"}
    whole = summary[summary["region"].isna()]
    assert len(whole) == 12 * 2 * 2
    assert set(summary["region"].dropna()) == {"North", "South", "East", "West"}
    assert (summary["p10"] <= summary["p50"]).all() and (summary["p50"] <= summary["p90"]).all()
    # Quantiles are numpy's linear ones of the per-trial values in trials.parquet.
    trials = pd.read_parquet(out / "trials.parquet")
    assert list(trials.columns) == ["region", "trial", "period", "revenue", "won_deals"]
    north = trials[trials["region"] == "North"]
    cum = north.pivot(index="trial", columns="period", values="revenue").cumsum(axis=1)
    row = summary[
        (summary.region == "North")
        & summary.cumulative
        & (summary.metric == "revenue")
        & (summary.period == "2027-06")
    ].iloc[0]
    assert row["p90"] == pytest.approx(np.quantile(cum["2027-06"], 0.9), rel=1e-12)
    assert row["mean"] == pytest.approx(cum["2027-06"].mean(), rel=1e-12)


def test_segments_add_up_to_the_whole_book(demo_run):
    out, _ = demo_run
    trials = pd.read_parquet(out / "trials.parquet")
    seg = trials[trials.region.notna()].groupby(["trial", "period"])[["revenue", "won_deals"]]
    whole = trials[trials.region.isna()].set_index(["trial", "period"])
    summed = seg.sum().loc[whole.index]
    np.testing.assert_allclose(summed["revenue"], whole["revenue"], rtol=1e-12)
    np.testing.assert_array_equal(summed["won_deals"], whole["won_deals"])


def test_result_files_carry_their_provenance(demo_run):
    out, _ = demo_run
    for name in ("summary", "trials"):
        meta = read_metadata(out / f"{name}.parquet")
        assert meta["seed"] == "3" and meta["trials"] == "400"
        assert meta["pipesim_version"] == pipesim.__version__
        assert meta["scenario"].endswith("demo")
    assert not list(out.glob(".*tmp*"))


def test_whole_book_rows_do_not_depend_on_by(demo):
    plain = pipesim.simulate(demo, trials=300, seed=8)
    split = pipesim.simulate(demo, trials=300, seed=8, by="product_line")
    np.testing.assert_array_equal(plain.revenue[:, :, 0], split.revenue[:, :, 0])
    pd.testing.assert_frame_equal(plain.summary(), split.summary())
    # Asking an existing result for another breakdown re-runs the same trials.
    by_region = plain.summary(by="region")
    assert (
        by_region[by_region.region.isna()]
        .drop(columns="region")
        .reset_index(drop=True)
        .equals(plain.summary())
    )


def test_deals_without_the_by_column_are_reported_as_none(tmp_path):
    tables = demo_tables(n_deals=200)
    tables["arrivals"] = tables["arrivals"].drop(columns=["region"])
    tables["deals"].loc[:9, "region"] = None
    folder = tmp_path / "sc"
    folder.mkdir()
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet")
    sc = pipesim.load_scenario(folder)
    summary = pipesim.simulate(sc, trials=100, seed=0).summary(by="region")
    assert "(none)" in set(summary["region"].dropna())


def test_default_out_is_results_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "--trials", "50"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "summary.parquet").is_file()
    assert read_metadata(tmp_path / "results" / "summary.parquet")["trials"] == "50"


def test_init_writes_the_demo_scenario_that_ships(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    for name in ("stages", "deals", "arrivals", "scenario"):
        written = pd.read_parquet(tmp_path / "mine" / f"{name}.parquet")
        shipped = pd.read_parquet(pipesim.demo_path() / f"{name}.parquet")
        pd.testing.assert_frame_equal(written, shipped)
    assert (tmp_path / "mine" / "README.md").is_file()
    sc = pipesim.load_scenario(tmp_path / "mine")
    assert sc.funnel == ("Prospect", "Qualified", "Visited", "Offer")
    assert {"region", "product_line"} <= set(sc.deal_segments)
    assert len(sc.deals) >= 2_000
    assert sorted(sc.arrivals.period.unique()) == [f"2027-{m:02d}" for m in range(1, 13)]
    assert len(sc.arrivals) == 12 * 4 * 3  # every month for every region x product line


def test_init_refuses_to_overwrite_without_force(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(tmp_path)]).exit_code == 0
    again = runner.invoke(main, ["init", str(tmp_path)])
    assert again.exit_code == 2
    assert "--force" in again.output
    assert runner.invoke(main, ["init", str(tmp_path), "--force"]).exit_code == 0


def test_run_with_numpy_engine(tmp_path):
    result = CliRunner().invoke(
        main, ["run", "--trials", "30", "--engine", "numpy", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert pq.read_metadata(tmp_path / "summary.parquet").num_rows == 48


def test_metadata_keys_are_plain_parquet_metadata(demo_run):
    out, _ = demo_run
    meta = pq.read_schema(out / "summary.parquet").metadata
    assert meta[b"seed"] == b"3" and meta[b"trials"] == b"400"
    assert meta[b"pipesim_version"] == pipesim.__version__.encode()
    assert meta[b"scenario"].endswith(b"demo")


def test_a_third_party_warning_is_passed_on_once_and_the_command_ends():
    # Passed on while still recording, a warning was recorded again and again: `run
    # --report` with a glyph matplotlib cannot draw grew to gigabytes and never exited.
    code = (
        "import warnings\n"
        "from pipesim.cli import _user_errors\n"
        "with _user_errors():\n"
        "    warnings.warn('Glyph 9731 missing from font', UserWarning)\n"
        "print('ended')\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ended"
    assert done.stderr.count("Glyph 9731 missing") == 1


@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_a_seed_outside_the_documented_range_exits_2(tmp_path, seed):
    out = tmp_path / "r"
    res = CliRunner().invoke(main, ["run", "--seed", seed, "--trials", "5", "--out", str(out)])
    assert (
        res.exit_code == 2 and "--seed" in res.output and "0<=x<=9223372036854775807" in res.output
    )
    assert not out.exists()


@pytest.mark.parametrize("seed", [-1, 2**63, 2.5, True])
def test_the_library_refuses_a_seed_that_would_wrap(seed):
    from pipesim.errors import InputError
    from pipesim.simulation.stage_flows import simulate_flows

    t = demo_tables(n_deals=200)
    scenario = pipesim.make_scenario(
        t["stages"], t["deals"], t["arrivals"], as_of="2027-01-01", horizon_months=3
    )
    for run in (pipesim.simulate, simulate_flows):
        with pytest.raises(InputError, match=r"seed=.*from 0 to 9,223,372,036,854,775,807"):
            run(scenario, 5, seed)
    assert pipesim.simulate(scenario, 5, 2**63 - 1).total_revenue().shape == (5,)


@pytest.mark.parametrize("command", ["run", "calibrate", "backtest"])
def test_out_naming_an_existing_file_exits_2_before_any_work(tmp_path, command):
    afile = tmp_path / "results"
    afile.write_text("not a folder")
    args = {
        "run": ["run", "--trials", "5"],
        "calibrate": ["calibrate", "deals.csv", "--as-of", "2020-01-01"],
        "backtest": ["backtest", "deals.csv", "--cutoff", "2020-01-01"],
    }[command]
    res = CliRunner().invoke(main, [*args, "--out", str(afile)])
    assert res.exit_code == 2, res.output
    assert "is an existing file, not a folder" in res.output and "--out" in res.output
    assert "Traceback" not in res.output and afile.read_text() == "not a folder"


def test_the_library_refuses_to_write_results_into_a_file(tmp_path):
    from pipesim.errors import InputError
    from pipesim.io.parquet import write_tables

    afile = tmp_path / "x"
    afile.write_text("")
    with pytest.raises(InputError, match=r"is an existing file, not a folder\. Give out="):
        write_tables(afile, {"t": pd.DataFrame({"a": [1]})})


def test_run_with_nothing_to_simulate_says_so(tmp_path):
    t = demo_tables(n_deals=10)
    folder = tmp_path / "empty"
    scenario_folder.write_scenario(
        folder,
        pipesim.make_scenario(
            t["stages"], t["deals"].iloc[0:0], None, as_of="2027-01-01", horizon_months=3
        ),
    )
    res = CliRunner().invoke(
        main, ["run", str(folder), "--trials", "5", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert "Warning:" in res.output and "nothing to simulate" in res.output


def test_calibrate_on_maven_says_why_one_stage_and_runs_without_the_funnel_warning(tmp_path):
    from pipesim.datasets import maven_crm_path

    out = tmp_path / "maven"
    res = CliRunner().invoke(main, ["calibrate", str(maven_crm_path()), "--format", "maven",
                                    "--as-of", "2017-07-01", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Why one stage: the Maven export records each deal's current stage only" in res.output
    assert "runs do not warn about its size" in res.output
    res = CliRunner().invoke(main, ["run", str(out), "--trials", "50", "--quiet",
                                    "--out", str(tmp_path / "results")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Warning" not in res.output
