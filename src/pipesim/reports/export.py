"""Results for finance and for scripts: an Excel workbook, CSV files, JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.reports.results_folder import WHOLE_BOOK, ReportData, segment_name

STATS = ("p10", "p50", "p90", "mean")
BLOCKS = (
    ("revenue", False, "Revenue"),
    ("won_deals", False, "Won deals"),
    ("revenue", True, "Cumulative revenue"),
    ("won_deals", True, "Cumulative won deals"),
)


def finance_table(summary: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    """One row per month and segment, P10/P50/P90/mean of revenue and won deals, cumulative too.

    Parameters
    ----------
    summary : DataFrame
        The long-form summary (``summary.parquet``).
    by : tuple of str
        Its segment columns (whole-book rows have them null).

    Returns
    -------
    DataFrame
        ``month``, ``segment`` (``All`` for the whole book, else ``col=value``)
        and columns such as ``Revenue P10`` ... ``Cumulative won deals mean``.
    """
    s = summary.copy()
    if by:
        keys = s[list(by)].astype(object).where(s[list(by)].notna(), None)
        whole = s[list(by)].isna().all(axis=1)
        s["segment"] = [
            WHOLE_BOOK if w else segment_name(by, k)
            for w, k in zip(whole, keys.itertuples(index=False, name=None), strict=True)
        ]
    else:
        s["segment"] = WHOLE_BOOK
    order = list(dict.fromkeys(s["segment"]))
    months = list(dict.fromkeys(s["period"].astype(str)))
    index = pd.MultiIndex.from_product([order, months], names=["segment", "month"])
    columns = {}
    for metric, cumulative, title in BLOCKS:
        part = s[(s["metric"] == metric) & (s["cumulative"] == cumulative)]
        part = part.assign(month=part["period"].astype(str)).set_index(["segment", "month"])
        for stat in STATS:
            name = f"{title} {'mean' if stat == 'mean' else stat.upper()}"
            columns[name] = part[stat].reindex(index)
    table = pd.DataFrame(columns, index=index).reset_index()
    return table[["month", "segment", *columns]]


def quarter_table(quarters: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    """One row per fiscal quarter (or year) and segment: revenue and won deals side by side.

    ``quarter`` reads ``FY2027-Q2`` (``FY2027`` for the year); ``complete`` is False
    when as_of or the horizon cuts it.
    """
    q = quarters.copy()
    by = tuple(c for c in by if c in q.columns)
    if by:
        keys = q[list(by)].astype(object).where(q[list(by)].notna(), None)
        whole = q[list(by)].isna().all(axis=1)
        q["segment"] = [
            WHOLE_BOOK if w else segment_name(by, k)
            for w, k in zip(whole, keys.itertuples(index=False, name=None), strict=True)
        ]
    else:
        q["segment"] = WHOLE_BOOK
    q["label"] = [
        str(f) if str(k) == "FY" else f"{f}-{k}"
        for f, k in zip(q["fiscal_year"], q["quarter"], strict=True)
    ]
    first = ["segment", "label", "start", "end", "complete"]
    out = q[q["metric"] == "revenue"][first].reset_index(drop=True)
    for metric, title in (("revenue", "Revenue"), ("won_deals", "Won deals")):
        part = q[q["metric"] == metric].reset_index(drop=True)
        for stat in STATS:
            out[f"{title} {'mean' if stat == 'mean' else stat.upper()}"] = part[stat]
    out = out.rename(columns={"label": "quarter"})
    out["start"] = out["start"].astype(str)
    out["end"] = out["end"].astype(str)
    return out


def settings_rows(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    """The run's settings, the ones people ask about first."""
    first = ("scenario_name", "scenario", "as_of", "horizon_months", "trials", "seed")
    keys = [k for k in first if k in settings] + [k for k in settings if k not in first]
    return [(k, str(settings[k])) for k in keys]


def _currency_format(currency: str) -> str:
    label = "".join(ch for ch in currency if ch not in '"\\;[]')
    return f'#,##0 "{label}";-#,##0 "{label}"' if label else "#,##0"


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temporary file in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return path


def _sheet(wb: object, title: str, frame: pd.DataFrame, formats: Mapping[str, str]) -> None:
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)  # type: ignore[attr-defined]
    ws.append([str(c) for c in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        ws.append([_cell(v) for v in row])
    for i, col in enumerate(frame.columns, start=1):
        letter = get_column_letter(i)
        ws[f"{letter}1"].font = Font(bold=True)
        ws[f"{letter}1"].fill = PatternFill("solid", fgColor="DDEBF7")
        width = max([len(str(col)), *(len(str(v)) for v in frame[col].head(200))])
        ws.column_dimensions[letter].width = min(40, width + 3)
        fmt = formats.get(str(col))
        if fmt:
            for cell in ws[letter][1:]:
                cell.number_format = fmt
    ws.freeze_panes = "C2" if title == "Summary" else "A2"


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, int | float | str | bool) else str(value)


def _extras(data: ReportData) -> dict[str, pd.DataFrame]:
    out = {}
    for name, frame in (
        ("Quarters", quarter_table(data.quarters, data.by) if data.quarters is not None else None),
        ("Quota", data.quota),
        ("Forecast call", data.forecast_call),
        ("Funnel", data.funnel),
        ("Comparison", data.compare),
        ("Sensitivity", data.sensitivity),
        ("Target", data.target_plan),
        ("Health", data.health),
        ("Drift", data.drift),
    ):
        if frame is not None:
            out[name] = frame
    return out


def write_xlsx(data: ReportData, path: str | os.PathLike[str]) -> Path:
    """Write the finance workbook: Summary (frozen header, currency formats), Settings, extras."""
    from openpyxl import Workbook

    money = _currency_format(data.currency)
    table = finance_table(data.summary, data.by)
    formats = {}
    for col in table.columns[2:]:
        won = "won deals" in col.lower()
        formats[col] = ("#,##0.0" if col.endswith("mean") else "#,##0") if won else money
    wb = Workbook()
    wb.remove(wb.active)
    _sheet(wb, "Summary", table, formats)
    settings = pd.DataFrame(settings_rows(data.settings), columns=["setting", "value"])
    _sheet(wb, "Settings", settings, {})
    money_cols = {
        c: money
        for c in ("value", "mean", "p10", "p50", "p90", "delta_mean", "delta_p10", "delta_p50")
    }
    money_cols |= {"delta_p90": money, "conversion": "0.0%", "win_probability": "0.0%"}
    money_cols |= {"p_better": "0.0%", "deals": "#,##0", "quota": money, "expected_gap": money}
    money_cols |= {"p_attain": "0.0%", "p_attain_80": "0.0%", "p_commit": "0.0%"}
    money_cols |= {c: money for c in ("booked", "commit", "commit_best_case", "weighted_pipeline")}
    money_cols |= {"commit_deals": "#,##0", "best_case_deals": "#,##0"}
    quarter_cols = {f"Revenue {s}": money for s in ("P10", "P50", "P90", "mean")}
    quarter_cols |= {f"Won deals {s}": "#,##0" for s in ("P10", "P50", "P90")}
    quarter_cols |= {"Won deals mean": "#,##0.0"}
    plans = {"value_now": money, "coverage": "0%", "deals_now": "#,##0", "deals_needed": "#,##0.0"}
    plans |= {"leads_current": "#,##0.0", "leads_needed": "#,##0.0"}
    for title, frame in _extras(data).items():
        if title == "Quarters":  # revenue rows in currency, won-deal rows plain
            _sheet(wb, title, frame, quarter_cols)
        elif title in ("Target", "Health"):
            needed = {c: "#,##0.0" for c in frame.columns if str(c).startswith("needed_")}
            _sheet(wb, title, frame, plans | needed)
        else:  # drift's actual and quantiles are counts of deals on most rows: no currency
            _sheet(wb, title, frame, {} if title == "Drift" else money_cols)
    return atomic_write(Path(path), lambda p: wb.save(p))


def write_csv(data: ReportData, folder: str | os.PathLike[str]) -> list[Path]:
    """Write summary.csv (the finance table), settings.csv and the extras present, as CSV.

    Each extra sheet of the workbook gives ``<sheet name, lower case, _ for spaces>.csv``.
    """
    out = Path(folder)
    frames = {
        "summary": finance_table(data.summary, data.by),
        "settings": pd.DataFrame(settings_rows(data.settings), columns=["setting", "value"]),
        **{k.lower().replace(" ", "_"): v for k, v in _extras(data).items()},
    }
    written = []
    for name, frame in frames.items():

        def write(p: Path, f: pd.DataFrame = frame) -> None:
            f.to_csv(p, index=False)

        written.append(atomic_write(out / f"{name}.csv", write))
    return written


# Settings whose text is text even when it looks like a number (a scenario named 2027).
TEXT_SETTINGS = frozenset(
    {"pipesim_version", "scenario", "scenario_name", "scenario_fingerprint", "as_of", "currency",
     "by", "engine", "command", "history", "metric", "actuals", "deals_needed_basis", "variants"}
)  # fmt: skip


def json_value(value: object) -> object:
    """A table cell as JSON: numbers as numbers, missing and infinite values as null."""
    value = _cell(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def setting_value(key: str, text: str) -> object:
    """A metadata setting as JSON: whole numbers, decimals and true/false typed, text kept."""
    if key in TEXT_SETTINGS:
        return text
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return json_value(kind(text))
        except ValueError:
            pass
    return text


def tables_json(
    tables: Mapping[str, pd.DataFrame], settings: Mapping[str, str], messages: Sequence[str] = ()
) -> str:
    """Tables as JSON for scripts: ``{"settings": {...}, "<table>": [{row}, ...], ...}``.

    Every number is a JSON number (a setting too), a missing or infinite one ``null``;
    ``messages`` (the findings a planning command prints) are kept when there are any.
    """
    doc: dict[str, object] = {
        "settings": {k: setting_value(k, v) for k, v in settings.items() if k != "pipesim"}
    }
    for name, frame in tables.items():
        rows = frame.to_dict(orient="records")
        doc[name] = [{str(k): json_value(v) for k, v in row.items()} for row in rows]
    if messages:
        doc["messages"] = list(messages)
    return json.dumps(doc, indent=1, allow_nan=False)


def summary_json(summary: pd.DataFrame, settings: Mapping[str, str]) -> str:
    """The summary as JSON for scripts: ``{"settings": {...}, "summary": [{row}, ...]}``."""
    return tables_json({"summary": summary}, settings)
