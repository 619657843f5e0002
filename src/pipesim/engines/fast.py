"""The fast engine: numba, at the cost of the winning deals only (see :mod:`pipesim._fast_kernels`).

Same law as the per-deal :mod:`pipesim.engines.local` engine, not the same
bits. One seed still gives one answer whatever the thread count or blocks.
"""

from __future__ import annotations

import numba
import numpy as np

from pipesim import _fast_kernels
from pipesim.engines.local import seed_bits
from pipesim.prepare import Prepared
from pipesim.progress import Progress

BLOCK_WORK = 200_000_000  # deal-trials (equivalent) per block of a blocked run


def cell_starts(prepared: Prepared) -> np.ndarray:
    """First deal of each (group, stage) cell, then the number of deals (deals are sorted)."""
    gs = prepared.deals[1]
    if gs.size == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(np.diff(gs)) + 1
    return np.concatenate([[0], change, [gs.size]]).astype(np.int64)


def run(
    prepared: Prepared,
    trials: int,
    seed: int,
    *,
    first_trial: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate trials ``first_trial ..`` with the fast path; arrays as :func:`local.run`."""
    n_periods = len(prepared.periods)
    width = 1 + len(prepared.by_values)
    rev = np.zeros((trials, n_periods, width))
    won = np.zeros((trials, n_periods, width))
    starts = cell_starts(prepared)
    threads = numba.get_num_threads()
    per_trial = max(1, len(prepared.deals[0]) + 50 * len(prepared.arrivals[0]))
    step = 4 * threads
    size = -(-max(step, BLOCK_WORK // per_trial) // step) * step
    for start in range(0, trials, size):
        stop = min(start + size, trials)
        _fast_kernels.simulate_fast(
            seed_bits(seed),
            first_trial + start,
            prepared.funnel,
            prepared.deals,
            starts,
            prepared.arrivals,
            prepared.day_period,
            max(1, (stop - start) // step),
            rev[start:stop],
            won[start:stop],
        )
        if progress is not None:
            progress.update(stop - start)
    return rev, won
