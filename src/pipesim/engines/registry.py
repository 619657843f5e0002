"""Engines by name: the one list that :func:`pipesim.simulate`, ``pipesim bench`` and the CLI use.

Each engine is a runner with one signature: it prepares the scenario's kernel
inputs, runs every trial and returns ``(prepared, revenue, won)`` (arrays
[trial, period, 1 + by-group]), noting in ``timings`` the seconds spent preparing
(``prepare``) and simulating (``simulate``). Engines whose trials are addressed by
index (``trial_offsets``) also take ``first_trial``: trials ``first_trial ..`` are
then the same bits as those rows of a run from trial 0, so a run can grow by blocks
of trials. Engine modules are imported only when
their engine runs, so listing the engines costs nothing (and Dask is needed only
for the Dask engines).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pipesim.errors import InputError
from pipesim.prepare.dated_deals import uses_close_dates
from pipesim.prepare.kernel_inputs import Prepared, prepare, prepare_context
from pipesim.progress import Progress
from pipesim.scenario.scenario import Scenario

Runner = Callable[..., tuple[Prepared, np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Engine:
    """One engine: its name, what it is for, and its runner."""

    name: str
    summary: str
    run: Runner
    cluster: bool = False  # runs on a Dask cluster (takes ``address``/``client``)
    benchmark: bool = True  # ``pipesim bench`` can time it
    trial_offsets: bool = False  # takes ``first_trial`` (trials by index: blocks add up)


def _local(
    scenario: Scenario,
    by: tuple[str, ...],
    trials: int,
    seed: int,
    progress: Progress,
    *,
    timings: dict[str, float],
    winners_only: bool,
    first_trial: int = 0,
    **_: Any,
) -> tuple[Prepared, np.ndarray, np.ndarray]:
    """The per-deal kernel (or the fast path) on this machine's threads, from ``first_trial``."""
    start = time.perf_counter()
    if not scenario.deals_in_memory:
        if winners_only:
            refuse_close_dates(scenario, "engine=fast on a book left on disk")
        # A book on disk: one chunk of deals in memory at a time, the same bits.
        from pipesim.engines import chunked

        context = prepare_context(scenario, by)
        spent: dict[str, float] = {}
        timings["prepare"] = time.perf_counter() - start
        with progress:
            revenue, won = chunked.run(
                scenario,
                context,
                trials,
                seed,
                progress,
                first_trial=first_trial,
                timings=spent,
                engine="fast" if winners_only else "numba",
            )
        timings["prepare"] += spent["read_prepare"]
        timings["simulate"] = spent["simulate"]
        return context.prepared, revenue, won
    prepared = prepare(scenario, by)
    timings["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    with progress:
        if winners_only:
            from pipesim.engines import fast

            revenue, won = fast.run(
                prepared, trials, seed, first_trial=first_trial, progress=progress
            )
        else:
            from pipesim.engines import numba as numba_engine

            revenue, won = numba_engine.run_blocks(
                prepared, trials, seed, progress, first_trial=first_trial
            )
    timings["simulate"] = time.perf_counter() - start
    return prepared, revenue, won


def refuse_close_dates(scenario: Scenario, what: str) -> None:
    """Stop when deals would be timed by stated close dates, which ``what`` does not simulate."""
    if not uses_close_dates(scenario):
        return
    raise InputError(
        f"{what} does not simulate deals by their stated close dates (close_dates.parquet and "
        "deals with a close_date): run engine=numba (or engine=fast on a book in memory), or "
        "turn the close dates off (no_close_dates=True) to time every deal by its stage's "
        "clocks.",
        parameters=("engine", "no_close_dates"),
    )


_numba = functools.partial(_local, winners_only=False)
_fast = functools.partial(_local, winners_only=True)


def _numpy(
    scenario: Scenario,
    by: tuple[str, ...],
    trials: int,
    seed: int,
    progress: Progress,
    *,
    timings: dict[str, float],
    **_: Any,
) -> tuple[Prepared, np.ndarray, np.ndarray]:
    from pipesim.engines import numpy as numpy_engine

    start = time.perf_counter()
    prepared = prepare(scenario, by)
    timings["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    revenue, won = numpy_engine.run(prepared, trials, seed)
    timings["simulate"] = time.perf_counter() - start
    return prepared, revenue, won


def _dask(
    scenario: Scenario,
    by: tuple[str, ...],
    trials: int,
    seed: int,
    progress: Progress,
    *,
    timings: dict[str, float],
    winners_only: bool,
    address: str | None = None,
    client: Any = None,
) -> tuple[Prepared, np.ndarray, np.ndarray]:
    from pipesim.engines import dask

    if winners_only:
        refuse_close_dates(scenario, "engine=dask-fast")
    start = time.perf_counter()
    context = prepare_context(scenario, by)
    timings["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    with progress:
        revenue, won = dask.run(
            scenario,
            context,
            trials,
            seed,
            client=client,
            address=address,
            progress=progress,
            winners_only=winners_only,
        )
    timings["simulate"] = time.perf_counter() - start
    return context.prepared, revenue, won


_dask_numba = functools.partial(_dask, winners_only=False)
_dask_fast = functools.partial(_dask, winners_only=True)


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in [
        Engine(
            "numba",
            "the per-deal kernel on this machine's threads (the default)",
            _numba,
            trial_offsets=True,
        ),
        Engine(
            "numpy",
            "the NumPy reference implementation (slow; the tests' oracle)",
            _numpy,
            benchmark=False,
        ),
        Engine(
            "dask",
            "steps of trials and deal chunks on a Dask cluster (the bits of numba)",
            _dask_numba,
            cluster=True,
        ),
        Engine(
            "fast",
            "numba at the cost of the winning deals only (same law, other bits)",
            _fast,
            trial_offsets=True,
        ),
        Engine("dask-fast", "fast in Dask steps (the bits of fast)", _dask_fast, cluster=True),
    ]
}
NAMES = tuple(ENGINES)


def get(name: str) -> Engine:
    """The engine called ``name``; an :class:`InputError` listing the engines otherwise."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"engine={name!r} is not an engine: use one of {', '.join(NAMES)}.",
            parameters=("engine",),
        ) from None
