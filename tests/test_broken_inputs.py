"""One table of broken inputs across every command: exit 2, a message naming it, nothing written.

Each case breaks one file (or option), runs one command, and checks: exit code 2, the
expected fragment in the message, no traceback, and no new file anywhere under the
test's folder (the output folder included).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from conftest import ROOT
from pipesim.cli import main
from pipesim.datasets import example_history_path


def _set(column: str, rows: list[int], value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if isinstance(value, str) and frame[column].dtype.kind in "if":
            frame[column] = frame[column].astype(str)  # a column of text, as a typo makes
        elif isinstance(value, float) and frame[column].dtype.kind in "iu":
            frame[column] = frame[column].astype(float)
        frame.loc[rows, column] = value
        return frame

    return change


def _assign(**columns: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**columns)


def _drop(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.drop(columns=[column])


def _funnel_row(**values: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: pd.concat([f, f.iloc[[0]].assign(**values)], ignore_index=True)


# (label, table, how it is broken, a fragment of the message)
SCENARIO_BREAKS = [
    ("conversion above 1", "stages", _set("conversion", [1], 1.2), "row 2 (1.2)"),
    ("conversion missing", "stages", _set("conversion", [0], np.nan), "outside [0, 1] or missing"),
    ("conversion as words", "stages", _set("conversion", [0], "high"), "'conversion'"),
    ("dwell zero", "stages", _set("dwell_days", [2], 0.0), "in days (> 0)"),
    ("dwell negative", "stages", _set("dwell_days", [0], -3.0), "row 1 (-3.0)"),
    ("dwell_cv negative", "stages", _set("dwell_cv", [0], -1.0), "'dwell_cv'"),
    ("unknown law", "stages", _assign(dwell_dist="weibull"), "unknown distribution"),
    ("value_cv negative", "stages", _assign(value_cv=-0.5), "'value_cv'"),
    ("conversion_n negative", "stages", _assign(conversion_n=-5.0), "'conversion_n'"),
    (
        "loss_days in format 1",
        "stages",
        _assign(loss_days=40.0),
        "reserved since scenario format 2",
    ),
    ("loss_recorded in format 1", "stages", _assign(loss_recorded=0.5), "format 3"),
    ("no dwell_days", "stages", _drop("dwell_days"), "'dwell_days' missing"),
    ("no stage column", "stages", _drop("stage"), "'stage' missing"),
    ("empty funnel", "stages", lambda f: f.iloc[0:0], "the funnel is empty"),
    ("stage twice", "stages", _funnel_row(), "repeat a stage of the funnel"),
    ("override of no stage", "stages", _funnel_row(stage="Nowhere", region="North"), "'Nowhere'"),
    ("amount negative", "deals", _set("amount", [4], -5.0), "row 5 (-5.0)"),
    ("amount missing", "deals", _set("amount", [0], np.nan), "negative or missing"),
    ("amount extra zeros", "deals", _set("amount", [2], 1e16), "extra zeros?"),
    ("deal in no stage", "deals", _set("stage", [6], "Negotiation"), "'Negotiation'"),
    ("deal without stage", "deals", _set("stage", [5], None), "not in the funnel"),
    ("deal_id twice", "deals", _set("deal_id", [3], "D00001"), "repeat an earlier deal_id"),
    ("deal without id", "deals", _set("deal_id", [5], None), "have no deal_id"),
    ("no amount column", "deals", _drop("amount"), "'amount' missing"),
    ("no deal_id column", "deals", _drop("deal_id"), "'deal_id' missing"),
    ("age negative", "deals", _set("days_in_stage", [1], -2.0), "'days_in_stage'"),
    ("leads negative", "arrivals", _set("leads", [2], -1.0), "row 3 (-1.0)"),
    ("period not a month", "arrivals", _set("period", [0], "January"), "YYYY-MM"),
    ("lead amount negative", "arrivals", _set("amount", [1], -10.0), "mean amount of a new lead"),
    ("amount_cv negative", "arrivals", _assign(amount_cv=-1.0), "'amount_cv'"),
    ("leads_n negative", "arrivals", _assign(leads_n=-1.0), "'leads_n'"),
    ("no leads column", "arrivals", _drop("leads"), "'leads' missing"),
    ("horizon zero", "scenario", _set("horizon_months", [0], 0), "positive whole number"),
    ("as_of not a date", "scenario", _assign(as_of="yesterday"), "'yesterday' is not a date"),
    ("two settings rows", "scenario", lambda f: pd.concat([f, f]), "exactly one"),
    ("unknown format", "scenario", _assign(format_version=99), "format_version 99"),
    ("no as_of column", "scenario", _drop("as_of"), "'as_of' missing"),
]


def _not_parquet(folder: Path) -> None:
    (folder / "deals.parquet").write_text("deal_id,stage,amount\n1,Offer,10\n")


def _no_stages(folder: Path) -> None:
    (folder / "stages.parquet").unlink()


def _csv_stages(folder: Path) -> None:
    path = folder / "stages.parquet"
    pd.read_parquet(path).to_csv(folder / "stages.csv", index=False)
    path.unlink()


FILE_BREAKS = [
    ("deals not parquet", _not_parquet, "Parquet"),
    ("stages missing", _no_stages, "stages.parquet: missing"),
    ("stages as csv", _csv_stages, "stages.csv"),
]

# Every command that reads a scenario folder, with what else it needs to get that far.
SCENARIO_COMMANDS = {
    "run": ["run", "{scenario}", "--trials", "5", "--out", "{out}"],
    "show": ["show", "{scenario}"],
    "target": ["target", "{scenario}", "--revenue", "1e6", "--trials", "5", "--out", "{out}"],
    "compare": ["compare", "{scenario}", "--lever", "leads*1.1", "--trials", "5", "--out", "{out}"],
    "sensitivity": ["sensitivity", "{scenario}", "--trials", "5", "--out", "{out}"],
    "health": ["health", "{scenario}", "--revenue", "1e6", "--trials", "5", "--out", "{out}"],
    "scenario export": ["scenario", "export", "{scenario}", "{out}/plan.xlsx"],
    "explain": ["explain", "{scenario}", "{scenario}", "--trials", "5", "--out", "{out}"],
}


def _scenario_case(change: Callable[[Path], None]) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        folder = tmp / "scenario"
        shutil.copytree(pipesim.demo_path(), folder)
        change(folder)
        return {"scenario": str(folder)}

    return setup


def _table_change(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]):
    def apply(folder: Path) -> None:
        path = folder / f"{name}.parquet"
        change(pd.read_parquet(path)).to_parquet(path)

    return apply


# --- every other command: options, histories, results folders, workbooks -----------------


def _demo(tmp: Path) -> dict[str, str]:
    return {"scenario": str(pipesim.demo_path())}


def _history(change: Callable[[pd.DataFrame], pd.DataFrame] | None = None):
    def setup(tmp: Path) -> dict[str, str]:
        deals = pd.read_csv(example_history_path() / "deals.csv")
        if change is not None:
            deals = change(deals)
        deals.to_csv(tmp / "deals.csv", index=False)
        shutil.copy(example_history_path() / "events.csv", tmp / "events.csv")
        return {"history": str(tmp / "deals.csv"), "events": str(tmp / "events.csv")}

    return setup


def _results(tmp: Path) -> dict[str, str]:
    out = tmp / "results"
    res = CliRunner().invoke(main, ["run", "--trials", "20", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    (tmp / "afile").write_text("")
    return {"results": str(out), "afile": str(tmp / "afile")}


def _broken_results(name: str, how: str):
    def setup(tmp: Path) -> dict[str, str]:
        paths = _results(tmp)
        path = Path(paths["results"]) / name
        path.unlink() if how == "remove" else path.write_text("not parquet")
        return paths

    return setup


def _workbook(change: Callable[[Path], None] | None = None):
    def setup(tmp: Path) -> dict[str, str]:
        book = tmp / "plan.xlsx"
        res = CliRunner().invoke(main, ["scenario", "export", str(pipesim.demo_path()), str(book)])
        assert res.exit_code == 0, res.output
        if change is not None:
            change(book)
        return {"book": str(book)}

    return setup


def _edit_sheet(sheet: str, cell: str, value: object):
    def change(book: Path) -> None:
        import openpyxl

        wb = openpyxl.load_workbook(book)
        wb[sheet][cell] = value
        wb.save(book)

    return change


def _drop_sheet(sheet: str):
    def change(book: Path) -> None:
        import openpyxl

        wb = openpyxl.load_workbook(book)
        del wb[sheet]
        wb.save(book)

    return change


def _existing_scenario(tmp: Path) -> dict[str, str]:
    paths = _workbook()(tmp)
    shutil.copytree(pipesim.demo_path(), tmp / "taken")
    return {**paths, "taken": str(tmp / "taken")}


def _file(text: str, name: str = "file.txt"):
    def setup(tmp: Path) -> dict[str, str]:
        (tmp / name).write_text(text)
        return {"file": str(tmp / name)}

    return setup


def _existing_history(tmp: Path) -> dict[str, str]:
    (tmp / "here").mkdir()
    (tmp / "here" / "deals.csv").write_text("mine\n")
    return {"here": str(tmp / "here")}


def _two_snapshots(stage: str | None = None, as_of: str | None = None):
    """Two copies of the demo: NEW's first stage renamed ``stage``, OLD's as_of moved."""

    def setup(tmp: Path) -> dict[str, str]:
        old, new = tmp / "old", tmp / "new"
        shutil.copytree(pipesim.demo_path(), old)
        shutil.copytree(pipesim.demo_path(), new)
        if stage is not None:
            first = pd.read_parquet(new / "stages.parquet")["stage"].iloc[0]
            for table in ("stages", "deals"):
                path = new / f"{table}.parquet"
                frame = pd.read_parquet(path)
                frame.assign(stage=frame["stage"].replace({first: stage})).to_parquet(path)
        if as_of is not None:
            path = old / "scenario.parquet"
            pd.read_parquet(path).assign(as_of=pd.Timestamp(as_of)).to_parquet(path)
        return {"old": str(old), "new": str(new)}

    return setup


EXPLAIN = ["explain", "{old}", "{new}", "--trials", "5", "--out", "{out}"]
RUN = ["run", "--trials", "5", "--out", "{out}"]
CAL = ["calibrate", "{history}", "--events", "{events}", "--out", "{out}/sc"]
SNAP = ["snapshot", "{history}", "--events", "{events}", "--out", "{out}/snaps"]
BT = ["backtest", "{history}", "--events", "{events}", "--out", "{out}", "--trials", "20"]
TARGET = ["target", "--trials", "5", "--out", "{out}"]
HEALTH = ["health", "--trials", "5", "--out", "{out}"]

# (label, setup, arguments, fragment)
OTHER_CASES = [
    # run's options
    ("run trials 0", _demo, [*RUN[:1], "--trials", "0"], "--trials"),
    ("run trials text", _demo, ["run", "--trials", "many"], "whole number or 'auto', got 'many'"),
    ("run precision without auto", _demo, [*RUN[:1], "--precision", "0.01"], "--trials 'auto'"),
    (
        "run precision out of range",
        _demo,
        [*RUN[:1], "--trials", "auto", "--precision", "2"],
        "--precision",
    ),
    (
        "run max trials 0",
        _demo,
        [*RUN[:1], "--trials", "auto", "--max-trials", "0"],
        "--max-trials",
    ),
    ("run seed negative", _demo, [*RUN, "--seed", "-1"], "0<=x<=9223372036854775807"),
    ("run seed too big", _demo, [*RUN, "--seed", str(2**63)], "--seed"),
    ("run by unknown", _demo, [*RUN, "--by", "planet"], "--by planet"),
    ("run engine unknown", _demo, [*RUN, "--engine", "warp"], "'warp' is not one of"),
    ("run threads 0", _demo, [*RUN, "--threads", "0"], "--threads"),
    ("run target negative", _demo, [*RUN, "--target", "-5"], "--target"),
    ("run address without dask", _demo, [*RUN, "--address", "tcp://h:1"], "--address"),
    (
        "run deal odds on the fast engine",
        _demo,
        [*RUN, "--engine", "fast", "--deal-odds"],
        "--engine 'fast' with --deal-odds",
    ),
    ("run out is a file", _results, ["run", "--trials", "5", "--out", "{afile}"], "not a folder"),
    ("run no such scenario", _demo, ["run", "{out}/nope", "--out", "{out}"], "no such scenario"),
    ("run unknown option", _demo, [*RUN, "--colour"], "No such option"),
    # planning options
    ("target revenue 0", _demo, [*TARGET, "--revenue", "0"], "positive revenue target"),
    ("target revenue negative", _demo, [*TARGET, "--revenue", "-1"], "--revenue -1"),
    ("target revenue nan", _demo, [*TARGET, "--revenue", "nan"], "--revenue nan"),
    # Without --owner (whose quota would be the target), --revenue is needed.
    ("target no revenue", _demo, TARGET, "give a positive revenue target (or --owner and"),
    (
        "target confidence 1.5",
        _demo,
        [*TARGET, "--revenue", "1e6", "--confidence", "1.5"],
        "between 0 and 1",
    ),
    ("target months 40", _demo, [*TARGET, "--revenue", "1e6", "--months", "40"], "--months 40"),
    ("target months 0", _demo, [*TARGET, "--revenue", "1e6", "--months", "0"], "--months"),
    ("target by unknown", _demo, [*TARGET, "--revenue", "1e6", "--by", "planet"], "planet"),
    (
        "health confidence 0",
        _demo,
        [*HEALTH, "--revenue", "1e6", "--confidence", "0"],
        "--confidence 0",
    ),
    (
        "health actuals missing",
        _demo,
        [*HEALTH, "--revenue", "1e6", "--actuals", "{out}/a.pq"],
        "a.pq",
    ),
    (
        "health actuals not parquet",
        _file("period,stage\n"),
        [*HEALTH, "--revenue", "1e6", "--actuals", "{file}"],
        "file.txt",
    ),
    (
        "compare lever gibberish",
        _demo,
        ["compare", "--lever", "faster", "--out", "{out}"],
        "faster",
    ),
    (
        "compare lever no stage",
        _demo,
        ["compare", "--lever", "conversion:Nowhere+0.1", "--out", "{out}"],
        "Nowhere",
    ),
    (
        "compare lever above 1",
        _demo,
        ["compare", "--lever", "conversion=1.5", "--out", "{out}"],
        "conversion=1.5",
    ),
    (
        "compare lever segment",
        _demo,
        ["compare", "--lever", "leads*2@planet=Mars", "--out", "{out}"],
        "planet",
    ),
    ("sensitivity step 0", _demo, ["sensitivity", "--step", "0", "--out", "{out}"], "--step 0"),
    (
        "sensitivity step 1.5",
        _demo,
        ["sensitivity", "--step", "1.5", "--out", "{out}"],
        "between 0 and 1",
    ),
    # explain
    ("explain different funnels", _two_snapshots(stage="Scouted"), EXPLAIN, "only in"),
    ("explain OLD after NEW", _two_snapshots(as_of="2027-02-01"), EXPLAIN, "Swap them"),
    ("explain order unknown", _two_snapshots(), [*EXPLAIN, "--order", "won,later"], "'later'"),
    ("explain order twice", _two_snapshots(), [*EXPLAIN, "--order", "new,new"], "twice"),
    ("explain window not one", _two_snapshots(), [*EXPLAIN, "--window", "Q5"], "--window"),
    ("explain no OLD", _two_snapshots(), ["explain", "{out}/x", "{new}", "--out", "{out}"], "x"),
    # bench, show, init, example-history
    ("bench deals 0", _demo, ["bench", "--deals", "0"], "--deals"),
    ("bench months 0", _demo, ["bench", "--months", "0"], "--months"),
    ("bench engine numpy", _demo, ["bench", "--engine", "numpy"], "'numpy' is not one of"),
    ("show deal rows negative", _demo, ["show", "--deal-rows", "-1"], "--deal-rows"),
    ("show no such folder", _demo, ["show", "{out}/nope"], "no such scenario"),
    ("init over a scenario", _demo, ["init", "{scenario}"], "--force"),
    ("example history over files", _existing_history, ["example-history", "{here}"], "--force"),
    # calibrate
    (
        "calibrate no history",
        _history(),
        [*CAL[:1], "{out}/none.csv", "--as-of", "2017-07-01", "--out", "{out}/sc"],
        "none.csv",
    ),
    ("calibrate as_of not a date", _history(), [*CAL, "--as-of", "July"], "July"),
    ("snapshot no as_of", _history(), SNAP, "Missing option '--as-of'"),
    (
        "snapshot one as_of not a date",
        _history(),
        [*SNAP, "--as-of", "2017-06-01", "--as-of", "July"],
        "July",
    ),
    ("calibrate no as_of", _history(), CAL, "Missing option '--as-of'"),
    (
        "calibrate horizon 0",
        _history(),
        [*CAL, "--as-of", "2017-07-01", "--horizon-months", "0"],
        "--horizon-months",
    ),
    (
        "calibrate unknown format",
        _history(),
        [*CAL, "--as-of", "2017-07-01", "--format", "sap"],
        "'sap' is not one of",
    ),
    (
        "calibrate maven on a file",
        _history(),
        [
            "calibrate",
            "{history}",
            "--out",
            "{out}/sc",
            "--as-of",
            "2017-07-01",
            "--format",
            "maven",
        ],
        "reads a folder holding sales_pipeline.csv",
    ),
    (
        "calibrate unknown segment",
        _history(),
        [*CAL, "--as-of", "2017-07-01", "--segments", "planet"],
        "planet",
    ),
    (
        "calibrate no status column",
        _history(lambda d: d.drop(columns=["status"])),
        [*CAL, "--as-of", "2017-07-01"],
        "status",
    ),
    (
        "calibrate no deal_id column",
        _history(lambda d: d.drop(columns=["deal_id"])),
        [*CAL, "--as-of", "2017-07-01"],
        "deal_id",
    ),
    (
        "calibrate empty history",
        _history(lambda d: d.iloc[0:0]),
        [*CAL, "--as-of", "2017-07-01"],
        "deals.csv",
    ),
    (
        "calibrate events missing",
        _history(),
        [*CAL[:2], "--events", "{out}/ev.csv", "--as-of", "2017-07-01", "--out", "{out}/sc"],
        "ev.csv",
    ),
    (
        "calibrate out is a file",
        _results,
        ["calibrate", "{afile}", "--as-of", "2017-07-01", "--out", "{afile}"],
        "not a folder",
    ),
    # backtest
    ("backtest no cutoff", _history(), BT, "cutoff"),
    ("backtest cutoff not a date", _history(), [*BT, "--cutoff", "someday"], "someday"),
    ("backtest span without ..", _history(), [*BT, "--cutoffs", "2017-01"], "FROM..TO"),
    (
        "backtest horizon 0",
        _history(),
        [*BT, "--cutoff", "2017-03-01", "--horizon-months", "0"],
        "--horizon-months",
    ),
    (
        "backtest metric unknown",
        _history(),
        [*BT, "--cutoff", "2017-03-01", "--metric", "profit"],
        "'profit' is not one of",
    ),
    (
        "backtest no history",
        _history(),
        ["backtest", "{out}/none.csv", "--cutoff", "2017-03-01", "--out", "{out}"],
        "none.csv",
    ),
    # report
    ("report no folder", _demo, ["report", "{out}/nothing"], "nothing"),
    (
        "report summary missing",
        _broken_results("summary.parquet", "remove"),
        ["report", "{results}"],
        "summary.parquet",
    ),
    (
        "report summary not parquet",
        _broken_results("summary.parquet", "garble"),
        ["report", "{results}"],
        "cannot be read as a Parquet file",
    ),
    (
        "report trials not parquet",
        _broken_results("trials.parquet", "garble"),
        ["report", "{results}"],
        "trials.parquet",
    ),
    ("report png is a file", _results, ["report", "{results}", "--png", "{afile}"], "--png"),
    ("report target negative", _results, ["report", "{results}", "--target", "-1"], "--target"),
    # scenario import
    (
        "import no workbook",
        _demo,
        ["scenario", "import", "{out}/none.xlsx", "{out}/sc"],
        "none.xlsx",
    ),
    (
        "import not a workbook",
        _file("plain text", "book.xlsx"),
        ["scenario", "import", "{file}", "{out}/sc"],
        "book.xlsx",
    ),
    (
        "import no stages sheet",
        _workbook(_drop_sheet("stages")),
        ["scenario", "import", "{book}", "{out}/sc"],
        "stages",
    ),
    (
        "import conversion text",
        _workbook(_edit_sheet("stages", "B2", "high")),
        ["scenario", "import", "{book}", "{out}/sc"],
        "conversion",
    ),
    (
        "import amount negative",
        _workbook(_edit_sheet("deals", "C3", -4)),
        ["scenario", "import", "{book}", "{out}/sc"],
        "amount",
    ),
    (
        "import over a scenario",
        _existing_scenario,
        ["scenario", "import", "{book}", "{taken}"],
        "--force",
    ),
    ("export no folder", _demo, ["scenario", "export", "{out}/none", "{out}/x.xlsx"], "none"),
    ("app no scenario folder", _demo, ["app", "{out}/none", "--no-browser", "--port", "0"], "none"),
    ("app port out of range", _demo, ["app", "--no-browser", "--port", "70000"], "70000"),
]

CASES = (
    [
        pytest.param(
            _scenario_case(_table_change(table, change)),
            SCENARIO_COMMANDS[command],
            fragment,
            id=f"{command}: {label}",
        )
        for label, table, change, fragment in SCENARIO_BREAKS
        for command in SCENARIO_COMMANDS
    ]
    + [
        pytest.param(
            _scenario_case(change), SCENARIO_COMMANDS[command], fragment, id=f"{command}: {label}"
        )
        for label, change, fragment in FILE_BREAKS
        for command in SCENARIO_COMMANDS
    ]
    + [
        pytest.param(setup, args, fragment, id=label)
        for label, setup, args, fragment in OTHER_CASES
    ]
)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() or p.is_dir()}


@pytest.mark.parametrize("setup, args, fragment", CASES)
def test_a_broken_input_exits_2_names_the_problem_and_writes_nothing(
    tmp_path, setup, args, fragment
):
    pytest.importorskip("openpyxl")
    paths = {"out": str(tmp_path / "out"), **setup(tmp_path)}
    before = _files(tmp_path)
    res = CliRunner().invoke(main, [a.format(**paths) for a in args])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    assert "Error" in res.stderr and fragment in res.output, res.output
    assert res.stdout == "", res.stdout  # the message goes to stderr, nothing else is printed
    assert _files(tmp_path) == before  # no new file or folder, the output folder included


def test_the_table_covers_every_command_with_120_cases_or_more():
    from test_cli_options import COMMANDS

    assert len(CASES) >= 120
    run = {tuple(c.values[1][:2]) for c in CASES}
    named = {
        " ".join(args[:2]) if args[0] == "scenario" else args[0]
        for args in (c.values[1] for c in CASES)
    }
    assert named == set(COMMANDS), set(COMMANDS) - named
    assert run


def test_a_third_party_warning_during_a_command_is_shown_once_and_the_command_ends(tmp_path):
    # A library warning raised while `pipesim run` works (here: while it prints) is passed on
    # once, after the command's own warnings, and the run still writes its results.
    code = (
        "import sys, warnings\n"
        "from pipesim import api\n"
        "from pipesim.cli import main\n"
        "real = api.format_run\n"
        "def noisy(result):\n"
        "    warnings.warn('Glyph 9731 missing from font', UserWarning)\n"
        "    return real(result)\n"
        "api.format_run = noisy\n"
        "main(sys.argv[1:])\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            code,
            "run",
            "--trials",
            "20",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Glyph 9731 missing from font") == 1
    assert "Traceback" not in done.stderr
    assert (tmp_path / "o" / "summary.parquet").is_file()
