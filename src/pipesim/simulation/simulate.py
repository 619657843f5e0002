"""simulate(): validate the run settings, prepare the arrays, pick an engine, wrap the result."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from pipesim.engines import registry
from pipesim.errors import InputError, PipesimWarning
from pipesim.progress import Progress
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.auto_trials import AUTO, MAX_TRIALS, PRECISION, auto_notes, run_auto
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
    trials: int | str = 10_000,
    seed: int = 0,
    *,
    by: str | Sequence[str] | None = None,
    engine: str = "numba",
    address: str | None = None,
    client: Any = None,
    progress: bool = False,
    precision: float | None = None,
    max_trials: int | None = None,
) -> Result:
    """Run the Monte Carlo simulation of a scenario.

    Parameters
    ----------
    scenario : Scenario
        From :func:`pipesim.load_scenario` or :func:`pipesim.make_scenario`.
    trials : int or "auto"
        Number of simulated futures (> 0), or ``"auto"``: blocks of trials until the
        horizon's P10/P50/P90 of whole-book revenue have a relative standard error of
        at most ``precision`` (see :mod:`pipesim.simulation.auto_trials`); the result
        is the same as a run with the final count (``result.trials_count``), and
        ``result.auto`` says whether the precision was reached.
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
    precision : float, optional
        With ``trials="auto"``: the relative standard error to reach (default 0.005).
    max_trials : int, optional
        With ``trials="auto"``: stop there even if the precision is not reached
        (default 200,000).

    Returns
    -------
    Result
        Per-trial revenue and won deals per period, with ``summary()`` and ``trials()``.
    """
    auto = trials == AUTO
    if not auto and (isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0):
        raise InputError(
            f"trials={trials!r}: must be a positive whole number (e.g. trials=10000) or '{AUTO}'.",
            parameters=("trials",),
        )
    check_auto(auto, precision, max_trials)
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

    def run_block(first: int, count: int) -> tuple[Any, Any, Any]:
        extra = {"first_trial": first} if runner.trial_offsets else {}
        return runner.run(
            scenario,
            cols,
            count,
            seed,
            Progress(None if auto else count, enabled=progress),
            timings=timings,
            address=address,
            client=client,
            **extra,
        )

    outcome = None
    if auto:
        prepared, revenue, won, outcome = run_auto(
            run_block,
            runner.trial_offsets,
            PRECISION if precision is None else precision,
            MAX_TRIALS if max_trials is None else max_trials,
        )
    else:
        prepared, revenue, won = run_block(0, int(trials))
    count = revenue.shape[0]

    def rerun(other: tuple[str, ...]) -> Result:
        return simulate(
            scenario,
            count,
            seed,
            by=other,
            engine=engine,
            address=address,
            client=client,
            progress=progress,
        )

    return Result(
        scenario=scenario,
        trials_count=count,
        seed=seed,
        engine=engine,
        periods=prepared.periods,
        by=cols,
        segments=prepared.by_values.reset_index(drop=True),
        revenue=revenue,
        won=won,
        notes=prepared.notes + auto_notes(outcome, count),
        auto=outcome,
        _rerun=rerun,
    )


def check_auto(auto: bool, precision: object, max_trials: object) -> None:
    """Refuse a bad precision or max_trials, and either of them without trials="auto"."""
    if not auto:
        given = [
            n for n, v in (("precision", precision), ("max_trials", max_trials)) if v is not None
        ]
        if given:
            raise InputError(
                f"{' and '.join(f'{n}=' for n in given)} "
                f"{'apply' if len(given) > 1 else 'applies'} to trials='{AUTO}' only (with a "
                f"given number of trials {'they' if len(given) > 1 else 'it'} would change "
                f"nothing): drop {'them' if len(given) > 1 else 'it'} or set trials='{AUTO}'.",
                parameters=(*given, "trials"),
            )
        return
    if precision is not None and not (
        isinstance(precision, int | float) and not isinstance(precision, bool) and 0 < precision < 1
    ):
        raise InputError(
            f"precision={precision!r}: the relative standard error to reach, between 0 and 1 "
            "(e.g. 0.005 for 0.5 %).",
            parameters=("precision",),
        )
    if max_trials is not None and (
        isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials <= 0
    ):
        raise InputError(
            f"max_trials={max_trials!r}: must be a positive whole number (e.g. 200000).",
            parameters=("max_trials",),
        )
