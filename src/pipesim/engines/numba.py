"""The local engine: the numba kernel on this machine's threads."""

from __future__ import annotations

import numba
import numpy as np

from pipesim.kernels import arrivals as arrival_kernel
from pipesim.kernels import dated_deals as dated_kernel
from pipesim.kernels import per_deal, trial
from pipesim.kernels.dated_deals import DatedTable
from pipesim.kernels.streams import seed_bits
from pipesim.kernels.tables import ArrivalTable, DealTable
from pipesim.prepare.kernel_inputs import Prepared
from pipesim.progress import Progress

# Deal-trials per block of a blocked run: about 0.3 s on one core here, so that
# progress is reported and Ctrl-C is honoured between blocks.
BLOCK_WORK = 40_000_000
# Entries (trials x cells x shock columns) of the shocked odds table laid out in full.
ODDS_TABLE = 4_000_000


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
    _run_into(prepared, seed, first_trial, rev, won, block, chunk)
    return rev, won


def _run_into(
    prepared: Prepared,
    seed: int,
    first_trial: int,
    rev: np.ndarray,
    won: np.ndarray,
    block: int | None,
    chunk: int,
) -> None:
    accumulate(
        prepared, prepared.deals, prepared.arrivals, seed, first_trial, rev, won, block, chunk,
        dated=prepared.dated,
    )  # fmt: skip


def accumulate(
    prepared: Prepared,
    deals: DealTable,
    arrivals: ArrivalTable,
    seed: int,
    first_trial: int,
    rev: np.ndarray,
    won: np.ndarray,
    block: int | None = None,
    chunk: int = 4096,
    *,
    dated: DatedTable | None = None,
) -> None:
    """Add the given deals' and arrivals' revenue to ``rev``/``won`` (trials ``first_trial ..``).

    ``deals``/``arrivals`` are kernel tables of ``prepared``'s funnel, e.g. rows of
    ``prepared.deals`` from :meth:`~pipesim.kernels.tables.DealTable.take` (an empty
    slice for none). Each trial
    adds its deals in table order, then its arrivals: so calling this chunk after chunk
    of deals in order, and with the arrivals last, gives the same bits as one call
    with the whole book. ``dated``: deals timed by their stated close dates
    (:mod:`pipesim.kernels.dated_deals`), added after ``deals`` and before the arrivals.
    """
    trials = rev.shape[0]
    if block is None:
        block = max(1, min(16, trials // (4 * numba.get_num_threads())))
    funnel = prepared.funnel
    pwin = np.empty((trials, funnel.n_cells))
    trial.trial_win_probabilities(seed_bits(seed), first_trial, funnel, pwin)
    dated_rows = dated is not None and dated.rows > 0
    if deals.rows or dated_rows:  # the open deals' odds shocks, once for both kernels
        shift = deal_shifts(prepared, seed, first_trial, trials)
    if deals.rows:
        funnel_args = funnel.timing()
        deal_args = (deals.key, deals.cell, deals.amount, deals.age, deals.by, deals.strip)
        rest = (
            deals.fx,
            prepared.day_period,
            prepared.slips,
            prepared.day_rate,
            block,
            chunk,
            rev,
            won,
        )
        if clocked(deals):  # some deals' odds depend on their age: the two-clock kernel
            conv = trial_conversions(seed, first_trial, prepared, trials, True)
            per_deal.simulate_deals_two_clocks(
                seed_bits(seed), first_trial, pwin, conv, shift, *funnel_args, *deal_args,
                deals.survival_ratio, deals.shock, *rest,
            )  # fmt: skip
        else:
            odds, odds_of = shocked_odds(pwin, shift, deals)
            per_deal.simulate_deals(
                seed_bits(seed), first_trial, odds, *funnel_args, *deal_args[:2], odds_of,
                *deal_args[2:], *rest,
            )  # fmt: skip
    if dated_rows:
        assert dated is not None and prepared.calendar_day_period is not None
        dated_kernel.simulate_dated(
            seed_bits(seed), first_trial, shift, *dated, prepared.calendar_day_period,
            prepared.day_rate, rev, won,
        )  # fmt: skip
    if arrivals.rows:
        ids = np.arange(first_trial, first_trial + trials, dtype=np.int64)
        arrival_kernel.simulate_arrivals(
            seed_bits(seed), ids, pwin, prepared.funnel, arrivals, prepared.day_period,
            prepared.slips, prepared.day_rate, rev, won,
        )  # fmt: skip


def clocked(deals: DealTable) -> bool:
    """Whether some deal's odds depend on its age (a survival ratio other than 1)."""
    return bool(np.any(deals.survival_ratio != 1.0))


def deal_shifts(prepared: Prepared, seed: int, first_trial: int, trials: int) -> np.ndarray:
    """Each trial's logit shifts of the open deals' odds (see DealShocks).

    [trials, columns]; without shocks one column of zeros (every deal's column is 0).
    """
    shocks = prepared.deal_shocks
    if not shocks.active:
        return np.zeros((trials, 1))
    shift = np.empty((trials, shocks.columns))
    trial.deal_shifts(seed_bits(seed), first_trial, shocks, shift)
    return shift


def shocked_odds(
    pwin: np.ndarray, shift: np.ndarray, deals: DealTable
) -> tuple[np.ndarray, np.ndarray]:
    """The one-clock kernel's odds table and each deal's column of it.

    Without shocks ``pwin`` itself and the deals' cells. With them, each (cell,
    shock column) pair's P(win) moved by the shift: every pair when the table
    stays under :data:`ODDS_TABLE` entries (a big book runs few trials at a time),
    else only the pairs the deals hold (a small book: sorting it costs little).
    """
    cols = shift.shape[1]
    if cols == 1:  # no shock: one column of zeros
        return pwin, deals.cell
    pair = deals.cell * cols + deals.shock
    if pwin.shape[0] * pwin.shape[1] * cols <= ODDS_TABLE:
        pairs = np.arange(pwin.shape[1] * cols, dtype=np.int64)
    else:
        pairs, inverse = np.unique(pair, return_inverse=True)
        pair = inverse.astype(np.int64)
    odds = np.empty((pwin.shape[0], pairs.size))
    trial.shifted_odds(pwin, shift, pairs // cols, pairs % cols, odds)
    return odds, pair


def trial_conversions(
    seed: int, first_trial: int, prepared: Prepared, trials: int, needed: bool
) -> np.ndarray:
    """Each trial's conversion per cell when ``needed`` (aged deals on two clocks), else 1 x 1.

    Deals whose survival ratio is 1 use ``pwin`` alone, so a book without loss
    clocks skips these draws.
    """
    if not needed:
        return np.ones((1, 1))
    conv = np.empty((trials, prepared.funnel.n_cells))
    trial.trial_conversions(seed_bits(seed), first_trial, prepared.funnel, conv)
    return conv


def block_trials(prepared: Prepared, threads: int | None = None) -> int:
    """Trials per block of :func:`run_blocks`: about ``BLOCK_WORK`` deal-trials.

    A multiple of ``4 x threads`` so that every thread has the same share.
    """
    threads = threads or numba.get_num_threads()
    dated = prepared.dated.rows if prepared.dated is not None else 0
    per_trial = max(1, prepared.deals.rows + dated + 50 * prepared.arrivals.rows)
    step = 4 * threads
    wanted = max(step, BLOCK_WORK // per_trial)
    return -(-wanted // step) * step


def run_blocks(
    prepared: Prepared,
    trials: int,
    seed: int,
    progress: Progress | None = None,
    *,
    first_trial: int = 0,
    block_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`run`, in blocks of trials: progress and Ctrl-C are handled between blocks.

    Each trial's random streams depend on (seed, trial) only and each trial adds
    its deals in the same order, so the arrays are the same bits as :func:`run`'s.
    """
    n_periods = len(prepared.periods)
    width = 1 + len(prepared.by_values)
    rev = np.zeros((trials, n_periods, width))
    won = np.zeros((trials, n_periods, width))
    size = block_size or block_trials(prepared)
    for start in range(0, trials, size):
        stop = min(start + size, trials)
        _run_into(prepared, seed, first_trial + start, rev[start:stop], won[start:stop], None, 4096)
        if progress is not None:
            progress.update(stop - start)
    return rev, won


def run_arrivals_of(
    prepared: Prepared, trials: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The new leads' (revenue, won) of the trials numbered ``trials``, row by row.

    The open deals are left out; each row is the same bits as that trial's row of
    :func:`run` on a scenario without open deals.
    """
    ids = np.ascontiguousarray(trials, dtype=np.int64)
    n_periods = len(prepared.periods)
    width = 1 + len(prepared.by_values)
    rev = np.zeros((ids.size, n_periods, width))
    won = np.zeros((ids.size, n_periods, width))
    if ids.size == 0 or not prepared.arrivals.rows:
        return rev, won
    pwin = np.empty((ids.size, prepared.funnel.n_cells))
    arrival_kernel.win_probabilities_of(seed_bits(seed), ids, prepared.funnel, pwin)
    arrival_kernel.simulate_arrivals(
        seed_bits(seed), ids, pwin, prepared.funnel, prepared.arrivals, prepared.day_period,
        prepared.slips, prepared.day_rate, rev, won,
    )  # fmt: skip
    return rev, won
