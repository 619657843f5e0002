"""pipesim: Monte Carlo forecasts of a sales pipeline.

>>> import pipesim
>>> scenario = pipesim.load_scenario("scenarios/demo")        # doctest: +SKIP
>>> result = pipesim.simulate(scenario, trials=10_000, seed=0)  # doctest: +SKIP
>>> result.summary(by="region")                                # doctest: +SKIP
"""

from pipesim.api import init_scenario, report, run_scenario, write_results
from pipesim.calibration.commands import backtest, calibrate
from pipesim.calibration.fit import Calibration
from pipesim.calibration.history import History, make_history
from pipesim.errors import PipesimError, PipesimWarning, ScenarioError
from pipesim.io.scenario_folder import load_scenario
from pipesim.plan.compare import compare
from pipesim.plan.health import health
from pipesim.plan.levers import Lever, apply_lever, apply_levers, parse_lever
from pipesim.plan.plan_result import PlanResult
from pipesim.plan.sensitivity import sensitivity
from pipesim.plan.target import target
from pipesim.scenario.demo import demo_path
from pipesim.scenario.scenario import Scenario, make_scenario
from pipesim.simulation.bench import BenchReport, bench
from pipesim.simulation.result import Result
from pipesim.simulation.simulate import simulate
from pipesim.version import __version__

__all__ = [
    "BenchReport",
    "Calibration",
    "History",
    "Lever",
    "PipesimError",
    "PipesimWarning",
    "PlanResult",
    "Result",
    "Scenario",
    "ScenarioError",
    "__version__",
    "apply_lever",
    "apply_levers",
    "backtest",
    "bench",
    "calibrate",
    "compare",
    "demo_path",
    "health",
    "init_scenario",
    "load_scenario",
    "make_history",
    "make_scenario",
    "parse_lever",
    "report",
    "run_scenario",
    "sensitivity",
    "simulate",
    "target",
    "write_results",
]
