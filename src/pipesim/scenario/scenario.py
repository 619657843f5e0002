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
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import pandas as pd

from pipesim.errors import ScenarioError
from pipesim.scenario import table_checks
from pipesim.scenario.booked import check_won
from pipesim.scenario.calendar import to_date
from pipesim.scenario.close_law import check_close_law
from pipesim.scenario.currency import check_fx
from pipesim.scenario.deal_checks import check_deals
from pipesim.scenario.fiscal import WEEK_PATTERNS, FiscalCalendar
from pipesim.scenario.quotas import check_quotas

# The scenario format: each version may reserve new column names (read as parameters,
# never as segments). A scenario.parquet without format_version is format 1; a
# format-1 scenario holding a column reserved later gets a clear message, since it
# may be an old segment of that name.
FORMAT_VERSION = 6
RESERVED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    1: {
        "stages": (
            "stage",
            "conversion",
            "dwell_days",
            "dwell_cv",
            "dwell_dist",
            "value_cv",
            "conversion_n",
        ),
        "deals": ("deal_id", "stage", "amount", "days_in_stage"),
        "arrivals": ("period", "leads", "amount", "amount_cv", "leads_n"),
    },
    # The loss clock of a stage: time to a loss, for the deals that are lost.
    2: {"stages": ("loss_days", "loss_cv", "loss_dist")},
    # The share of a stage's losses that the CRM records (the rest stay open for ever).
    3: {"stages": ("loss_recorded",)},
    # A segment row's pooling towards the stage's funnel row (hierarchical conversions).
    4: {"stages": ("conversion_pool",), "arrivals": ("leads_trend_sd", "segment_shock_sd")},
    # A segment's own monthly shock on its lead volume (the market's is a setting); a deal's
    # or new leads' currency (scenario.parquet's currency is the company's).
    # An open deal's forecast category (the rep's call: Pipeline, Best Case, Commit, Omitted).
    # (Settings of format 5: market_leads_shock_sd, shock_persistence,
    # slip_month1..2, slip_jan..slip_dec; and
    # the fiscal calendar, fiscal_year_start and fiscal_calendar, read in any format.)
    # Revenue already booked (won.parquet) and quotas (quotas.parquet): new tables.
    5: {
        "deals": ("currency", "forecast_category"),
        "arrivals": ("segment_leads_shock_sd", "currency"),
        "scenario": ("fiscal_year_start", "fiscal_calendar"),
        "won": ("deal_id", "closed_at", "amount"),
        "quotas": ("period", "quota"),
    },
    # A deal's stated close date and how often it moved later; the slippage law learnt
    # from close-date histories (close_dates.parquet, pipesim.scenario.close_law).
    6: {
        "deals": ("close_date", "pushes"),
        "close_dates": (
            "stage",
            "pushes",
            "rows",
            "deals",
            "wins",
            "p_win",
            "p_win_se",
            "p_by_date",
            "overdue",
            "lateness_min",
            "lateness_p5",
            "lateness_p10",
            "lateness_p25",
            "lateness_p50",
            "lateness_p75",
            "lateness_p90",
            "lateness_tail_days",
            "basis",
        ),
    },
}


def reserved(table: str, version: int = FORMAT_VERSION) -> tuple[str, ...]:
    """The column names ``table`` reserves in scenario format ``version``."""
    return tuple(
        c
        for v in sorted(RESERVED_COLUMNS)
        if v <= version
        for c in RESERVED_COLUMNS[v].get(table, ())
    )


STAGE_COLUMNS = reserved("stages")
LOSS_COLUMNS = RESERVED_COLUMNS[2]["stages"] + RESERVED_COLUMNS[3]["stages"]
DEAL_COLUMNS = reserved("deals")
ARRIVAL_COLUMNS = reserved("arrivals")
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
        and segment columns. A large book loaded from a folder may stay on disk
        (``deal_source`` set): then ``deals`` reads the whole table each time it
        is used; prefer :attr:`deal_count`, :meth:`deal_chunks` and :meth:`deal_rows`,
        which never hold more than the rows asked for.
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
    deal_table : DataFrame or None
        The deals when held in memory (else None).
    deal_source : DealSource or None
        The deals when kept on disk and read chunk by chunk (else None).
    calibrated : bool
        Written by ``calibrate``: its funnel is the history's stages, so a funnel of
        fewer than 3 (or more than 6) stages draws no warning, as a hand-built one does.
    close_paces : tuple of 3 floats, or None
        The deal clocks' pace in the first, second and third month of each calendar
        quarter (``close_month1``..``3`` in scenario.parquet; None: an even pace). See
        :mod:`pipesim.prepare.closing_calendar`.
    rush_slips : tuple of 2 floats, or None
        The share of the wins due in the first and the second month of a calendar
        quarter that are booked in its last month instead (``slip_month1``,
        ``slip_month2``; None: none).
    month_slips : tuple of 12 floats, or None
        The share of the wins due in each calendar month, January first, that are
        booked the month after (``slip_jan``..``slip_dec``; None: none).
    market_shock_sd : float
        The monthly shock on new leads' odds of winning shared by every segment (sd on
        the logit scale; ``market_shock_sd`` in scenario.parquet; 0: none). Each
        arrivals row may add its segment's own (``segment_shock_sd``).
    shock_persistence : float
        The month-to-month persistence of every shock (odds and lead volumes, market
        and segment): each is a stationary AR(1) path whose months k apart correlate
        ``shock_persistence``^k (``shock_persistence`` in scenario.parquet; 0: months
        independent).
    market_leads_shock_sd : float
        The monthly shock on every segment's lead volume (sd on the log scale, mean
        1 on the rate; ``market_leads_shock_sd`` in scenario.parquet; 0: none). Each
        arrivals row may add its segment's own (``segment_leads_shock_sd``).
    fiscal : FiscalCalendar
        The fiscal calendar (``fiscal_year_start``, ``fiscal_calendar`` in
        scenario.parquet): quarters and years of the results; a week calendar's
        periods are the horizon's periods (see :mod:`pipesim.scenario.fiscal`).
    won : DataFrame or None
        Revenue already booked (``won.parquet``: ``deal_id``, ``closed_at``, ``amount``,
        segment columns), added to every fiscal window it falls in
        (:mod:`pipesim.scenario.booked`).
    quotas : DataFrame or None
        Quotas per owner and period (``quotas.parquet``, :mod:`pipesim.scenario.quotas`).
    fx : DataFrame or None
        Exchange rates (``fx.parquet``: ``currency``, ``rate`` = company currency per
        unit, ``from`` date or None), for deals and arrival rows whose ``currency`` is
        not the company's (:mod:`pipesim.scenario.currency`).
    close_law : DataFrame or None
        The slippage law (``close_dates.parquet``, :mod:`pipesim.scenario.close_law`): a
        deal with a ``close_date`` is timed and given its odds by it; None: every deal
        runs on its stage's clocks.
    """

    stages: pd.DataFrame
    deal_table: pd.DataFrame | None
    arrivals: pd.DataFrame
    as_of: dt.date
    horizon_months: int
    name: str = ""
    currency: str = ""
    path: str | None = None
    deal_source: DealSource | None = None
    calibrated: bool = False
    close_paces: tuple[float, ...] | None = None
    rush_slips: tuple[float, ...] | None = None
    month_slips: tuple[float, ...] | None = None
    market_shock_sd: float = 0.0
    market_leads_shock_sd: float = 0.0
    shock_persistence: float = 0.0
    fiscal: FiscalCalendar = dataclasses.field(default_factory=FiscalCalendar)
    won: pd.DataFrame | None = None
    quotas: pd.DataFrame | None = None
    fx: pd.DataFrame | None = None
    close_law: pd.DataFrame | None = None

    @property
    def format_version(self) -> int:
        """The scenario format its tables follow: the current one, once checked.

        A folder written in an older format is checked against that format when it
        is read (:func:`make_scenario`); no reserved name is then a segment, so the
        scenario follows :data:`FORMAT_VERSION` and may take any reserved column.
        """
        return FORMAT_VERSION

    @property
    def deals(self) -> pd.DataFrame:
        """The open deals as one table (for a book on disk: read whole, each time)."""
        if self.deal_table is not None:
            return self.deal_table
        rows = list(self.deal_chunks())
        if not rows:
            return self.deal_rows(0, 0)
        return pd.concat(rows).reset_index(drop=True)

    @property
    def deals_in_memory(self) -> bool:
        """Whether the deals are held in memory (else read from disk chunk by chunk)."""
        return self.deal_source is None

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
        return tuple(c for c in self.deal_columns if c not in DEAL_COLUMNS)

    @property
    def deal_columns(self) -> tuple[str, ...]:
        """Columns of the deals table."""
        if self.deal_source is not None:
            return tuple(self.deal_source.columns)
        assert self.deal_table is not None
        return tuple(self.deal_table.columns)

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
        if self.deal_source is not None:
            return self.deal_source.count
        assert self.deal_table is not None
        return len(self.deal_table)

    def deal_rows(
        self, start: int, stop: int, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Validated deal rows ``start:stop`` (index: their row numbers in the book)."""
        if self.deal_source is not None:
            return self.deal_source.rows(start, stop, columns)
        assert self.deal_table is not None
        rows = self.deal_table.iloc[start:stop]
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
        table, source = fields.pop("deal_table"), fields.pop("deal_source")
        fields["deals"] = table if source is None else source
        fields.update(changes)
        path = fields.pop("path")
        return make_scenario(**fields, sources={"path": path})


@runtime_checkable
class DealSource(Protocol):
    """Open deals kept out of memory, read in chunks (:class:`pipesim.io.deal_file.DealFile`)."""

    @property
    def count(self) -> int:
        """Number of deals."""

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the checked table (deal_id, stage, amount, days_in_stage, segments)."""

    def rows(self, start: int, stop: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Checked rows ``start:stop`` (index: their row numbers), ``columns`` only."""

    def validated(self, funnel: Sequence[str], source: str, known: Sequence[str]) -> DealSource:
        """The source checked against ``funnel`` (a pass over it, unless already done)."""

    def stage_totals(self) -> tuple[dict[str, int], dict[str, float]]:
        """Deals and value (sum of ``amount``) per stage."""


def make_scenario(
    stages: pd.DataFrame,
    deals: pd.DataFrame | DealSource | None = None,
    arrivals: pd.DataFrame | None = None,
    *,
    as_of: object,
    horizon_months: int,
    name: str = "",
    currency: str = "",
    sources: Mapping[str, str | None] | None = None,
    format_version: int = FORMAT_VERSION,
    calibrated: bool = False,
    close_paces: Sequence[float] | None = None,
    rush_slips: Sequence[float] | None = None,
    month_slips: Sequence[float] | None = None,
    market_shock_sd: float | None = None,
    market_leads_shock_sd: float | None = None,
    shock_persistence: float | None = None,
    fiscal: FiscalCalendar | None = None,
    fiscal_year_start: object = None,
    fiscal_calendar: object = None,
    won: pd.DataFrame | None = None,
    quotas: pd.DataFrame | None = None,
    fx: pd.DataFrame | None = None,
    close_law: pd.DataFrame | None = None,
) -> Scenario:
    """Validate the tables of a scenario and return it.

    Parameters
    ----------
    stages, deals, arrivals : DataFrame
        The tables described in the README (``deals`` and ``arrivals`` may be
        omitted: no open deals, no new leads). ``deals`` may also be a
        :class:`DealSource` (deals kept on disk, checked chunk by chunk).
    as_of : date-like
        Start of the forecast (00:00 of that day).
    horizon_months : int
        Number of calendar months to forecast, as_of's month first.
    name, currency : str
        Labels.
    sources : mapping, optional
        Where each table came from (``{"stages": "/x/stages.parquet", ...}``),
        used in error messages; ``"path"`` is the scenario folder.
    format_version : int
        The scenario format the tables follow (:data:`FORMAT_VERSION`); an older
        format may not use the column names reserved since.
    calibrated : bool
        The funnel comes from a CRM history (``calibrate``): its size draws no warning.
    close_paces : three numbers, optional
        The clocks' pace in months 1, 2 and 3 of each calendar quarter (> 0; scaled
        to a mean of 1). None, or all equal: an even pace.
    rush_slips, month_slips : sequences of 2 and 12 numbers in [0, 1), optional
        Shares of the wins booked later than due: held from the first and second month
        of a quarter to its last month; moved from each calendar month to the next.
    market_shock_sd : float, optional
        The monthly logit shock on new leads' odds shared by every segment (>= 0).
    market_leads_shock_sd : float, optional
        The monthly log shock on lead volumes shared by every segment (>= 0).
    shock_persistence : float, optional
        The shocks' month-to-month persistence, in [0, 1).
    fiscal : FiscalCalendar, optional
        The fiscal calendar (else from ``fiscal_year_start`` and ``fiscal_calendar``).
    fiscal_year_start : int, optional
        The month (1-12) the fiscal year starts in (default 1).
    fiscal_calendar : str, optional
        ``4-4-5``, ``4-5-4`` or ``5-4-4`` for a week calendar (default: months).
    won : DataFrame, optional
        Deals already won before ``as_of`` (``deal_id``, ``closed_at``, ``amount``, segments).
    quotas : DataFrame, optional
        Quotas: owner columns (deal segment columns), ``period``, ``quota``.
    fx : DataFrame, optional
        Exchange rates to ``currency`` (the company's): ``currency``, ``rate``, ``from``.
    close_law : DataFrame, optional
        The slippage law of deals with a stated close date (``close_dates.parquet``).

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
        "won": "won table",
        "quotas": "quotas table",
        "fx": "fx table",
        "close_dates": "close_dates table",
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
    _check_format(format_version, {"stages": stages, "deals": deals, "arrivals": arrivals}, src)
    as_of_date = table_checks.check_as_of(as_of, src["scenario"])
    horizon = table_checks.check_horizon(horizon_months, src["scenario"])
    stages_v = table_checks.check_stages(
        stages, src["stages"], STAGE_COLUMNS, DWELL_DISTS, funnel_size_warning=not calibrated
    )
    default = stages_v[[c for c in stages_v.columns if c not in STAGE_COLUMNS]].isna().all(axis=1)
    funnel = list(stages_v.loc[default, "stage"])
    deal_source = None
    if isinstance(deals, pd.DataFrame):
        deals_v: pd.DataFrame | None = check_deals(deals, src["deals"], DEAL_COLUMNS, funnel)
    else:
        deals_v, deal_source = None, deals.validated(funnel, src["deals"], DEAL_COLUMNS)
    arrivals_v = table_checks.check_arrivals(arrivals, src["arrivals"], ARRIVAL_COLUMNS, as_of_date)
    calendar = fiscal or check_fiscal(fiscal_year_start, fiscal_calendar, src["scenario"])
    won_v = None if won is None else check_won(won, src["won"], to_date(as_of_date))
    quotas_v = None
    if quotas is not None:
        owners = dict.fromkeys(
            [
                *(c for c in (deals_v if deals_v is not None else deals).columns
                  if c not in DEAL_COLUMNS),
                *(c for c in arrivals_v.columns if c not in ARRIVAL_COLUMNS),
            ]
        )  # fmt: skip
        quotas_v = check_quotas(
            quotas, src["quotas"], list(owners), to_date(as_of_date), horizon, calendar
        )
    return Scenario(
        stages=stages_v,
        deal_table=deals_v,
        deal_source=deal_source,
        arrivals=arrivals_v,
        as_of=to_date(as_of_date),
        horizon_months=horizon,
        name=str(name or ""),
        currency=str(currency or ""),
        path=src.get("path"),
        calibrated=bool(calibrated),
        close_paces=_check_paces(close_paces, src["scenario"], format_version),
        rush_slips=_check_slips(rush_slips, src["scenario"], format_version, RUSH_SLIP_COLUMNS),
        month_slips=_check_slips(month_slips, src["scenario"], format_version, MONTH_SLIP_COLUMNS),
        market_shock_sd=_check_shock(market_shock_sd, src["scenario"], format_version),
        market_leads_shock_sd=_check_shock(
            market_leads_shock_sd, src["scenario"], format_version, "market_leads_shock_sd"
        ),
        shock_persistence=_check_shock(
            shock_persistence, src["scenario"], format_version, "shock_persistence"
        ),
        fiscal=calendar,
        won=won_v,
        quotas=quotas_v,
        fx=check_fx(fx, src["fx"], str(currency or "")),
        close_law=None
        if close_law is None
        else check_close_law(close_law, src["close_dates"], funnel),
    )


def _missing(value: object) -> bool:
    """An empty setting: None, NaN or pandas' NA."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))  # type: ignore[call-overload]


def check_fiscal(year_start: object, weeks: object, source: str) -> FiscalCalendar:
    """``fiscal_year_start`` (a month 1-12, empty: 1) and ``fiscal_calendar`` (empty: months)."""
    start = 1
    if not _missing(year_start):
        try:
            number = float(year_start)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = float("nan")
        if not (number.is_integer() and 1 <= number <= 12):
            raise ScenarioError(
                f"{source}: column fiscal_year_start, row 1: {year_start!r} is not a month "
                "1 to 12 (the month the fiscal year starts in: 4 for April). Leave it empty "
                "for January.",
                parameters=("fiscal_year_start",),
            )
        start = int(number)
    pattern = None
    if not _missing(weeks):
        text = str(weeks).strip()
        if text and text not in WEEK_PATTERNS:
            raise ScenarioError(
                f"{source}: column fiscal_calendar, row 1: {weeks!r} is not a week calendar "
                f"pipesim knows ({', '.join(WEEK_PATTERNS)}). Leave it empty for calendar months.",
                parameters=("fiscal_calendar",),
            )
        pattern = text or None
    return FiscalCalendar(start, pattern)


# The market's shocks (scenario.parquet settings): what each moves, and its first format.
SHOCK_SETTINGS = {
    "market_shock_sd": ("on the logit scale, of the monthly shock on new leads' odds", 4),
    "market_leads_shock_sd": ("on the log scale, of the monthly shock on lead volumes", 5),
    "shock_persistence": ("", 5),
}


def _check_shock(
    value: float | None, source: str, version: int, name: str = "market_shock_sd"
) -> float:
    """A market shock's sd: a finite number >= 0 (None or NaN: 0), in its format or later."""
    if value is None:
        return 0.0
    try:
        sd = float(value)
    except (TypeError, ValueError):
        sd = -1.0
    if math.isnan(sd):
        return 0.0
    meaning, since = SHOCK_SETTINGS[name]
    if name == "shock_persistence" and not (math.isfinite(sd) and 0 <= sd < 1):
        raise ScenarioError(
            f"{source}: shock_persistence {value!r} is not a number from 0 to below 1 (the "
            "shocks' month-to-month correlation). Leave it empty for independent months.",
            parameters=(name,),
        )
    if not (math.isfinite(sd) and sd >= 0):
        raise ScenarioError(
            f"{source}: {name} {value!r} is not a number >= 0 (the sd, {meaning} shared by "
            "every segment). Leave it empty for none.",
            parameters=(name,),
        )
    if sd > 0 and version < since:
        raise ScenarioError(
            f"{source}: {name} needs scenario format {since}, but this scenario is format "
            f"{version}. Set format_version = {FORMAT_VERSION} in scenario.parquet.",
            parameters=("format_version",),
        )
    return sd


CLOSE_PACE_COLUMNS = ("close_month1", "close_month2", "close_month3")  # in scenario.parquet
# Each set of paces: what it paces, the parameter's name, its first format.
_PACES: dict[tuple[str, ...], tuple[str, str, int]] = {
    CLOSE_PACE_COLUMNS: ("each month of a quarter", "close_paces", 4),
}


def _check_paces(
    paces: Sequence[float] | None,
    source: str,
    version: int,
    columns: tuple[str, ...] = CLOSE_PACE_COLUMNS,
) -> tuple[float, ...] | None:
    """Positive paces, one per column, scaled to a mean of 1, or None for an even pace."""
    if paces is None:
        return None
    meaning, parameter, since = _PACES[columns]
    names = f"{columns[0]} .. {columns[-1]}"
    try:
        values = [float(v) for v in paces]
    except (TypeError, ValueError):
        values = []
    if len(values) != len(columns) or not all(math.isfinite(v) and v > 0 for v in values):
        raise ScenarioError(
            f"{source}: {names} must be {len(columns)} positive numbers (the clocks' pace in "
            f"{meaning}), not {paces!r}. Leave them all empty for an even pace.",
            parameters=(parameter,),
        )
    if version < since:
        raise ScenarioError(
            f"{source}: {names} (closing paces in {meaning}) need scenario format {since}, but "
            f"this scenario is format {version}. Set format_version = {FORMAT_VERSION} in "
            "scenario.parquet.",
            parameters=("format_version",),
        )
    mean = sum(values) / len(values)
    scaled = tuple(v / mean for v in values)
    if max(scaled) - min(scaled) < 1e-12:
        return None
    return scaled


RUSH_SLIP_COLUMNS = ("slip_month1", "slip_month2")
MONTH_SLIP_COLUMNS = tuple(
    f"slip_{m}"
    for m in ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
_SLIPS = {
    RUSH_SLIP_COLUMNS: (
        "the wins due in the first and second month of a quarter booked in its last month",
        "rush_slips",
    ),
    MONTH_SLIP_COLUMNS: (
        "the wins due in each calendar month, January first, booked the month after",
        "month_slips",
    ),
}


def _check_slips(
    slips: Sequence[float] | None, source: str, version: int, columns: tuple[str, ...]
) -> tuple[float, ...] | None:
    """Shares in [0, 1), one per column, format 5; None (or all 0) for no slip."""
    if slips is None:
        return None
    meaning, parameter = _SLIPS[columns]
    names = f"{columns[0]} .. {columns[-1]}"
    try:
        values = [float(v) for v in slips]
    except (TypeError, ValueError):
        values = []
    if len(values) != len(columns) or not all(math.isfinite(v) and 0 <= v < 1 for v in values):
        raise ScenarioError(
            f"{source}: {names} must be {len(columns)} shares from 0 to below 1 ({meaning}), "
            f"not {slips!r}. Leave them all empty for none.",
            parameters=(parameter,),
        )
    if version < 5:
        raise ScenarioError(
            f"{source}: {names} ({meaning}) need scenario format 5, but this scenario is "
            f"format {version}. Set format_version = {FORMAT_VERSION} in scenario.parquet.",
            parameters=("format_version",),
        )
    return None if not any(values) else tuple(values)


def _check_format(version: object, tables: Mapping[str, object], src: Mapping[str, str]) -> None:
    """A known format version, and no column it predates used as a segment name."""
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= FORMAT_VERSION
    ):
        raise ScenarioError(
            f"{src['scenario']}: format_version {version!r} is not one this pipesim reads "
            f"(1 to {FORMAT_VERSION}). Leave it empty for format 1, or upgrade pipesim.",
            parameters=("format_version",),
        )
    for name, table in tables.items():
        columns = getattr(table, "columns", ())
        later = [c for c in reserved(name) if c not in reserved(name, version) and c in columns]
        if later:
            since = min(
                v for v in RESERVED_COLUMNS for c in later if c in RESERVED_COLUMNS[v].get(name, ())
            )
            raise ScenarioError(
                f"{src[name]}: column(s) {', '.join(map(repr, later))} are reserved since scenario "
                f"format {since}, but this scenario is format {version} (scenario.parquet has no "
                f"format_version, or an older one). If they are segment columns, rename them; "
                f"if they hold the stage's loss clock, set format_version = {FORMAT_VERSION} in "
                "scenario.parquet.",
                parameters=("format_version",),
            )
