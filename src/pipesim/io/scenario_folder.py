"""Scenario folders: the Parquet tables of a scenario read, checked and written.

A scenario folder holds ``stages.parquet``, ``deals.parquet``, ``scenario.parquet``
and optionally ``arrivals.parquet``, ``fx.parquet`` (exchange rates), ``won.parquet`` and
``quotas.parquet``, ``close_dates.parquet`` (the slippage law of stated close dates). A
``deals.parquet`` of more than :data:`~pipesim.scenario.scenario.DEAL_CHUNK` rows stays on disk
(:class:`~pipesim.io.deal_file.DealFile`), checked and read chunk by chunk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipesim.errors import InputError, ScenarioError
from pipesim.io.deal_file import DealFile
from pipesim.io.parquet import parquet_shape, read_metadata, read_table, write_tables
from pipesim.scenario.scenario import (
    CLOSE_PACE_COLUMNS,
    DEAL_CHUNK,
    FORMAT_VERSION,
    MONTH_SLIP_COLUMNS,
    RUSH_SLIP_COLUMNS,
    SHOCK_SETTINGS,
    Scenario,
    make_scenario,
    reserved,
)

SCENARIO_FILES = ("stages", "deals", "arrivals", "scenario", "fx")  # fx: optional rates
FINANCE_FILES = ("won", "quotas")  # optional: revenue already booked, quotas per owner
LAW_FILES = ("close_dates",)  # optional: the slippage law of stated close dates
# The Parquet metadata of a scenario.parquet written by ``calibrate`` (export and import
# keep it): such a funnel is the history's, and its size draws no warning.
CALIBRATED = ("command", "calibrate")


def load_scenario(
    path: str | os.PathLike[str],
    *,
    deals_in_memory: bool | None = None,
    chunk: int = DEAL_CHUNK,
) -> Scenario:
    """Read and validate a scenario folder.

    The folder holds ``stages.parquet``, ``deals.parquet``, ``scenario.parquet``
    and optionally ``arrivals.parquet`` (see the README for their columns).

    Parameters
    ----------
    path : path
        The scenario folder.
    deals_in_memory : bool, optional
        Hold the deals in memory (True) or leave them on disk, checked and later
        simulated chunk by chunk (False). By default they stay on disk when
        ``deals.parquet`` has more than :data:`~pipesim.scenario.scenario.DEAL_CHUNK` rows,
        so memory does not grow with the book. Results are the same bits.
    chunk : int
        Rows read at a time from a book left on disk (memory, not results).

    Raises
    ------
    ScenarioError
        When a file is missing, unreadable or invalid; the message names it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ScenarioError(
            f"{folder}: no such scenario folder. Give a folder holding stages.parquet, "
            "deals.parquet and scenario.parquet (`pipesim init DIR` writes an example)."
        )
    files = {
        name: folder / f"{name}.parquet" for name in (*SCENARIO_FILES, *FINANCE_FILES, *LAW_FILES)
    }
    refuse_csv(folder)
    for name in ("stages", "deals", "scenario"):
        if not files[name].is_file():
            raise ScenarioError(
                f"{files[name]}: missing. A scenario folder needs stages.parquet, deals.parquet "
                "(zero rows is fine) and scenario.parquet; `pipesim init DIR` writes an example."
            )
    if deals_in_memory is None:
        deals_in_memory = parquet_shape(files["deals"])[0] <= DEAL_CHUNK
    tables: dict[str, Any] = {
        name: read_table(p)
        for name, p in files.items()
        if p.is_file() and (name != "deals" or deals_in_memory)
    }
    if not deals_in_memory:
        tables["deals"] = DealFile(files["deals"], chunk)
    return scenario_from_tables(
        tables,
        {**{k: str(v) for k, v in files.items()}, "path": str(folder)},
        name=folder.name,
        calibrated=is_calibrated(read_metadata(files["scenario"])),
    )


def refuse_csv(folder: Path) -> None:
    """Stop at a CSV file where pipesim reads Parquet, saying how to convert it.

    pipesim reads only Parquet (types and empty cells stay as written); a CSV would
    be silently ignored (``arrivals.csv``, ``levers.csv``) or reported missing.
    """
    for name in (*SCENARIO_FILES, *FINANCE_FILES, *LAW_FILES, "levers"):
        csv, parquet_file = folder / f"{name}.csv", folder / f"{name}.parquet"
        if csv.is_file() and not parquet_file.is_file():
            raise ScenarioError(
                f"{csv}: pipesim reads scenario tables from Parquet files, not CSV. Convert it "
                f"with pandas: python -c \"import pandas as pd; pd.read_csv('{csv}')"
                f".to_parquet('{parquet_file}')\" (then check its dates and empty cells), or put "
                "the tables in an Excel workbook (one sheet per table) and run "
                "`pipesim scenario import FILE.xlsx DIR`."
            )


def is_calibrated(metadata: Mapping[str, str]) -> bool:
    """Whether a scenario.parquet's metadata says ``calibrate`` wrote the scenario."""
    return metadata.get(CALIBRATED[0]) == CALIBRATED[1]


def scenario_from_tables(
    tables: Mapping[str, Any],
    sources: Mapping[str, str],
    *,
    name: str,
    calibrated: bool = False,
) -> Scenario:
    """Check a scenario's tables (``stages``, ``deals``, ``scenario``, optional ``arrivals``).

    ``sources`` names each table in messages; ``name`` is used when the settings
    have none.
    """
    settings = tables["scenario"]
    src = sources["scenario"]
    if len(settings) != 1:
        raise ScenarioError(
            f"{src}: has {len(settings)} rows; it must have exactly one "
            "(as_of, horizon_months, optional name and currency)."
        )
    for col in ("as_of", "horizon_months"):
        if col not in settings.columns:
            raise ScenarioError(
                f"{src}: required column {col!r} missing (columns present: "
                f"{', '.join(map(str, settings.columns)) or 'none'}). "
                "Add it, e.g. as_of=2027-01-01, horizon_months=12."
            )
    row = settings.iloc[0]

    def text(col: str) -> str:
        value = row.get(col)
        return "" if value is None or pd.isna(value) else str(value)

    paces = {}
    for columns, meaning in (
        (CLOSE_PACE_COLUMNS, "each month of a quarter"),
        (RUSH_SLIP_COLUMNS, "the first two months of a quarter"),
        (MONTH_SLIP_COLUMNS, "each calendar month"),
    ):
        values = [row.get(c) for c in columns]
        given = [p is not None and not pd.isna(p) for p in values]
        if any(given) and not all(given):
            missing = [c for c, g in zip(columns, given, strict=True) if not g]
            raise ScenarioError(
                f"{src}: give all {len(columns)} of {columns[0]} .. {columns[-1]} (the clocks' "
                f"pace in {meaning}), or none of them; missing: {', '.join(missing)}."
            )
        paces[columns] = values if all(given) else None
    return make_scenario(
        tables["stages"],
        tables["deals"],
        tables.get("arrivals"),
        close_paces=paces[CLOSE_PACE_COLUMNS],
        rush_slips=paces[RUSH_SLIP_COLUMNS],
        month_slips=paces[MONTH_SLIP_COLUMNS],
        won=tables.get("won"),
        quotas=tables.get("quotas"),
        market_shock_sd=row.get("market_shock_sd"),
        market_leads_shock_sd=row.get("market_leads_shock_sd"),
        shock_persistence=row.get("shock_persistence"),
        fiscal_year_start=row.get("fiscal_year_start"),
        fiscal_calendar=row.get("fiscal_calendar"),
        as_of=row["as_of"],
        horizon_months=row["horizon_months"],
        name=text("name") or name,
        currency=text("currency"),
        sources=sources,
        format_version=_format_version(text("format_version"), src),
        calibrated=calibrated,
        fx=tables.get("fx"),
        close_law=tables.get("close_dates"),
    )


def _format_version(text: str, source: str) -> int:
    """scenario.parquet's ``format_version``: empty is format 1 (before the column existed)."""
    if not text:
        return 1
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise ScenarioError(
            f"{source}: format_version {text!r} is not a whole number. Write the scenario "
            f"format the tables follow (1 to {FORMAT_VERSION}), or leave it empty for 1."
        )
    return int(number)


def refuse_to_overwrite(
    folder: str | os.PathLike[str], force: bool, names: Sequence[str] = SCENARIO_FILES
) -> None:
    """Stop before writing a scenario over one already in ``folder`` (unless ``force``).

    ``names`` are the tables that count as a scenario already there.
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder for the scenario.", parameters=("out",))
    clash = [out / f"{n}.parquet" for n in names if (out / f"{n}.parquet").exists()]
    if clash and not force:
        raise InputError(
            f"{out} already holds {', '.join(p.name for p in clash)}; "
            "choose another folder or add force=True to overwrite them.",
            parameters=("force",),
        )


def settings_table(scenario: Scenario) -> pd.DataFrame:
    """``scenario.parquet``: the settings, and the format the tables follow when it matters."""
    settings = pd.DataFrame(
        {
            "as_of": [scenario.as_of],
            "horizon_months": [scenario.horizon_months],
            "name": [scenario.name],
            "currency": [scenario.currency],
        }
    )
    tables = {
        "stages": scenario.stages,
        "arrivals": scenario.arrivals,
        "deals": pd.DataFrame(columns=list(scenario.deal_columns)),
    }
    if (
        any(
            c in table.columns and c not in reserved(name, 1)
            for name, table in tables.items()
            for c in reserved(name)
        )
        or scenario.close_paces is not None
        or scenario.rush_slips is not None
        or scenario.month_slips is not None
        or scenario.market_shock_sd > 0
        or scenario.market_leads_shock_sd > 0
        or scenario.shock_persistence > 0
        or scenario.fx is not None
        or scenario.close_law is not None
    ):
        # Columns reserved since a later format: say which format the tables follow.
        settings["format_version"] = [FORMAT_VERSION]
    for col in SHOCK_SETTINGS:
        if getattr(scenario, col) > 0:
            settings[col] = [getattr(scenario, col)]
    for columns, values in (
        (CLOSE_PACE_COLUMNS, scenario.close_paces),
        (RUSH_SLIP_COLUMNS, scenario.rush_slips),
        (MONTH_SLIP_COLUMNS, scenario.month_slips),
    ):
        for col, pace in zip(columns, values or (), strict=False):
            settings[col] = [pace]
    if not scenario.fiscal.is_default:
        settings["fiscal_year_start"] = [scenario.fiscal.year_start]
        settings["fiscal_calendar"] = [scenario.fiscal.weeks]
    return settings


def scenario_tables(scenario: Scenario) -> dict[str, pd.DataFrame]:
    """The tables of a scenario folder, as :func:`write_scenario` writes them (optional if any)."""
    tables = {
        "stages": scenario.stages,
        "deals": scenario.deals,
        "arrivals": scenario.arrivals,
        "scenario": settings_table(scenario),
    }
    for name in FINANCE_FILES:
        table = getattr(scenario, name)
        if table is not None:
            tables[name] = table
    if scenario.fx is not None:
        tables["fx"] = scenario.fx
    if scenario.close_law is not None:
        tables["close_dates"] = scenario.close_law
    return tables


def scenario_metadata(scenario: Scenario) -> dict[str, str]:
    """The Parquet metadata a scenario folder carries (the ``calibrate`` mark, if any)."""
    return dict([CALIBRATED]) if scenario.calibrated else {}


def write_scenario(folder: str | os.PathLike[str], scenario: Scenario) -> list[Path]:
    """Write a scenario as a folder of Parquet files that :func:`load_scenario` reads back.

    A folder's ``fx.parquet`` is removed when the scenario has no rates (it would
    otherwise give them to the scenario read back).
    """
    written = write_tables(folder, scenario_tables(scenario), scenario_metadata(scenario))
    for name, table in (("fx", scenario.fx), ("close_dates", scenario.close_law)):
        stale = Path(folder) / f"{name}.parquet"
        if table is None and stale.is_file():
            stale.unlink()
    return written
