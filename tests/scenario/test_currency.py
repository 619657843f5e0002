"""Currencies: every result in the company currency, at the rate of each win's day (exact answers).

The books here convert with probability 1 after a fixed dwell, so every trial books the
same wins on known days: the revenue is hand arithmetic, to float rounding.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.io import scenario_folder

ENGINES = ("numba", "numpy", "fast")


def _sure_funnel(days=40.0):
    # Conversions 1, fixed dwells summing to `days`: a deal in S1 aged a days is won on day
    # days - a after as_of (whole days: the sums are exact).
    return stages_frame([1.0, 1.0, 1.0], dwell_days=[days - 2.0, 1.0, 1.0], dwell_cv=0.0)


def _simulate(sc, engine, trials=3):
    return pipesim.simulate(sc, trials=trials, seed=4, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_two_currencies_convert_as_hand_arithmetic(engine):
    amounts = np.array([1_000.0, 250.5, 4_000.0, 99.99, 12_345.0])
    deals = deals_frame(["S1"] * 5, amounts)
    deals["currency"] = ["USD", "GBP", None, "EUR", "USD"]  # empty and EUR: the company's
    fx = pd.DataFrame({"currency": ["USD", "GBP"], "rate": [0.92, 1.17]})
    sc = build(_sure_funnel(), deals, horizon_months=3, currency="EUR", fx=fx)
    res = _simulate(sc, engine)
    rate = np.array([0.92, 1.17, 1.0, 1.0, 0.92])
    expected = float((amounts * rate).sum())  # 0.92*13,345 + 1.17*250.5 + 4,099.99
    assert expected == pytest.approx(12_277.4 + 293.085 + 4_099.99, rel=1e-12)
    np.testing.assert_allclose(res.revenue[:, 1, 0], expected, rtol=1e-12)  # won 2027-02-10
    assert res.revenue[:, [0, 2], 0].sum() == 0.0
    np.testing.assert_array_equal(res.won[:, 1, 0], 5.0)


def test_new_leads_in_another_currency_book_at_its_rate():
    # Leads of a fixed amount, converted with probability 1: each trial's revenue is
    # its won count x amount x rate, exactly.
    arrivals = pd.DataFrame(
        {"period": ["2027-01"], "leads": [30.0], "amount": [500.0], "currency": ["USD"]}
    )
    fx = pd.DataFrame({"currency": ["USD"], "rate": [0.8]})
    sc = build(_sure_funnel(10.0), None, arrivals, horizon_months=3, currency="EUR", fx=fx)
    for engine in ENGINES:
        res = _simulate(sc, engine, trials=50)
        won = res.won[:, :, 0].sum(axis=1)
        assert won.sum() > 0
        np.testing.assert_allclose(res.revenue[:, :, 0].sum(axis=1), won * 500.0 * 0.8, rtol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_dated_rate_switching_mid_horizon_applies_at_the_won_day(engine):
    # Fixed dwell of 40 days from as_of 2027-01-01: a deal aged a days is won on day 40 - a.
    # USD: 0.90 until 2027-02-09, 0.80 from 2027-02-10 (day 40), 0.85 from 2027-03-15.
    ages = [10.0, 1.0, 0.0, 0.0]  # won 2027-01-31 (0.90), 02-09 (0.90), 02-10 (0.80)
    deals = deals_frame(["S1"] * 4, [100.0, 300.0, 200.0, 70.0], ages=ages)
    deals["currency"] = ["USD", "USD", "USD", None]  # the last one is in EUR
    fx = pd.DataFrame(
        {
            "currency": ["USD", "USD", "USD"],
            "rate": [0.80, 0.90, 0.85],
            "from": [dt.date(2027, 2, 10), None, dt.date(2027, 3, 15)],  # any order
        }
    )
    sc = build(_sure_funnel(), deals, horizon_months=3, currency="EUR", fx=fx)
    res = _simulate(sc, engine)
    np.testing.assert_allclose(res.revenue[:, 0, 0], 100.0 * 0.90, rtol=1e-12)
    np.testing.assert_allclose(res.revenue[:, 1, 0], 300.0 * 0.90 + 200.0 * 0.80 + 70.0, rtol=1e-12)
    # A dwell of 74 days: won 2027-03-16, after the third rate's from date.
    late = deals_frame(["S1"], [1_000.0]).assign(currency="USD")
    slow = build(_sure_funnel(74.0), late, horizon_months=3, currency="EUR", fx=fx)
    np.testing.assert_allclose(_simulate(slow, engine).revenue[:, 2, 0], 850.0, rtol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_slipped_win_keeps_its_won_days_rate(engine):
    # Every deal is won 2027-01-31 (USD 0.90; 0.80 from 02-10, 0.85 from 03-15); the rush
    # holds half of January's wins to March (kernels.trial.booked). A win booked in March
    # is still converted at its won day's 0.90, so each trial's January + March revenue
    # is 20 x 100 x 0.90 and March's is its count there x 90, exactly.
    deals = deals_frame(["S1"] * 20, 100.0, ages=[10.0] * 20).assign(currency="USD")
    fx = pd.DataFrame(
        {
            "currency": ["USD", "USD", "USD"],
            "rate": [0.90, 0.80, 0.85],
            "from": [None, dt.date(2027, 2, 10), dt.date(2027, 3, 15)],
        }
    )
    sc = build(
        _sure_funnel(), deals, horizon_months=3, currency="EUR", fx=fx, rush_slips=(0.5, 0.0)
    )
    res = _simulate(sc, engine, trials=20)
    march = res.won[:, 2, 0]
    assert march.sum() > 0 and res.won[:, 0, 0].sum() > 0  # both kinds of win happen
    np.testing.assert_allclose(res.revenue[:, 2, 0], march * 90.0, rtol=1e-12)
    np.testing.assert_allclose(res.revenue[:, [0, 2], 0].sum(axis=1), 1_800.0, rtol=1e-12)


def test_one_currency_keeps_the_bits_of_a_book_without_currencies():
    stages = stages_frame([0.5, 0.6, 0.7], dwell_days=20.0, dwell_cv=0.7, value_cv=[0, 0, 0.3])
    deals = deals_frame(["S1", "S2"] * 50, np.linspace(100, 5_000, 100))
    plain = pipesim.simulate(build(stages, deals), trials=200, seed=9)
    tagged = deals.assign(currency="EUR")
    fx = pd.DataFrame({"currency": ["USD"], "rate": [2.0]})
    same = pipesim.simulate(build(stages, tagged, currency="EUR", fx=fx), trials=200, seed=9)
    np.testing.assert_array_equal(plain.revenue, same.revenue)


def _folder(tmp_path, deals_currency, fx=None, arrivals=None, settings_currency="EUR"):
    stages = _sure_funnel()
    deals = deals_frame(["S1"] * len(deals_currency), 100.0)
    deals["currency"] = deals_currency
    folder = tmp_path / "sc"
    folder.mkdir()
    stages.to_parquet(folder / "stages.parquet")
    deals.to_parquet(folder / "deals.parquet")
    if arrivals is not None:
        arrivals.to_parquet(folder / "arrivals.parquet")
    pd.DataFrame(
        {
            "as_of": [dt.date(2027, 1, 1)],
            "horizon_months": [3],
            "currency": [settings_currency],
            "format_version": [5],
        }
    ).to_parquet(folder / "scenario.parquet")
    if fx is not None:
        fx.to_parquet(folder / "fx.parquet")
    return folder


def _run(folder, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(folder), "--trials", "5", "--out", str(out)])
    assert "Traceback" not in res.output
    return res, out


def test_a_currency_without_a_rate_exits_2_naming_the_currency_and_rows(tmp_path):
    fx = pd.DataFrame({"currency": ["USD"], "rate": [0.9]})
    folder = _folder(tmp_path, ["USD", "JPY", None, "JPY"], fx)
    res, out = _run(folder, tmp_path)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "deals.parquet, column 'currency'" in text
    assert "2 row(s) are in JPY" in text and "row 2 ('JPY'), row 4 ('JPY')" in text
    assert "fx.parquet" in text and not out.exists()


def test_new_leads_in_a_currency_without_a_rate_exit_2(tmp_path):
    arrivals = pd.DataFrame(
        {"period": ["2027-01", "2027-02"], "leads": [3.0, 3.0], "amount": [10.0, 10.0],
         "currency": [None, "CHF"]}
    )  # fmt: skip
    res, _ = _run(_folder(tmp_path, ["EUR"], None, arrivals), tmp_path)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "arrivals.parquet, column 'currency'" in text and "row 2 ('CHF')" in text


def test_a_deal_that_may_win_before_its_currency_first_rate_exits_2(tmp_path):
    # USD's only rate starts 2027-02-01, after as_of: a deal may be won before it.
    fx = pd.DataFrame({"currency": ["USD"], "rate": [0.9], "from": [dt.date(2027, 2, 1)]})
    res, _ = _run(_folder(tmp_path, ["EUR", "USD"], fx), tmp_path)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "1 row(s) in USD may be won before 2027-02-01" in text and "row 2 ('USD')" in text


def test_several_currencies_without_a_company_currency_exit_2(tmp_path):
    res, _ = _run(_folder(tmp_path, ["USD", "GBP"], settings_currency=None), tmp_path)
    assert res.exit_code == 2, res.output
    assert "scenario.parquet has no currency" in " ".join(res.output.split())


@pytest.mark.parametrize(
    ("fx", "needle"),
    [
        (
            pd.DataFrame({"currency": ["USD", "GBP"], "rate": [0.9, -1.2]}),
            "fx.parquet, column 'rate': 1 row(s) are not numbers above 0",
        ),
        (
            pd.DataFrame({"currency": ["USD"], "rate": [0.9], "date": ["2027-01-01"]}),
            "fx.parquet: unknown column(s) 'date'",
        ),
        (
            pd.DataFrame(
                {
                    "currency": ["USD", "USD", "USD"],
                    "rate": [0.9, 0.8, 0.7],
                    "from": [None, dt.date(2027, 2, 1), dt.date(2027, 2, 1)],
                }
            ),
            "fx.parquet, column 'currency': 1 row(s) repeat an earlier row's currency and from",
        ),
        (
            pd.DataFrame({"currency": ["USD", None], "rate": [0.9, 1.0]}),
            "fx.parquet, column 'currency': 1 row(s) are empty: row 2",
        ),
        (
            pd.DataFrame({"currency": ["EUR"], "rate": [1.1]}),
            "give the company currency EUR a rate other than 1",
        ),
    ],
)
def test_a_bad_fx_file_exits_2_naming_file_column_and_rows(tmp_path, fx, needle):
    res, out = _run(_folder(tmp_path, ["USD"], fx), tmp_path)
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.split())
    assert not out.exists()


def test_rates_without_a_company_currency_exit_2(tmp_path):
    fx = pd.DataFrame({"currency": ["USD"], "rate": [0.9]})
    res, _ = _run(_folder(tmp_path, ["USD"], fx, settings_currency=None), tmp_path)
    assert res.exit_code == 2, res.output
    assert "rates are given but scenario.parquet has no currency" in " ".join(res.output.split())


def test_an_old_scenario_with_a_currency_segment_is_told_to_rename_it(tmp_path):
    folder = _folder(tmp_path, ["USD", "GBP"])
    settings = pd.read_parquet(folder / "scenario.parquet")
    settings["format_version"] = [4]
    settings.to_parquet(folder / "scenario.parquet")
    res, _ = _run(folder, tmp_path)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "'currency' are reserved since scenario format 5" in text
    assert "rename them" in text and "deals.parquet" in text


def test_fx_round_trips_through_a_folder_and_counts_in_the_fingerprint(tmp_path):
    fx = pd.DataFrame(
        {"currency": ["USD", "USD"], "rate": [0.9, 0.8], "from": [None, dt.date(2027, 2, 10)]}
    )
    folder = _folder(tmp_path, ["USD", None], fx)
    sc = pipesim.load_scenario(folder)
    assert sc.deals["currency"].iloc[0] == "USD" and pd.isna(sc.deals["currency"].iloc[1])
    scenario_folder.write_scenario(tmp_path / "copy", sc)
    back = pipesim.load_scenario(tmp_path / "copy")
    pd.testing.assert_frame_equal(back.fx, sc.fx)
    from pipesim.io.fingerprint import scenario_fingerprint

    moved = sc.replace(fx=fx.assign(rate=[0.9, 0.7]))
    assert scenario_fingerprint(moved) != scenario_fingerprint(sc)
    # The funnel's value is in the company currency at as_of's rate.
    from pipesim.reports.funnel_table import funnel_table

    assert funnel_table(sc)["value"].iloc[0] == pytest.approx(100 * 0.9 + 100)


def test_a_book_on_disk_converts_as_the_same_book_in_memory(tmp_path):
    fx = pd.DataFrame(
        {"currency": ["USD", "USD"], "rate": [0.9, 0.8], "from": [None, dt.date(2027, 2, 10)]}
    )
    stages = stages_frame([0.7, 0.8, 0.9], dwell_days=15.0, dwell_cv=0.8)
    deals = deals_frame(["S1", "S2", "S3"] * 30, np.linspace(100, 900, 90))
    deals["currency"] = ["USD", None, "EUR"] * 30
    sc = build(stages, deals, horizon_months=4, currency="EUR", fx=fx)
    scenario_folder.write_scenario(tmp_path / "sc", sc)
    disk = pipesim.load_scenario(tmp_path / "sc", deals_in_memory=False, chunk=7)
    assert not disk.deals_in_memory
    a = pipesim.simulate(sc, trials=100, seed=2).revenue
    b = pipesim.simulate(disk, trials=100, seed=2).revenue
    np.testing.assert_array_equal(a, b)


def test_fx_and_the_new_deal_columns_round_trip_through_a_workbook(tmp_path):
    pytest.importorskip("openpyxl")
    fx = pd.DataFrame(
        {"currency": ["USD", "USD"], "rate": [0.9, 0.8], "from": [None, dt.date(2027, 2, 10)]}
    )
    stages = stages_frame([0.7, 0.8, 0.9], dwell_days=15.0, dwell_cv=0.8)
    deals = deals_frame(["S1", "S2", "S3"] * 3, np.linspace(100, 900, 9))
    deals["currency"] = ["USD", None, "EUR"] * 3
    deals["forecast_category"] = ["Commit", None, "Best Case"] * 3
    sc = build(stages, deals, horizon_months=4, currency="EUR", fx=fx)
    scenario_folder.write_scenario(tmp_path / "sc", sc)
    pipesim.api.export_scenario(tmp_path / "sc", tmp_path / "plan.xlsx")
    pipesim.api.import_scenario(tmp_path / "plan.xlsx", tmp_path / "back")
    back = pipesim.load_scenario(tmp_path / "back")
    pd.testing.assert_frame_equal(back.fx, sc.fx)
    a = pipesim.simulate(pipesim.load_scenario(tmp_path / "sc"), trials=50, seed=2).revenue
    np.testing.assert_array_equal(pipesim.simulate(back, trials=50, seed=2).revenue, a)
