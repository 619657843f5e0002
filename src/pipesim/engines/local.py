"""The local engine: the numba kernel on this machine's threads."""

from __future__ import annotations

import numba
import numpy as np

from pipesim import _kernels
from pipesim.prepare import Prepared


def seed_bits(seed: int) -> np.uint64:
    """The user's seed as the kernel's 64-bit seed (any Python int; negatives wrap)."""
    return np.uint64(int(seed) % (1 << 64))


def run(
    prepared: Prepared,
    trials: int,
    seed: int,
    *,
    first_trial: int = 0,
    block: int | None = None,
    chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate trials ``first_trial .. first_trial + trials`` and return (revenue, won).

    Both arrays are [trial, period, 1 + by-group], column 0 being the whole book.
    ``block`` and ``chunk`` only change speed, never the numbers.
    """
    n_periods = len(prepared.periods)
    width = 1 + len(prepared.by_values)
    rev = np.zeros((trials, n_periods, width))
    won = np.zeros((trials, n_periods, width))
    if block is None:
        block = max(1, min(16, trials // (4 * numba.get_num_threads())))
    _kernels.simulate_trials(
        seed_bits(seed),
        first_trial,
        prepared.funnel,
        prepared.deals,
        prepared.arrivals,
        prepared.day_period,
        block,
        chunk,
        rev,
        won,
    )
    return rev, won
