"""simulate(): validate the run settings, prepare the arrays, pick an engine, wrap the result."""

from __future__ import annotations

from collections.abc import Sequence

from pipesim.errors import PipesimError
from pipesim.model import Scenario
from pipesim.prepare import prepare
from pipesim.result import Result, _as_tuple

ENGINES = ("numba", "numpy")


def simulate(
    scenario: Scenario,
    trials: int = 10_000,
    seed: int = 0,
    *,
    by: str | Sequence[str] | None = None,
    engine: str = "numba",
) -> Result:
    """Run the Monte Carlo simulation of a scenario.

    Parameters
    ----------
    scenario : Scenario
        From :func:`pipesim.load_scenario` or :func:`pipesim.make_scenario`.
    trials : int
        Number of simulated futures (> 0).
    seed : int
        The one source of randomness: the same seed gives the same bits whatever
        the number of threads.
    by : str or list of str, optional
        Segment columns to break the results down by (``"region,product_line"``).
    engine : {"numba", "numpy"}
        ``numba`` (fast, parallel) or ``numpy`` (the reference implementation).

    Returns
    -------
    Result
        Per-trial revenue and won deals per period, with ``summary()`` and ``trials()``.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0:
        raise PipesimError(
            f"trials must be a positive whole number, got {trials!r}. Use e.g. --trials 10000."
        )
    if engine not in ENGINES:
        raise PipesimError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}.")
    cols = _as_tuple(by)
    prepared = prepare(scenario, cols)
    if engine == "numba":
        from pipesim.engines import local

        revenue, won = local.run(prepared, trials, seed)
    else:
        from pipesim.engines import reference

        revenue, won = reference.run(prepared, trials, seed)

    def rerun(other: tuple[str, ...]) -> Result:
        return simulate(scenario, trials, seed, by=other, engine=engine)

    return Result(
        scenario=scenario,
        trials_count=trials,
        seed=seed,
        engine=engine,
        periods=prepared.periods,
        by=cols,
        segments=prepared.by_values.reset_index(drop=True),
        revenue=revenue,
        won=won,
        notes=prepared.notes,
        _rerun=rerun,
    )
