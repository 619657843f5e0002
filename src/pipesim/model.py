"""The scenario: a funnel of stages, the open deals, the new leads and the horizon.

A :class:`Scenario` is frozen and already validated: build one with
:func:`make_scenario` (from DataFrames) or :func:`pipesim.load_scenario` (from a
folder of Parquet files). The tables keep the user's own column names; segment
columns (region, channel, product_line, ...) are every column pipesim does not
know, with their values held as strings (missing values as ``None``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence

import pandas as pd

from pipesim import validation
from pipesim.calendar import to_date

STAGE_COLUMNS = (
    "stage",
    "conversion",
    "dwell_days",
    "dwell_cv",
    "dwell_dist",
    "value_cv",
    "conversion_n",
)
DEAL_COLUMNS = ("deal_id", "stage", "amount", "days_in_stage")
ARRIVAL_COLUMNS = ("period", "leads", "amount", "amount_cv", "leads_n")
DWELL_DISTS = ("gamma", "lognormal")
# Deals per chunk of the canonical deal order (file order, each chunk sorted by
# group and stage for the kernels) and of reading a large deals.parquet.
DEAL_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A validated pipeline scenario.

    Attributes
    ----------
    stages : DataFrame
        One row per stage in funnel order (segment columns all null), then the
        per-segment override rows. Columns: ``stage``, ``conversion``,
        ``dwell_days``, ``dwell_cv``, ``dwell_dist``, ``value_cv``,
        ``conversion_n`` and the segment columns.
    deals : DataFrame
        The open deals: ``deal_id``, ``stage``, ``amount``, ``days_in_stage``
        and segment columns.
    arrivals : DataFrame
        Expected new leads: ``period`` (``YYYY-MM``), ``leads``, ``amount``,
        ``amount_cv``, ``leads_n`` and segment columns.
    as_of : date
        The forecast starts at 00:00 of this day.
    horizon_months : int
        Calendar months forecast, the first being the month of ``as_of``.
    name, currency : str
        Labels for printed and written results.
    path : str or None
        The folder the scenario was read from, if any.
    """

    stages: pd.DataFrame
    deals: pd.DataFrame
    arrivals: pd.DataFrame
    as_of: dt.date
    horizon_months: int
    name: str = ""
    currency: str = ""
    path: str | None = None

    @property
    def funnel(self) -> tuple[str, ...]:
        """Stage names in funnel order (top first); Won is the outcome after the last."""
        return tuple(self.stages.loc[self.default_rows, "stage"])

    @property
    def stage_segments(self) -> tuple[str, ...]:
        """Segment columns of the stages table (those that select overrides)."""
        return tuple(c for c in self.stages.columns if c not in STAGE_COLUMNS)

    @property
    def deal_segments(self) -> tuple[str, ...]:
        """Segment columns of the deals table."""
        return tuple(c for c in self.deals.columns if c not in DEAL_COLUMNS)

    @property
    def arrival_segments(self) -> tuple[str, ...]:
        """Segment columns of the arrivals table."""
        return tuple(c for c in self.arrivals.columns if c not in ARRIVAL_COLUMNS)

    @property
    def default_rows(self) -> pd.Series:
        """Boolean mask of the stage rows that define the funnel (no segment values)."""
        segs = list(self.stage_segments)
        if not segs:
            return pd.Series(True, index=self.stages.index)
        return self.stages[segs].isna().all(axis=1)

    @property
    def deal_count(self) -> int:
        """Number of open deals."""
        return len(self.deals)

    def deal_rows(
        self, start: int, stop: int, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Validated deal rows ``start:stop`` (index: their row numbers in the book)."""
        rows = self.deals.iloc[start:stop]
        return rows if columns is None else rows[list(columns)]

    def deal_chunks(
        self, size: int = DEAL_CHUNK, columns: Sequence[str] | None = None
    ) -> Iterator[pd.DataFrame]:
        """The deals in book order, ``size`` rows at a time (see :meth:`deal_rows`)."""
        for start in range(0, self.deal_count, size):
            yield self.deal_rows(start, min(start + size, self.deal_count), columns)

    def replace(self, **changes: object) -> Scenario:
        """Return a copy with some fields changed, validated again."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.update(changes)
        path = fields.pop("path")
        return make_scenario(**fields, sources={"path": path})


def make_scenario(
    stages: pd.DataFrame,
    deals: pd.DataFrame | None = None,
    arrivals: pd.DataFrame | None = None,
    *,
    as_of: object,
    horizon_months: int,
    name: str = "",
    currency: str = "",
    sources: Mapping[str, str | None] | None = None,
) -> Scenario:
    """Validate the tables of a scenario and return it.

    Parameters
    ----------
    stages, deals, arrivals : DataFrame
        The tables described in the README (``deals`` and ``arrivals`` may be
        omitted: no open deals, no new leads).
    as_of : date-like
        Start of the forecast (00:00 of that day).
    horizon_months : int
        Number of calendar months to forecast, as_of's month first.
    name, currency : str
        Labels.
    sources : mapping, optional
        Where each table came from (``{"stages": "/x/stages.parquet", ...}``),
        used in error messages; ``"path"`` is the scenario folder.

    Raises
    ------
    ScenarioError
        When a table is invalid; the message names the table, column, rows and fix.
    """
    src = {
        "stages": "stages table",
        "deals": "deals table",
        "arrivals": "arrivals table",
        "scenario": "scenario settings",
    }
    if sources:
        src.update({k: v for k, v in sources.items() if v is not None})
    if deals is None:
        deals = pd.DataFrame(
            {
                "deal_id": pd.Series([], dtype=object),
                "stage": pd.Series([], dtype=object),
                "amount": pd.Series([], dtype=float),
            }
        )
    if arrivals is None:
        arrivals = pd.DataFrame(
            {
                "period": pd.Series([], dtype=object),
                "leads": pd.Series([], dtype=float),
                "amount": pd.Series([], dtype=float),
            }
        )
    as_of_date = validation.check_as_of(as_of, src["scenario"])
    horizon = validation.check_horizon(horizon_months, src["scenario"])
    stages_v = validation.check_stages(stages, src["stages"], STAGE_COLUMNS, DWELL_DISTS)
    default = stages_v[[c for c in stages_v.columns if c not in STAGE_COLUMNS]].isna().all(axis=1)
    funnel = list(stages_v.loc[default, "stage"])
    deals_v = validation.check_deals(deals, src["deals"], DEAL_COLUMNS, funnel)
    arrivals_v = validation.check_arrivals(arrivals, src["arrivals"], ARRIVAL_COLUMNS, as_of_date)
    return Scenario(
        stages=stages_v,
        deals=deals_v,
        arrivals=arrivals_v,
        as_of=to_date(as_of_date),
        horizon_months=horizon,
        name=str(name or ""),
        currency=str(currency or ""),
        path=src.get("path"),
    )
