"""The Dask engine's worker side: one step of a shard chain, and the worker's caches.

A step adds the deals of one deal chunk (rows ``start .. stop`` of the book in the
kernel's deal order) to the running totals of one block of trials, and the
arrivals after the last chunk. The deals come either from a table the client
scattered, or from the scenario folder, which the worker reads itself (shared
storage); then the worker keeps the book's small context and a few prepared
chunks, never the whole book.

One kernel runs at a time per worker process, on the worker's threads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, OrderedDict
from typing import Any

import numba
import numpy as np

from pipesim.engines import local
from pipesim.errors import PipesimError
from pipesim.prepare import Prepared

CHUNK_CACHE = 3  # prepared deal chunks kept per worker (least recently used dropped)

_LOCK = threading.RLock()
# Worker state, per worker process.
_CONTEXTS: dict[tuple[str, tuple[str, ...]], Prepared] = {}
_CHUNKS: OrderedDict[tuple[str, tuple[str, ...], int, int], tuple] = OrderedDict()
_BOOKS: dict[str, Any] = {}  # path digest -> the scenario read from the path
# What the worker did, for tests and diagnosis: deal rows held at most at once,
# and where the deals of each step came from ("path" or "scattered").
STATS: Counter[str] = Counter()


def without_deals(prepared: Prepared) -> Prepared:
    """``prepared`` with an empty deal table: the book's context (funnel, arrivals, groups)."""
    return dataclasses.replace(prepared, deals=local.take_rows(prepared.deals, 0, 0))


def _note_rows(rows: int) -> None:
    STATS["max_rows"] = max(STATS["max_rows"], rows)


def load(path: str, digest: str) -> bool:
    """Read the scenario folder at ``path``; True when its content matches ``digest``."""
    from pipesim import storage
    from pipesim.engines.dask import fingerprint

    with _LOCK:
        if digest in _BOOKS:
            return True
        try:
            scenario = storage.load_scenario(path)
        except PipesimError:
            return False
        if fingerprint(scenario) != digest:
            return False
        _BOOKS.clear()
        _CONTEXTS.clear()
        _CHUNKS.clear()
        _BOOKS[digest] = scenario
        return True


def _from_path(
    path: str, digest: str, by: tuple[str, ...], start: int, stop: int
) -> tuple[Prepared, tuple]:
    """The book's context and its deal rows ``start .. stop``, from the worker's caches."""
    from pipesim.prepare import prepare

    if not load(path, digest):
        raise PipesimError(
            f"{path}: this Dask worker cannot read the scenario folder, or reads other "
            "content than the client; use storage every worker shares, or pass the scenario "
            "from memory."
        )
    key = (digest, by)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CHUNKS.clear()
        whole = prepare(_BOOKS[digest], by)
        _note_rows(len(whole.deals[0]))
        _CONTEXTS[key] = whole
    whole = _CONTEXTS[key]
    return whole, local.take_rows(whole.deals, start, stop)


def _threads() -> int:
    try:
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        threads = numba.get_num_threads()
    return max(1, min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def step(
    book: Prepared | str,
    digest: str,
    by: tuple[str, ...],
    seed: int,
    first: int,
    count: int,
    rows: tuple[int, int],
    deals: tuple | None,
    partial: tuple[np.ndarray, np.ndarray] | None,
    last: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Trials ``first .. first + count``: ``partial`` plus the deals of rows ``rows``.

    Parameters
    ----------
    book : Prepared or str
        The book's context (scattered by the client, with ``deals`` the chunk's
        table), or the scenario folder to read the chunk from.
    digest : str
        Fingerprint of the scenario's content, checked against the folder's.
    by : tuple of str
        Breakdown columns.
    seed, first, count : int
        The run's seed and the block's trials.
    rows : (int, int)
        The chunk's rows in the book's deal order.
    deals : tuple or None
        The chunk's kernel table when scattered; None to read it from ``book``.
    partial : (revenue, won) or None
        The totals after the previous chunks (None before the first chunk); not modified.
    last : bool
        Add the arrivals too (after the last chunk).
    """
    with _LOCK:
        if isinstance(book, str):
            prepared, table = _from_path(book, digest, by, *rows)
            STATS["path"] += 1
        else:
            assert deals is not None
            prepared, table = book, deals
            _note_rows(len(table[0]))
            STATS["scattered"] += 1
        width = 1 + len(prepared.by_values)
        if partial is None:
            rev = np.zeros((count, len(prepared.periods), width))
            won = np.zeros((count, len(prepared.periods), width))
        else:
            rev, won = partial[0].copy(), partial[1].copy()
        numba.set_num_threads(_threads())
        nothing = local.take_rows(prepared.arrivals, 0, 0)
        local.accumulate(prepared, table, nothing, seed, first, rev, won)
        if last:
            no_deals = local.take_rows(prepared.deals, 0, 0)
            local.accumulate(prepared, no_deals, prepared.arrivals, seed, first, rev, won)
        return rev, won


def loaded(digest: str) -> bool:
    """On a worker: whether it holds the scenario read from its folder (for tests)."""
    return digest in _BOOKS
