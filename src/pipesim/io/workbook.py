"""Scenario tables in one Excel workbook, a sheet per table, and back (openpyxl, imported lazily).

A sheet's first row holds the column names, each row below one table row; an empty
cell is a missing value. Cells keep their type: numbers are written with every digit
of the double (openpyxl's own writer keeps 16 significant digits, and some doubles
need 17), ``inf`` and ``-inf`` as text (a workbook cannot hold them as numbers),
dates as dates (``yyyy-mm-dd``). Reading gives each column the Python values of its
cells (None when empty); pipesim's scenario checks then read them as they read Parquet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipesim.errors import InputError, MissingDependencyError, install_hint

SHEETS = ("stages", "deals", "arrivals", "scenario", "levers", "won", "quotas", "fx")
REQUIRED_SHEETS = ("stages", "deals", "scenario")
MAX_ROWS = 1_048_575  # rows under the header an Excel sheet holds
_EXACT_INT = 10**15  # Excel keeps 15 significant digits of a whole number typed in


def require_openpyxl(what: str) -> None:
    """Fail with the install command when openpyxl (the ``report`` extra) is missing."""
    import importlib.util

    if importlib.util.find_spec("openpyxl") is None:
        raise MissingDependencyError(
            f"{what}: the openpyxl package is not installed. {install_hint('report')}"
        )


def write_workbook(
    path: str | os.PathLike[str],
    tables: Mapping[str, pd.DataFrame],
    properties: Mapping[str, str] | None = None,
) -> Path:
    """Write ``{sheet: table}`` as one workbook, under a temporary name then renamed.

    ``properties`` become the workbook's custom document properties (text).
    """
    require_openpyxl("the workbook")
    from openpyxl import Workbook
    from openpyxl.packaging.custom import StringProperty

    final = Path(path)
    for name, table in tables.items():
        if len(table) > MAX_ROWS:
            raise InputError(
                f"{name}: {len(table):,} rows; an Excel sheet holds at most {MAX_ROWS:,} under "
                "its header. Edit a table this large with pandas (pd.read_parquet, "
                "DataFrame.to_parquet) instead.",
            )
    if final.exists() and final.is_dir():
        raise InputError(f"{final}: is a folder; give a workbook file name (FILE.xlsx).")
    book = Workbook(write_only=True)
    for key, value in (properties or {}).items():
        book.custom_doc_props.append(StringProperty(name=key, value=value))
    for name, table in tables.items():
        sheet = book.create_sheet(name)
        sheet.freeze_panes = "A2"
        sheet.append([str(c) for c in table.columns])
        columns = [table[c].to_numpy(dtype=object) for c in table.columns]
        for row in zip(*columns, strict=True):
            sheet.append([_cell(sheet, v) for v in row])
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        book.save(temp)
        os.replace(temp, final)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return final


def _cell(sheet: Any, value: Any) -> Any:
    """One value as a workbook cell: None for missing, exact numbers, dates, text."""
    from openpyxl.cell import WriteOnlyCell

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        whole = int(value)
        return whole if abs(whole) < _EXACT_INT else _exact(sheet, repr(whole))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number if float(f"{number:.16g}") == number else _exact(sheet, repr(number))
    if isinstance(value, dt.date | np.datetime64):
        stamp = pd.Timestamp(value)
        cell = WriteOnlyCell(sheet, value=stamp.to_pydatetime())
        cell.number_format = "yyyy-mm-dd" if stamp == stamp.normalize() else "yyyy-mm-dd hh:mm:ss"
        return cell
    text = str(value)
    if text.startswith("="):  # text, not a formula
        cell = WriteOnlyCell(sheet, value=text)
        cell.data_type = "s"
        return cell
    return text


def _exact(sheet: Any, digits: str) -> Any:
    """A number cell holding ``digits`` as written (openpyxl would keep 16 digits)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=digits)
    cell.data_type = "n"
    return cell


def read_workbook(path: str | os.PathLike[str]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The scenario sheets of a workbook as tables of cell values, and its custom properties.

    Sheets are matched by name ignoring case and spaces; other sheets are ignored.
    Empty rows at the end of a sheet are dropped; formulas give the values Excel
    last computed.

    Raises
    ------
    InputError
        The file is not a workbook, a required sheet is missing, or a column has
        no name or a repeated one.
    """
    require_openpyxl("the workbook")
    from openpyxl import load_workbook

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: no such file. Give an Excel workbook (.xlsx).")
    try:
        book = load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file it cannot read
        raise InputError(
            f"{file}: cannot be read as an Excel workbook (.xlsx) "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
            "Save it from Excel as .xlsx."
        ) from None
    try:
        found = {name.strip().lower(): name for name in book.sheetnames}
        missing = [s for s in REQUIRED_SHEETS if s not in found]
        if missing:
            raise InputError(
                f"{file}: no sheet {', '.join(map(repr, missing))} (sheets: "
                f"{', '.join(map(repr, book.sheetnames))}). A scenario workbook has one sheet per "
                "table: stages, deals, arrivals (optional), scenario, levers (optional), fx "
                "(optional); "
                "`pipesim scenario export DIR FILE.xlsx` writes one to start from."
            )
        tables = {
            sheet: _table(book[found[sheet]].iter_rows(values_only=True), file, sheet)
            for sheet in SHEETS
            if sheet in found
        }
        properties = {
            str(p.name): str(p.value)
            for p in getattr(book, "custom_doc_props", ())
            if p.value is not None
        }
    finally:
        book.close()
    return tables, properties


def _table(rows: Iterator[tuple[Any, ...]], file: Path, sheet: str) -> pd.DataFrame:
    """A sheet's rows as a table: the first row names the columns."""
    header = list(next(rows, ()))
    body = [list(r) for r in rows]
    while body and all(v is None or v == "" for v in body[-1]):
        body.pop()
    width = max([len(header), *map(len, body)]) if body or header else 0
    header += [None] * (width - len(header))
    names: list[str] = []
    keep: list[int] = []
    for k, name in enumerate(header):
        column = [r[k] if k < len(r) else None for r in body]
        if name is None or str(name).strip() == "":
            filled = [i for i, v in enumerate(column) if v is not None and v != ""]
            if filled:
                raise InputError(
                    f"{file}, sheet '{sheet}', column {_letter(k)}: values (first in row "
                    f"{filled[0] + 1} under the header) but no name in the first row. Name the "
                    "column, or clear it."
                )
            continue
        text = _header_text(name)
        if text in names:
            raise InputError(
                f"{file}, sheet '{sheet}': column name {text!r} appears twice (columns "
                f"{_letter(keep[names.index(text)])} and {_letter(k)}). Rename or remove one."
            )
        names.append(text)
        keep.append(k)
    data = {
        name: pd.Series([r[k] if k < len(r) else None for r in body], dtype=object)
        for name, k in zip(names, keep, strict=True)
    }
    return pd.DataFrame(data, index=pd.RangeIndex(len(body)), columns=names)


def _header_text(name: object) -> str:
    if isinstance(name, float) and name.is_integer():
        return str(int(name))
    return str(name).strip()


def _letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column (0: A, 26: AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
