"""Unit tests of pipesim.calibration.lead_rates: new leads per month from the creation rate.

Creation series are made by hand, month by month, so every count, span and
factor below can be checked on the calendar.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from pipesim.calibration.lead_rates import (
    DAYS_PER_MONTH,
    HALF_LIFE_MONTHS,
    _dispersion,
    arrivals_table,
    lead_evidence,
    seasonality,
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


def _weights(n: int, half_life: float = HALF_LIFE_MONTHS) -> np.ndarray:
    """Each whole month's weight, oldest first: halves every ``half_life`` months back."""
    return 0.5 ** ((n - 1 - np.arange(n)) / half_life)


def test_steady_months_give_their_rate_and_the_weighted_count_as_evidence():
    # 3 deals a month from 2023-07 to 2024-06: 12 whole months, no trend, no extra spread
    deals = _created(dict.fromkeys(_months("2023-07", "2024-06"), 3))
    table, mean_amount, notes = arrivals_table(deals, AS_OF, 3, [], LONG_AGO, window_months=12)
    assert list(table["period"]) == ["2024-07", "2024-08", "2024-09"]
    np.testing.assert_allclose(table["leads"], 3.0, rtol=1e-12)
    # Poisson level: var(log level) = 1 / sum(w mu), and leads_n = 1 / var = 3 sum(w)
    np.testing.assert_allclose(table["leads_n"], 3.0 * _weights(12).sum(), rtol=1e-9)
    np.testing.assert_array_equal(table["amount"], [100.0] * 3)
    np.testing.assert_array_equal(table["amount_cv"], [0.0] * 3)
    assert mean_amount == 100.0 and notes == []
    assert list(table.columns) == ["period", "leads", "leads_n", "amount", "amount_cv"]


def test_deals_before_the_window_do_not_count_in_the_rate():
    deals = _created(dict.fromkeys(_months("2023-01", "2024-06"), 3) | {"2023-03": 50})
    table, _, _ = arrivals_table(deals, AS_OF, 1, [], LONG_AGO, window_months=12)
    assert table["leads"].iloc[0] == pytest.approx(3.0, rel=1e-12)


def test_under_two_whole_months_the_rate_is_the_count_over_the_span():
    # first deal on 2024-05-10: only June is a whole month; 30 + 3 deals over 52 days
    deals = _created({"2024-06": 30})
    deals.loc[len(deals)] = [pd.Timestamp("2024-05-10"), 100.0]
    deals.loc[len(deals)] = [pd.Timestamp("2024-05-20"), 100.0]
    deals.loc[len(deals)] = [pd.Timestamp("2024-05-21"), 100.0]
    table, _, _ = arrivals_table(deals, AS_OF, 1, [], pd.Timestamp("2024-05-10"))
    assert table["leads"].iloc[0] == pytest.approx(33 / (52 / DAYS_PER_MONTH), rel=1e-12)


def test_recent_months_weigh_more_in_the_level():
    # three whole months (too few for a trend): 2, 2, 8 -> sum(w y) / sum(w)
    deals = _created({"2024-04": 2, "2024-05": 2, "2024-06": 8})
    start = pd.Timestamp("2024-04-01")
    table, _, _ = arrivals_table(deals, AS_OF, 1, [], start)
    w = _weights(3)
    assert table["leads"].iloc[0] == pytest.approx(float(w @ [2, 2, 8] / w.sum()), rel=1e-12)
    flat, _, _ = arrivals_table(deals, AS_OF, 1, [], start, half_life=float("inf"))
    assert flat["leads"].iloc[0] == pytest.approx(4.0, rel=1e-12)


def test_seasonality_with_two_years_is_each_months_share_shrunk_halfway_to_one():
    # 2022-07 .. 2024-06: 2 deals a month, 8 in each January: 60 deals in 24 months.
    # January holds 16 of 60 against an even 5: factor 3.2 -> 0.5 * 3.2 + 0.5 = 2.1;
    # every other month 4 of 60: 0.8 -> 0.9.
    counts = {m: (8 if m.endswith("-01") else 2) for m in _months("2022-07", "2024-06")}
    deals = _created(counts)
    start = pd.Timestamp("2022-07-01")  # 731 days before the cut
    factor = seasonality(deals["created_at"], CUT, start)
    np.testing.assert_allclose(factor, [2.1] + [0.9] * 11, rtol=1e-12)
    assert factor.mean() == pytest.approx(1.0)
    table, _, _ = arrivals_table(deals, AS_OF, 12, [], start)
    # level (no trend: the series is flat once the calendar is out) = sum(w y) / sum(w s)
    y = np.array(list(counts.values()), dtype=float)
    s = np.array([2.1 if m.endswith("-01") else 0.9 for m in counts])
    w = _weights(24)
    base = float(w @ y / (w @ s))
    expected = [base * (2.1 if p.endswith("-01") else 0.9) for p in table["period"]]
    assert list(table["period"]) == _months("2024-07", "2025-06")
    np.testing.assert_allclose(table["leads"], expected, rtol=1e-9)


def test_seasonality_is_flat_with_under_two_years_of_history():
    counts = {m: (8 if m.endswith("-01") else 2) for m in _months("2022-07", "2024-06")}
    deals = _created(counts)
    # 729 days of history (< 2 * 365): no calendar factor
    np.testing.assert_array_equal(
        seasonality(deals["created_at"], CUT, pd.Timestamp("2022-07-03")), np.ones(12)
    )


def _weighted_poisson(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """An independent fit: scipy's optimiser on the weighted Poisson log-likelihood."""
    x = np.arange(len(y)) - (len(y) - 1.0)

    def nll(beta: np.ndarray) -> float:
        eta = beta[0] + beta[1] * x
        return -float(w @ (y * eta - np.exp(eta)))

    start = np.array([np.log(y.mean()), 0.0])
    return optimize.minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}
    ).x


def test_a_clear_trend_is_fitted_and_projected_with_its_standard_error():
    # 20 deals a month growing ~6 % a month, with noise: 2023-07 .. 2024-06
    y = np.array([20, 22, 21, 25, 26, 28, 27, 32, 34, 35, 38, 40], dtype=float)
    deals = _created(dict(zip(_months("2023-07", "2024-06"), y.astype(int), strict=True)))
    table, _, notes = arrivals_table(deals, AS_OF, 3, [], LONG_AGO, window_months=12)
    w = _weights(12)
    a, b = _weighted_poisson(y, w)
    # the level at 2024-06, grown by a damped trend: 0.9, 0.9 + 0.81, ... months of growth
    grown = np.cumsum(0.9 ** np.arange(1, 4))
    np.testing.assert_allclose(table["leads"], np.exp(a + b * grown), rtol=1e-6)
    x = np.arange(12) - 11.0
    mu = np.exp(a + b * x)
    info = np.array([[w @ mu, w @ (mu * x)], [w @ (mu * x), w @ (mu * x * x)]])
    phi = max(float(w @ ((y - mu) ** 2 / mu)) / (w.sum() - 2), 1.0)
    cov = phi * np.linalg.inv(info)
    # the engine spreads month k by leads_trend_sd x (k + 1): the damped months here
    np.testing.assert_allclose(
        table["leads_trend_sd"] * np.arange(1, 4), np.sqrt(cov[1, 1]) * grown, rtol=1e-5
    )
    assert b > 2 * np.sqrt(cov[1, 1])
    np.testing.assert_allclose(table["leads_n"], min(w @ y, 1.0 / cov[0, 0]), rtol=1e-5)
    assert len(notes) == 1 and "a month" in notes[0]


def test_a_trend_within_two_standard_errors_is_not_projected():
    y = np.array([20, 26, 19, 23, 25, 18, 24, 21, 27, 20, 22, 24], dtype=float)
    deals = _created(dict(zip(_months("2023-07", "2024-06"), y.astype(int), strict=True)))
    table, _, notes = arrivals_table(deals, AS_OF, 2, [], LONG_AGO, window_months=12)
    assert "leads_trend_sd" not in table.columns and notes == []
    w = _weights(12)
    np.testing.assert_allclose(table["leads"], w @ y / w.sum(), rtol=1e-9)


def test_leads_until_ends_the_sample():
    # 3 a month, then 30 in June (an odd month): leads_until=2024-06-01 leaves it out
    deals = _created(dict.fromkeys(_months("2023-07", "2024-05"), 3) | {"2024-06": 30})
    table, _, _ = arrivals_table(
        deals, AS_OF, 1, [], pd.Timestamp("2023-07-01"), leads_until=pd.Timestamp("2024-06-01")
    )
    assert table["leads"].iloc[0] == pytest.approx(3.0, rel=1e-12)


def test_dispersion_is_the_mean_and_half_mean_squared_difference_of_whole_months():
    # window from 2023-07-15: the partial July and the current (July 2024) month are left
    # out; whole months 2023-08 .. 2024-06 (11) with counts 0, 10, 0, 10, ...
    counts = {m: (0 if i % 2 == 0 else 10) for i, m in enumerate(_months("2023-08", "2024-06"))}
    deals = _created(counts | {"2023-07": 40})
    mean, var = _dispersion(deals["created_at"], pd.Timestamp("2023-07-15"), CUT)
    assert mean == pytest.approx(50 / 11)  # 5 months of 10 in 11
    assert var == pytest.approx(100 / 2)  # every difference is +-10


def test_a_steady_trend_is_not_noise():
    # 1, 2, ..., 12 deals a month: the trend is fitted, the months are not over-dispersed
    counts = {m: i + 1 for i, m in enumerate(_months("2023-07", "2024-06"))}
    deals = _created(counts)
    mean, var = _dispersion(deals["created_at"], pd.Timestamp("2023-07-01"), CUT)
    assert (mean, var) == (pytest.approx(6.5), pytest.approx(0.5))
    table, _, _ = arrivals_table(deals, AS_OF, 1, [], LONG_AGO, window_months=12)
    assert "leads_trend_sd" in table.columns
    assert table["leads"].iloc[0] > 12.0  # grown past the last month's 12


def test_dispersion_needs_three_whole_months():
    deals = _created({"2024-05": 1, "2024-06": 30})
    mean, var = _dispersion(deals["created_at"], pd.Timestamp("2024-05-01"), CUT)
    assert np.isnan(mean) and np.isnan(var)


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
    # 0, 10, 0, 10, ... over 2023-07 .. 2024-06: 60 deals, no clear trend
    y = np.array([0.0, 10.0] * 6)
    counts = dict(zip(_months("2023-07", "2024-06"), y.astype(int), strict=True))
    table, _, _ = arrivals_table(_created(counts), AS_OF, 2, [], LONG_AGO, window_months=12)
    w = _weights(12)
    a, b = _weighted_poisson(y, w)  # the trend fit measures the dispersion
    mu = np.exp(a + b * (np.arange(12) - 11.0))
    phi = float(w @ ((y - mu) ** 2 / mu)) / (w.sum() - 2)
    level = float(w @ y / w.sum())
    np.testing.assert_allclose(table["leads"], level, rtol=1e-9)
    np.testing.assert_allclose(table["leads_n"], level * w.sum() / phi, rtol=1e-6)
    assert table["leads_n"].iloc[0] < 60 / 5


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
    # whole months 2024-04, 05, 06 (weights w); EU: 2, 0, 1 deals; US: 0, 2, 1; blank: 0, 1, 0
    table, mean_amount, _ = arrivals_table(
        _segmented(), AS_OF, 2, ["region"], pd.Timestamp("2024-04-01")
    )
    assert list(table.columns) == ["period", "leads", "leads_n", "amount", "amount_cv", "region"]
    assert len(table) == 6  # 3 segments x 2 months
    eu = table[table["region"] == "EU"]
    us = table[table["region"] == "US"]
    blank = table[table["region"].isna()]
    assert list(eu["period"]) == ["2024-07", "2024-08"]
    w = _weights(3)
    level = float(w @ [2, 3, 2] / w.sum())
    total = float(w @ [2, 3, 2])
    for part, own in ((eu, w @ [2, 0, 1]), (us, w @ [0, 2, 1]), (blank, w @ [0, 1, 0])):
        np.testing.assert_allclose(part["leads"], level * own / total, rtol=1e-12)
        # leads_n: 1 / (var(log level) + var(log share)), at most the weighted count
        share = own / total
        n = 1.0 / (1.0 / total + (1.0 - share) / own)
        np.testing.assert_allclose(part["leads_n"], min(own, n), rtol=1e-9)
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
    whole, _, _ = arrivals_table(_segmented(), AS_OF, 2, [], pd.Timestamp("2024-04-01"))
    per_month = table.groupby("period")["leads"].sum().to_numpy()
    np.testing.assert_allclose(per_month, whole["leads"].to_numpy(), rtol=1e-12)


def test_no_deal_in_the_window_gives_an_empty_table_and_no_mean_amount():
    deals = _created({"2022-01": 5})
    table, mean_amount, _ = arrivals_table(deals, AS_OF, 3, [], LONG_AGO, window_months=12)
    assert table.empty
    assert list(table.columns) == ["period", "leads", "leads_n", "amount", "amount_cv"]
    assert np.isnan(mean_amount)


def test_a_mid_month_as_of_starts_the_periods_in_its_month():
    deals = _created(dict.fromkeys(_months("2023-07", "2024-07"), 3))
    table, _, _ = arrivals_table(deals, dt.date(2024, 7, 15), 2, [], LONG_AGO, window_months=12)
    assert list(table["period"]) == ["2024-07", "2024-08"]
    # whole months 2023-08 .. 2024-06 (the window starts 2023-07-15; July 2024 is partial)
    assert table["leads"].iloc[0] == pytest.approx(3.0, rel=1e-12)
