"""The kernels' input tables: named tuples of equally long arrays, one per concept.

Built by :mod:`pipesim.prepare` and read by every kernel and engine. A named tuple
is a plain tuple to numba (fields by position, no cost), and a record to Python,
so every call site names the fields it takes. The tables hold arrays only.

Indexing: a *parameter group* ``g`` is one combination of the stages table's
segment values; a *cell* is ``g * n_stages + s`` for stage ``s``. Dwell and value
arrays are flat over cells.

Currencies: a win of value v on day ``int(t)`` books ``v * day_rate[fx, int(t)]``
(``day_rate`` [currency slot, day] from :func:`pipesim.scenario.currency.day_rates`;
slot 0 is all ones, so a book in one currency keeps its bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# Dwell-time laws by code (``FunnelTable.dwell_code``).
EXPONENTIAL, GAMMA, LOGNORMAL, FIXED = 0, 1, 2, 3
POOL_EPS = 1e-9  # a pooled conversion's mean is kept inside (POOL_EPS, 1 - POOL_EPS)


class FunnelTable(NamedTuple):
    """The funnel's parameters per cell, and the conversion units drawn once per trial.

    A *unit* is one conversion parameter drawn once per trial (from
    Beta(conv * n, (1 - conv) * n) when n > 0, else fixed at conv); cells that take
    their conversion from the same stage row share a unit. A *child* unit (a
    segment row pooled towards its stage's funnel row) is drawn around its parent's
    draw (:func:`pipesim.kernels.trial.conversions`); parents come before children.

    Dwell parameters by ``dwell_code``: exponential (p1 = mean), gamma (p1 = shape,
    p2 = scale, ``dwell_table`` = its strip table), lognormal (p1 = mu, p2 = sigma),
    fixed (p1 = days). The strip arrays are :mod:`pipesim.prepare.dwell_tables`'.
    """

    unit_key: np.ndarray  # uint64 [units]: the unit's random stream key
    unit_conv: np.ndarray  # float64 [units]: mean conversion
    unit_n: np.ndarray  # float64 [units]: effective deals behind it (0: exact)
    unit_of: np.ndarray  # int64 [groups, stages]: the unit of each cell
    unit_parent: np.ndarray  # int64 [units]: the unit it is pooled towards (-1: none)
    unit_pool: np.ndarray  # float64 [units]: the pooling weight m, in deals (0: none)
    dwell_code: np.ndarray  # int64 [cells]
    dwell_p1: np.ndarray  # float64 [cells]
    dwell_p2: np.ndarray  # float64 [cells]
    dwell_table: np.ndarray  # int64 [cells]: row of the strip arrays (gamma only)
    value_sigma: np.ndarray  # float64 [cells]: log-sd of the value multiplier
    strip_edges: np.ndarray  # float64 [tables, strips + 1]
    strip_ratio: np.ndarray  # float64 [tables, strips]
    strip_lf_max: np.ndarray  # float64 [tables, strips]

    @property
    def n_groups(self) -> int:
        """Parameter groups."""
        return int(self.unit_of.shape[0])

    @property
    def n_stages(self) -> int:
        """Stages of the funnel."""
        return int(self.unit_of.shape[1])

    @property
    def n_cells(self) -> int:
        """Groups x stages."""
        return len(self.dwell_code)

    def timing(self) -> tuple:
        """The arguments the winners' timing and value take, in the kernels' order.

        ``(n_stages, dwell_code, dwell_p1, dwell_p2, dwell_table, value_sigma,
        strip_edges, strip_ratio, strip_lf_max)``: the deal kernels take the tables
        apart (each array its own argument keeps their loops vectorised).
        """
        return (
            self.n_stages,
            self.dwell_code,
            self.dwell_p1,
            self.dwell_p2,
            self.dwell_table,
            self.value_sigma,
            self.strip_edges,
            self.strip_ratio,
            self.strip_lf_max,
        )


class DealTable(NamedTuple):
    """Open deals, one row each, in the canonical order (see :mod:`pipesim.prepare`)."""

    key: np.ndarray  # uint64: the deal's random stream key (from its deal_id)
    cell: np.ndarray  # int64: group * n_stages + stage
    amount: np.ndarray  # float64
    age: np.ndarray  # float64: days already in the stage
    by: np.ndarray  # int64: the by-group (output column 1 + by)
    strip: np.ndarray  # int64: the gamma strip holding the age (0 otherwise)
    # float64: S_loss(age) / S_adv(age) in its stage (pipesim.prepare.loss_clock); exactly
    # 1 without a loss clock, when the odds of advancing are the stage's conversion.
    survival_ratio: np.ndarray
    fx: np.ndarray  # int64: the deal's currency slot, a row of ``day_rate`` (0: the company's)
    # int64: the deal's column of the trial's odds shocks (:class:`DealShocks`): the month
    # it entered its stage and its segment; 0 (as_of's month, no segment) without shocks.
    shock: np.ndarray

    @property
    def rows(self) -> int:
        """Number of deals."""
        return len(self.key)

    def take(self, start: int, stop: int) -> DealTable:
        """Rows ``start:stop``, as views."""
        return DealTable(*(a[start:stop] for a in self))

    @staticmethod
    def empty() -> DealTable:
        """No deal."""
        i, f, u = np.int64, np.float64, np.uint64
        return DealTable(*(np.empty(0, dtype=d) for d in (u, i, f, f, i, i, f, i, i)))

    @staticmethod
    def concat(parts: Sequence[DealTable]) -> DealTable:
        """Tables one after the other (the first itself when there is one)."""
        if not parts:
            return DealTable.empty()
        if len(parts) == 1:
            return parts[0]
        return DealTable(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


MONTHS_BACK = 36  # a deal that entered its stage longer ago takes that month's odds shock


class DealShocks(NamedTuple):
    """The open deals' odds shocks: the month each entered its stage moves its odds.

    The market's monthly logit shock (sd ``market_sd``) and a segment's own (sd
    ``own_sd``) are the paths the new leads take (:func:`pipesim.kernels.trial.shocked_odds`),
    continued back over the months before as_of's (:func:`pipesim.kernels.trial.past_shock`):
    a deal that entered its stage in as_of's month shares that month's shocks with the
    month's new leads. A deal's column of the trial's shift table is
    ``back * segments + segment``: ``back`` months before as_of's (at most
    :data:`MONTHS_BACK`), ``segment`` 0 for none (a deal of no arrivals segment with
    its own shock). With no shock at all every deal's column is 0 and its odds stay.
    """

    seg_key: np.ndarray  # uint64 [segments]: the segment's stream key (the arrivals' rate_key)
    own_sd: np.ndarray  # float64 [segments]: sd of its own shock (segment 0: none, 0)
    market_sd: np.ndarray  # float64 [1]: sd of the market's shock
    rho: np.ndarray  # float64 [1]: the shocks' month-to-month persistence

    @property
    def columns(self) -> int:
        """Columns of a trial's shift table: (MONTHS_BACK + 1) x segments."""
        return (MONTHS_BACK + 1) * len(self.seg_key)

    @property
    def active(self) -> bool:
        """Whether any deal's odds move."""
        return bool(self.market_sd[0] > 0.0 or np.any(self.own_sd > 0.0))

    @staticmethod
    def none() -> DealShocks:
        """No shock."""
        return DealShocks(np.zeros(1, dtype=np.uint64), np.zeros(1), np.zeros(1), np.zeros(1))


class ArrivalTable(NamedTuple):
    """New leads: one row per (month, segment), Poisson(leads) spread uniformly on [t0, t1)."""

    key: np.ndarray  # uint64: the row's random stream key
    group: np.ndarray  # int64: parameter group (the leads start at its first stage)
    t0: np.ndarray  # float64: first day (after as_of)
    t1: np.ndarray  # float64: end day
    leads: np.ndarray  # float64: expected leads in [t0, t1)
    leads_n: np.ndarray  # float64: Gamma spread of the rate per trial (0: none)
    rate_key: np.ndarray  # uint64: the rate draw's stream key, one per segment (all months)
    trend_sd: np.ndarray  # float64: sd of the log rate's growth per month (0: no trend draw)
    trend_months: np.ndarray  # float64: months from the rate's estimate to this row
    month: np.ndarray  # int64: the row's month (0: as_of's): keys its odds' shocks
    market_shock_sd: np.ndarray  # float64: sd of the monthly logit shock every segment shares
    segment_shock_sd: np.ndarray  # float64: sd of the segment's own monthly logit shock
    market_leads_shock_sd: np.ndarray  # float64: sd of the monthly log shock on every lead rate
    segment_leads_shock_sd: np.ndarray  # float64: sd of the segment's own monthly log shock
    shock_rho: np.ndarray  # float64: the shocks' month-to-month persistence (0: independent)
    amount_mu: np.ndarray  # float64: log-mean of a lead's amount
    amount_sigma: np.ndarray  # float64: log-sd of a lead's amount
    amount: np.ndarray  # float64: a lead's mean amount, booked as given when amount_sigma is 0
    by: np.ndarray  # int64: the by-group
    fx: np.ndarray  # int64: the leads' currency slot, a row of ``day_rate`` (0: the company's)

    @property
    def rows(self) -> int:
        """Number of arrival rows."""
        return len(self.key)

    def take(self, start: int, stop: int) -> ArrivalTable:
        """Rows ``start:stop``, as views."""
        return ArrivalTable(*(a[start:stop] for a in self))
