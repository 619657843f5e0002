"""Every option explained; --json prints numbers as numbers; --quiet prints only problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import pipesim
from conftest import ROOT
from pipesim.cli import main
from pipesim.progress import COMPILE_NOTICE


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


COMMANDS = dict(_commands(main))
DEMO = str(pipesim.demo_path())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_of_every_command_has_a_help_text(name):
    command = COMMANDS[name]
    assert command.help and command.help.strip(), name
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"pipesim {name} {param.opts[0]}"


def test_help_gives_formats_units_and_what_a_format_reads():
    def help_of(name, flag):
        return next(p.help for p in COMMANDS[name].params if flag in p.opts)

    assert "YYYY-MM-DD" in help_of("calibrate", "--as-of")
    assert "YYYY-MM-DD" in help_of("backtest", "--cutoff")
    for name in ("target", "health"):
        assert "in the scenario's currency" in help_of(name, "--revenue")
    formats = help_of("calibrate", "--format")
    assert "maven (the folder of" in formats and "zip" in formats
    for flag in ("--deals", "--trials", "--months", "--seed", "--engine"):
        assert help_of("bench", flag)
    # One default for the forecasts and plans.
    for name in ("run", "target", "compare", "sensitivity", "health", "explain"):
        assert next(p.default for p in COMMANDS[name].params if p.name == "trials") == 10_000


def _numbers(doc, path="doc"):
    """Every value that reads as a number is one (no "0.8" strings)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _numbers(value, f"{path}.{key}")
    elif isinstance(doc, list):
        for k, value in enumerate(doc):
            yield from _numbers(value, f"{path}[{k}]")
    elif isinstance(doc, str):
        try:
            float(doc)
        except ValueError:
            return
        yield path, doc


# Each command that prints results, its arguments, and a table its JSON holds with a number.
JSON_CASES = {
    "run": (["run"], "summary", "p50"),
    "target": (["target", "--revenue", "3e6", "--months", "3"], "target", "leads_needed"),
    "compare": (["compare", "--lever", "leads*1.1"], "compare", "p_better"),
    "sensitivity": (["sensitivity"], "sensitivity", "swing"),
    "health": (["health", "--revenue", "3e6", "--months", "3"], "health", "coverage"),
    "explain": (["explain", DEMO, DEMO], "movement", "delta_mean"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("json") / "out"
    res = CliRunner().invoke(main, ["run", "--trials", "60", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("name", sorted(JSON_CASES))
def test_json_is_valid_with_numbers_as_numbers_and_nothing_else_on_stdout(name, tmp_path):
    args, table, column = JSON_CASES[name]
    res = CliRunner().invoke(
        main, [*args, "--trials", "60", "--seed", "2", "--out", str(tmp_path / "o"), "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    settings = doc["settings"]
    assert settings["trials"] == 60 and settings["seed"] == 2
    assert settings["horizon_months"] == 12 and settings["scenario_name"] == "demo"
    assert all(isinstance(row[column], int | float | None) for row in doc[table])
    assert any(isinstance(row[column], int | float) for row in doc[table])
    assert list(_numbers(doc)) == []
    assert "Wrote" in res.stderr and "Wrote" not in res.stdout


def test_report_and_bench_json(results):
    res = CliRunner().invoke(main, ["report", str(results), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["settings"]["trials"] == 60 and doc["horizon"][0]["cumulative"] is True
    assert isinstance(doc["horizon"][0]["p90"], float) and list(_numbers(doc)) == []
    res = CliRunner().invoke(main, ["bench", "--deals", "2000", "--trials", "20", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["deals"] == 2000 and doc["trials"] == 20 and doc["deal_trials_per_second"] > 0


def test_non_finite_numbers_are_null_so_the_json_stays_valid():
    import pandas as pd

    from pipesim.reports.export import tables_json

    text = tables_json(
        {"t": pd.DataFrame({"coverage": [float("inf"), 0.5, float("nan")]})},
        {"trials": "10", "scenario_name": "2027", "confidence": "0.8", "reachable": "true"},
    )
    doc = json.loads(text)
    assert [r["coverage"] for r in doc["t"]] == [None, 0.5, None]
    # A name is text even when it reads as a number; settings that are numbers are numbers.
    assert doc["settings"] == {
        "trials": 10,
        "scenario_name": "2027",
        "confidence": 0.8,
        "reachable": True,
    }


QUIET_CASES = {
    "run": ["run"],
    "target": ["target", "--revenue", "3e6", "--months", "3"],
    "compare": ["compare", "--lever", "leads*1.1"],
    "sensitivity": ["sensitivity"],
    "health": ["health", "--revenue", "3e6", "--months", "3"],
    "bench": ["bench", "--deals", "2000"],
    "explain": ["explain", DEMO, DEMO],
}


@pytest.mark.parametrize("name", sorted(QUIET_CASES))
def test_quiet_prints_nothing_but_errors(name, tmp_path):
    out = ["--out", str(tmp_path / "o")] if name != "bench" else []
    res = CliRunner().invoke(main, [*QUIET_CASES[name], "--trials", "40", *out, "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output == ""
    bad = CliRunner().invoke(main, [*QUIET_CASES[name], "--trials", "0", *out, "--quiet"])
    assert bad.exit_code == 2 and "--trials" in bad.stderr and bad.stdout == ""


def test_report_quiet(results):
    res = CliRunner().invoke(main, ["report", str(results), "--quiet"])
    assert res.exit_code == 0 and res.output == "", res.output
    assert (results / "report.html").is_file()


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _cold_run(tmp_path, *args):
    """`pipesim run` in a new process whose numba cache folder is empty (or already filled)."""
    env = {**ENV, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    return subprocess.run(
        [sys.executable, "-m", "pipesim.cli", "run", "--trials", "20", "--engine", "fast",
         "--out", str(tmp_path / "o"), *args],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_compile_notice_shows_once_on_a_cold_cache_and_never_warm(tmp_path):
    # The fast engine's kernels in a cache folder of their own: compiled here, whatever
    # the checkout's cache holds. (--quiet and --json turn the notice off: the test below.)
    first = _cold_run(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count(COMPILE_NOTICE) == 1 and COMPILE_NOTICE not in first.stdout
    warm = _cold_run(tmp_path)
    assert warm.returncode == 0, warm.stderr
    assert COMPILE_NOTICE not in warm.stderr  # loaded from the cache the first run wrote


def test_the_compile_notice_follows_numba_compile_events(capsys):
    import numba

    from pipesim.progress import compile_notice

    def fresh_kernel(x):
        return x + 1

    fresh_kernel.__module__ = "pipesim.kernels.example"
    jitted = numba.njit(fresh_kernel)  # no cache: compiled on its first call
    with compile_notice(enabled=False):
        jitted(1)
    assert capsys.readouterr().err == ""
    jitted2 = numba.njit(fresh_kernel)
    with compile_notice(enabled=True):
        jitted2(1)
        jitted2(2.0)  # a second compile in one command: still one line
    assert capsys.readouterr().err.count(COMPILE_NOTICE) == 1
    with compile_notice(enabled=True):
        jitted2(3)  # compiled already: nothing
    assert capsys.readouterr().err == ""


def test_calibrate_and_backtest_json_and_quiet(tmp_path):
    maven = str(ROOT / "src" / "pipesim" / "datasets" / "maven_crm")
    cal = ["calibrate", maven, "--format", "maven", "--as-of", "2017-07-01"]
    res = CliRunner().invoke(main, [*cal, "--out", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["settings"]["horizon_months"] == 12 and list(_numbers(doc)) == []
    estimates = [r for r in doc["calibration"] if r["item"] == "estimate"]
    assert estimates and all(isinstance(r["value"], float | int | None) for r in estimates)
    assert isinstance(doc["stages"][0]["conversion"], float)
    assert "Wrote" in res.stderr and "Wrote" not in res.stdout
    res = CliRunner().invoke(main, [*cal, "--out", str(tmp_path / "q"), "--quiet"])
    assert res.exit_code == 0 and res.output == "", res.output
    bt = ["backtest", maven, "--format", "maven", "--cutoff", "2017-08-01", "--trials", "50"]
    res = CliRunner().invoke(main, [*bt, "--out", str(tmp_path / "b"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["cutoff"] for r in doc["backtest"]] == ["2017-08-01", "overall"]
    assert isinstance(doc["backtest"][0]["p90"], float) and list(_numbers(doc)) == []
    res = CliRunner().invoke(main, [*bt, "--out", str(tmp_path / "bq"), "--quiet"])
    assert res.exit_code == 0 and res.output == "", res.output
