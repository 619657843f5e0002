"""Simulation results: per-trial arrays and the tables people read (mean, P10, P50, P90)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.scenario.quotas import owner_columns
from pipesim.scenario.scenario import Scenario
from pipesim.simulation.attainment import quota_table
from pipesim.simulation.auto_trials import AutoOutcome
from pipesim.simulation.deal_odds import DealOdds
from pipesim.simulation.precision import QUANTILES, mean_se, quantile_se
from pipesim.simulation.quarters import quarter_table

METRICS = ("revenue", "won_deals")


def by_columns(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """``by`` as a tuple of column names: ``"a,b"``, ``["a", "b"]`` or None (no breakdown)."""
    if by is None:
        return ()
    if isinstance(by, str):
        return tuple(c.strip() for c in by.split(",") if c.strip())
    return tuple(by)


@dataclasses.dataclass
class Result:
    """The outcome of :func:`pipesim.simulate`.

    ``revenue`` and ``won`` are arrays [trial, period, 1 + segment]: column 0 is
    the whole book, column 1 + k the k-th row of ``segments`` (values of the
    ``by`` columns). Use :meth:`summary` and :meth:`trials` for DataFrames; asking
    for another breakdown runs the same trials again with the same seed, so the
    numbers agree with these.
    """

    scenario: Scenario
    trials_count: int
    seed: int
    engine: str
    periods: list[str]
    by: tuple[str, ...]
    segments: pd.DataFrame
    revenue: np.ndarray
    won: np.ndarray
    notes: tuple[str, ...] = ()
    auto: AutoOutcome | None = None  # how a trials="auto" run ended (None: trials as given)
    deal_odds: DealOdds | None = None  # each open deal's odds over these trials, when asked
    _rerun: Callable[[tuple[str, ...]], Result] | None = dataclasses.field(default=None, repr=False)
    _cache: dict[tuple[str, ...], Result] = dataclasses.field(default_factory=dict, repr=False)

    def breakdown(self, by: str | Sequence[str] | None) -> Result:
        """The result broken down by ``by`` (this one if it already is)."""
        cols = by_columns(by)
        if cols == self.by or not cols:
            return self
        if cols not in self._cache:
            if self._rerun is None:
                raise ValueError(f"this result has no breakdown by {cols}")
            self._cache[cols] = self._rerun(cols)
        return self._cache[cols]

    def total_revenue(self) -> np.ndarray:
        """Whole-book revenue of each trial over the horizon."""
        return self.revenue[:, :, 0].sum(axis=1)

    def _columns(self, with_segments: bool) -> list[tuple[dict[str, object], int]]:
        if not with_segments:
            return [({}, 0)]
        cols: list[tuple[dict[str, object], int]] = [({c: None for c in self.by}, 0)]
        if self.by:
            order = self.segments.sort_values(list(self.by), kind="stable").index
            cols += [(self.segments.loc[k].to_dict(), 1 + int(k)) for k in order]
        return cols

    def summary(self, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Mean, P10, P50, P90 per period, monthly and cumulative, of revenue and won deals.

        Long form: the ``by`` columns (null on the whole-book rows), ``period``,
        ``cumulative``, ``metric``, ``mean``, ``p10``, ``p50``, ``p90``, and the
        Monte Carlo standard errors of those four estimates, ``mean_se``, ``p10_se``,
        ``p50_se``, ``p90_se`` (see :mod:`pipesim.simulation.precision`).
        Quantiles use numpy's default (linear) definition.
        """
        res = self.breakdown(by)
        frames = []
        for labels, col in res._columns(with_segments=bool(by_columns(by))):
            for metric, values in (("revenue", res.revenue), ("won_deals", res.won)):
                monthly = values[:, :, col]
                for cumulative, data in ((False, monthly), (True, np.cumsum(monthly, axis=1))):
                    q = np.quantile(data, QUANTILES, axis=0)
                    q_se = quantile_se(data, QUANTILES)
                    frame = pd.DataFrame(
                        {
                            "period": res.periods,
                            "cumulative": cumulative,
                            "metric": metric,
                            "mean": data.mean(axis=0),
                            "p10": q[0],
                            "p50": q[1],
                            "p90": q[2],
                            "mean_se": mean_se(data),
                            "p10_se": q_se[0],
                            "p50_se": q_se[1],
                            "p90_se": q_se[2],
                        }
                    )
                    for pos, (c, v) in enumerate(labels.items()):
                        frame.insert(pos, c, pd.Series([v] * len(frame), dtype=object))
                    frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        for c in by_columns(by):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        return out

    def quarters(self, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Mean, P10, P50, P90 of revenue and won deals per fiscal quarter and year.

        Long form: the ``by`` columns (null on the whole-book rows), ``fiscal_year``
        (``FY2027``), ``quarter`` (``Q1``..``Q4``, ``FY`` for the year), ``start``,
        ``end`` (its first and last day), ``complete`` (False when as_of or the
        horizon cuts it: then only the forecast part), ``metric``, ``mean``, ``p10``,
        ``p50``, ``p90``: each quantile over the trials' totals of the quarter.
        """
        res, cols = self.breakdown(by), by_columns(by)
        columns = res._columns(with_segments=bool(cols))
        return quarter_table(res.scenario, columns, res.revenue, res.won, cols, QUANTILES)

    def quota(self) -> pd.DataFrame | None:
        """Attainment of each quota row (``quota.parquet``), or None without quotas.

        Columns: the owner columns, ``period``, ``quota``, ``mean``, ``p10``, ``p50``,
        ``p90`` of the owner's revenue in the period (booked revenue included),
        ``p_attain`` = P(revenue >= quota), ``p_attain_80`` = P(revenue >= 0.8 quota),
        ``expected_gap`` = E[max(quota - revenue, 0)], judged at cent precision.
        """
        if self.scenario.quotas is None:
            return None
        owners = owner_columns(self.scenario.quotas)
        res = self.breakdown(owners) if owners else self
        return quota_table(res.scenario, res.segments, res.revenue, QUANTILES)

    def trials(self, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Per-trial revenue and won deals per period (whole-book rows have null ``by`` columns)."""
        res = self.breakdown(by)
        n_t, n_p = res.revenue.shape[:2]
        frames = []
        for labels, col in res._columns(with_segments=bool(by_columns(by))):
            frame = pd.DataFrame(
                {
                    "trial": np.repeat(np.arange(n_t, dtype=np.int64), n_p),
                    "period": np.tile(np.asarray(res.periods, dtype=object), n_t),
                    "revenue": res.revenue[:, :, col].ravel(),
                    "won_deals": res.won[:, :, col].ravel().astype(np.int64),
                }
            )
            for pos, (c, v) in enumerate(labels.items()):
                frame.insert(pos, c, pd.Series([v] * len(frame), dtype=object))
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def metadata(self) -> dict[str, str]:
        """What a results file must say about how it was made (and of which scenario)."""
        from pipesim.io.fingerprint import scenario_fingerprint
        from pipesim.version import __version__

        return {
            "pipesim_version": __version__,
            "seed": str(self.seed),
            "trials": str(self.trials_count),
            "engine": self.engine,
            "scenario": str(Path(self.scenario.path).resolve())
            if self.scenario.path
            else self.scenario.name,
            "scenario_name": self.scenario.name,
            "as_of": self.scenario.as_of.isoformat(),
            "horizon_months": str(self.scenario.horizon_months),
            "currency": self.scenario.currency,
            "by": ",".join(self.by),
            "scenario_fingerprint": scenario_fingerprint(self.scenario),
            **self.auto_metadata(),
        }

    def auto_metadata(self) -> dict[str, str]:
        """A trials="auto" run's settings and outcome (nothing for a run of given trials)."""
        if self.auto is None:
            return {}
        a = self.auto
        return {
            "trials_auto": "true",
            "precision": repr(a.precision),
            "max_trials": str(a.max_trials),
            "precision_reached": str(a.reached).lower(),
            "horizon_relative_se": repr(a.relative_se),
        }
