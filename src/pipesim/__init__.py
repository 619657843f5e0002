"""pipesim: Monte Carlo forecasts of a sales pipeline.

>>> import pipesim
>>> scenario = pipesim.load_scenario("scenarios/demo")        # doctest: +SKIP
>>> result = pipesim.simulate(scenario, trials=10_000, seed=0)  # doctest: +SKIP
>>> result.summary(by="region")                                # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pipesim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from pipesim.api import init_scenario, run_scenario, write_results
from pipesim.benchmark import BenchReport, bench
from pipesim.demo import demo_path
from pipesim.errors import PipesimError, PipesimWarning, ScenarioError
from pipesim.model import Scenario, make_scenario
from pipesim.result import Result
from pipesim.simulate import simulate
from pipesim.storage import load_scenario

__all__ = [
    "BenchReport",
    "PipesimError",
    "PipesimWarning",
    "Result",
    "Scenario",
    "ScenarioError",
    "__version__",
    "bench",
    "demo_path",
    "init_scenario",
    "load_scenario",
    "make_scenario",
    "run_scenario",
    "simulate",
    "write_results",
]
