"""simulate(): validate the run settings, prepare the arrays, pick an engine, wrap the result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipesim.errors import PipesimError
from pipesim.prepare.kernel_inputs import prepare, prepare_context
from pipesim.progress import Progress
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.result import Result, _as_tuple

ENGINES = ("numba", "numpy", "dask", "fast", "dask-fast")


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
        raise PipesimError(
            f"trials must be a positive whole number, got {trials!r}. Use e.g. --trials 10000."
        )
    if engine not in ENGINES:
        raise PipesimError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}.")
    cols = _as_tuple(by)
    bar = Progress(trials, enabled=progress)
    if engine in ("numba", "fast") and not scenario.deals_in_memory:
        # A book on disk: one chunk of deals in memory at a time, the same bits.
        from pipesim.engines import chunked

        context = prepare_context(scenario, cols)
        prepared = context.prepared
        with bar:
            revenue, won = chunked.run(scenario, context, trials, seed, bar, engine=engine)
    elif engine == "numba":
        from pipesim.engines import numba as numba_engine

        prepared = prepare(scenario, cols)

        with bar:
            revenue, won = numba_engine.run_blocks(prepared, trials, seed, bar)
    elif engine == "fast":
        from pipesim.engines import fast

        prepared = prepare(scenario, cols)
        with bar:
            revenue, won = fast.run(prepared, trials, seed, progress=bar)
    elif engine in ("dask", "dask-fast"):
        from pipesim.engines import dask

        context = prepare_context(scenario, cols)
        prepared = context.prepared
        with bar:
            revenue, won = dask.run(
                scenario,
                context,
                trials,
                seed,
                client=client,
                address=address,
                progress=bar,
                winners_only=engine == "dask-fast",
            )
    else:
        from pipesim.engines import numpy as numpy_engine

        prepared = prepare(scenario, cols)
        revenue, won = numpy_engine.run(prepared, trials, seed)

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
