"""The fast engine: numba at the cost of the winners only (:mod:`pipesim.kernels.winners_only`).

Same law as the per-deal :mod:`pipesim.engines.numba` engine, not the same
bits. One seed still gives one answer whatever the thread count or blocks.
"""

from __future__ import annotations

import numba
import numpy as np

from pipesim.engines import numba as numba_engine
from pipesim.kernels import trial, winners_only
from pipesim.kernels.streams import seed_bits
from pipesim.kernels.tables import DealTable
from pipesim.prepare.kernel_inputs import Prepared
from pipesim.progress import Progress

# Deal-trials (equivalent) per kernel call: about a second here, so that progress is
# reported and Ctrl-C honoured between calls; each thread takes an equal share.
BLOCK_WORK = 400_000_000
WINDOW = 8192  # deals per window: the window's deal arrays and the winners' buffers fit in L2


def cell_starts(deals: DealTable, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Runs of one cell inside a window of ``window`` deals, and each window's first run.

    ``deals`` is a kernel deal table; the fast path calls each run of one
    (group, stage) cell and odds-shock column a cell. Returns
    ``(cell_start, window_cell)``: the first deal of each cell, then the number of
    deals; the first cell of each window, then the number of cells. Both depend on
    the book only (not on threads), so the cells' random streams do too.
    """
    gs = deals.cell
    n = gs.size
    if n == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    bounds = np.arange(0, n, window)
    change = np.flatnonzero((np.diff(gs) != 0) | (np.diff(deals.shock) != 0)) + 1
    starts = np.union1d(bounds, change)
    cell_start = np.concatenate([starts, [n]]).astype(np.int64)
    window_cell = np.concatenate([np.searchsorted(starts, bounds), [starts.size]]).astype(np.int64)
    return cell_start, window_cell


def cell_ratios(deals: DealTable, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of :func:`cell_starts`: the lowest survival ratio, and whether others differ.

    The lowest ratio gives the cell's highest odds of winning; a cell whose deals do
    not all share it is thinned deal by deal (all 1: the stage's conversion).
    """
    n_cells = cells.shape[0] - 1
    ratio = deals.survival_ratio
    if ratio.size == 0 or np.all(ratio == 1.0):
        return np.ones(max(n_cells, 1)), np.zeros(max(n_cells, 1), dtype=np.uint8)
    starts = cells[:-1]
    low = np.minimum.reduceat(ratio, starts)
    high = np.maximum.reduceat(ratio, starts)
    return low, (high != low).astype(np.uint8)


def block_trials(prepared: Prepared, n_deals: int, threads: int | None = None) -> int:
    """Trials per kernel call on ``n_deals`` deals: about ``BLOCK_WORK``, a multiple of threads."""
    threads = threads or numba.get_num_threads()
    per_trial = max(1, n_deals + 50 * prepared.arrivals.rows)
    return -(-max(threads, BLOCK_WORK // per_trial) // threads) * threads


def accumulate(
    prepared: Prepared,
    deals: DealTable,
    seed: int,
    first_trial: int,
    rev: np.ndarray,
    won: np.ndarray,
    *,
    deal0: int = 0,
    window: int = WINDOW,
) -> None:
    """Add the given deals' revenue to ``rev``/``won`` (trials ``first_trial ..``), no arrivals.

    ``deals`` is a kernel deal table of ``prepared``'s layout whose first row is deal
    ``deal0`` of the book (cells' streams are keyed by their first deal in the book,
    so a book run chunk by chunk gives the same bits as in one piece with the same
    chunks, and no two cells share a stream).
    """
    cells, windows = cell_starts(deals, window)
    cell_surv, cell_mixed = cell_ratios(deals, cells)
    trials = rev.shape[0]
    threads = numba.get_num_threads()
    funnel = prepared.funnel
    pwin = np.empty((trials, funnel.n_cells))
    trial.trial_win_probabilities(seed_bits(seed), first_trial, funnel, pwin)
    winners_only.simulate_fast(
        seed_bits(seed),
        first_trial,
        deal0,
        pwin,
        numba_engine.trial_conversions(
            seed, first_trial, prepared, trials, numba_engine.clocked(deals)
        ),
        numba_engine.deal_shifts(prepared, seed, first_trial, trials),
        *funnel.timing(),
        deals.cell,
        deals.amount,
        deals.age,
        deals.by,
        deals.strip,
        deals.survival_ratio,
        deals.shock,
        cells,
        windows,
        cell_surv,
        cell_mixed,
        deals.fx,
        prepared.day_period,
        prepared.slips,
        prepared.day_rate,
        -(-trials // threads),  # one block of trials per thread
        rev,
        won,
    )


def run(
    prepared: Prepared,
    trials: int,
    seed: int,
    *,
    first_trial: int = 0,
    progress: Progress | None = None,
    window: int = WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate trials ``first_trial ..`` with the fast path (arrays as the numba engine's)."""
    n_periods = len(prepared.periods)
    width = 1 + len(prepared.by_values)
    rev = np.zeros((trials, n_periods, width))
    won = np.zeros((trials, n_periods, width))
    size = block_trials(prepared, prepared.deals.rows)
    no_deals = prepared.deals.take(0, 0)
    for start in range(0, trials, size):
        stop = min(start + size, trials)
        first = first_trial + start
        accumulate(prepared, prepared.deals, seed, first, rev[start:stop], won[start:stop],
                   window=window)  # fmt: skip
        # Then each trial's dated deals and arrivals, by the per-deal kernels (as they add
        # them: last).
        numba_engine.accumulate(
            prepared, no_deals, prepared.arrivals, seed, first, rev[start:stop], won[start:stop],
            dated=prepared.dated,
        )  # fmt: skip
        if progress is not None:
            progress.update(stop - start)
    return rev, won
