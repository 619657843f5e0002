"""The README's calibrate example runs as written in a fresh folder, on the shipped history."""

from __future__ import annotations

import re
import shlex

import pandas as pd
from click.testing import CliRunner

import pipesim
from conftest import ROOT
from pipesim.cli import main
from pipesim.datasets import example_history_path, load_example_history
from pipesim.datasets.example_history import generate


def readme_commands(marker: str) -> list[list[str]]:
    """The commands of the README's bash block holding ``marker`` (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if marker in b)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


def test_the_readme_calibrate_example_runs_in_a_fresh_folder(tmp_path, monkeypatch):
    commands = readme_commands("pipesim calibrate deals.csv")
    assert [c[:2] for c in commands] == [
        ["pipesim", "example-history"], ["pipesim", "calibrate"], ["pipesim", "run"],
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for command in commands:
        res = CliRunner().invoke(main, command[1:])
        assert res.exit_code == 0, (command, res.output)
        assert "Warning" not in res.output, res.output
    assert (tmp_path / "my_scenario" / "stages.parquet").is_file()
    assert (tmp_path / "results" / "summary.parquet").is_file()


def test_the_shipped_history_is_the_generators_output():
    deals, events = generate()
    for name, table in (("deals", deals), ("events", events)):
        shipped = (example_history_path() / f"{name}.csv").read_text()
        assert shipped == table.to_csv(index=False), name


def test_calibrate_recovers_the_example_histories_model():
    from pipesim.datasets import example_history as model

    cal = pipesim.calibrate(load_example_history(), as_of="2017-07-01")
    stages = cal.scenario.stages.set_index("stage")
    se = cal.estimates[cal.estimates["parameter"] == "conversion"].set_index("stage")["se"]
    for name, truth in zip(model.STAGES, model.CONVERSION, strict=True):
        # Within 4 standard errors of the truth (se from the fit's curvature).
        assert abs(stages.loc[name, "conversion"] - truth) < 4 * se[name], name
        advance = model.ADVANCE[model.STAGES.index(name)][0]
        assert abs(stages.loc[name, "dwell_days"] / advance - 1) < 0.1, name


def test_example_history_refuses_to_overwrite_without_force(tmp_path):
    (tmp_path / "deals.csv").write_text("mine\n")
    res = CliRunner().invoke(main, ["example-history", str(tmp_path)])
    assert (
        res.exit_code == 2 and "already holds deals.csv" in res.output and "--force" in res.output
    )
    assert (tmp_path / "deals.csv").read_text() == "mine\n"
    res = CliRunner().invoke(main, ["example-history", str(tmp_path), "--force"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "deals.csv")) == 1500
