"""The public names of ``pipesim`` keep working after the layout change."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pipesim

# pipesim.__all__ before the packages were laid out by concern.
BEFORE = [
    "BenchReport", "Calibration", "History", "Lever", "PipesimError", "PipesimWarning",
    "PlanResult", "Result", "Scenario", "ScenarioError", "__version__", "apply_lever",
    "apply_levers", "backtest", "bench", "calibrate", "compare", "demo_path", "health",
    "init_scenario", "load_scenario", "make_history", "make_scenario", "parse_lever", "report",
    "run_scenario", "sensitivity", "simulate", "target", "write_results",
]  # fmt: skip


def test_every_name_is_still_there():
    assert sorted(pipesim.__all__) == sorted(BEFORE)
    for name in BEFORE:
        assert hasattr(pipesim, name), name


def test_functions_are_functions_not_the_packages_beside_them():
    # simulate, report and calibrate share names with modules or packages nearby.
    for name in BEFORE:
        value = getattr(pipesim, name)
        if name[0].islower() and name != "__version__":
            assert inspect.isfunction(value), name
        elif name != "__version__":
            assert inspect.isclass(value), name


def test_names_survive_importing_every_subpackage_first():
    # Importing subpackages by path must not rebind the public functions.
    code = (
        "import pipesim.simulation.simulate, pipesim.calibration.commands, pipesim.reports.html, "
        "pipesim.plan.target, pipesim.engines.registry, inspect; import pipesim; "
        "print(all(inspect.isfunction(getattr(pipesim, n)) "
        "for n in ('simulate', 'calibrate', 'report', 'target')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_datasets_and_version():
    import pipesim.datasets

    assert callable(pipesim.datasets.load_maven_crm)
    assert isinstance(pipesim.__version__, str) and pipesim.__version__
