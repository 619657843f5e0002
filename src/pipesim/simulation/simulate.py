"""simulate(): validate the run settings, prepare the arrays, pick an engine, wrap the result."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from pipesim.engines import registry
from pipesim.errors import InputError, PipesimWarning
from pipesim.progress import Progress
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.result import Result, by_columns

MAX_SEED = 2**63 - 1  # seeds are whole numbers in [0, MAX_SEED]


def check_seed(seed: object) -> None:
    """Refuse a seed outside [0, 2^63 - 1] (it would wrap into another one silently)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(
            f"seed={seed!r}: must be a whole number from 0 to {MAX_SEED:,} (2^63 - 1).",
            parameters=("seed",),
        )


def simulate(
    scenario: Scenario,
    trials: int = 10_000,
    seed: int = 0,
    *,
    by: str | Sequence[str] | None = None,
    engine: str = "numba",
    address: str | None = None,
    client: Any = None,
    progress: bool = False,
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
    engine : {"numba", "numpy", "dask", "fast", "dask-fast"}
        ``numba`` (fast, parallel), ``numpy`` (the reference implementation),
        ``dask`` (steps of trials and deal chunks on a Dask cluster; the same bits as
        ``numba``), ``fast`` (numba at the cost of the winning deals only: the same law
        as ``numba``, not the same bits; for large books) or ``dask-fast`` (the fast
        path in Dask steps; the same bits as ``fast``).
    address : str, optional
        Dask scheduler address (``tcp://HOST:PORT``); default ``$DASK_SCHEDULER_ADDRESS``,
        else a local cluster on 127.0.0.1. Only for the Dask engines.
    client : distributed.Client, optional
        An open Dask client to use instead of ``address`` (left open).
    progress : bool
        Show a progress bar on stderr when the run lasts over ~2 s (terminals only).

    Returns
    -------
    Result
        Per-trial revenue and won deals per period, with ``summary()`` and ``trials()``.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0:
        raise InputError(
            f"trials={trials!r}: must be a positive whole number (e.g. trials=10000).",
            parameters=("trials",),
        )
    check_seed(seed)
    arrivals = scenario.arrivals
    no_leads = arrivals is None or not len(arrivals) or not arrivals["leads"].sum() > 0
    if scenario.deal_count == 0 and no_leads:
        warnings.warn(
            f"{scenario.name or 'scenario'}: nothing to simulate: no open deal and no new lead "
            "(arrivals empty or all zero), so every forecast is 0. Add deals or arrivals.",
            PipesimWarning,
            stacklevel=2,
        )
    runner = registry.get(engine)
    cols = by_columns(by)
    timings: dict[str, float] = {}
    prepared, revenue, won = runner.run(
        scenario,
        cols,
        trials,
        seed,
        Progress(trials, enabled=progress),
        timings=timings,
        address=address,
        client=client,
    )

    def rerun(other: tuple[str, ...]) -> Result:
        return simulate(
            scenario,
            trials,
            seed,
            by=other,
            engine=engine,
            address=address,
            client=client,
            progress=progress,
        )

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
