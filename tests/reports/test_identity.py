"""A report shows only the files of its run: the same scenario fingerprint, trials and seed."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.io.fingerprint import scenario_fingerprint
from pipesim.io.parquet import read_metadata
from pipesim.reports.identity import mismatch

FILES = ("summary", "trials", "funnel", "compare", "sensitivity", "target", "health")


def _cli(*args: object) -> str:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def test_the_fingerprint_is_the_content_not_the_name_or_place(demo, demo_copy):
    fp = scenario_fingerprint(demo)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert scenario_fingerprint(pipesim.load_scenario(demo_copy)) == fp  # another folder
    assert scenario_fingerprint(demo.replace(name="renamed")) == fp
    deals = demo.deals.copy()
    deals.loc[0, "amount"] += 1.0
    changed = {
        "one amount": demo.replace(deals=deals),
        "horizon": demo.replace(horizon_months=6),
        "currency": demo.replace(currency="USD"),
        "as_of": demo.replace(as_of=pd.Timestamp("2027-01-02").date()),
        "arrivals": demo.replace(arrivals=demo.arrivals.iloc[1:]),
        "stages": demo.replace(stages=demo.stages.assign(dwell_cv=0.5)),
    }
    for what, other in changed.items():
        assert scenario_fingerprint(other) != fp, what


def test_a_book_on_disk_is_fingerprinted_by_its_file(demo_copy):
    on_disk = pipesim.load_scenario(demo_copy, deals_in_memory=False)
    assert on_disk.deal_source is not None
    fp = scenario_fingerprint(on_disk)
    assert scenario_fingerprint(pipesim.load_scenario(demo_copy, deals_in_memory=False)) == fp
    deals = pd.read_parquet(demo_copy / "deals.parquet")
    deals.loc[5, "amount"] += 1.0
    deals.to_parquet(demo_copy / "deals.parquet")
    assert scenario_fingerprint(pipesim.load_scenario(demo_copy, deals_in_memory=False)) != fp


def test_every_results_file_carries_the_identity(tmp_path):
    out = tmp_path / "res"
    common = ("--trials", "60", "--seed", "3", "--out", out)
    _cli("run", "--quiet", *common)
    _cli("compare", "--lever", "leads*1.1", *common)
    _cli("sensitivity", *common)
    _cli("target", "--revenue", "2e6", "--months", "3", *common)
    _cli("health", "--revenue", "2e6", "--months", "3", *common)
    fp = scenario_fingerprint(pipesim.load_scenario(pipesim.demo_path()))
    for name in FILES:
        meta = read_metadata(out / f"{name}.parquet")
        assert (meta["scenario_fingerprint"], meta["trials"], meta["seed"]) == (fp, "60", "3")
    # All of them match: the report leaves nothing out and warns of nothing.
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0 and "Warning" not in res.output, res.output


def test_report_leaves_out_another_scenario_and_other_settings(tmp_path, demo_copy):
    out = tmp_path / "res"
    _cli("run", "--quiet", "--trials", "80", "--seed", "1", "--out", out)
    _cli("sensitivity", "--trials", "80", "--seed", "1", "--out", out)  # the same run
    # A comparison of another scenario (one conversion changed), same trials and seed ...
    stages = pd.read_parquet(demo_copy / "stages.parquet")
    stages.loc[0, "conversion"] = 0.25  # the demo has 0.30
    stages.to_parquet(demo_copy / "stages.parquet")
    _cli("compare", demo_copy, "--lever", "leads*1.1", "--trials", "80", "--seed", "1",
         "--out", out)  # fmt: skip
    # ... and a target of the demo with another seed.
    _cli("target", "--revenue", "2e6", "--months", "3", "--trials", "80", "--seed", "2",
         "--out", out)  # fmt: skip
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    demo_fp = scenario_fingerprint(pipesim.load_scenario(pipesim.demo_path()))
    copy_fp = scenario_fingerprint(pipesim.load_scenario(demo_copy))
    lines = [line for line in res.output.splitlines() if line.startswith("Warning:")]
    assert lines == [
        f"Warning: {out / 'compare.parquet'} left out of the report: another scenario "
        f"(demo, fingerprint {copy_fp}; this run: demo, fingerprint {demo_fp}).",
        f"Warning: {out / 'target.parquet'} left out of the report: other settings "
        "(seed 2; this run: seed 1).",
    ]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-tornado"' in page  # the matching file is drawn
    assert 'id="chart-compare"' not in page and "<h2>Scenario comparison</h2>" not in page
    assert "<h2>Target" not in page
    assert "compare.parquet left out of the report: another scenario" in page  # said there too
    assert f"<td>scenario fingerprint</td><td>{demo_fp}</td>" in page


def test_the_python_report_warns_once_per_file_left_out(tmp_path):
    result = pipesim.simulate(
        pipesim.load_scenario(pipesim.demo_path()).replace(horizon_months=2), trials=50, seed=4
    )
    pipesim.write_results(result, tmp_path)
    stale = result.metadata() | {"trials": "10000"}
    pipesim.io.parquet.write_tables(
        tmp_path, {"compare": pd.DataFrame({"variant": ["base"], "mean": [1.0]})}, stale
    )
    with pytest.warns(pipesim.PipesimWarning, match=r"compare.parquet left out") as caught:
        pipesim.report(tmp_path)
    assert len(caught) == 1
    assert "other settings (trials 10,000; this run: trials 50)" in str(caught[0].message)


def test_mismatch_rules():
    run = {"scenario_fingerprint": "a", "trials": "100", "seed": "0", "scenario": "/s"}
    assert mismatch(run, dict(run)) is None
    assert mismatch(run, {}) is not None and "no pipesim settings" in mismatch(run, {})
    older = {k: v for k, v in run.items() if k != "scenario_fingerprint"}
    assert "older pipesim" in mismatch(run, older)
    assert "older pipesim" in mismatch(older, run)
    # Two files from before fingerprints: matched on the scenario folder, trials and seed.
    assert mismatch(older, dict(older)) is None
    assert "another scenario (/t; this run: /s)" in mismatch(older, older | {"scenario": "/t"})
    assert mismatch(run, run | {"trials": "99", "seed": "1"}) == (
        "other settings (trials 99, seed 1; this run: trials 100, seed 0)"
    )


def test_a_backtest_beside_a_run_is_left_out_with_its_reason(tmp_path):
    result = pipesim.simulate(
        pipesim.load_scenario(pipesim.demo_path()).replace(horizon_months=2), trials=40, seed=4
    )
    pipesim.write_results(result, tmp_path)
    row = {"cutoff": ["2027-01-01"], "realized": [1.0], "p10": [0.0], "p50": [1.0]}
    row |= {"p90": [2.0], "crps": [0.5]}
    pipesim.io.parquet.write_tables(tmp_path, {"backtest": pd.DataFrame(row)}, {"seed": "4"})
    with pytest.warns(pipesim.PipesimWarning, match="a backtest of a CRM history") as caught:
        page = pipesim.report(tmp_path)[0].read_text(encoding="utf-8")
    assert len(caught) == 1 and "<h1>pipesim report: demo</h1>" in page
