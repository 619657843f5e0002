"""The fiscal calendar: years, quarters and periods against hand-written dates."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.errors import ScenarioError
from pipesim.prepare.kernel_inputs import prepare
from pipesim.scenario.fiscal import FiscalCalendar, parse_window, window_label

D = dt.date

# (fiscal_year_start, fiscal year, its first and last day, Q1..Q4 (first, last))
MONTH_CALENDARS = [
    (
        1,
        2026,
        (D(2026, 1, 1), D(2026, 12, 31)),
        [
            (D(2026, 1, 1), D(2026, 3, 31)),
            (D(2026, 4, 1), D(2026, 6, 30)),
            (D(2026, 7, 1), D(2026, 9, 30)),
            (D(2026, 10, 1), D(2026, 12, 31)),
        ],
    ),
    (
        2,
        2027,
        (D(2026, 2, 1), D(2027, 1, 31)),
        [
            (D(2026, 2, 1), D(2026, 4, 30)),
            (D(2026, 5, 1), D(2026, 7, 31)),
            (D(2026, 8, 1), D(2026, 10, 31)),
            (D(2026, 11, 1), D(2027, 1, 31)),
        ],
    ),
    (
        4,
        2027,
        (D(2026, 4, 1), D(2027, 3, 31)),
        [
            (D(2026, 4, 1), D(2026, 6, 30)),
            (D(2026, 7, 1), D(2026, 9, 30)),
            (D(2026, 10, 1), D(2026, 12, 31)),
            (D(2027, 1, 1), D(2027, 3, 31)),
        ],
    ),
    (
        7,
        2027,
        (D(2026, 7, 1), D(2027, 6, 30)),
        [
            (D(2026, 7, 1), D(2026, 9, 30)),
            (D(2026, 10, 1), D(2026, 12, 31)),
            (D(2027, 1, 1), D(2027, 3, 31)),
            (D(2027, 4, 1), D(2027, 6, 30)),
        ],
    ),
    (
        10,
        2027,
        (D(2026, 10, 1), D(2027, 9, 30)),
        [
            (D(2026, 10, 1), D(2026, 12, 31)),
            (D(2027, 1, 1), D(2027, 3, 31)),
            (D(2027, 4, 1), D(2027, 6, 30)),
            (D(2027, 7, 1), D(2027, 9, 30)),
        ],
    ),
]


@pytest.mark.parametrize(("start", "fy", "year", "quarters"), MONTH_CALENDARS)
def test_month_calendars_match_hand_written_dates(start, fy, year, quarters):
    cal = FiscalCalendar(start)
    assert cal.year_bounds(fy) == year
    assert [cal.quarter_bounds(fy, q) for q in range(1, 5)] == quarters
    for q, (first, last) in enumerate(quarters, start=1):
        for day in (first, first + (last - first) / 2, last):
            assert cal.quarter_of(day) == (fy, q)
    # The day before the year is the previous year's Q4, the day after the next year's Q1.
    assert cal.quarter_of(year[0] - dt.timedelta(days=1)) == (fy - 1, 4)
    assert cal.quarter_of(year[1] + dt.timedelta(days=1)) == (fy + 1, 1)
    # Twelve periods: the months from the start month on, tiling the year.
    periods = [cal.period_bounds(fy, p) for p in range(1, 13)]
    assert periods[0][0] == year[0] and periods[-1][1] == year[1]
    assert all(a[1] + dt.timedelta(days=1) == b[0] for a, b in itertools.pairwise(periods))
    assert all(p[0].day == 1 for p in periods)
    assert cal.period_label(fy, 1) == f"{year[0]:%Y-%m}"


def test_a_4_4_5_year_ending_on_the_last_saturday_of_march():
    # FY2027 (start April): March 28 2026 and March 27 2027 are the last Saturdays of March.
    cal = FiscalCalendar(4, "4-4-5")
    assert cal.year_bounds(2027) == (D(2026, 3, 29), D(2027, 3, 27))
    assert [cal.period_bounds(2027, p) for p in (1, 2, 3)] == [
        (D(2026, 3, 29), D(2026, 4, 25)),  # 4 weeks
        (D(2026, 4, 26), D(2026, 5, 23)),  # 4 weeks
        (D(2026, 5, 24), D(2026, 6, 27)),  # 5 weeks
    ]
    assert [cal.quarter_bounds(2027, q) for q in range(1, 5)] == [
        (D(2026, 3, 29), D(2026, 6, 27)),
        (D(2026, 6, 28), D(2026, 9, 26)),
        (D(2026, 9, 27), D(2026, 12, 26)),
        (D(2026, 12, 27), D(2027, 3, 27)),
    ]
    assert cal.quarter_of(D(2026, 3, 28)) == (2026, 4)  # a Saturday: FY2026's last day
    assert cal.quarter_of(D(2026, 3, 29)) == (2027, 1)  # a Sunday
    assert cal.period_of(D(2026, 6, 27)) == (2027, 3)
    assert cal.period_label(2027, 1) == "2026-04"
    assert cal.year_bounds(2027)[0].weekday() == 6 and cal.year_bounds(2027)[1].weekday() == 5


def test_a_53_week_year_puts_the_extra_week_in_its_last_period():
    # Start January: FY2028 ends Saturday 2028-12-30 (Dec 31 is a Sunday) and starts the
    # day after FY2027's end, Saturday 2027-12-25: 371 days, 53 weeks.
    cal = FiscalCalendar(1, "4-4-5")
    assert cal.year_bounds(2026) == (D(2025, 12, 28), D(2026, 12, 26))
    assert cal.year_bounds(2028) == (D(2027, 12, 26), D(2028, 12, 30))
    assert cal.period_bounds(2028, 11) == (D(2028, 10, 22), D(2028, 11, 18))
    assert cal.period_bounds(2028, 12) == (D(2028, 11, 19), D(2028, 12, 30))  # 6 weeks
    assert cal.quarter_bounds(2028, 4) == (D(2028, 9, 24), D(2028, 12, 30))  # 14 weeks
    assert cal.quarter_bounds(2026, 2) == (D(2026, 3, 29), D(2026, 6, 27))


@pytest.mark.parametrize(("weeks", "lengths"), [("4-5-4", [4, 5, 4]), ("5-4-4", [5, 4, 4])])
def test_the_other_week_patterns(weeks, lengths):
    cal = FiscalCalendar(1, weeks)
    got = [cal.period_bounds(2026, p) for p in (1, 2, 3)]
    assert [((b - a).days + 1) // 7 for a, b in got] == lengths
    assert cal.quarter_bounds(2026, 1) == (D(2025, 12, 28), D(2026, 3, 28))


def test_labels_round_trip():
    assert parse_window("FY2027-Q2") == (2027, 2)
    assert parse_window("fy2027") == (2027, 0)
    assert parse_window("2027-Q2") is None
    assert window_label(2027, 2) == "FY2027-Q2" and window_label(2027, 0) == "FY2027"


def test_week_calendar_periods_are_the_horizon_periods():
    # as_of Monday 2026-03-30 lies in FY2027's first period (from Sunday March 29),
    # which stands for April: the horizon's periods are the fiscal periods.
    stages = stages_frame([1.0], dwell_days=10.0)
    arrivals = pd.DataFrame({"period": ["2026-04", "2026-05"], "leads": [30.0, 31.0]})
    arrivals["amount"] = 1.0
    sc = build(
        stages,
        deals_frame(["S1"], 1.0),
        arrivals,
        as_of="2026-03-30",
        horizon_months=3,
        fiscal_year_start=4,
        fiscal_calendar="4-4-5",
        calibrated=True,
    )
    prep = prepare(sc)
    assert prep.periods == ["2026-04", "2026-05", "2026-06"]
    # Periods end 2026-04-25, 2026-05-23, 2026-06-27 (whole days after as_of, 00:00).
    np.testing.assert_array_equal(prep.bounds, [0, 27, 55, 90])
    # Leads pro-rated by day: April's daily rate (30 / 30) over the 27 days left,
    # May's (31 / 31) over the 28-day period.
    np.testing.assert_allclose(prep.arrivals.leads, [27.0, 28.0])


def test_fiscal_settings_are_checked_and_round_trip(tmp_path):
    stages = stages_frame([1.0])
    with pytest.raises(ScenarioError, match="fiscal_year_start, row 1: 13"):
        build(stages, fiscal_year_start=13, calibrated=True)
    with pytest.raises(ScenarioError, match="fiscal_calendar, row 1: '4-4-4'"):
        build(stages, fiscal_calendar="4-4-4", calibrated=True)
    sc = build(stages, fiscal_year_start=4.0, fiscal_calendar="5-4-4", calibrated=True)
    assert sc.fiscal == FiscalCalendar(4, "5-4-4")
    pipesim.io.scenario_folder.write_scenario(tmp_path / "s", sc)
    assert pipesim.load_scenario(tmp_path / "s").fiscal == FiscalCalendar(4, "5-4-4")
    assert build(stages, calibrated=True).fiscal.is_default
