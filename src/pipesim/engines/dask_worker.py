"""The Dask engine's worker side: one step of a shard, and the worker's caches.

A step adds the deals of one deal chunk (rows ``start .. stop`` of the book in
the canonical deal order) to the running totals of one block of trials, and the
arrivals after the last chunk. The book's context (funnel, arrivals, groups:
small) comes from the client. The chunk's deals come either as the kernel table
the client scattered, or from the scenario's ``deals.parquet``, which the worker
reads itself, only the chunk's rows (shared storage). A worker keeps at most
``CHUNK_CACHE`` prepared chunks, never the whole book.

One kernel runs at a time per worker process, on the worker's threads.
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numba
import numpy as np

from pipesim.engines import fast
from pipesim.engines import numba as numba_engine
from pipesim.errors import InputError, PipesimError
from pipesim.kernels.tables import DealTable
from pipesim.prepare.kernel_inputs import DealContext, dated_part, prepare_deals, with_dated

CHUNK_CACHE = 3  # prepared deal chunks kept per worker (least recently used dropped)

_LOCK = threading.RLock()
_FILES: dict[tuple[str, tuple], Any] = {}  # (deals.parquet, footprint) -> DealFile
_CHUNKS: OrderedDict[tuple, Any] = OrderedDict()  # (run, file, rows, dated) -> kernel table
# What this worker process did, for tests and diagnosis: the most deal rows read
# at once (max_read) and held prepared at once (max_held, the cache), and how many
# steps got their deals from the file (path) or scattered by the client.
STATS: Counter[str] = Counter()


def footprint(path: str) -> tuple | None:
    """What identifies a scenario folder's ``deals.parquet`` here: rows, columns, size, mtime.

    None when the file cannot be read. Equal footprints on the client and every
    worker mean the same file on shared storage.
    """
    from pipesim.io import parquet

    file = Path(path) / "deals.parquet"
    try:
        rows, columns = parquet.parquet_shape(file)
        info = file.stat()
    except (PipesimError, OSError):
        return None
    return (rows, tuple(columns), info.st_size, info.st_mtime_ns)


def _deal_file(path: str, print_: tuple) -> Any:
    from pipesim.io.deal_file import DealFile

    key = (path, print_)
    if key not in _FILES:
        if footprint(path) != print_:
            raise InputError(
                f"{path}/deals.parquet: this Dask worker cannot read it, or sees another "
                "file than the client (size or modification time differ); use storage "
                "every worker shares, or pass the scenario from memory."
            )
        _FILES.clear()
        _FILES[key] = DealFile(Path(path) / "deals.parquet")
    return _FILES[key]


def _read_chunk(
    context: DealContext, run: str, path: str, print_: tuple, rows: tuple, dated: bool = False
) -> Any:
    """The kernel table of deal rows ``rows`` read from the file (cached, LRU).

    With ``dated`` the table of the rows timed by their stated close dates (a
    :class:`~pipesim.kernels.dated_deals.DatedTable`, None for none), else the
    table of the others (all rows without a slippage law).
    """
    key = (run, path, print_, rows, dated)
    if key in _CHUNKS:
        _CHUNKS.move_to_end(key)
        return _CHUNKS[key]
    while len(_CHUNKS) >= CHUNK_CACHE:
        _CHUNKS.popitem(last=False)
    frame = _deal_file(path, print_).rows(*rows, context.deal_columns)
    STATS["max_read"] = max(STATS["max_read"], len(frame))
    clocked, timed = dated_part(context, frame)
    table = timed if dated else prepare_deals(context, clocked)
    del frame, clocked
    _CHUNKS[key] = table
    _note_held(sum(t.rows for t in _CHUNKS.values() if t is not None))
    return table


def _note_held(rows: int) -> None:
    STATS["max_held"] = max(STATS["max_held"], rows)


def _threads() -> int:
    try:
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        threads = numba.get_num_threads()
    return max(1, min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def step(
    context: DealContext,
    run: str,
    source: tuple[str, tuple] | None,
    rows: tuple[int, int],
    deals: DealTable | None,
    seed: int,
    first: int,
    count: int,
    partial: tuple[np.ndarray, np.ndarray] | None,
    last: bool,
    winners_only: bool = False,
    dated: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Trials ``first .. first + count``: ``partial`` plus the deals of rows ``rows``.

    Parameters
    ----------
    context : DealContext
        The book's context, from the client.
    run : str
        Names the run (keys the worker's chunk cache).
    source : (folder, footprint) or None
        Read the deals from this scenario folder's ``deals.parquet``, whose
        :func:`footprint` must be the given one; None when ``deals`` is given.
    rows : (int, int)
        The chunk's rows in the book.
    deals : DealTable or None
        The chunk's kernel table, when the client scattered it.
    seed, first, count : int
        The run's seed and the block's trials.
    partial : (revenue, won) or None
        The totals after the previous chunks (None before the first chunk); not modified.
    last : bool
        Add the arrivals too (after the last chunk).
    winners_only : bool
        Simulate the chunk's deals with the fast path (:mod:`pipesim.engines.fast`)
        instead of the per-deal kernel: the bits of ``--engine fast`` on the same chunks.
    dated : bool
        Add the chunk's deals timed by their stated close dates (the dated kernel),
        not those on their stage's clocks; ``deals`` is then their table (None: none).
    """
    prepared = context.prepared
    with _LOCK:
        if source is not None:
            table = _read_chunk(context, run, source[0], source[1], rows, dated)
            STATS["path"] += 1
        else:
            assert deals is not None or dated
            table = deals
            _note_held(0 if table is None else table.rows)
            STATS["scattered"] += 1
        shape = (count, len(prepared.periods), 1 + len(prepared.by_values))
        if partial is None:
            rev, won = np.zeros(shape), np.zeros(shape)
        else:
            rev, won = partial[0].copy(), partial[1].copy()
        numba.set_num_threads(_threads())
        nothing = prepared.arrivals.take(0, 0)
        no_deals = prepared.deals.take(0, 0)
        if dated:
            if table is not None:
                part = with_dated(prepared, table)
                numba_engine.accumulate(part, no_deals, nothing, seed, first, rev, won, dated=table)
        elif winners_only:
            fast.accumulate(prepared, table, seed, first, rev, won, deal0=rows[0])
        else:
            numba_engine.accumulate(prepared, table, nothing, seed, first, rev, won)
        if last:
            numba_engine.accumulate(prepared, no_deals, prepared.arrivals, seed, first, rev, won)
        return rev, won


def stats() -> dict[str, int]:
    """On a worker: :data:`STATS` and the chunks cached (for tests)."""
    return {**STATS, "cached": len(_CHUNKS), "pid": os.getpid()}


def reset() -> None:
    """On a worker: forget the caches and the statistics."""
    with _LOCK:
        _FILES.clear()
        _CHUNKS.clear()
        STATS.clear()
