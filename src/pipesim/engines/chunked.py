"""The local and fast engines over a book read chunk by chunk: memory of one chunk, same bits.

Each chunk of deals is read once (``Scenario.deal_chunks``), turned into its
kernel table (:func:`pipesim.prepare.kernel_inputs.prepare_deals`) and run for every trial,
in blocks of trials between which progress is reported and Ctrl-C honoured;
then the deals timed by their stated close dates (the book read a second time, only
when it has some: the per-deal engine; the fast path refuses them on disk), then the
arrivals. Every trial adds its deals in the canonical order, then its dated deals, then its
arrivals, so the arrays are the same bits as :func:`pipesim.engines.numba.run`
on ``prepare(scenario)`` with the same chunk size (and as
:func:`pipesim.engines.fast.run` with ``engine="fast"``). Memory: one chunk of deals
plus the per-trial totals (trials x periods x (1 + by-groups)).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from pipesim.engines import fast
from pipesim.engines import numba as numba_engine
from pipesim.kernels.dated_deals import DatedTable
from pipesim.kernels.tables import ArrivalTable, DealTable
from pipesim.prepare.kernel_inputs import DealContext, dated_part, prepare_deals, with_dated
from pipesim.progress import Progress
from pipesim.scenario.scenario import DEAL_CHUNK, Scenario


def run(
    scenario: Scenario,
    context: DealContext,
    trials: int,
    seed: int,
    progress: Progress | None = None,
    *,
    first_trial: int = 0,
    chunk: int = DEAL_CHUNK,
    timings: dict[str, float] | None = None,
    engine: str = "numba",
    window: int = fast.WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate trials ``first_trial ..`` of ``scenario`` chunk by chunk (arrays as ``run``'s).

    Parameters
    ----------
    scenario : Scenario
        The book (its deals in memory or on disk).
    context : DealContext
        ``prepare_context(scenario, by)``.
    trials, seed : int
        As for :func:`pipesim.simulate`.
    progress : Progress, optional
        Told about finished trials (a pass over every chunk counts as one trial).
    chunk : int
        Deals per chunk: :data:`DEAL_CHUNK` (tests pass smaller ones; the same
        chunk size gives the same bits as :func:`pipesim.prepare.kernel_inputs.prepare`).
    timings : dict, optional
        Receives ``read_prepare`` (seconds reading and preparing chunks) and
        ``simulate`` (seconds in the kernel).
    engine : {"numba", "fast"}
        The per-deal kernel, or the fast path (winners only) for the deals.
    window : int
        The fast path's window (a divisor of ``chunk``, as the defaults are, gives
        the same bits as :func:`pipesim.engines.fast.run` on the whole book).
    """
    prepared = context.prepared
    rev = np.zeros((trials, len(prepared.periods), 1 + len(prepared.by_values)))
    won = np.zeros_like(rev)
    passes = -(-context.deal_count // chunk) + 1  # deal chunks, then the arrivals
    shown = 0
    done = 0
    spent = {"read_prepare": 0.0, "simulate": 0.0}

    def one_pass(
        deals: DealTable, arrivals: ArrivalTable, deal0: int, dated: DatedTable | None = None
    ) -> None:
        nonlocal shown, done
        part = dataclasses.replace(prepared, deals=deals, arrivals=arrivals)
        part = with_dated(part, dated)
        winners_only = engine == "fast" and deals.rows > 0
        size = (
            fast.block_trials(part, deals.rows) if winners_only else numba_engine.block_trials(part)
        )
        for start in range(0, trials, size):
            stop = min(start + size, trials)
            t0 = time.perf_counter()
            first, r, w = first_trial + start, rev[start:stop], won[start:stop]
            if winners_only:
                fast.accumulate(part, deals, seed, first, r, w, deal0=deal0, window=window)
            else:
                numba_engine.accumulate(part, deals, arrivals, seed, first, r, w, dated=dated)
            spent["simulate"] += time.perf_counter() - t0
            done += stop - start
            if progress is not None and done // passes > shown:
                progress.update(done // passes - shown)
                shown = done // passes

    no_arrivals = prepared.arrivals.take(0, 0)
    no_deals = prepared.deals.take(0, 0)
    dated_seen = False
    deal0 = 0
    t0 = time.perf_counter()
    for rows in scenario.deal_chunks(chunk, columns=context.deal_columns):
        rows, dated = dated_part(context, rows)
        dated_seen |= dated is not None
        deals = prepare_deals(context, rows)
        del rows, dated
        spent["read_prepare"] += time.perf_counter() - t0
        one_pass(deals, no_arrivals, deal0)
        deal0 += deals.rows
        t0 = time.perf_counter()
    if dated_seen:  # then the deals timed by their close dates, read again (as prepare's order)
        for rows in scenario.deal_chunks(chunk, columns=context.deal_columns):
            _, dated = dated_part(context, rows)
            if dated is not None:
                one_pass(no_deals, no_arrivals, 0, dated)
    one_pass(no_deals, prepared.arrivals, 0)
    if progress is not None and trials > shown:
        progress.update(trials - shown)
    if timings is not None:
        timings.update(spent)
    return rev, won
