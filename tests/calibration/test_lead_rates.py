"""Unit tests of pipesim.calibration.lead_rates: new leads per month from the creation rate.

Creation series are made by hand, month by month, so every count, span and
factor below can be checked on the calendar.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipesim.calibration.lead_rates import (
    DAYS_PER_MONTH,
    _dispersion,
    _seasonality,
    arrivals_table,
    lead_evidence,
)

AS_OF = dt.date(2024, 7, 1)
CUT = pd.Timestamp(AS_OF)
LONG_AGO = pd.Timestamp("2023-01-01")  # 18 months before AS_OF: under two years
# 2023-07-01 -> 2024-07-01 holds 29 February 2024: 366 days
YEAR_MONTHS = 366 / DAYS_PER_MONTH


def _created(counts: dict[str, int], amount: float = 100.0) -> pd.DataFrame:
    """``counts[month]`` deals created on days 1, 2, ... of each month ``YYYY-MM``."""
    days = [
        pd.Timestamp(f"{month}-01") + pd.Timedelta(days=i % 28)
        for month, n in counts.items()
        for i in range(n)
    ]
    return pd.DataFrame({"created_at": pd.to_datetime(days), "open_amount": amount})


def _months(first: str, last: str) -> list[str]:
    return [str(p) for p in pd.period_range(first, last, freq="M")]


def test_days_per_month_is_a_julian_year_over_twelve():
    assert DAYS_PER_MONTH == 30.4375


def test_monthly_rate_is_the_count_over_the_window_span_in_months():
    # 3 deals a month from 2023-07 to 2024-06: 36 in the 12-month window of 366 days
    deals = _created(dict.fromkeys(_months("2023-07", "2024-06"), 3))
    table, mean_amount = arrivals_table(deals, AS_OF, 3, [], LONG_AGO)
    assert list(table["period"]) == ["2024-07", "2024-08", "2024-09"]
    np.testing.assert_allclose(table["leads"], 36 / YEAR_MONTHS, rtol=1e-12)
    # steady months (variance 0 <= mean): leads_n is the count seen
    np.testing.assert_array_equal(table["leads_n"], [36.0] * 3)
    np.testing.assert_array_equal(table["amount"], [100.0] * 3)
    np.testing.assert_array_equal(table["amount_cv"], [0.0] * 3)
    assert mean_amount == 100.0
    assert list(table.columns) == ["period", "leads", "leads_n", "amount", "amount_cv"]


def test_deals_before_the_window_do_not_count_in_the_rate():
    deals = _created(dict.fromkeys(_months("2023-01", "2024-06"), 3) | {"2023-03": 50})
    table, _ = arrivals_table(deals, AS_OF, 1, [], LONG_AGO)
    assert table["leads"].iloc[0] == pytest.approx(36 / YEAR_MONTHS, rel=1e-12)


def test_a_shorter_history_divides_by_its_own_span():
    # first deal on 2024-04-01: 91 days (April 30 + May 31 + June 30) of history
    deals = _created(dict.fromkeys(_months("2024-04", "2024-06"), 4))
    table, _ = arrivals_table(deals, AS_OF, 1, [], pd.Timestamp("2024-04-01"))
    assert table["leads"].iloc[0] == pytest.approx(12 / (91 / DAYS_PER_MONTH), rel=1e-12)


def test_window_months_sets_the_span():
    deals = _created(dict.fromkeys(_months("2023-07", "2024-06"), 3))
    table, _ = arrivals_table(deals, AS_OF, 1, [], LONG_AGO, window_months=3)
    # 2024-04-01 -> 2024-07-01: 91 days, 9 deals
    assert table["leads"].iloc[0] == pytest.approx(9 / (91 / DAYS_PER_MONTH), rel=1e-12)


def test_seasonality_with_two_years_is_each_months_share_shrunk_halfway_to_one():
    # 2022-07 .. 2024-06: 2 deals a month, 8 in each January: 60 deals in 24 months.
    # January holds 16 of 60 against an even 5: factor 3.2 -> 0.5 * 3.2 + 0.5 = 2.1;
    # every other month 4 of 60: 0.8 -> 0.9.
    counts = {m: (8 if m.endswith("-01") else 2) for m in _months("2022-07", "2024-06")}
    deals = _created(counts)
    start = pd.Timestamp("2022-07-01")  # 731 days before the cut
    factor = _seasonality(deals["created_at"], CUT, start)
    np.testing.assert_allclose(factor, [2.1] + [0.9] * 11, rtol=1e-12)
    assert factor.mean() == pytest.approx(1.0)
    table, _ = arrivals_table(deals, AS_OF, 12, [], start)
    # base rate: the last 12 months hold 11 * 2 + 8 = 30 deals over 366 days
    base = 30 / YEAR_MONTHS
    expected = [base * (2.1 if p.endswith("-01") else 0.9) for p in table["period"]]
    assert list(table["period"]) == _months("2024-07", "2025-06")
    np.testing.assert_allclose(table["leads"], expected, rtol=1e-12)


def test_seasonality_is_flat_with_under_two_years_of_history():
    counts = {m: (8 if m.endswith("-01") else 2) for m in _months("2022-07", "2024-06")}
    deals = _created(counts)
    # 729 days of history (< 2 * 365): no calendar factor
    np.testing.assert_array_equal(
        _seasonality(deals["created_at"], CUT, pd.Timestamp("2022-07-03")), np.ones(12)
    )
    table, _ = arrivals_table(deals, AS_OF, 12, [], pd.Timestamp("2022-07-03"))
    np.testing.assert_allclose(table["leads"], 30 / YEAR_MONTHS, rtol=1e-12)


def test_dispersion_is_the_mean_and_half_mean_squared_difference_of_whole_months():
    # window from 2023-07-15: the partial July and the current (July 2024) month are left
    # out; whole months 2023-08 .. 2024-06 (11) with counts 0, 10, 0, 10, ...
    counts = {m: (0 if i % 2 == 0 else 10) for i, m in enumerate(_months("2023-08", "2024-06"))}
    deals = _created(counts | {"2023-07": 40})
    mean, var = _dispersion(deals["created_at"], pd.Timestamp("2023-07-15"), CUT)
    assert mean == pytest.approx(50 / 11)  # 5 months of 10 in 11
    assert var == pytest.approx(100 / 2)  # every difference is +-10


def test_dispersion_of_a_steady_trend_is_not_noise():
    # 1, 2, ..., 12 deals a month: differences all 1, variance 1/2 < mean 6.5
    counts = {m: i + 1 for i, m in enumerate(_months("2023-07", "2024-06"))}
    deals = _created(counts)
    mean, var = _dispersion(deals["created_at"], pd.Timestamp("2023-07-01"), CUT)
    assert (mean, var) == (pytest.approx(6.5), pytest.approx(0.5))
    table, _ = arrivals_table(deals, AS_OF, 1, [], LONG_AGO)
    assert table["leads_n"].iloc[0] == 78.0  # Poisson-like: the count seen


def test_dispersion_needs_three_whole_months():
    deals = _created({"2024-05": 1, "2024-06": 30})
    mean, var = _dispersion(deals["created_at"], pd.Timestamp("2024-05-01"), CUT)
    assert np.isnan(mean) and np.isnan(var)
    table, _ = arrivals_table(deals, AS_OF, 1, [], pd.Timestamp("2024-05-01"))
    assert table["leads_n"].iloc[0] == 31.0  # no measure of spread: the count


def test_lead_evidence_is_the_count_for_poisson_or_unknown_months():
    assert lead_evidence(36, 12.0, 3.0, 3.0) == 36.0
    assert lead_evidence(36, 12.0, 3.0, 1.0) == 36.0
    assert lead_evidence(36, 12.0, float("nan"), float("nan")) == 36.0
    assert lead_evidence(0, 12.0, 0.0, 4.0) == 0.0


def test_lead_evidence_formula_with_over_dispersed_months():
    # whole book: rate = count / months, share = 1 -> shape = mean^2 / ((var - mean) + var / n)
    months = 12.0
    count, mean, var = 60.0, 5.0, 50.0
    expected = 5.0**2 / ((50.0 - 5.0) + 50.0 / 12.0)
    assert lead_evidence(count, months, mean, var) == pytest.approx(expected, rel=1e-12)
    # a segment with a fifth of the rate: rate^2 / (share^2 * ...) is the same shape
    assert lead_evidence(12.0, months, mean, var) == pytest.approx(expected, rel=1e-12)
    # never above the count seen
    assert lead_evidence(0.5, months, mean, var) == 0.5


def test_over_dispersed_months_reduce_leads_n_below_the_count():
    # 0, 10, 0, 10, ... over 2023-07 .. 2024-06: 60 deals, whole-month mean 5, variance 50
    counts = {m: (0 if i % 2 == 0 else 10) for i, m in enumerate(_months("2023-07", "2024-06"))}
    deals = _created(counts)
    table, _ = arrivals_table(deals, AS_OF, 2, [], LONG_AGO)
    expected = 5.0**2 / ((50.0 - 5.0) + 50.0 / YEAR_MONTHS)  # about 0.51, far below 60
    np.testing.assert_allclose(table["leads_n"], [expected, expected], rtol=1e-12)
    np.testing.assert_allclose(table["leads"], 60 / YEAR_MONTHS, rtol=1e-12)


def _segmented() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "created_at": pd.to_datetime(
                [
                    "2024-03-31",  # before the first-created date given below: not counted
                    "2024-04-03",
                    "2024-04-20",
                    "2024-05-02",
                    "2024-05-10",
                    "2024-05-11",
                    "2024-06-01",
                    "2024-06-30",
                ]
            ),
            "open_amount": [1000.0, 100.0, 300.0, 50.0, 0.0, np.nan, 200.0, 400.0],
            "region": ["US", "EU", "EU", "US", "US", None, "US", "EU"],
        }
    )


def test_segments_split_the_rate_and_keep_their_own_amounts():
    # span 2024-04-01 -> 2024-07-01: 91 days; EU 3 deals, US 3, blank 1
    months = 91 / DAYS_PER_MONTH
    table, mean_amount = arrivals_table(
        _segmented(), AS_OF, 2, ["region"], pd.Timestamp("2024-04-01")
    )
    assert list(table.columns) == ["period", "leads", "leads_n", "amount", "amount_cv", "region"]
    assert len(table) == 6  # 3 segments x 2 months
    eu = table[table["region"] == "EU"]
    us = table[table["region"] == "US"]
    blank = table[table["region"].isna()]
    assert list(eu["period"]) == ["2024-07", "2024-08"]
    np.testing.assert_allclose(eu["leads"], 3 / months, rtol=1e-12)
    np.testing.assert_allclose(us["leads"], 3 / months, rtol=1e-12)
    np.testing.assert_allclose(blank["leads"], 1 / months, rtol=1e-12)
    # whole months 04, 05, 06 hold 2, 3, 2: variance 1/2 < mean 7/3, so leads_n = count
    assert list(eu["leads_n"]) == [3.0, 3.0]
    assert list(blank["leads_n"]) == [1.0, 1.0]
    # EU amounts 100, 300, 400: mean 800/3, population sd sqrt(420000/27)
    eu_mean = 800 / 3
    np.testing.assert_allclose(eu["amount"], eu_mean, rtol=1e-12)
    np.testing.assert_allclose(eu["amount_cv"], np.sqrt(420000 / 27) / eu_mean, rtol=1e-12)
    # US positive amounts 50, 200 (0 is not an amount): mean 125, sd 75
    np.testing.assert_allclose(us["amount"], 125.0, rtol=1e-12)
    np.testing.assert_allclose(us["amount_cv"], 0.6, rtol=1e-12)
    # the blank segment has no positive amount: the overall mean and cv of the window's
    # positive amounts 100, 300, 50, 200, 400 (mean 210)
    assert mean_amount == pytest.approx(210.0)
    overall = np.array([100.0, 300.0, 50.0, 200.0, 400.0])
    np.testing.assert_allclose(blank["amount"], 210.0, rtol=1e-12)
    np.testing.assert_allclose(blank["amount_cv"], overall.std() / 210.0, rtol=1e-12)
    # the segments add up to the whole book's rate
    whole, _ = arrivals_table(_segmented(), AS_OF, 2, [], pd.Timestamp("2024-04-01"))
    per_month = table.groupby("period")["leads"].sum().to_numpy()
    np.testing.assert_allclose(per_month, whole["leads"].to_numpy(), rtol=1e-12)


def test_over_dispersed_segments_share_the_books_shape_capped_by_their_count():
    # EU: 0, 10, 0, 10, ... ; US: one deal every month. Whole book: 1, 11, 1, 11, ...
    months = _months("2023-07", "2024-06")
    eu = _created({m: (0 if i % 2 == 0 else 10) for i, m in enumerate(months)})
    us = _created(dict.fromkeys(months, 1))
    deals = pd.concat([eu.assign(region="EU"), us.assign(region="US")], ignore_index=True)
    table, _ = arrivals_table(deals, AS_OF, 1, ["region"], LONG_AGO)
    mean, var = 6.0, 50.0  # whole-book months alternate 1 and 11
    shape = mean**2 / ((var - mean) + var / YEAR_MONTHS)  # about 0.75
    by_region = table.set_index("region")["leads_n"]
    assert by_region["EU"] == pytest.approx(min(60.0, shape), rel=1e-12)
    assert by_region["US"] == pytest.approx(min(12.0, shape), rel=1e-12)


def test_no_deal_in_the_window_gives_an_empty_table_and_no_mean_amount():
    deals = _created({"2022-01": 5})
    table, mean_amount = arrivals_table(deals, AS_OF, 3, [], LONG_AGO)
    assert table.empty
    assert list(table.columns) == ["period", "leads", "leads_n", "amount", "amount_cv"]
    assert np.isnan(mean_amount)


def test_a_mid_month_as_of_starts_the_periods_in_its_month():
    deals = _created(dict.fromkeys(_months("2023-07", "2024-06"), 3))
    table, _ = arrivals_table(deals, dt.date(2024, 7, 15), 2, [], LONG_AGO)
    assert list(table["period"]) == ["2024-07", "2024-08"]
    # window 2023-07-15 -> 2024-07-15 (366 days); the July 2023 deals fall on days
    # 1, 2, 3, before it: 33 deals
    assert table["leads"].iloc[0] == pytest.approx(33 / YEAR_MONTHS, rel=1e-12)
