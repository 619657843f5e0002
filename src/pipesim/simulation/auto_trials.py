"""``trials="auto"``: run blocks of trials until the horizon's P10/P50/P90 are precise enough.

The criterion is the whole book's cumulative revenue at the horizon: each of its
P10, P50 and P90 must have a Monte Carlo standard error (:mod:`pipesim.simulation.precision`)
of at most ``precision`` times the quantile. A quantile near 0 (a book that often
wins nothing) has no useful relative error, so the quantile is floored at
:data:`FLOOR_SHARE` of the horizon's mean revenue: its standard error must then be at
most ``precision`` x 10 % of the mean.

After a first block of :data:`FIRST_BLOCK` trials, the next count comes from the
standard error falling as 1/sqrt(trials): the count that would just reach the
precision, 10 % more, rounded up to a multiple of :data:`STEP`, at most
``max_trials``. Engines that address trials by index (numba, fast) run only the new
trials and append them: trials 0 .. n-1 of a longer run are those of a run of n, so
the result is the same bits as a plain run with the final count. The others (numpy,
Dask) run again from trial 0 with the new count (the same guarantee, at more cost).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from pipesim.prepare.kernel_inputs import Prepared
from pipesim.simulation.precision import QUANTILES, quantile_se, relative_error

AUTO = "auto"
PRECISION = 0.005  # relative standard error of the horizon's P10/P50/P90 when not told
MAX_TRIALS = 200_000  # at most this many trials when not told (about 19 MB a period column)
FIRST_BLOCK = 2_000
STEP = 1_000
FLOOR_SHARE = 0.1  # quantiles below 10 % of the horizon's mean are judged against that 10 %
_MARGIN = 1.1  # ask for 10 % more than the 1/sqrt(n) law says, to finish in one more block

# (first_trial, count) -> (prepared, revenue, won) for trials first_trial .. first_trial + count.
BlockRunner = Callable[[int, int], tuple[Prepared, np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class AutoOutcome:
    """How a ``trials="auto"`` run ended."""

    precision: float  # the relative standard error asked for
    max_trials: int
    reached: bool  # False: stopped at max_trials with the precision not reached
    relative_se: float  # the worst of the horizon's P10/P50/P90 (floored, see the module)
    blocks: int  # simulation calls made


def horizon_error(revenue: np.ndarray) -> float:
    """The largest relative standard error of the horizon's whole-book P10/P50/P90."""
    total = np.cumsum(revenue[:, :, 0], axis=1)[:, -1:]
    q = np.quantile(total, QUANTILES, axis=0)[:, 0]
    se = quantile_se(total, QUANTILES)[:, 0]
    floor = FLOOR_SHARE * abs(float(total.mean()))
    return float(np.max(relative_error(se, q, floor)))


def next_count(done: int, error: float, precision: float, max_trials: int) -> int:
    """The trial count to try next after ``done`` trials gave relative error ``error``."""
    # A first block with an infinite error (a quantile of 0 with a spread): grow 4x.
    wanted = done * (error / precision) ** 2 * _MARGIN if math.isfinite(error) else 4.0 * done
    wanted = max(float(done + STEP), wanted)
    steps = math.ceil(wanted / STEP)
    return int(min(max_trials, steps * STEP))


def run_auto(
    run_block: BlockRunner, appends: bool, precision: float, max_trials: int
) -> tuple[Prepared, np.ndarray, np.ndarray, AutoOutcome]:
    """Run until :func:`horizon_error` <= ``precision`` or ``max_trials`` trials are done.

    ``appends``: ``run_block(first, count)`` gives trials ``first ..`` (blocks add up);
    otherwise it is called with ``first`` 0 and the whole count each time.
    """
    n = min(FIRST_BLOCK, max_trials)
    prepared, revenue, won = run_block(0, n)
    blocks = 1
    error = horizon_error(revenue)
    while error > precision and n < max_trials:
        total = next_count(n, error, precision, max_trials)
        if appends:
            prepared, more_rev, more_won = run_block(n, total - n)
            revenue = np.concatenate([revenue, more_rev])
            won = np.concatenate([won, more_won])
        else:
            prepared, revenue, won = run_block(0, total)
        n = total
        blocks += 1
        error = horizon_error(revenue)
    outcome = AutoOutcome(precision, max_trials, error <= precision, error, blocks)
    return prepared, revenue, won, outcome


def auto_notes(outcome: AutoOutcome | None, trials: int) -> tuple[str, ...]:
    """A note when a trials="auto" run stopped at its maximum short of the precision."""
    if outcome is None or outcome.reached:
        return ()
    return (
        f"trials auto: stopped at the maximum of {trials:,} trials; the horizon's P10/P50/P90 "
        f"are known within {outcome.relative_se:.2%} (standard error), not the "
        f"{outcome.precision:.2%} asked. Allow more trials, or accept the wider error.",
    )
