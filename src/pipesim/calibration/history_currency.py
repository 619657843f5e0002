"""A CRM history in several currencies: amounts in the company's for the fit, the book in its own.

A history's ``currency`` column (Salesforce ``CurrencyIsoCode``, HubSpot
``deal_currency_code``, Pipedrive ``currency``) gives each deal's amounts' currency.
With exchange rates (an fx table, as a scenario's ``fx.parquet``) every amount is
converted to the company currency before the fit, at the rate on the deal's close
date (an open deal's: the day before as_of, the last rate known), so deal sizes and
new leads' amounts are in one currency. The open deals keep their own currency and
amounts in the book, and the scenario carries the rates, so that each win is converted
at the rate of its own day. Without rates a history in one currency is that currency
throughout; one in several currencies stops (its amounts cannot be averaged).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from pipesim.calibration.fit import Calibration
from pipesim.calibration.history import History, Issue
from pipesim.errors import InputError, show_rows
from pipesim.scenario.currency import check_fx


def _codes(history: History) -> pd.Series | None:
    deals = history.deals
    if "currency" not in deals.columns or not deals["currency"].notna().any():
        return None
    return deals["currency"]


def history_currency(
    history: History,
    fx: pd.DataFrame | None,
    company: str,
    as_of: dt.date,
    fx_source: str = "fx table",
) -> tuple[History, str, pd.DataFrame | None]:
    """The history with amounts in the company currency, the company currency, the checked rates.

    Raises
    ------
    InputError
        Several currencies without rates, rates without a company currency, a
        currency without a rate (naming it and its rows), or a bad fx table.
    """
    source = f"{history.source}, column 'currency'"
    rates = check_fx(fx, fx_source, company) if fx is not None else None
    codes = _codes(history)
    if codes is None:
        return history, company, rates
    present = sorted(set(codes.dropna()))
    if rates is None:
        if len(present) == 1 and company in ("", present[0]):
            return history, present[0], None
        others = [c for c in present if c != company]
        where = np.flatnonzero(codes.isin(others).to_numpy())
        raise InputError(
            f"{source}: amounts in {', '.join(present)}"
            + (f" (company currency {company})" if company else "")
            + f": {show_rows(codes.to_numpy()[where], where)}. Amounts in different currencies "
            "cannot be averaged: give fx= (a table of currency, rate = company currency per "
            "unit, optional from date) and currency= (the company's).",
            parameters=("fx", "currency"),
        )
    deals = history.deals.copy()
    closed = deals["closed_at"].notna().to_numpy()
    day = np.where(
        closed,
        deals["closed_at"].to_numpy(dtype="datetime64[D]"),
        np.datetime64(as_of - dt.timedelta(days=1), "D"),
    )
    factor = np.ones(len(deals))
    early = 0
    for code in present:
        if code == company:
            continue
        mask = (codes == code).to_numpy()
        rows = rates[rates["currency"] == code]
        if not len(rows):
            where = np.flatnonzero(mask)
            raise InputError(
                f"{source}: {len(where)} row(s) are in {code}, which has no rate in {fx_source}: "
                f"{show_rows(codes.to_numpy()[where], where)}. Add a row currency={code}, "
                f"rate=<{company} per {code}> to the fx table.",
                parameters=("fx",),
            )
        start = np.array(
            [np.datetime64(s, "D") if s is not None else np.datetime64("0001-01-01") for s in
             rows["from"]]
        )  # fmt: skip
        k = np.searchsorted(start, day[mask], side="right") - 1
        early += int((k < 0).sum())
        factor[mask] = rows["rate"].to_numpy(dtype=np.float64)[np.maximum(k, 0)]
    deals["amount"] = deals["amount"] * factor
    deals["open_amount"] = deals["open_amount"] * factor
    issues = [
        Issue(
            f"amounts converted to {company}",
            int((factor != 1.0).sum()),
            "kept",
            "at the rate on the deal's close date (an open deal's: the day before as_of)",
        )
    ]
    if early:
        issues.append(
            Issue(
                "closed before its currency's first rate",
                early,
                "kept",
                "converted at the currency's first rate",
            )
        )
    return (
        dataclasses.replace(history, deals=deals, issues=(*history.issues, *issues)),
        company,
        rates,
    )


def book_in_currencies(
    calibration: Calibration, history: History, company: str, rates: pd.DataFrame | None
) -> Calibration:
    """The calibration's scenario in ``company``; with rates, open deals in their own currency.

    ``history`` is the history as read (amounts in their own currencies): each open
    deal takes back its currency and its own amount (a deal booked at the mean amount
    of new deals: that mean at as_of's rate), and the scenario takes the rates.
    """
    sc = calibration.scenario
    codes = _codes(history)
    if rates is None or codes is None:
        if company == sc.currency:
            return calibration
        return dataclasses.replace(calibration, scenario=sc.replace(currency=company))
    book = sc.deals.copy()
    native = history.deals.set_index("deal_id")
    code = native["currency"].reindex(book["deal_id"]).to_numpy(dtype=object)
    own = native["open_amount"].reindex(book["deal_id"]).to_numpy(dtype=np.float64)
    foreign = np.array([c is not None and c == c and c != company for c in code], dtype=bool)
    last = as_of_rates(rates, code, sc.as_of - dt.timedelta(days=1))
    amount = book["amount"].to_numpy(dtype=np.float64)
    book["amount"] = np.where(foreign, np.where(own > 0, own, amount / last), amount)
    book["currency"] = [c if f else None for c, f in zip(code, foreign, strict=True)]
    scenario = sc.replace(deals=book, currency=company, fx=rates)
    return dataclasses.replace(calibration, scenario=scenario)


def as_of_rates(rates: pd.DataFrame, codes: np.ndarray, day: dt.date) -> np.ndarray:
    """Each code's rate on ``day`` (its first when none applies yet; 1 for a code without one)."""
    out = np.ones(len(codes))
    for code, rows in rates.groupby("currency", sort=False):
        pairs = zip(rows["rate"], rows["from"], strict=True)
        applies = [r for r, s in pairs if s is None or s <= day]
        out[codes == code] = applies[-1] if applies else float(rows["rate"].iloc[0])
    return out
