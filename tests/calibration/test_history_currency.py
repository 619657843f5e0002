"""Calibration from a history in several currencies: amounts converted, the book kept in its own."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from crm_synth import pipeline_history
from pipesim.calibration.adapters import read_history
from pipesim.calibration.history import make_history
from pipesim.cli import main
from pipesim.errors import InputError


def _history(seed=4, n=800):
    deals, events, export = pipeline_history(seed=seed, n=n)
    # Every other deal in USD, its amount doubled: at 0.5 EUR per USD the same value.
    usd = np.arange(len(deals)) % 2 == 1
    deals["amount"] = np.where(usd, deals["amount"] * 2.0, deals["amount"])
    deals["currency"] = np.where(usd, "USD", "EUR")
    return deals, events, export


def test_amounts_are_converted_for_the_fit_and_the_book_keeps_its_currency():
    deals, events, _ = _history()
    as_of = "2021-06-01"
    fx = pd.DataFrame({"currency": ["USD"], "rate": [0.5]})
    one = make_history(deals.assign(currency="EUR", amount=np.where(
        deals["currency"] == "USD", deals["amount"] / 2.0, deals["amount"])), events)  # fmt: skip
    plain = pipesim.calibrate(one, as_of=as_of)
    both = pipesim.calibrate(make_history(deals, events), as_of=as_of, currency="EUR", fx=fx)
    assert "currency" not in make_history(deals, events).segments
    # Deal sizes and new leads' amounts in EUR: the same as the one-currency history's.
    pd.testing.assert_series_equal(
        both.scenario.arrivals["amount"], plain.scenario.arrivals["amount"]
    )
    book = both.scenario.deals.set_index("deal_id")
    usd = book["currency"] == "USD"
    assert usd.any() and book.loc[~usd, "currency"].isna().all()
    own = deals.set_index("deal_id")["amount"]
    np.testing.assert_array_equal(book.loc[usd, "amount"], own[book.index[usd]])
    assert both.scenario.currency == "EUR" and both.scenario.fx is not None
    report = both.report.set_index("item")
    assert report.loc["amounts converted to EUR", "rows"] == int((deals["currency"] == "USD").sum())
    # Simulated, the book converts back: the same forecast as the one-currency book, within
    # float rounding (x * 2 * 0.5 is x exactly; the arrivals are identical).
    a = pipesim.simulate(plain.scenario, trials=200, seed=3).revenue
    b = pipesim.simulate(both.scenario, trials=200, seed=3).revenue
    np.testing.assert_allclose(b, a, rtol=1e-12)


def test_several_currencies_without_rates_stop_naming_the_rows():
    deals, events, _ = _history(n=50)
    with pytest.raises(InputError, match=r"amounts in EUR, USD.*row 2 \('USD'\)"):
        pipesim.calibrate(make_history(deals, events), as_of="2021-06-01")
    fx = pd.DataFrame({"currency": ["GBP"], "rate": [1.1]})
    with pytest.raises(InputError, match=r"row\(s\) are in USD, which has no rate in fx table"):
        pipesim.calibrate(make_history(deals, events), as_of="2021-06-01", currency="EUR", fx=fx)


def test_one_currency_is_the_scenario_currency():
    deals, events, _ = _history(n=200)
    cal = pipesim.calibrate(make_history(deals.assign(currency="SEK"), events), as_of="2021-06-01")
    assert cal.scenario.currency == "SEK" and cal.scenario.fx is None
    assert "currency" not in cal.scenario.deals.columns


@pytest.mark.parametrize(
    ("fmt", "columns"),
    [
        ("salesforce", {"Id": "a", "CreatedDate": "2021-01-02", "StageName": "Closed Won",
                        "CloseDate": "2021-02-01", "Amount": "10", "CurrencyIsoCode": "USD",
                        "ForecastCategoryName": "BestCase"}),
        ("hubspot", {"Record ID": "a", "Create Date": "2021-01-02", "Deal Stage": "Closed Won",
                     "Close Date": "2021-02-01", "Amount": "10", "deal_currency_code": "USD",
                     "hs_manual_forecast_category": "BEST_CASE"}),
        ("pipedrive", {"Deal - ID": "a", "Deal - Deal created": "2021-01-02",
                       "Deal - Stage": "Qualified", "Deal - Status": "won",
                       "Deal - Won time": "2021-02-01", "Deal - Value": "10",
                       "Deal - Currency": "USD"}),
    ],
)  # fmt: skip
def test_adapters_read_the_crm_currency_and_forecast_category_columns(tmp_path, fmt, columns):
    first = next(iter(columns))  # the deal id's column
    rows = [columns, {**columns, first: "b"}]
    path = tmp_path / "deals.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    stages = "Qualified" if fmt == "pipedrive" else None
    history = read_history(path, None, format=fmt, stages=[stages] if stages else ["Prospecting"])
    assert list(history.deals["currency"]) == ["USD", "USD"]
    assert "currency" not in history.segments
    if fmt != "pipedrive":  # the forecast category, in the CRM's spelling, mapped
        assert list(history.deals["forecast_category"]) == ["Best Case", "Best Case"]
        assert "forecast_category" not in history.segments


def test_calibrate_command_takes_currency_and_fx(tmp_path):
    deals, events, _ = _history(n=300)
    deals.to_csv(tmp_path / "deals.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    rates = {"currency": ["USD", "USD"], "rate": [0.5, 0.4], "from": [None, dt.date(2021, 8, 1)]}
    pd.DataFrame(rates).to_parquet(tmp_path / "fx.parquet")
    out = tmp_path / "scen"
    res = CliRunner().invoke(main, [
        "calibrate", str(tmp_path / "deals.csv"), "--events", str(tmp_path / "events.csv"),
        "--as-of", "2021-06-01", "--out", str(out), "--currency", "EUR",
        "--fx", str(tmp_path / "fx.parquet"), "--quiet",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    scenario = pipesim.load_scenario(out)
    assert scenario.currency == "EUR" and len(scenario.fx) == 2
    assert set(scenario.deals["currency"].dropna()) == {"USD"}
    res = CliRunner().invoke(
        main, ["run", str(out), "--trials", "20", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output


def test_backtest_refuses_a_history_in_several_currencies():
    deals, events, _ = _history(n=50)
    with pytest.raises(InputError, match=r"amounts in EUR, USD"):
        pipesim.backtest(make_history(deals, events), cutoffs=["2021-06-01"], horizon_months=1)
