"""The ``calibrate`` and ``backtest`` commands as Python functions: CRM export in, files out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipesim.calibration.adapters import read_history
from pipesim.calibration.backtest import backtest_history, month_starts
from pipesim.calibration.close_dates import attach_changes
from pipesim.calibration.fit import Calibration, calibrate_history, write_calibration
from pipesim.calibration.forecast_categories import with_categories
from pipesim.calibration.history import History, as_of_date, read_csv
from pipesim.calibration.history_currency import book_in_currencies, history_currency
from pipesim.calibration.lead_rates import HALF_LIFE_MONTHS
from pipesim.calibration.won_deals import won_this_year
from pipesim.errors import InputError
from pipesim.io import parquet, scenario_folder
from pipesim.scenario.scenario import check_fiscal
from pipesim.version import __version__

PathLike = str | os.PathLike[str]


def _split(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s.strip()] or None


def _history(
    history: History | PathLike,
    events: PathLike | None,
    format: str,
    stages: str | Sequence[str] | None,
    close_dates: PathLike | None = None,
) -> History:
    hist = (
        history
        if isinstance(history, History)
        else read_history(history, events, format=format, stages=_split(stages))
    )
    if close_dates is not None:
        hist = attach_changes(hist, read_csv(close_dates), str(close_dates))
    return hist


def calibrate(
    history: History | PathLike,
    *,
    as_of: object,
    events: PathLike | None = None,
    out: PathLike | None = None,
    segments: str | Sequence[str] | None = None,
    format: str = "generic",
    horizon_months: int = 12,
    stages: str | Sequence[str] | None = None,
    dwell_dist: str = "auto",
    loss_dist: str = "auto",
    force: bool = False,
    since: object | None = None,
    leads_until: object | None = None,
    half_life: float = HALF_LIFE_MONTHS,
    moving_conversions: bool = False,
    fiscal_year_start: int | None = None,
    fiscal_calendar: str | None = None,
    currency: str = "",
    fx: PathLike | pd.DataFrame | None = None,
    close_dates: PathLike | None = None,
) -> Calibration:
    """Calibrate a scenario from a CRM export as it stood at ``as_of``.

    Parameters
    ----------
    history : path or History
        The deals export (``format`` says which CRM), or a History already read.
    as_of : date-like
        The forecast start; nothing dated on or after it is used.
    events : path, optional
        Stage-entry history (generic events, or Salesforce OpportunityHistory).
    out : path, optional
        Scenario folder to write (stages, deals, arrivals, scenario, calibration).
    segments : str or list of str, optional
        Segment columns (``"region,product"``).
    format : str
        ``generic``, ``salesforce``, ``hubspot``, ``pipedrive``, ``maven`` or ``ibm``.
    horizon_months : int
        Months of arrivals to write.
    stages : str or list of str, optional
        Open stages in funnel order (``"Lead,Demo,Proposal"``).
    dwell_dist, loss_dist : str
        Law of the advance and loss clocks: ``auto`` (per stage, the likelier of
        gamma and lognormal), ``gamma`` or ``lognormal``.
    force : bool
        Overwrite a scenario already in ``out`` (refused otherwise, before any work).
    since, leads_until : date-like, optional
        Ignore deals created before ``since`` in every estimate (open ones stay in
        the book); fit the lead rate on deals created before ``leads_until``.
    half_life : float
        Months after which a month's weight in the lead rate's fit halves.
    moving_conversions : bool
        Use where each stage's conversion stands now when it clearly moved (see
        :func:`pipesim.calibration.fit.calibrate_history`).
    fiscal_year_start, fiscal_calendar : optional
        The scenario's fiscal calendar (month 1-12 the fiscal year starts in; ``4-4-5``,
        ``4-5-4`` or ``5-4-4`` for weeks). A dated history also gives ``won.parquet``:
        the deals won from the start of as_of's fiscal year to the day before as_of.
    currency : str
        The company currency (the scenario's). Default: the history's, when it has one.
    fx : path or DataFrame, optional
        Exchange rates to ``currency`` (an ``fx.parquet``: ``currency``, ``rate``,
        optional ``from``): the history's amounts are converted before the fit, the
        open deals keep their own currency and the scenario the rates
        (:mod:`pipesim.calibration.history_currency`); ``won.parquet`` is in ``currency``.
    close_dates : path, optional
        A close-date history (CSV: ``deal_id``, ``changed_at``, ``close_date``): the
        slippage law (``close_dates.parquet``) and the open deals' stated dates
        (:mod:`pipesim.calibration.close_dates`).

    Returns
    -------
    Calibration
        ``.scenario``, ``.report`` (data quality) and ``.summary()``.
    """
    if horizon_months <= 0:
        raise InputError(
            f"horizon_months={horizon_months}: must be positive.",
            parameters=("horizon_months",),
        )
    if out is not None:
        scenario_folder.refuse_to_overwrite(out, force)
    fiscal = check_fiscal(fiscal_year_start, fiscal_calendar, "calibrate")
    hist = _history(history, events, format, stages, close_dates)
    name = Path(out).name if out is not None else ""
    fx_table, fx_source = _fx(fx)
    converted, company, rates = history_currency(
        hist, fx_table, currency or "", as_of_date(as_of), fx_source
    )

    def refit(h: History, segs: list[str] | None) -> Calibration:
        return calibrate_history(
            h,
            as_of,
            segments=segs,
            horizon_months=horizon_months,
            name=name,
            dwell_dist=dwell_dist,
            loss_dist=loss_dist,
            since=since,
            leads_until=leads_until,
            half_life=half_life,
            moving_conversions=moving_conversions,
            fiscal_year_start=fiscal.year_start,
        )

    chosen = _split(segments) or []
    cal = refit(converted, chosen or None)
    cut = pd.Timestamp(as_of_date(as_of))
    cal = with_categories(cal, converted, cut, chosen, refit)
    sc = cal.scenario
    won = None
    if hist.dated:
        # The amounts converted at each deal's close date: booked in the company currency.
        won, rows = won_this_year(converted, sc.as_of, fiscal, sc.deal_segments)
        report = pd.concat([cal.report, pd.DataFrame(rows)], ignore_index=True)
        cal = dataclasses.replace(cal, report=report)
    if won is not None or not fiscal.is_default:
        cal = dataclasses.replace(cal, scenario=sc.replace(fiscal=fiscal, won=won))
    cal = book_in_currencies(cal, hist, company, rates)
    if out is not None:
        write_calibration(cal, out)  # won.parquet and fx.parquet with the scenario's tables
    return cal


def snapshot(
    history: History | PathLike,
    *,
    as_of: Sequence[object],
    out: PathLike,
    events: PathLike | None = None,
    format: str = "generic",
    stages: str | Sequence[str] | None = None,
    force: bool = False,
    **options: Any,
) -> list[Calibration]:
    """One scenario folder per date of a CRM history: ``out/YYYY-MM-DD``, as calibrate writes it.

    The history is read once; each date is calibrated with :func:`calibrate`'s rules and
    ``options`` (segments, horizon, fiscal calendar, ...), its folder holding
    ``won.parquet`` when the history has dates, so that any two can be compared.
    Every date is checked, and every folder refused when one is already there
    (unless ``force``), before the first is written.
    """
    if not as_of:
        raise InputError(
            "as_of: give at least one date (YYYY-MM-DD) to take a snapshot at.",
            parameters=("as_of",),
        )
    days = sorted({as_of_date(d) for d in as_of})
    folders = [Path(out) / d.isoformat() for d in days]
    for folder in folders:
        scenario_folder.refuse_to_overwrite(folder, force)
    hist = _history(history, events, format, stages, options.pop("close_dates", None))
    return [
        calibrate(hist, as_of=d, out=folder, format=format, force=force, **options)
        for d, folder in zip(days, folders, strict=True)
    ]


def _fx(fx: PathLike | pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """The fx table given as a Parquet file or a DataFrame, and its name for messages."""
    if fx is None or isinstance(fx, pd.DataFrame):
        return fx, "fx table"
    if not Path(fx).is_file():
        raise InputError(
            f"fx={fx}: no such file. Give a Parquet table of currency, rate (company currency "
            "per unit) and an optional from date.",
            parameters=("fx",),
        )
    return parquet.read_table(Path(fx)), str(fx)


def backtest(
    history: History | PathLike,
    *,
    cutoffs: Sequence[object],
    events: PathLike | None = None,
    out: PathLike | None = None,
    horizon_months: int = 3,
    segments: str | Sequence[str] | None = None,
    trials: int = 2000,
    seed: int = 0,
    format: str = "generic",
    stages: str | Sequence[str] | None = None,
    dwell_dist: str = "auto",
    loss_dist: str = "auto",
    metric: str = "revenue",
    keep_calibrations: bool = False,
    since: object | None = None,
    leads_until: object | None = None,
    half_life: float = HALF_LIFE_MONTHS,
    progress: bool = False,
    moving_conversions: bool = False,
    close_dates: PathLike | None = None,
    no_close_dates: bool = False,
) -> pd.DataFrame:
    """Calibrate at each cutoff, forecast ``horizon_months``, score against what happened.

    ``cutoffs`` are dates, or spans ``FROM..TO`` (the first of each month, both ends
    included). ``metric`` is ``revenue`` or ``won_deals``. Writes
    ``out/backtest.parquet`` when ``out`` is given, and with ``keep_calibrations``
    each cutoff's scenario folder as ``out/calibration_<cutoff>/`` (what the
    forecast ran on, with its ``calibration.parquet``). ``since``, ``leads_until``
    (each cutoff's lead sample ends there, or at the cutoff when earlier) and
    ``half_life`` as in :func:`calibrate`; ``progress`` shows a bar over the cutoffs. See
    :func:`pipesim.calibration.backtest.backtest_history` for the columns. ``close_dates``:
    a close-date history as in :func:`calibrate`; ``no_close_dates`` forecasts with the
    clocks alone (the close dates then only appear in the calibrations kept).
    """
    cutoffs = [
        day
        for value in cutoffs
        for day in (month_starts(value) if isinstance(value, str) and ".." in value else [value])
    ]
    if not cutoffs:
        raise InputError("give at least one cutoff date: cutoffs=.", parameters=("cutoffs",))
    if horizon_months <= 0 or trials <= 0:
        raise InputError(
            f"horizon_months={horizon_months}, trials={trials}: both must be positive.",
            parameters=("horizon_months", "trials"),
        )
    hist = _history(history, events, format, stages, close_dates)
    if not hist.dated:
        raise InputError(
            f"{hist.source}: this history has no real dates (the {format} export gives "
            "durations only), so there is no cutoff to forecast from and nothing to score "
            "against. Use calibrate on it for conversions and durations, or backtest a history "
            "with created and close dates.",
            parameters=("history",),
        )
    kept: dict[str, Calibration] | None = {} if keep_calibrations else None
    # Amounts in several currencies cannot be scored without rates: stop, naming them.
    history_currency(hist, None, "", hist.last_date.date())
    table = backtest_history(
        hist,
        cutoffs,
        horizon_months=horizon_months,
        segments=_split(segments),
        trials=trials,
        seed=seed,
        dwell_dist=dwell_dist,
        loss_dist=loss_dist,
        metric=metric,
        calibrations=kept,
        since=since,
        leads_until=leads_until,
        half_life=half_life,
        progress=progress,
        moving_conversions=moving_conversions,
        close_dates=not no_close_dates,
    )
    if out is not None:
        for day, cal in (kept or {}).items():
            write_calibration(cal, Path(out) / f"calibration_{day}")
        parquet.write_tables(
            out,
            {"backtest": table},
            {
                "command": "backtest",
                "pipesim_version": __version__,
                "trials": str(trials),
                "seed": str(seed),
                "horizon_months": str(horizon_months),
                "metric": metric,
                "history": hist.source,
            },
        )
    return table
