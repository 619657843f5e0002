"""Scenarios through one Excel workbook and back: the same tables as pipesim reads them.

A round trip is judged on what pipesim reads (``load_scenario``: every table, the
settings, the levers) and on a run: the same seed gives the same summary, bit for bit.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.io import scenario_folder, workbook
from pipesim.plan.levers import levers_from_frame

openpyxl = pytest.importorskip("openpyxl")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def round_trip(folder, tmp_path):
    """Export ``folder`` to a workbook and import it as a new folder (both through the CLI)."""
    book, back = tmp_path / "book.xlsx", tmp_path / "back"
    res = invoke("scenario", "export", folder, book)
    assert res.exit_code == 0, res.output
    res = invoke("scenario", "import", book, back)
    assert res.exit_code == 0, res.output
    assert "Warning" not in res.output
    return book, back


def assert_same_scenario(a, b):
    x, y = scenario_folder.load_scenario(a), scenario_folder.load_scenario(b)
    for name in ("stages", "deals", "arrivals"):
        pd.testing.assert_frame_equal(getattr(x, name), getattr(y, name), check_exact=True)
    for field in ("as_of", "horizon_months", "name", "currency", "calibrated", "format_version"):
        assert getattr(x, field) == getattr(y, field), field
    return x, y


def assert_same_run(a, b, tmp_path):
    summaries = []
    for k, folder in enumerate((a, b)):
        out = tmp_path / f"run{k}"
        res = invoke("run", folder, "--trials", 200, "--seed", 7, "--quiet", "--out", out)
        assert res.exit_code == 0, res.output
        summaries.append(pd.read_parquet(out / "summary.parquet"))
    pd.testing.assert_frame_equal(*summaries, check_exact=True)
    for col in ("mean", "p10", "p50", "p90"):  # bit for bit, not merely equal
        assert summaries[0][col].to_numpy().tobytes() == summaries[1][col].to_numpy().tobytes()


def test_the_demo_and_its_levers_round_trip(tmp_path):
    demo = tmp_path / "demo"
    assert invoke("init", demo).exit_code == 0
    levers = pd.DataFrame(
        {
            "variant": ["more leads", "better offers", "better offers"],
            "quantity": ["leads", "conversion", "dwell"],
            "how": ["scale", "add", "scale"],
            "value": [1.2, 0.05, 0.9],
            "stage": [None, "Offer", "Visited"],
            "region": [None, "North", None],
        }
    )
    levers.to_parquet(demo / "levers.parquet")
    book, back = round_trip(demo, tmp_path)
    sheets = openpyxl.load_workbook(book, read_only=True).sheetnames
    assert sheets == ["stages", "deals", "arrivals", "scenario", "levers"]
    assert_same_scenario(demo, back)
    read = [pd.read_parquet(f / "levers.parquet") for f in (demo, back)]
    assert levers_from_frame(read[0]) == levers_from_frame(read[1])
    assert_same_run(demo, back, tmp_path)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A calibrated 2-stage scenario with loss clocks: inf in loss_days, empty cells, segments."""
    from crm_synth import pipeline_history

    deals, events, export = pipeline_history(
        seed=3, n=800, conversion=(0.995, 0.5), dwell=(10, 20), segments=["east", "west"]
    )
    folder = tmp_path_factory.mktemp("cal") / "calibrated"
    history = pipesim.make_history(deals, events, stages=["S1", "S2"])
    pipesim.calibrate(history, as_of=export.date(), out=folder, segments="region")
    return folder


def test_a_calibrated_scenario_round_trips_with_its_mark(calibrated, tmp_path):
    stages = pd.read_parquet(calibrated / "stages.parquet")
    assert np.isinf(stages["loss_days"]).any() and stages["value_cv"].isna().any()
    _, back = round_trip(calibrated, tmp_path)
    _, y = assert_same_scenario(calibrated, back)  # no funnel-size warning either way
    assert y.calibrated and len(y.funnel) == 2
    assert_same_run(calibrated, back, tmp_path)


def test_whole_numbers_missing_values_and_long_floats_read_the_same(demo_copy, tmp_path):
    deals = pd.read_parquet(demo_copy / "deals.parquet").head(200)
    deals["deal_id"] = np.arange(10**9, 10**9 + 200, dtype=np.int64)  # whole-number ids
    region = deals["region"].astype(object)
    region[::7] = None
    region[3::7] = np.nan  # None and NaN: both missing
    deals["region"] = region
    deals["cohort"] = np.int64(2024) + np.arange(200) % 3  # a whole-number segment
    deals["score"] = np.where(np.arange(200) % 5 == 0, np.nan, np.arange(200) / 3)
    deals["amount"] = deals["amount"] + 0.1 + 0.2  # doubles that need 17 digits
    deals.to_parquet(demo_copy / "deals.parquet")
    settings = pd.read_parquet(demo_copy / "scenario.parquet")
    settings["as_of"] = [pd.Timestamp("2027-01-01")]  # a timestamp, not a date
    settings.to_parquet(demo_copy / "scenario.parquet")
    _, back = round_trip(demo_copy, tmp_path)
    assert_same_scenario(demo_copy, back)
    assert pd.read_parquet(back / "deals.parquet")["deal_id"].dtype == np.int64
    assert_same_run(demo_copy, back, tmp_path)


def test_cells_keep_every_digit_and_their_type(tmp_path):
    rng = np.random.default_rng(0)
    doubles = np.concatenate([rng.uniform(0, 1, 300), rng.lognormal(8, 3, 300), [5e-324, 1e308]])
    table = pd.DataFrame(
        {
            "x": pd.Series([*doubles, math.inf, -math.inf, math.nan], dtype=float),
            "text": pd.Series(["=not a formula", "inf", None] + ["a"] * 602, dtype=object),
            "whole": pd.Series([2**62, -(10**15), 3] + [0] * 602, dtype=object),
            "day": pd.Series([dt.date(2027, 1, 31)] + [None] * 604, dtype=object),
        }
    )
    workbook.write_workbook(tmp_path / "t.xlsx", {"stages": table, "deals": table,
                                                  "scenario": table})  # fmt: skip
    sheets, _ = workbook.read_workbook(tmp_path / "t.xlsx")
    back = sheets["stages"]
    x = back["x"].to_numpy()
    assert [type(v) for v in x[:602]] == [float] * 602
    assert np.array_equal(x[:602].astype(float), doubles)  # exact, every one
    assert list(x[602:]) == ["inf", "-inf", None]  # inf as text: pipesim reads it as inf
    assert list(back["text"][:3]) == ["=not a formula", "inf", None]
    assert list(back["whole"][:3]) == [2**62, -(10**15), 3]
    assert back["day"][0] == dt.datetime(2027, 1, 31)


def test_import_refuses_to_overwrite_a_scenario_without_force(tmp_path):
    demo = tmp_path / "demo"
    invoke("init", demo)
    book = tmp_path / "book.xlsx"
    assert invoke("scenario", "export", demo, book).exit_code == 0
    target = tmp_path / "target"
    invoke("init", target)
    pd.DataFrame({"variant": ["v"], "quantity": ["leads"], "how": ["scale"], "value": [2.0]}
                 ).to_parquet(target / "levers.parquet")  # fmt: skip
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    res = invoke("scenario", "import", book, target)
    assert res.exit_code == 2, res.output
    assert "already holds" in res.output and "--force" in res.output
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    res = invoke("scenario", "import", book, target, "--force")
    assert res.exit_code == 0, res.output
    # The workbook has no levers sheet: the old levers are removed, and the user told.
    assert "Warning" in res.output and "levers.parquet: removed" in res.output
    assert not (target / "levers.parquet").exists()
    assert_same_scenario(demo, target)


def _edit(book, sheet, cell, value, tmp_path):
    wb = openpyxl.load_workbook(book)
    if cell is None:
        del wb[sheet]
    else:
        wb[sheet][cell] = value
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)
    return edited


@pytest.fixture(scope="module")
def demo_book(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("book")
    invoke("init", tmp / "demo")
    levers = pd.DataFrame({"variant": ["v"], "quantity": ["leads"], "how": ["scale"],
                           "value": [1.5]})  # fmt: skip
    levers.to_parquet(tmp / "demo" / "levers.parquet")
    invoke("scenario", "export", tmp / "demo", tmp / "demo.xlsx")
    return tmp / "demo.xlsx"


@pytest.mark.parametrize(
    ("sheet", "cell", "value", "needles"),
    [
        ("arrivals", None, None, None),  # arrivals are optional: this one imports
        ("deals", None, None, ["no sheet 'deals'", "sheets: 'stages', 'arrivals'"]),
        ("deals", "C1", "amout", ["sheet 'deals'", "'amount' missing", "amout"]),
        ("deals", "C4", "abc", ["sheet 'deals', column 'amount'", "not numbers", "row 3 ('abc')",
                                "row 1 is the sheet's row 2"]),
        ("stages", "B3", "half", ["sheet 'stages', column 'conversion'", "row 2 ('half')"]),
        ("scenario", "B2", "twelve", ["sheet 'scenario', column 'horizon_months'", "'twelve'"]),
        ("deals", "H5", 3, ["sheet 'deals', column H", "no name in the first row"]),
        ("levers", "D2", "lots", ["sheet 'levers', column 'value'", "row 1 ('lots')"]),
        ("levers", "B2", "price", ["sheet 'levers': row 1", "quantity 'price' unknown"]),
    ],
)  # fmt: skip
def test_a_bad_workbook_exits_2_naming_sheet_column_and_row(
    demo_book, tmp_path, sheet, cell, value, needles
):
    edited = _edit(demo_book, sheet, cell, value, tmp_path)
    out = tmp_path / "out"
    res = invoke("scenario", "import", edited, out)
    if needles is None:
        assert res.exit_code == 0, res.output
        assert not len(pd.read_parquet(out / "arrivals.parquet"))
        return
    assert res.exit_code == 2, res.output
    for needle in needles:
        assert needle in res.output, (needle, res.output)
    assert "Traceback" not in res.output and not out.exists()


def test_a_file_that_is_not_a_workbook_exits_2(tmp_path):
    bad = tmp_path / "deals.xlsx"
    bad.write_text("deal_id,stage\n")
    res = invoke("scenario", "import", bad, tmp_path / "out")
    assert res.exit_code == 2 and "cannot be read as an Excel workbook" in res.output
    res = invoke("scenario", "import", tmp_path / "nothing.xlsx", tmp_path / "out")
    assert res.exit_code == 2 and "no such file" in res.output


def test_without_openpyxl_the_commands_name_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['openpyxl'] = None; "
        "from pipesim.cli import main; main(sys.argv[1:])"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "scenario", "export", str(pipesim.demo_path()),
         str(tmp_path / "x.xlsx")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert "pip install matplotlib openpyxl" in res.stderr and not (tmp_path / "x.xlsx").exists()
