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
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipesim.engines import local
from pipesim.errors import PipesimError
from pipesim.model import Scenario
from pipesim.prepare import Prepared
from pipesim.progress import Progress

SHARD_WORK = 100_000_000  # deal-trials per step of a shard: a few seconds on one core
DEAL_CHUNK = 1_000_000  # deal rows per deal chunk
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"


def fingerprint(scenario: Scenario) -> str:
    """A digest of a scenario's tables and settings (equal content, equal digest)."""
    digest = hashlib.sha256()
    for frame in (scenario.stages, scenario.deals, scenario.arrivals):
        digest.update(",".join(map(str, frame.columns)).encode())
        if len(frame):
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(f"{scenario.as_of}|{scenario.horizon_months}".encode())
    return digest.hexdigest()


def deal_chunks(n_deals: int, deal_chunk: int = DEAL_CHUNK) -> list[tuple[int, int]]:
    """Row ranges of the book's deal chunks (one, maybe empty, for a small book)."""
    starts = range(0, max(n_deals, 1), deal_chunk)
    return [(a, min(a + deal_chunk, n_deals)) for a in starts]


def shard_trials(prepared: Prepared, deal_chunk: int = DEAL_CHUNK) -> int:
    """Trials per shard, from the size of the book only (never from the cluster).

    About ``SHARD_WORK`` deal-trials per step (one deal chunk for one block of trials).
    """
    rows = min(len(prepared.deals[0]), deal_chunk)
    per_trial = max(1, rows + 50 * len(prepared.arrivals[0]))
    return int(min(1_000, max(1, SHARD_WORK // per_trial)))


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
    deal_chunk: int = DEAL_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``trials`` trials on a Dask cluster; the same bits as :func:`local.run`.

    Parameters
    ----------
    scenario : Scenario
        The book; workers read it from ``scenario.path`` when they all see the same files.
    prepared : Prepared
        ``prepare(scenario, by)`` on the client (shapes of the result; the deal
        chunks sent to the workers when they cannot read the folder).
    trials, seed : int
        As for :func:`pipesim.simulate`.
    by : sequence of str
        Breakdown columns.
    client : distributed.Client, optional
        Use this client (left open). Otherwise :func:`connect` to ``address``.
    address : str, optional
        Scheduler address, e.g. ``tcp://10.0.0.5:8786``.
    progress : Progress, optional
        Told about finished trials (a block's share after each of its steps).
    shard : int, optional
        Trials per shard (default :func:`shard_trials`); changes no number.
    deal_chunk : int
        Deal rows per deal chunk; changes no number.
    """
    from distributed import as_completed

    from pipesim.engines import dask_worker

    own = client is None
    cluster = None
    if own:
        client, cluster = connect(address)
    futures: list[Any] = []
    held: list[Any] = []
    try:
        digest = fingerprint(scenario)
        chunks = deal_chunks(len(prepared.deals[0]), deal_chunk)
        book: Any = None
        tables: list[Any] = [None] * len(chunks)
        if scenario.path and os.path.isdir(scenario.path):
            path = os.path.abspath(scenario.path)
            seen = client.run(dask_worker.load, path, digest)
            if seen and all(seen.values()):
                book = path
        if book is None:
            # Each chunk's kernel table to one worker; the small context to all.
            book = client.scatter(dask_worker.without_deals(prepared), broadcast=True)
            tables = client.scatter([local.take_rows(prepared.deals, a, z) for a, z in chunks])
            held = [book, *tables]
        size = shard or shard_trials(prepared, deal_chunk)
        n_periods, width = len(prepared.periods), 1 + len(prepared.by_values)
        rev = np.zeros((trials, n_periods, width))
        won = np.zeros((trials, n_periods, width))
        blocks = [(first, min(size, trials - first)) for first in range(0, trials, size)]
        token = uuid.uuid4().hex[:12]
        # Chunk after chunk: a block's steps run in order, blocks side by side. Earlier
        # chunks are submitted first, so a worker tends to finish a chunk before the next.
        last: list[Any] = [None] * len(blocks)
        step_of: dict[str, tuple[int, int]] = {}
        for c, rows in enumerate(chunks):
            for b, (first, count) in enumerate(blocks):
                future = client.submit(
                    dask_worker.step,
                    book,
                    digest,
                    tuple(by),
                    seed,
                    first,
                    count,
                    rows,
                    tables[c],
                    last[b],
                    c == len(chunks) - 1,
                    key=f"pipesim-step-{token}-{b}-{c}",
                    pure=False,
                )
                last[b] = future
                step_of[future.key] = (b, c)
                futures.append(future)
        credited = [0] * len(blocks)
        for future in as_completed(futures):
            b, c = step_of[future.key]
            first, count = blocks[b]
            if c == len(chunks) - 1:
                r, w = future.result()
                rev[first : first + count] = r
                won[first : first + count] = w
            future.release()
            share = count * (c + 1) // len(chunks)
            if progress is not None and share > credited[b]:
                progress.update(share - credited[b])
            credited[b] = share
        return rev, won
    finally:
        for future in futures + held:
            future.cancel()
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
