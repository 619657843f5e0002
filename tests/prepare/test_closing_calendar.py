"""Closing paces by month of the quarter: the operational clock, exact answers, the estimator."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.calibration.quarter_pace import due_dates, month_slips, quarter_paces
from pipesim.errors import ScenarioError
from pipesim.prepare.closing_calendar import month_paces, operational_bounds, slip_table
from pipesim.prepare.kernel_inputs import prepare
from pipesim.scenario.calendar import (
    calendar_paces,
    operational_days,
    period_bounds,
    period_labels,
)
from pipesim.scenario.scenario import FORMAT_VERSION

PACES = (0.5, 0.5, 2.0)  # a mean of 1: as given


def test_operational_months_are_their_days_times_their_pace_rounded():
    as_of = dt.date(2027, 1, 1)
    paces = month_paces(period_labels(as_of, 6), calendar_paces(PACES))
    np.testing.assert_allclose(paces, [0.5, 0.5, 2.0] * 2)
    bounds = period_bounds(as_of, 6)  # Jan 31, Feb 28, Mar 31, Apr 30, May 31, Jun 30
    op = operational_bounds(bounds, paces)
    lengths = np.rint([31 * 0.5, 28 * 0.5, 31 * 2.0, 30 * 0.5, 31 * 0.5, 30 * 2.0])
    np.testing.assert_array_equal(op, np.concatenate([[0], np.cumsum(lengths)]))


def _book(n=3_000):
    stages = stages_frame([1.0], dwell_days=30.0, dwell_cv=1.0, names=["Offer"])
    return stages, deals_frame(["Offer"] * n, 1.0)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_wins_follow_the_operational_clock_exactly(engine):
    # Exponential dwell of mean 30 operational days, every deal wins: the share won in
    # month k is exp(-tau_k / 30) - exp(-tau_{k+1} / 30) on the operational bounds tau.
    stages, deals = _book()
    sc = build(stages, deals, horizon_months=6, close_paces=PACES, calibrated=True)
    tau = prepare(sc).bounds
    expected = len(deals) * -np.diff(np.exp(-tau / 30.0))
    trials = 2_000
    res = pipesim.simulate(sc, trials=trials, seed=3, engine=engine)
    won = res.won[:, :, 0]
    p = expected / len(deals)
    se = np.sqrt(len(deals) * p * (1 - p) / trials)
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - expected), Z * se)
    # The rush shows: March (pace 2) books more than February though fewer deals are left.
    assert won[:, 2].mean() > 1.3 * won[:, 1].mean()


def test_new_leads_keep_their_calendar_months_and_every_row_its_leads():
    stages = stages_frame([1.0], dwell_days=0.001, dwell_cv=0.0, names=["Offer"])
    months = [f"2027-{k:02d}" for k in range(1, 7)]
    arr = pd.DataFrame({"period": months, "leads": 300.0, "amount": 1.0})
    sc = build(
        stages, None, arr, as_of="2027-01-11", horizon_months=6, close_paces=PACES, calibrated=True
    )
    res = pipesim.simulate(sc, trials=4_000, seed=5)
    mu = np.array([300.0 * 21 / 31] + [300.0] * 5)  # January from the 11th: 21 of 31 days
    got = res.won[:, :, 0].mean(axis=0)
    np.testing.assert_array_less(np.abs(got - mu), Z * np.sqrt(mu / 4_000) + 1.0)


def test_close_paces_round_trip_and_are_checked(tmp_path):
    stages, deals = _book(10)
    sc = build(stages, deals, horizon_months=3, close_paces=(1.0, 1.0, 2.0), calibrated=True)
    assert sc.close_paces == pytest.approx((0.75, 0.75, 1.5))
    pipesim.io.scenario_folder.write_scenario(tmp_path / "s", sc)
    settings = pd.read_parquet(tmp_path / "s" / "scenario.parquet")
    assert settings["format_version"].item() == FORMAT_VERSION
    assert settings[["close_month1", "close_month2", "close_month3"]].iloc[0].tolist() == (
        pytest.approx([0.75, 0.75, 1.5])
    )
    assert pipesim.load_scenario(tmp_path / "s").close_paces == pytest.approx(sc.close_paces)
    even = build(stages, deals, close_paces=(2.0, 2.0, 2.0), calibrated=True)
    assert even.close_paces is None
    with pytest.raises(ScenarioError, match="3 positive numbers"):
        build(stages, deals, close_paces=(1.0, 0.0, 2.0), calibrated=True)
    with pytest.raises(ScenarioError, match="format 4"):
        build(stages, deals, close_paces=(1.0, 1.0, 2.0), format_version=3, calibrated=True)
    settings = settings.drop(columns="close_month3")
    settings.to_parquet(tmp_path / "s" / "scenario.parquet")
    with pytest.raises(ScenarioError, match=r"give all 3 of .*missing: close_month3"):
        pipesim.load_scenario(tmp_path / "s")


def _wins(per_month, quarters, rush, seed):
    """Win dates over ``quarters`` quarters from 2019-01: Poisson, month 3 x ``rush``."""
    rng = np.random.default_rng(seed)
    days = []
    for m in pd.period_range("2019-01", periods=3 * quarters, freq="M"):
        lam = per_month * (rush if m.month % 3 == 0 else 1.0)
        k = rng.poisson(lam)
        days += list(m.start_time + pd.to_timedelta(rng.uniform(0, m.days_in_month, k), unit="D"))
    return pd.Series(pd.to_datetime(days))


def test_quarter_paces_find_a_rush_and_nothing_where_there_is_none():
    cut = pd.Timestamp("2020-07-01")  # 6 complete quarters
    paces, why = quarter_paces(_wins(100, 6, 2.0, 1), cut)
    # Even pace inside each quarter gives month 3 a third of the wins; here half: 0.75/0.75/1.5
    # (days make it ~1%). Each pace's se: ~sqrt(1/600 + 1/1200) x pace, ~5%.
    np.testing.assert_allclose(paces, [0.75, 0.75, 1.5], rtol=0.12)
    assert "used" not in why and "paces" in why
    paces, why = quarter_paces(_wins(100, 6, 1.0, 2), cut)
    assert paces == (1.0, 1.0, 1.0) and "within chance" in why
    paces, why = quarter_paces(_wins(100, 3, 2.0, 3), pd.Timestamp("2019-10-01"))
    assert paces == (1.0, 1.0, 1.0) and why == ""  # three quarters: not enough


def _year_wins(per_month, years, slow, seed):
    """Win dates over ``years`` years from 2019-01: Poisson, month m x ``slow.get(m, 1)``."""
    rng = np.random.default_rng(seed)
    days = []
    for m in pd.period_range("2019-01", periods=12 * years, freq="M"):
        k = rng.poisson(per_month * slow.get(m.month, 1.0) * m.days_in_month / 30.4)
        days += list(m.start_time + pd.to_timedelta(rng.uniform(0, m.days_in_month, k), unit="D"))
    return pd.Series(pd.to_datetime(days))


def test_month_slips_find_a_slow_december_and_nothing_where_there_is_none():
    cut = pd.Timestamp("2022-01-01")  # 3 complete years
    # 60% of December's wins are booked in January: December 0.4, January 1.6 x even.
    wins = _year_wins(200, 3, {12: 0.4, 1: 1.6}, 1)
    slips, why = month_slips(wins, cut)
    # Each month ~600 wins over 3 years: the slip's se ~ sqrt(600 + 600) / 600 ~ 6%.
    assert slips is not None and len(slips) == 12
    assert abs(slips[11] - 0.6) < 0.12 and max(slips[:11]) < 0.12, slips
    assert "booked the month after (Jan..Dec)" in why
    slips, why = month_slips(_year_wins(200, 3, {}, 2), cut)
    assert slips is None and "within chance" in why
    slips, why = month_slips(_year_wins(200, 1, {12: 0.4}, 3), pd.Timestamp("2020-01-01"))
    assert slips is None and why == ""  # one year: not enough


def test_due_dates_move_back_the_slipped_share_of_a_month():
    # 100 wins booked in January, 40 due in December slipped in (December booked 60,
    # slip 0.4 = 40 / (60 + 40)): 40% of January's wins go back into December, after
    # their stage was entered.
    late = [0.0] * 12
    late[11] = 0.4
    jan = np.datetime64("2027-01-10", "ns") + np.arange(100) * np.timedelta64(3, "h")
    dec = np.datetime64("2026-12-05", "ns") + np.arange(60) * np.timedelta64(3, "h")
    won = np.concatenate([jan, dec])
    entered = np.full(len(won), np.datetime64("2026-12-20", "ns"))
    due = due_dates(won, entered, None, tuple(late))
    moved = due != won
    assert abs(moved[:100].mean() - 40 / 100) < 3 * np.sqrt(0.4 * 0.6 / 100)
    assert not moved[100:].any()
    assert (due[moved] >= entered[moved]).all() and (due[moved] < jan[0]).all()
    assert (due[moved] >= np.datetime64("2026-12-20")).all()


def test_operational_days_and_the_ages_of_open_deals():
    day = np.datetime64
    got = operational_days(
        np.array([day("2027-01-01"), day("2027-03-21")]),
        np.array([day("2027-04-01"), day("2027-04-01")]),
        PACES,
    )
    # Jan 31 x 0.5 + Feb 28 x 0.5 + Mar 31 x 2; the last 11 days of March at pace 2
    np.testing.assert_allclose(got, [31 * 0.5 + 28 * 0.5 + 31 * 2.0, 22.0])
    even = operational_days(np.array([day("2026-11-03")]), np.array([day("2027-02-10")]), (1, 1, 1))
    assert even[0] == 99.0
    # A deal 11 days in its stage on 2027-04-01 lived them in March (pace 2): 22 clock days.
    stages, _ = _book()
    deals = deals_frame(["Offer", "Offer"], 1.0, ages=[11.0, 0.0])
    sc = build(stages, deals, as_of="2027-04-01", close_paces=PACES, calibrated=True)
    np.testing.assert_allclose(np.sort(prepare(sc).deals.age), [0.0, 22.0])


def test_calibrate_finds_the_quarter_end_rush_and_fits_the_clocks_on_due_dates():
    from crm_synth import market_history
    from pipesim.calibration.fit import calibrate_history
    from pipesim.calibration.history import make_history

    deals, as_of = market_history(seed=11, days=731, after=0, quarter_end=0.6)
    history = make_history(deals, stages=["Offer"], source="rush")
    cal = calibrate_history(history, as_of.date(), horizon_months=3)
    rush = cal.scenario.rush_slips
    # 60% of the wins of months 1-2 slip to month 3: slips ~ (0.6, 0.6)
    assert rush is not None and min(rush) > 0.45 and max(rush) < 0.75, rush
    assert cal.scenario.close_paces is None  # the clocks run on the calendar
    rule = cal.report.set_index("item").loc["closing pace by month of quarter", "rule"]
    assert "are booked in its last" in rule
    # Fitted on the wins' due dates, the win clock is near the truth (mean 30 days);
    # on the booked dates it read ~51.
    assert cal.scenario.stages["dwell_days"].iloc[0] < 42
    flat, _ = market_history(seed=11, days=731, after=0)
    plain = calibrate_history(make_history(flat, stages=["Offer"]), as_of.date())
    assert plain.scenario.rush_slips is None


def test_calibrate_finds_a_slow_december_with_two_years_of_wins():
    from crm_synth import market_history
    from pipesim.calibration.fit import calibrate_history
    from pipesim.calibration.history import make_history

    deals, as_of = market_history(seed=12, days=1065, after=0, slow_month=(12, 0.6))
    cal = calibrate_history(make_history(deals, stages=["Offer"]), as_of.date(), horizon_months=1)
    late = cal.scenario.month_slips
    # 60% of December's wins slip to January.
    assert late is not None and abs(late[11] - 0.6) < 0.15 and max(late[:11]) < 0.15, late
    rule = cal.report.set_index("item").loc["wins booked the month after", "rule"]
    assert "booked the month after (Jan..Dec)" in rule
    flat, _ = market_history(seed=12, days=1065, after=0)
    plain = calibrate_history(make_history(flat, stages=["Offer"]), as_of.date(), horizon_months=1)
    assert plain.scenario.month_slips is None


def _booked_shares(p, rush, month, first_month):
    """Exact share booked in each month of wins due with shares ``p`` (months from
    ``first_month``, 1-12): held to the quarter's last month with ``rush[j]`` (j the month
    of the quarter), then moved one month with ``month[calendar month]``."""
    n = len(p)
    out = np.zeros(n + 3)
    for k, share in enumerate(p):
        cal = (first_month - 1 + k) % 12  # 0: January
        j = cal % 3
        targets = [(k, 1.0)] if j == 2 else [(k, 1 - rush[j]), (k + 2 - j, rush[j])]
        for k2, w in targets:
            cal2 = (first_month - 1 + k2) % 12
            out[k2] += share * w * (1 - month[cal2])
            out[k2 + 1] += share * w * month[cal2]
    return out[:n]


@pytest.mark.parametrize("engine", ["numba", "fast", "numpy"])
def test_slipped_wins_are_booked_where_the_slips_say_exactly(engine):
    # Every deal wins after an exponential 30 days: due in month k with the calendar
    # share p_k; the rush holds half of month 1's and 30% of month 2's wins to month 3,
    # then 40% of what February holds moves to March (an exact convolution above).
    stages, deals = _book()
    rush, month = (0.5, 0.3), [0.0] * 12
    month[1] = 0.4
    sc = build(stages, deals, horizon_months=6, rush_slips=rush, month_slips=month, calibrated=True)
    tau = period_bounds(sc.as_of, 6)
    p = -np.diff(np.exp(-tau / 30.0))
    expected = len(deals) * _booked_shares(p, rush, month, 1)
    trials = 2_000
    won = pipesim.simulate(sc, trials=trials, seed=9, engine=engine).won[:, :, 0]
    q = expected / len(deals)
    se = np.sqrt(len(deals) * q * (1 - q) / trials)
    np.testing.assert_array_less(np.abs(won.mean(axis=0) - expected), Z * se)
    assert won[:, 0].mean() < 0.6 * len(deals) * p[0]  # the test has power: January held
    # Round trip through a folder, and the checks.
    assert sc.rush_slips == rush and sc.month_slips == tuple(month)
    with pytest.raises(ScenarioError, match=r"slip_month1 \.\. slip_month2 must be 2 shares"):
        build(stages, deals, rush_slips=(0.5, 1.0), calibrated=True)
    with pytest.raises(ScenarioError, match="need scenario format 5"):
        build(stages, deals, month_slips=month, format_version=4, calibrated=True)
    assert build(stages, deals, rush_slips=(0.0, 0.0), calibrated=True).rush_slips is None


def test_slips_round_trip_through_a_scenario_folder(tmp_path):
    stages, deals = _book(10)
    month = [0.0] * 12
    month[11] = 0.6
    sc = build(stages, deals, horizon_months=3, month_slips=month, calibrated=True)
    pipesim.io.scenario_folder.write_scenario(tmp_path / "s", sc)
    settings = pd.read_parquet(tmp_path / "s" / "scenario.parquet")
    assert settings["slip_dec"].item() == 0.6 and "slip_month1" not in settings.columns
    assert pipesim.load_scenario(tmp_path / "s").month_slips == tuple(month)


def test_the_rush_follows_the_fiscal_quarter():
    # Fiscal year from February: quarters Feb-Apr, May-Jul; January ends Nov-Jan.
    labels = ["2027-01", "2027-02", "2027-03", "2027-04", "2027-05", "2027-06"]
    table = slip_table(labels, (0.5, 0.3), None, year_start=2)
    np.testing.assert_array_equal(table[0], [0.0, 0.5, 0.3, 0.0, 0.5, 0.3])
    np.testing.assert_array_equal(table[1], [0, 3, 3, 3, 6, 6])  # 6: past the horizon
    np.testing.assert_array_equal(table[2], 0.0)
    calendar = slip_table(labels, (0.5, 0.3), None)  # calendar quarters
    np.testing.assert_array_equal(calendar[0], [0.5, 0.3, 0.0, 0.5, 0.3, 0.0])
    np.testing.assert_allclose(calendar_paces((1.0, 1.0, 2.0), 2)[:4], [1.5, 0.75, 0.75, 1.5])
