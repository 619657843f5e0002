"""The Dask engine: fixed shards of trials run by a Dask cluster, gathered in order.

A shard is a block of consecutive trials. Every trial's random streams depend on
(seed, trial) only, so a shard gives the same bits wherever it runs, and the
gathered arrays are the same bits as the local engine's, whatever the number of
workers, and even when a worker dies and its shards run again elsewhere. The
shard size depends on the book only, never on the cluster.

When the scenario was loaded from a folder that every worker can read with the
same content (shared storage), workers read the Parquet files themselves; the
client only sends the folder's path and a fingerprint of its tables. Otherwise
the scenario is scattered to the workers once.

Each worker task sets its numba threads to the worker's thread count and runs
one kernel at a time. Set ``NUMBA_CACHE_DIR`` in the workers' environment to a
folder on the worker's own disk so compiled kernels are cached per machine.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd

from pipesim.errors import PipesimError
from pipesim.model import Scenario
from pipesim.prepare import Prepared, prepare
from pipesim.progress import Progress

SHARD_WORK = 100_000_000  # deal-trials per shard: a few seconds on one core
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"

# Worker side: one kernel at a time per worker process, prepared books cached.
_LOCK = threading.Lock()
_SCENARIOS: dict[str, Scenario] = {}
_PREPARED: dict[tuple[str, tuple[str, ...]], Prepared] = {}


def fingerprint(scenario: Scenario) -> str:
    """A digest of a scenario's tables and settings (equal content, equal digest)."""
    digest = hashlib.sha256()
    for frame in (scenario.stages, scenario.deals, scenario.arrivals):
        digest.update(",".join(map(str, frame.columns)).encode())
        if len(frame):
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(f"{scenario.as_of}|{scenario.horizon_months}".encode())
    return digest.hexdigest()


def shard_trials(prepared: Prepared) -> int:
    """Trials per shard, from the size of the book only (never from the cluster)."""
    per_trial = max(1, len(prepared.deals[0]) + 50 * len(prepared.arrivals[0]))
    return int(min(1_000, max(1, SHARD_WORK // per_trial)))


def _load_on_worker(path: str, digest: str) -> bool:
    """On a worker: read the scenario folder; True when its content matches ``digest``."""
    from pipesim import storage

    with _LOCK:
        if digest in _SCENARIOS:
            return True
        try:
            scenario = storage.load_scenario(path)
        except PipesimError:
            return False
        if fingerprint(scenario) != digest:
            return False
        _SCENARIOS.clear()
        _PREPARED.clear()
        _SCENARIOS[digest] = scenario
        return True


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        threads = numba.get_num_threads()
    return max(1, min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def _run_shard(
    source: Scenario | str,
    digest: str,
    by: tuple[str, ...],
    seed: int,
    first: int,
    count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """On a worker: trials ``first .. first + count`` of the scenario (a Scenario or a path)."""
    from pipesim.engines import local

    if isinstance(source, str) and not _load_on_worker(source, digest):
        raise PipesimError(
            f"{source}: this Dask worker cannot read the scenario folder, or reads other "
            "content than the client; use storage every worker shares, or pass the scenario "
            "from memory."
        )
    with _LOCK:
        scenario = source if isinstance(source, Scenario) else _SCENARIOS[digest]
        key = (digest, by)
        if key not in _PREPARED:
            _PREPARED.clear()
            _PREPARED[key] = prepare(scenario, by)
        numba.set_num_threads(_worker_threads())
        return local.run(_PREPARED[key], count, seed, first_trial=first)


def connect(address: str | None = None) -> tuple[Any, Any]:
    """A Dask client: to ``address``, else ``$DASK_SCHEDULER_ADDRESS``, else a LocalCluster.

    Returns (client, cluster); ``cluster`` is None unless one was started here
    (on 127.0.0.1, one worker process using every core), and the caller closes both.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise PipesimError(
            'the Dask engine needs the dask extra: pip install "pipesim[dask]".'
        ) from None
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address:
        try:
            return Client(address, timeout="10s"), None
        except (OSError, TimeoutError) as exc:
            raise PipesimError(
                f"cannot reach the Dask scheduler at {address} ({exc}). Start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`, or leave out "
                f"--address and {ADDRESS_ENV} to run a local cluster."
            ) from None
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=os.cpu_count() or 1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    return Client(cluster), cluster


def run(
    scenario: Scenario,
    prepared: Prepared,
    trials: int,
    seed: int,
    *,
    by: Sequence[str] = (),
    client: Any = None,
    address: str | None = None,
    progress: Progress | None = None,
    shard: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``trials`` trials on a Dask cluster; the same bits as :func:`local.run`.

    Parameters
    ----------
    scenario : Scenario
        The book; workers read it from ``scenario.path`` when they all see the same files.
    prepared : Prepared
        ``prepare(scenario, by)`` on the client (for the shapes of the result).
    trials, seed : int
        As for :func:`pipesim.simulate`.
    by : sequence of str
        Breakdown columns.
    client : distributed.Client, optional
        Use this client (left open). Otherwise :func:`connect` to ``address``.
    address : str, optional
        Scheduler address, e.g. ``tcp://10.0.0.5:8786``.
    progress : Progress, optional
        Told about each finished shard.
    shard : int, optional
        Trials per shard (default :func:`shard_trials`); changes no number.
    """
    from distributed import as_completed

    own = client is None
    cluster = None
    if own:
        client, cluster = connect(address)
    futures: list[Any] = []
    try:
        digest = fingerprint(scenario)
        source: Any = None
        if scenario.path and os.path.isdir(scenario.path):
            path = os.path.abspath(scenario.path)
            seen = client.run(_load_on_worker, path, digest)
            if seen and all(seen.values()):
                source = path
        if source is None:
            source = client.scatter(scenario, broadcast=True)
        size = shard or shard_trials(prepared)
        n_periods, width = len(prepared.periods), 1 + len(prepared.by_values)
        rev = np.zeros((trials, n_periods, width))
        won = np.zeros((trials, n_periods, width))
        starts = range(0, trials, size)
        futures = [
            client.submit(
                _run_shard,
                source,
                digest,
                tuple(by),
                seed,
                first,
                min(size, trials - first),
                key=f"pipesim-shard-{digest[:12]}-{seed}-{first}-{size}-{os.getpid()}-{id(rev)}",
                pure=False,
            )
            for first in starts
        ]
        where = {f.key: first for f, first in zip(futures, starts, strict=True)}
        for future in as_completed(futures):
            first = where[future.key]
            r, w = future.result()
            rev[first : first + len(r)] = r
            won[first : first + len(w)] = w
            future.release()
            if progress is not None:
                progress.update(len(r))
        return rev, won
    finally:
        for future in futures:
            future.cancel()
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
