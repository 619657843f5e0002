"""The Dask engine: fixed shards of (trials, deals) run by a Dask cluster, gathered in order.

A shard is a block of consecutive trials; its work is split in steps, one per
deal chunk (fixed row ranges of the book in the canonical deal order, see
:mod:`pipesim.prepare.kernel_inputs`). Step (b, c) adds chunk c's deals to the totals step
(b, c - 1) left, and the last step adds the arrivals: every trial adds its deals
in the same order as the local engine, and its random streams depend on (seed,
trial) only, so the gathered arrays are the same bits as the local engine's,
whatever the number of workers, and even when a worker dies and steps run again
elsewhere. Blocks run side by side; only (trials x periods x groups) arrays
travel between steps. Block and chunk sizes depend on the book only, never on
the cluster.

When every worker sees the scenario's ``deals.parquet`` as the client does
(shared storage: same rows, columns, size and modification time, and the
client's deals), workers read only their chunk's rows themselves; the client
sends the small book-wide context (funnel, arrivals, groups). Otherwise the
client prepares each chunk and sends its kernel table to one worker; when a
worker dies with a chunk sent from the client, the chunk is sent again and the
blocks that needed it run again (the same bits).

Each worker task sets its numba threads to the worker's thread count and runs
one kernel at a time. Set ``NUMBA_CACHE_DIR`` in the workers' environment to a
folder on the worker's own disk so compiled kernels are cached per machine.
"""

from __future__ import annotations

import logging
import os
import uuid
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import numpy as np

from pipesim.errors import ClusterError, MissingDependencyError, PipesimError, install_hint
from pipesim.prepare.dated_deals import uses_close_dates
from pipesim.prepare.kernel_inputs import DealContext, dated_part, prepare_deals
from pipesim.progress import Progress
from pipesim.scenario.scenario import DEAL_CHUNK, Scenario

SHARD_WORK = 100_000_000  # deal-trials per step of a shard: a few seconds on one core
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
RETRIES = 3  # times a block runs again after losing data sent from the client

_log = logging.getLogger(__name__)


def deal_chunks(n_deals: int, deal_chunk: int = DEAL_CHUNK) -> list[tuple[int, int]]:
    """Row ranges of the book's deal chunks (one, maybe empty, for a small book)."""
    return [(a, min(a + deal_chunk, n_deals)) for a in range(0, max(n_deals, 1), deal_chunk)]


def shard_trials(context: DealContext, deal_chunk: int = DEAL_CHUNK) -> int:
    """Trials per shard, from the size of the book only (never from the cluster).

    About ``SHARD_WORK`` deal-trials per step (one deal chunk for one block of trials).
    """
    rows = min(context.deal_count, deal_chunk)
    per_trial = max(1, rows + 50 * context.prepared.arrivals.rows)
    return int(min(1_000, max(1, SHARD_WORK // per_trial)))


def _placement(workers: list[str], n_chunks: int) -> Any:
    """Where step (block b, chunk c) should run (a hint: any worker may run it).

    Each chunk has its own workers, so a worker reads few chunks: with at least
    as many chunks as workers, chunk c goes to worker c mod W; with fewer, the
    W // C workers of chunk c take its blocks in turn. Speed only, never the numbers.
    """
    lanes = max(1, len(workers) // n_chunks)

    def where(b: int, c: int) -> list[str] | None:
        return [workers[(c * lanes + b % lanes) % len(workers)]] if workers else None

    return where


def _shared_folder(
    client: Any, scenario: Scenario, context: DealContext, chunks: list[tuple[int, int]]
) -> tuple[str, tuple] | None:
    """(folder, footprint) when every worker reads the scenario's deals from the same file.

    The file must have the same footprint (rows, columns, size, mtime) on the
    client and on every worker, and hold the client's deals: a book on disk was
    read from it; a book in memory is compared with it chunk by chunk here.
    """
    from pipesim.engines import dask_worker
    from pipesim.io.deal_file import DealFile

    if not scenario.path or not os.path.isdir(scenario.path):
        return None
    path = os.path.abspath(scenario.path)
    mine = dask_worker.footprint(path)
    seen = client.run(dask_worker.footprint, path)
    if mine is None or not seen or any(p != mine for p in seen.values()):
        return None
    if not scenario.deals_in_memory:
        scenario.deal_rows(0, 0)  # raises when the file changed since it was loaded
        source = scenario.deal_source
        same = isinstance(source, DealFile) and source.path.resolve() == Path(path).resolve() / (
            "deals.parquet"
        )
        return (path, mine) if same else None
    if mine[0] != scenario.deal_count:
        return None
    file = DealFile(Path(path) / "deals.parquet")
    columns = context.deal_columns
    for rows in chunks:
        try:
            theirs = prepare_deals(context, file.rows(*rows, columns))
        except (PipesimError, KeyError, ValueError, TypeError):
            return None
        ours = prepare_deals(context, scenario.deal_rows(*rows, columns))
        if not all(np.array_equal(x, y) for x, y in zip(theirs, ours, strict=True)):
            return None
    return (path, mine)


def _require_distributed() -> None:
    """Fail with the install command when Dask's distributed package is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"the Dask engines need the distributed package. {install_hint('dask')}"
        ) from None


def connect(address: str | None = None) -> tuple[Any, Any]:
    """A Dask client: to ``address``, else ``$DASK_SCHEDULER_ADDRESS``, else a LocalCluster.

    Returns (client, cluster); ``cluster`` is None unless one was started here
    (on 127.0.0.1, one worker process using every core), and the caller closes both.
    """
    _require_distributed()
    from distributed import Client, LocalCluster

    address = address or os.environ.get(ADDRESS_ENV) or None
    if address:
        try:
            return Client(address, timeout="10s"), None
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"address={address!r}: cannot reach the Dask scheduler ({exc}). Start one "
                "with `dask scheduler` and workers with `dask worker ADDRESS`, or leave out "
                f"address= and {ADDRESS_ENV} to run a local cluster.",
                parameters=("address",),
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
    context: DealContext,
    trials: int,
    seed: int,
    *,
    client: Any = None,
    address: str | None = None,
    progress: Progress | None = None,
    shard: int | None = None,
    deal_chunk: int = DEAL_CHUNK,
    winners_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``trials`` trials on a Dask cluster; the same bits as the local engine.

    Parameters
    ----------
    scenario : Scenario
        The book; workers read its deals from ``scenario.path`` when they all see
        the same file (shared storage); otherwise each chunk's kernel table is
        sent from here to one worker.
    context : DealContext
        ``prepare_context(scenario, by)``: sent to every worker.
    trials, seed : int
        As for :func:`pipesim.simulate`.
    client : distributed.Client, optional
        Use this client (left open). Otherwise :func:`connect` to ``address``.
    address : str, optional
        Scheduler address, e.g. ``tcp://10.0.0.5:8786``.
    progress : Progress, optional
        Told about finished trials (a block's share after each of its steps).
    shard : int, optional
        Trials per shard (default :func:`shard_trials`); changes no number.
    deal_chunk : int
        Deal rows per chunk: the canonical :data:`DEAL_CHUNK` (tests pass smaller
        ones; the bits are those of ``prepare(scenario, by, chunk=deal_chunk)``).
    winners_only : bool
        Steps run the fast path on their chunk (``engine="dask-fast"``): the bits of
        :func:`pipesim.engines.chunked.run` with ``engine="fast"`` and the same chunks
        (and of ``--engine fast`` with the default chunks).
    """
    _require_distributed()
    from distributed import as_completed

    from pipesim.engines import dask_worker

    own = client is None
    cluster = None
    if own:
        client, cluster = connect(address)
    futures: list[Any] = []
    try:
        chunks = deal_chunks(context.deal_count, deal_chunk)
        source = _shared_folder(client, scenario, context, chunks)
        where = _placement(sorted(client.ncores()), len(chunks))
        book = client.scatter(context, broadcast=True, hash=False)
        futures.append(book)
        tables: list[Any] = [None] * len(chunks)
        dated_tables: list[Any] = [None] * len(chunks)
        # Steps: every chunk's deals on their clocks, then (when the book has some) every
        # chunk's deals timed by their stated close dates, as prepare() orders them.
        dated = uses_close_dates(scenario)
        plan = [(c, False) for c in range(len(chunks))]
        plan += [(c, True) for c in range(len(chunks))] if dated else []

        def send(c: int) -> None:
            """Chunk c's kernel tables from here to the worker that runs it."""
            rows = scenario.deal_rows(*chunks[c], context.deal_columns)
            rows, timed = dated_part(context, rows)
            table = prepare_deals(context, rows)
            tables[c] = client.scatter([table], hash=False, workers=where(0, c))[0]
            futures.append(tables[c])
            if timed is not None:
                dated_tables[c] = client.scatter([timed], hash=False, workers=where(0, c))[0]
                futures.append(dated_tables[c])

        if source is None:  # each chunk to one worker, never the whole book to all
            for c in range(len(chunks)):
                send(c)
        size = shard or shard_trials(context, deal_chunk)
        blocks = [(first, min(size, trials - first)) for first in range(0, trials, size)]
        token = uuid.uuid4().hex[:12]
        tries = [0] * len(blocks)
        step_of: dict[str, tuple[int, int, int]] = {}  # key -> (block, chunk, try)
        live: list[list[Any]] = [[] for _ in blocks]

        def chain(b: int) -> list[Any]:
            """Block b's steps, chunk after chunk; earlier chunks first on every worker."""
            first, count = blocks[b]
            steps: list[Any] = []
            for s, (c, timed) in enumerate(plan):
                key = f"pipesim-step-{token}-{b}-{s}-{tries[b]}"
                previous = steps[-1] if steps else None
                table = dated_tables[c] if timed else tables[c]
                steps.append(
                    client.submit(
                        dask_worker.step,
                        *(book, token, source, chunks[c], table, seed, first, count),
                        previous,
                        s == len(plan) - 1,
                        winners_only,
                        timed,
                        key=key,
                        pure=False,
                        priority=-s,
                        workers=where(b, c),
                        allow_other_workers=True,
                    )
                )
                step_of[key] = (b, s, tries[b])
            futures.extend(steps)
            return steps

        prepared = context.prepared
        shape = (trials, len(prepared.periods), 1 + len(prepared.by_values))
        rev, won = np.zeros(shape), np.zeros(shape)
        for b in range(len(blocks)):
            live[b] = chain(b)
        done = as_completed([f for steps in live for f in steps])
        credited = [0] * len(blocks)
        for future in done:
            b, c, attempt = step_of.pop(future.key)
            if attempt != tries[b]:
                continue  # a step of a chain given up
            cancelled = future.status == "cancelled"
            result = None
            if not cancelled and c == len(plan) - 1:
                try:
                    result = future.result()
                except CancelledError:
                    # Its input went with a worker after the step came back (the
                    # scheduler forgot it): the same as a cancelled step.
                    cancelled = True
            if cancelled and tries[b] < RETRIES:
                # Data sent from here was lost with a worker: send it again, rerun the block.
                tries[b] += 1
                for step in live[b]:
                    step.cancel()
                if book.status != "finished":
                    book = client.scatter(context, broadcast=True, hash=False)
                    futures.append(book)
                where = _placement(sorted(client.ncores()), len(chunks))
                lost = [
                    c
                    for c, (t, d) in enumerate(zip(tables, dated_tables, strict=True))
                    if any(x is not None and x.status != "finished" for x in (t, d))
                ]
                for c in lost:
                    send(c)
                if lost:
                    _log.info("deal chunks %s were lost with a worker: sent again", lost)
                live[b] = chain(b)
                done.update(live[b])
                continue
            if cancelled:
                raise ClusterError(
                    f"trials {blocks[b][0]} to {sum(blocks[b]) - 1} were lost with a worker "
                    f"{RETRIES + 1} times; check the cluster's workers (memory, restarts) and "
                    "run again.",
                )
            first, count = blocks[b]
            if c == len(plan) - 1:
                r, w = result if result is not None else future.result()
                rev[first : first + count] = r
                won[first : first + count] = w
            elif future.status != "finished":
                future.result()  # raises the step's error
            future.release()
            share = count * (c + 1) // len(plan)
            if progress is not None and share > credited[b]:
                progress.update(share - credited[b])
                credited[b] = share
        return rev, won
    finally:
        for future in futures:
            future.cancel()
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
