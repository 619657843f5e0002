"""Errors by cause: each its own type and exit code; the library names parameters, the CLI flags."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipesim
from conftest import ROOT
from pipesim.cli import cli_message, main
from pipesim.errors import (
    ClusterError,
    InputError,
    MissingDependencyError,
    PipesimError,
    ScenarioError,
)


def test_each_cause_has_its_type_and_exit_code():
    assert issubclass(InputError, ValueError) and InputError.exit_code == 2
    assert issubclass(ScenarioError, InputError) and ScenarioError.exit_code == 2
    assert issubclass(MissingDependencyError, ImportError)
    assert MissingDependencyError.exit_code == 3
    assert issubclass(ClusterError, ConnectionError) and ClusterError.exit_code == 4
    assert (
        len({InputError.exit_code, MissingDependencyError.exit_code, ClusterError.exit_code}) == 3
    )
    for cause in (InputError, ScenarioError, MissingDependencyError, ClusterError):
        assert issubclass(cause, PipesimError)
    # The public names keep working.
    assert pipesim.PipesimError is PipesimError and pipesim.ScenarioError is ScenarioError


def test_library_messages_name_the_parameter_and_the_cli_its_flag(demo):
    with pytest.raises(InputError, match="by=planet") as caught:
        pipesim.simulate(demo, trials=10, by="planet")
    assert caught.value.parameters == ("by",)
    assert "--by" not in str(caught.value)
    res = CliRunner().invoke(main, ["run", "--trials", "10", "--by", "planet", "--quiet"])
    assert res.exit_code == 2
    assert res.output.startswith("Error: --by planet: column(s) 'planet' are in neither")

    with pytest.raises(InputError, match=r"months=40: must be between 1") as caught:
        pipesim.target(demo, 1e6, months=40, trials=10)
    assert "--months" not in str(caught.value)
    res = CliRunner().invoke(main, ["target", "--revenue", "1e6", "--months", "40"])
    assert res.exit_code == 2 and "Error: --months 40: must be between 1" in res.output


def test_cli_spelling_of_parameters():
    def spelled(message, *parameters):
        return cli_message(InputError(message, parameters=parameters))

    assert spelled("by=region: no such column", "by") == "--by region: no such column"
    assert spelled("add force=True to overwrite", "force") == "add --force to overwrite"
    assert spelled("leave out address= and X", "address") == "leave out --address and X"
    assert spelled("horizon_months=0: must be positive", "horizon_months") == (
        "--horizon-months 0: must be positive"
    )
    assert spelled("choose as_of=.", "as_of") == "choose --as-of."
    # Only the parameters the error names are rewritten (a lever's segment is not one).
    assert spelled("conversion+0.1@region=North: bad", "levers") == (
        "conversion+0.1@region=North: bad"
    )


def _run_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process where ``module`` cannot be imported (not installed)."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from pipesim.cli import main; main(sys.argv[1:])"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def test_a_missing_optional_dependency_exits_3_with_the_install_command(tmp_path):
    pipesim.write_results(
        pipesim.simulate(pipesim.load_scenario(pipesim.demo_path()), trials=20), tmp_path / "r"
    )
    done = _run_without("matplotlib", "report", str(tmp_path / "r"))
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("Error: the charts: the matplotlib package is not installed")
    # From this clone: the editable command with its path, which pip can act on.
    assert f'pip install -e "{ROOT}[report]"' in done.stderr
    assert "or the packages alone: pip install matplotlib openpyxl" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r" / "report.html").exists()

    done = _run_without("matplotlib", "run", "--trials", "10", "--report", "--out",
                        str(tmp_path / "rr"))  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f'pip install -e "{ROOT}[report]"' in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rr").exists()  # checked before simulating: nothing written

    done = _run_without("distributed", "run", "--trials", "10", "--engine", "dask", "--out",
                        str(tmp_path / "d"))  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f'pip install -e "{ROOT}[dask]"' in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()


def test_the_install_hint_works_from_a_clone_and_from_an_index(tmp_path, monkeypatch):
    from pipesim import errors

    assert errors.install_hint("report") == (
        f'Install the report extra: pip install -e "{ROOT}[report]" '
        "(or the packages alone: pip install matplotlib openpyxl)."
    )
    # Installed from a wheel: no checkout around the package.
    monkeypatch.setattr(errors, "__file__", str(tmp_path / "site" / "pipesim" / "errors.py"))
    assert errors.install_hint("dask") == (
        'Install the dask extra: pip install "pipesim[dask]" '
        '(or the packages alone: pip install "dask[distributed]" tqdm).'
    )


# Strings in the library that may quote a flag: the HTML report's settings label names
# the command line option that made the breakdown (a report, not a message).
ALLOWED = {
    ("reports/html.py", "segments (--by)"),
    # The planning page prints the command that gives the figures it shows.
    ("app/page.py", "pipesim compare {folder}--lever {lever} --trials {trials} --seed {seed}"),
    ("app/page.py", "pipesim compare {folder}--trials {trials} --seed {seed}"),
}


def test_no_library_message_quotes_a_command_line_flag():
    package = ROOT / "src" / "pipesim"
    found = []
    for path in package.rglob("*.py"):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
            ):
                text = node.value
                for start in range(len(text) - 2):
                    if text[start : start + 2] == "--" and text[start + 2].isalpha():
                        if (path.relative_to(package).as_posix(), text) not in ALLOWED:
                            found.append(f"{path.relative_to(package)}:{node.lineno}: {text!r}")
                        break
    assert not found, "\n".join(found)


def test_the_scan_sees_flags(tmp_path):
    # The scan above reads string constants: a message quoting a flag is one.
    tree = ast.parse('raise InputError(f"--by {x}: bad")')
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert any(t.startswith("--by") for t in texts)


def test_root_is_the_checkout():
    assert (Path(ROOT) / "pyproject.toml").is_file()
