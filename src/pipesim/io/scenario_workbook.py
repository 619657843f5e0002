"""A scenario folder as one Excel workbook (a sheet per table) and a workbook as a scenario.

Export writes the tables as pipesim reads them (checked, defaults filled), plus
``levers.parquet`` as stored; import reads the sheets, checks them as a scenario
folder is checked, and returns the scenario and levers to write. A scenario
``calibrate`` wrote keeps its mark through the workbook (a custom document property).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import InputError, ScenarioError
from pipesim.io import workbook
from pipesim.io.scenario_folder import (
    CALIBRATED,
    scenario_from_tables,
    scenario_metadata,
    scenario_tables,
)
from pipesim.scenario.scenario import Scenario

PROPERTY = "pipesim_"  # prefix of the workbook properties that carry scenario metadata
ROWS_NOTE = " (Row numbers count the rows under the header: row 1 is the sheet's row 2.)"


def write_scenario_workbook(
    path: str | os.PathLike[str], scenario: Scenario, levers: pd.DataFrame | None = None
) -> Path:
    """Write a scenario's tables (and a levers table) as sheets of one workbook."""
    tables = scenario_tables(scenario)
    if levers is not None:
        tables["levers"] = levers
    properties = {PROPERTY + k: v for k, v in scenario_metadata(scenario).items()}
    return workbook.write_workbook(path, tables, properties)


def read_scenario_workbook(path: str | os.PathLike[str]) -> tuple[Scenario, pd.DataFrame | None]:
    """The scenario a workbook holds, checked, and its levers sheet (None without one).

    Raises
    ------
    InputError
        A missing sheet or column name, or a table pipesim would refuse in a scenario
        folder; the message names the workbook, the sheet, the column and the rows.
    """
    file = Path(path)
    sheets, properties = workbook.read_workbook(file)
    sources = {name: f"{file}, sheet '{name}'" for name in workbook.SHEETS}
    deals = sheets["deals"]
    if "deal_id" in deals.columns:
        deals = deals.assign(deal_id=deal_ids(deals["deal_id"]))
    metadata = {
        k.removeprefix(PROPERTY): v for k, v in properties.items() if k.startswith(PROPERTY)
    }
    try:
        scenario = scenario_from_tables(
            {**sheets, "deals": deals},
            sources,
            name=file.stem,
            calibrated=metadata.get(CALIBRATED[0]) == CALIBRATED[1],
        )
    except ScenarioError as exc:
        raise ScenarioError(str(exc) + _rows_note(str(exc)), parameters=exc.parameters) from None
    return scenario, sheets.get("levers")


def _rows_note(message: str) -> str:
    return ROWS_NOTE if "row " in message else ""


def deal_ids(column: pd.Series) -> pd.Series:
    """Deal ids of one type, so they can be stored: whole numbers, else each id as text.

    A deal's random numbers are keyed by its id as text (5 and "5" share a key), so
    writing every id of a mixed column as text keeps every deal's draws.
    """
    values = column.to_numpy(dtype=object)
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if len(present) == len(values):
            return pd.Series(values.astype(np.int64), index=column.index)
        return column
    return pd.Series(
        [None if v is None else str(v) for v in values], index=column.index, dtype=object
    )


def levers_table(levers: pd.DataFrame, source: str) -> pd.DataFrame:
    """A levers sheet as ``levers.parquet`` stores it: ``value`` a number, one type a column.

    A column of numbers stays numbers (pipesim reads a lever's segment value as the
    text of what is stored, so 2024.0 stays 2024.0); any other column becomes text.
    """
    out = {}
    for col in levers.columns:
        values = levers[col]
        present = [v for v in values if v is not None]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
        if col == "value" or (present and numbers):
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna() & values.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"{source}, column '{col}': row {row + 1} ({values.iloc[row]!r}) is not a "
                    f"number. Write the lever's amount (a scale, a change or a value).{ROWS_NOTE}"
                )
            out[col] = converted
        else:
            out[col] = pd.Series(
                [None if v is None else str(v) for v in values], index=levers.index, dtype=object
            )
    return pd.DataFrame(out, index=levers.index)
