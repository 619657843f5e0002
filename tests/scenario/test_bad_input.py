"""Every bad input: exit code 2, one clear message naming file, column, rows and fix; no output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from conftest import build, stages_frame
from pipesim.cli import main


def _edit(folder: Path, name: str, change) -> None:
    path = folder / f"{name}.parquet"
    frame = pd.read_parquet(path)
    frame = change(frame)
    frame.to_parquet(path)


def _run(folder: Path, out: Path, *extra: str):
    return CliRunner().invoke(
        main, ["run", str(folder), "--trials", "20", "--out", str(out), *extra]
    )


def _set(column, rows, value):
    def change(frame):
        frame = frame.copy()
        if (
            column in frame.columns
            and frame[column].dtype.kind in "iu"
            and isinstance(value, float)
        ):
            frame[column] = frame[column].astype(float)
        frame.loc[rows, column] = value
        return frame

    return change


CASES = [
    (
        "conversion above 1",
        "stages",
        _set("conversion", [1], 1.2),
        ["stages.parquet", "'conversion'", "row 2 (1.2)", "between 0 and 1"],
    ),
    (
        "conversion NaN",
        "stages",
        _set("conversion", [0], np.nan),
        ["stages.parquet", "'conversion'", "row 1", "between 0 and 1"],
    ),
    (
        "dwell_days zero",
        "stages",
        _set("dwell_days", [2], 0.0),
        ["stages.parquet", "'dwell_days'", "row 3 (0.0)", "in days (> 0)"],
    ),
    (
        "negative amount",
        "deals",
        _set("amount", [4, 9], -5.0),
        ["deals.parquet", "'amount'", "row 5 (-5.0)", "row 10 (-5.0)", "0 or more"],
    ),
    (
        "NaN amount",
        "deals",
        _set("amount", [0], np.nan),
        ["deals.parquet", "'amount'", "row 1 (nan)"],
    ),
    (
        "unknown stage",
        "deals",
        _set("stage", [6], "Negotiation"),
        ["deals.parquet", "'stage'", "row 7 ('Negotiation')", "Prospect", "not in the funnel"],
    ),
    (
        "duplicate deal_id",
        "deals",
        _set("deal_id", [3], "D00001"),
        ["deals.parquet", "'deal_id'", "row 4 ('D00001')", "duplicates"],
    ),
    (
        "missing column",
        "deals",
        lambda f: f.drop(columns=["amount"]),
        ["deals.parquet", "'amount' missing", "Add the column"],
    ),
    (
        "missing stages column",
        "stages",
        lambda f: f.drop(columns=["dwell_days"]),
        ["stages.parquet", "'dwell_days' missing"],
    ),
    (
        "empty funnel",
        "stages",
        lambda f: f.iloc[0:0],
        ["stages.parquet", "funnel is empty", "Add one row per stage"],
    ),
    (
        "horizon zero",
        "scenario",
        _set("horizon_months", [0], 0),
        ["scenario.parquet", "'horizon_months'", "0 is not a positive whole number"],
    ),
    (
        "horizon of centuries",
        "scenario",
        _set("horizon_months", [0], 5000),
        ["scenario.parquet", "'horizon_months'", "5,000 months is more than 240"],
    ),
    (
        "negative arrival leads",
        "arrivals",
        _set("leads", [2], -1.0),
        ["arrivals.parquet", "'leads'", "row 3 (-1.0)"],
    ),
    (
        "bad period",
        "arrivals",
        _set("period", [0], "January"),
        ["arrivals.parquet", "'period'", "row 1 ('January')", "YYYY-MM"],
    ),
]


@pytest.mark.parametrize("label, name, change, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_scenario_exits_2_with_message_and_writes_nothing(
    demo_copy, tmp_path, label, name, change, expected
):
    _edit(demo_copy, name, change)
    out = tmp_path / "out"
    result = _run(demo_copy, out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.output
    assert message.startswith("Error: ")
    for part in expected:
        assert part in message, (part, message)
    assert not out.exists()


def test_file_that_is_not_parquet(demo_copy, tmp_path):
    (demo_copy / "deals.parquet").write_text("deal_id,stage,amount\n1,Offer,10\n")
    result = _run(demo_copy, tmp_path / "out")
    assert result.exit_code == 2
    assert "deals.parquet" in result.output and "Parquet" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_folder_and_missing_file(tmp_path, demo_copy):
    result = _run(tmp_path / "nope", tmp_path / "out")
    assert result.exit_code == 2 and "no such scenario folder" in result.output
    (demo_copy / "stages.parquet").unlink()
    result = _run(demo_copy, tmp_path / "out")
    assert result.exit_code == 2 and "stages.parquet: missing" in result.output


@pytest.mark.parametrize("value", ["0", "-5"])
def test_trials_must_be_positive(tmp_path, value):
    result = CliRunner().invoke(main, ["run", "--trials", value, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--trials" in result.output and "positive" in result.output
    assert not (tmp_path / "o").exists()


def test_unknown_by_column(tmp_path):
    result = CliRunner().invoke(
        main, ["run", "--trials", "5", "--by", "country", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "'country'" in result.output and "region" in result.output
    assert not (tmp_path / "o").exists()


def test_simulate_rejects_bad_trials(demo):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(pipesim.PipesimError, match="trials"):
            pipesim.simulate(demo, trials=bad)


def test_stage_count_outside_3_to_6_is_a_warning_not_an_error(demo_copy, tmp_path):
    def seven(frame):
        base = frame[frame["region"].isna()]
        more = base.iloc[[0, 1, 2]].assign(stage=["Extra1", "Extra2", "Extra3"])
        return pd.concat([more, frame], ignore_index=True)

    _edit(demo_copy, "stages", seven)
    result = _run(demo_copy, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output and "7 stage(s)" in result.output
    with pytest.warns(pipesim.PipesimWarning, match="2 stage"):
        build(stages_frame([0.5, 0.5]))


def test_override_rows_are_checked():
    stages = stages_frame([0.5, 0.5, 0.5], region=None)
    bad = pd.concat(
        [
            stages,
            pd.DataFrame(
                {"stage": ["S9"], "conversion": [0.2], "dwell_days": [1.0], "region": ["North"]}
            ),
        ],
        ignore_index=True,
    )
    with pytest.raises(pipesim.ScenarioError, match=r"not in the funnel.*row 4 \('S9'\)"):
        build(bad)


def test_nothing_half_written_when_writing_fails(tmp_path, monkeypatch):
    """A failure while writing the second file leaves neither file nor temporaries."""
    import pyarrow.parquet as pq

    from pipesim.io import parquet

    calls = []
    real = pq.write_table

    def flaky(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(parquet.pq, "write_table", flaky)
    result = CliRunner().invoke(main, ["run", "--trials", "5", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and len(calls) == 2
    assert list((tmp_path / "o").iterdir()) == []


def test_an_arrival_amount_with_extra_zeros_is_refused():
    arrivals = pd.DataFrame({"period": ["2027-01", "2027-02"], "leads": [10.0, 10.0]})
    arrivals["amount"] = [1_000.0, 1e300]
    with pytest.raises(pipesim.ScenarioError) as err:
        build(stages_frame([0.5, 0.5, 0.5]), None, arrivals)
    message = str(err.value)
    assert "column 'amount': 1 row(s) are infinite or above 1,000,000,000,000,000" in message
    assert "row 2" in message and "extra zeros?" in message
