"""simulate_flows(): per trial and month, deals entering every stage (and won revenue)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.kernels.streams import seed_bits
from pipesim.prepare.kernel_inputs import prepare
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.simulate import check_seed


@dataclasses.dataclass(frozen=True)
class Flows:
    """Simulated stage entries.

    ``entered`` is [trial, period, stage, 1 + segment] where the stage axis is the
    funnel then Won (won deals); ``revenue`` is [trial, period, 1 + segment].
    Column 0 is the whole book, column 1 + k the k-th row of ``segments``.
    """

    periods: list[str]
    stages: tuple[str, ...]
    by: tuple[str, ...]
    segments: pd.DataFrame
    entered: np.ndarray
    revenue: np.ndarray


def simulate_flows(scenario: Scenario, trials: int, seed: int, by: Sequence[str] = ()) -> Flows:
    """Simulate the monthly entries into every stage of ``scenario`` (numba, all threads)."""
    check_seed(seed)
    from pipesim.kernels import stage_flows

    # Every open deal walks its stages: a deal with a stated close date is walked on its
    # stage's clocks here (the slippage law times its win, not its stage entries).
    if scenario.close_law is not None:
        scenario = scenario.replace(close_law=None)
    prepared = prepare(scenario, by)
    n_periods = len(prepared.periods)
    n_stages = len(scenario.funnel)
    width = 1 + len(prepared.by_values)
    entered = np.zeros((trials, n_periods, n_stages + 1, width))
    revenue = np.zeros((trials, n_periods, width))
    stage_flows.flow_trials(
        seed_bits(seed),
        0,
        prepared.funnel,
        prepared.deals,
        prepared.arrivals,
        prepared.deal_shocks,
        prepared.day_period,
        prepared.day_rate,
        entered,
        revenue,
    )
    return Flows(
        periods=prepared.periods,
        stages=(*scenario.funnel, "Won"),
        by=tuple(by),
        segments=prepared.by_values.reset_index(drop=True),
        entered=entered,
        revenue=revenue,
    )
