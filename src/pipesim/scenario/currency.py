"""Currencies: deals and new leads in several currencies, every result in the company's.

A scenario's ``currency`` setting is the company currency; deals and arrival rows may
carry a ``currency`` column (empty: the company's). ``fx.parquet`` gives the rates:
``currency``, ``rate`` (company currency per unit) and an optional ``from`` date; a
currency with dated rates converts each win at the rate in force on the day it is won
(the latest ``from`` on or before that day; an undated row applies before the first
dated one). Without a company currency the scenario is in one currency, as before.

The kernels look the rate up at the won day: each deal and arrival row has a currency
*slot* (0: the company's), and :func:`day_rates` gives each slot's rate per whole day of
the kernel's clock (slot 0 all ones, so a book in one currency keeps its bits).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from pipesim.errors import ScenarioError, show_rows
from pipesim.scenario.calendar import to_date

FX_COLUMNS = ("currency", "rate", "from")
MAX_RATE = 1e9  # company currency per unit: a larger rate is a typo


def check_fx(table: pd.DataFrame | None, source: str, company: str) -> pd.DataFrame | None:
    """Validate ``fx.parquet``: one row per (currency, from), rates > 0, a company currency.

    Returns the table sorted by currency then ``from`` (undated first), ``from`` as
    dates (missing: None); None when there is no table.
    """
    if table is None:
        return None
    unknown = [str(c) for c in table.columns if c not in FX_COLUMNS]
    if unknown:
        raise ScenarioError(
            f"{source}: unknown column(s) {', '.join(map(repr, unknown))}. fx.parquet has "
            "currency, rate (company currency per unit) and an optional from (the date the "
            "rate applies from); rename or remove the others.",
        )
    for col in ("currency", "rate"):
        if col not in table.columns:
            raise ScenarioError(
                f"{source}: required column {col!r} missing. fx.parquet has currency, rate "
                "(company currency per unit) and an optional from date.",
            )
    table = table.reset_index(drop=True)
    if not company and len(table):
        raise ScenarioError(
            f"{source}: rates are given but scenario.parquet has no currency (the company "
            "currency every result is in). Set currency in scenario.parquet, e.g. EUR.",
        )
    code = table["currency"].astype(object)
    text = np.array([_text(v) for v in code], dtype=object)
    _flag(
        source, "currency", table, text == None,  # noqa: E711
        "are empty", "Write the currency code (e.g. USD) on every row.",
    )  # fmt: skip
    rate = pd.to_numeric(table["rate"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    _flag(
        source, "rate", table, ~((rate > 0) & (rate <= MAX_RATE)),
        f"are not numbers above 0 (and at most {MAX_RATE:,.0f})",
        "Write the company currency one unit of the row's currency is worth (e.g. 0.92).",
    )  # fmt: skip
    start: list[dt.date | bool | None] = [None] * len(table)
    if "from" in table.columns:
        start = [_date(v) for v in table["from"].astype(object)]
        bad = np.array([s is False for s in start], dtype=bool)  # a value that is not a date
        _flag(
            source,
            "from",
            table,
            bad,
            "are not dates",
            "Write a date (2027-04-01) or leave it empty.",
        )
    company_rows = (text == company) & (rate != 1.0)
    _flag(
        source, "rate", table, company_rows,
        f"give the company currency {company} a rate other than 1",
        "Remove those rows: the company currency's rate is 1.",
    )  # fmt: skip
    keys = pd.Series([f"{c}|{s}" for c, s in zip(text, start, strict=True)])
    _flag(
        source, "currency", table, keys.duplicated(keep="first").to_numpy(),
        "repeat an earlier row's currency and from date",
        "Give each currency one rate per from date (one row without a date at most).",
    )  # fmt: skip
    out = pd.DataFrame(
        {
            "currency": pd.Series(text, dtype=object),
            "rate": rate,
            "from": pd.Series(start, dtype=object),
        }
    )
    order = sorted(range(len(out)), key=lambda i: (text[i], start[i] or dt.date.min))
    return out.iloc[order].reset_index(drop=True)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    value = str(value).strip()
    return value or None


def _date(value: object) -> dt.date | bool | None:
    """A ``from`` cell as a date, None when empty, False when not a date."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        return to_date(value)
    except (TypeError, ValueError):
        return False


def _flag(
    source: str, column: str, table: pd.DataFrame, bad: np.ndarray, problem: str, fix: str
) -> None:
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    raise ScenarioError(
        f"{source}, column '{column}': {len(rows)} row(s) {problem}: "
        f"{show_rows(table[column].to_numpy()[rows], rows)}. {fix}",
    )


@dataclasses.dataclass(frozen=True)
class Currencies:
    """The scenario's currencies as kernel slots, and when each one's rates start.

    Slot 0 is the company currency (and rows without one); slots 1.. are the
    currencies of ``fx.parquet`` in its order.
    """

    company: str
    slots: dict[str, int]
    first: dict[str, dt.date | None]  # the currency's first from date (None: undated row)
    source: str

    @property
    def count(self) -> int:
        """Slots (the company's included)."""
        return 1 + len(self.slots)


def currencies(fx: pd.DataFrame | None, company: str, source: str) -> Currencies:
    """The slots of a checked fx table (:func:`check_fx`)."""
    slots: dict[str, int] = {}
    first: dict[str, dt.date | None] = {}
    if fx is not None:
        for code, rows in fx.groupby("currency", sort=False):
            if code == company:
                continue
            slots[str(code)] = len(slots) + 1
            first[str(code)] = rows["from"].iloc[0]
    return Currencies(company=company, slots=slots, first=first, source=source)


def row_slots(
    values: pd.Series,
    table: Currencies,
    source: str,
    earliest: dt.date | np.ndarray,
    what: str,
) -> np.ndarray:
    """Each row's currency slot; a currency without a rate when it may win: an error.

    ``values`` are the rows' ``currency`` (index: the row numbers shown, 0-based);
    ``earliest`` the first day each row may be won (a date, or one per row): a
    currency whose first dated rate comes after it has no rate then.
    """
    codes = np.array([_text(v) for v in values.astype(object)], dtype=object)
    n = len(codes)
    out = np.zeros(n, dtype=np.int64)
    present = sorted({c for c in codes if c is not None})
    if not table.company:
        if len(present) > 1 or table.slots:
            where = np.flatnonzero(codes != None)  # noqa: E711
            raise ScenarioError(
                f"{source}, column 'currency': the {what} are in {len(present)} currencies "
                f"({', '.join(present)}) but scenario.parquet has no currency: "
                f"{show_rows(codes[where], values.index.to_numpy()[where])}. Set the company "
                "currency in scenario.parquet and give the other currencies' rates in fx.parquet.",
            )
        return out
    dates = np.broadcast_to(np.asarray(earliest, dtype=object), (n,))
    for code in present:
        if code == table.company:
            continue
        mask = codes == code
        if code not in table.slots:
            where = np.flatnonzero(mask)
            raise ScenarioError(
                f"{source}, column 'currency': {len(where)} row(s) are in {code}, which has no "
                f"rate in {table.source}: "
                f"{show_rows(codes[where], values.index.to_numpy()[where])}. "
                f"Add a row currency={code}, rate=<{table.company} per {code}> to fx.parquet.",
            )
        first = table.first[code]
        if first is not None:
            early = mask & np.array([d < first for d in dates], dtype=bool)
            if early.any():
                where = np.flatnonzero(early)
                raise ScenarioError(
                    f"{source}, column 'currency': {len(where)} row(s) in {code} may be won "
                    f"before {first}, its first rate's from date in {table.source}: "
                    f"{show_rows(codes[where], values.index.to_numpy()[where])}. Give {code} a "
                    "rate from an earlier date (or a row without a from date).",
                )
        out[mask] = table.slots[code]
    return out


def day_rates(
    fx: pd.DataFrame | None,
    table: Currencies,
    as_of: dt.date,
    calendar: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """[slot, day]: each slot's rate on each whole day of the kernels' clock.

    ``calendar`` are the horizon's month boundaries in calendar days after ``as_of``,
    ``bounds`` the same on the kernels' clock (equal without closing paces; with them a
    clock day is mapped to the calendar day holding its middle).
    """
    days = int(bounds[-1])
    out = np.ones((table.count, days))
    if fx is None or not table.slots:
        return out
    middle = np.interp(np.arange(days) + 0.5, bounds, calendar)
    ordinal = as_of.toordinal() + np.floor(middle).astype(np.int64)
    for code, slot in table.slots.items():
        rows = fx[fx["currency"] == code]
        start = np.array(
            [(s.toordinal() if s is not None else np.iinfo(np.int64).min) for s in rows["from"]],
            dtype=np.int64,
        )
        # The latest rate whose from date is on or before the day (sorted by from).
        k = np.searchsorted(start, ordinal, side="right") - 1
        out[slot] = rows["rate"].to_numpy(dtype=np.float64)[np.maximum(k, 0)]
    return out


def rates_at(fx: pd.DataFrame | None, table: Currencies, day: dt.date) -> np.ndarray:
    """Each slot's rate on ``day`` (for amounts shown as of a date: the open book's value)."""
    out = np.ones(table.count)
    if fx is None:
        return out
    for code, slot in table.slots.items():
        rows = fx[fx["currency"] == code]
        before = [
            r for r, s in zip(rows["rate"], rows["from"], strict=True) if s is None or s <= day
        ]
        out[slot] = before[-1] if before else np.nan
    return out


def amounts_in_company(
    deals: pd.DataFrame, fx: pd.DataFrame | None, company: str, as_of: dt.date
) -> np.ndarray:
    """The deals' ``amount`` in the company currency at ``as_of``'s rates (the book's value now).

    Rows without a currency (or with one that has no rate then: refused when the
    scenario is simulated) keep their amount.
    """
    amount = deals["amount"].to_numpy(dtype=np.float64)
    if fx is None or "currency" not in deals.columns:
        return amount
    table = currencies(fx, company, "fx table")
    rates = np.nan_to_num(rates_at(fx, table, as_of), nan=1.0)
    slot = np.array([table.slots.get(_text(v) or "", 0) for v in deals["currency"]], dtype=np.int64)
    return amount * rates[slot]
