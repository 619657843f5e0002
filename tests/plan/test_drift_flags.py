"""Unit tests of pipesim.plan.drift: monthly actuals against the model's P10-P90.

The ``Flows`` are built by hand, so every band is known: the module takes
``numpy.quantile`` (linear interpolation) of each cell's trials.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import pipesim
from pipesim.errors import PipesimError
from pipesim.plan.drift import (
    check_actuals,
    drift_table,
    first_drift,
    segment_columns,
)
from pipesim.simulation.stage_flows import Flows

FUNNEL = ("A", "B", "C")
STAGES = (*FUNNEL, "Won")
PERIODS = ["2027-01", "2027-02", "2027-03"]
SOURCE = "/x/actuals.parquet"
TRIALS = 11  # trials 0..10: P10, P50, P90 fall exactly on trials 1, 5 and 9


@pytest.fixture(scope="module")
def scenario():
    stages = pd.DataFrame({"stage": list(FUNNEL), "conversion": 0.5, "dwell_days": 10.0})
    return pipesim.make_scenario(stages, as_of="2027-01-01", horizon_months=3)


def _scale(k: int, s: int, col: int) -> float:
    """A different band in every (period, stage, column) cell."""
    return 1.0 + k + 10.0 * s + 100.0 * col


def _flows(segments: pd.DataFrame | None = None, seed: int = 0) -> Flows:
    """Cell (k, s, col) holds scale * (0, 1, ..., 10) in shuffled trial order."""
    rng = np.random.default_rng(seed)
    by = tuple(segments.columns) if segments is not None else ()
    width = 1 + (len(segments) if segments is not None else 0)
    entered = np.zeros((TRIALS, len(PERIODS), len(STAGES), width))
    revenue = np.zeros((TRIALS, len(PERIODS), width))
    for k in range(len(PERIODS)):
        for col in range(width):
            for s in range(len(STAGES)):
                entered[:, k, s, col] = _scale(k, s, col) * rng.permutation(TRIALS)
            revenue[:, k, col] = 1000.0 * _scale(k, 0, col) * rng.permutation(TRIALS)
    return Flows(
        periods=list(PERIODS),
        stages=STAGES,
        by=by,
        segments=(segments if segments is not None else pd.DataFrame(index=range(0))),
        entered=entered,
        revenue=revenue,
    )


def _band(k: int, s: int, col: int = 0) -> tuple[float, float, float]:
    # trials are scale * 0..10: P10, P50, P90 = scale * (1, 5, 9) exactly
    scale = _scale(k, s, col)
    return scale * 1.0, scale * 5.0, scale * 9.0


def _actuals(rows, columns=("period", "stage", "entered")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def test_band_is_numpys_linear_quantiles_of_the_cell(scenario):
    flows = _flows()
    actuals = check_actuals(_actuals([("2027-02", "C", 0.0)]), scenario, SOURCE)
    table, notes = drift_table(actuals, flows, SOURCE)
    assert notes == []
    p10, p50, p90 = np.quantile(flows.entered[:, 1, 2, 0], (0.1, 0.5, 0.9))
    row = table.iloc[0]
    assert (row["p10"], row["p50"], row["p90"]) == (p10, p50, p90)
    assert (row["p10"], row["p50"], row["p90"]) == pytest.approx(_band(1, 2))  # 22, 110, 198


def test_band_interpolates_between_trials():
    # 10 trials 0..9: the linear P10 is 0.9, P50 4.5, P90 8.1 (not a trial's value)
    entered = np.zeros((10, 1, 4, 1))
    entered[:, 0, 0, 0] = np.arange(10.0)
    flows = Flows(["2027-01"], STAGES, (), pd.DataFrame(), entered, np.zeros((10, 1, 1)))
    actuals = _actuals([("2027-01", "A", 0.95), ("2027-01", "A", 0.85), ("2027-01", "A", 8.15)])
    table, _ = drift_table(actuals, flows, SOURCE)
    np.testing.assert_allclose(table[["p10", "p50", "p90"]].iloc[0], [0.9, 4.5, 8.1])
    assert list(table["flag"]) == [False, True, True]
    assert list(table["direction"]) == ["", "low", "high"]


def test_flag_and_direction_inside_on_the_edges_below_and_above(scenario):
    # cell (2027-01, A): band 1, 5, 9
    rows = [("2027-01", "A", v) for v in (5.0, 1.0, 9.0, 0.0, 0.5, 10.0)]
    table, _ = drift_table(check_actuals(_actuals(rows), scenario, SOURCE), _flows(), SOURCE)
    assert list(table["actual"]) == [5.0, 1.0, 9.0, 0.0, 0.5, 10.0]
    assert list(table["flag"]) == [False, False, False, True, True, True]  # the band is closed
    assert list(table["direction"]) == ["", "", "", "low", "low", "high"]
    assert table["flag"].dtype == bool
    assert list(table.columns) == [
        "period",
        "stage",
        "metric",
        "actual",
        "p10",
        "p50",
        "p90",
        "flag",
        "direction",
    ]


def test_each_row_is_compared_with_its_own_month_and_stage(scenario):
    rows = [(p, s, 0.0) for p in PERIODS for s in STAGES]
    table, _ = drift_table(check_actuals(_actuals(rows), scenario, SOURCE), _flows(), SOURCE)
    for (p, s, _), rec in zip(rows, table.to_dict("records"), strict=True):
        k, j = PERIODS.index(p), STAGES.index(s)
        assert (rec["period"], rec["stage"], rec["metric"]) == (p, s, "entered")
        assert (rec["p10"], rec["p50"], rec["p90"]) == pytest.approx(_band(k, j))


def test_revenue_is_checked_on_won_rows_only(scenario):
    actuals = _actuals(
        [
            ("2027-03", "Won", 100.0, 1e6),  # entered inside (band 33..297), revenue above
            ("2027-03", "B", 100.0, 1e6),  # revenue on a stage row: not read
            ("2027-02", "Won", 100.0, None),  # no revenue: entered only
        ],
        columns=("period", "stage", "entered", "revenue"),
    )
    table, _ = drift_table(check_actuals(actuals, scenario, SOURCE), _flows(), SOURCE)
    assert list(zip(table["stage"], table["metric"], strict=True)) == [
        ("Won", "entered"),
        ("Won", "revenue"),
        ("B", "entered"),
        ("Won", "entered"),
    ]
    revenue = table.iloc[1]
    # revenue of 2027-03 is 1000 * scale(2, 0, 0) = 3000 times 0..10
    assert (revenue["p10"], revenue["p50"], revenue["p90"]) == pytest.approx((3e3, 15e3, 27e3))
    assert (revenue["flag"], revenue["direction"]) == (True, "high")
    assert not table["flag"].iloc[[0, 2, 3]].any()


def test_months_outside_the_forecast_are_skipped_with_a_note(scenario):
    rows = [("2026-12", "A", 0.0), ("2027-02", "A", 5.0), ("2027-04", "B", 0.0)]
    table, notes = drift_table(check_actuals(_actuals(rows), scenario, SOURCE), _flows(), SOURCE)
    assert list(table["period"]) == ["2027-02"]
    assert notes == [
        f"{SOURCE}: 2 row(s) for months outside the forecast (2027-01 to 2027-03) skipped."
    ]


def test_first_drift_names_the_earliest_month_and_the_highest_stage(scenario):
    rows = [
        ("2027-03", "A", 0.0),  # low, but later
        ("2027-02", "Won", 0.0),  # low in the first flagged month, lower in the funnel
        ("2027-02", "B", 1000.0),  # high: band 12, 60, 108
        ("2027-01", "C", 50.0),  # inside (band 21, 105, 189)
    ]
    table, _ = drift_table(check_actuals(_actuals(rows), scenario, SOURCE), _flows(), SOURCE)
    assert list(table["flag"]) == [True, True, True, False]
    assert first_drift(table, FUNNEL) == (
        "drift started at B in 2027-02: entered 1,000, high against the model's "
        "P10-P90 12 to 108 (3 month-stage(s) flagged in all)."
    )


def test_first_drift_is_none_without_a_flag(scenario):
    table, _ = drift_table(
        check_actuals(_actuals([("2027-01", "A", 5.0)]), scenario, SOURCE), _flows(), SOURCE
    )
    assert first_drift(table, FUNNEL) is None
    assert first_drift(table.iloc[0:0], FUNNEL) is None


def test_segments_are_compared_with_their_own_band_and_named(scenario):
    segments = pd.DataFrame({"region": ["EU", "US"]})
    flows = _flows(segments)
    actuals = pd.DataFrame(
        {
            "period": ["2027-01", "2027-01"],
            "stage": ["A", "A"],
            "entered": [150.0, 150.0],
            "region": ["EU", "US"],
        }
    )
    checked = check_actuals(actuals, scenario, SOURCE)
    assert segment_columns(checked) == ("region",)
    table, _ = drift_table(checked, flows, SOURCE)
    assert list(table.columns[:3]) == ["period", "stage", "region"]
    # EU is column 1 (scale 101: band 101..909), US column 2 (scale 201: band 201..1809)
    eu, us = table.iloc[0], table.iloc[1]
    assert (eu["p10"], eu["p90"]) == pytest.approx(_band(0, 0, 1)[::2])
    assert (us["p10"], us["p90"]) == pytest.approx(_band(0, 0, 2)[::2])
    assert (eu["flag"], us["flag"], us["direction"]) == (False, True, "low")
    message = first_drift(table, FUNNEL)
    assert message is not None
    assert message.startswith("drift started at A in 2027-01, region=US: entered 150, low")


def test_an_unknown_segment_names_the_row(scenario):
    flows = _flows(pd.DataFrame({"region": ["EU", "US"]}))
    actuals = pd.DataFrame(
        {"period": ["2027-01", "2027-02"], "stage": ["A", "B"], "entered": [1, 2]}
    ).assign(region=["EU", "APAC"])
    with pytest.raises(PipesimError, match=r"/x/actuals\.parquet: row 2 has segment") as info:
        drift_table(check_actuals(actuals, scenario, SOURCE), flows, SOURCE)
    assert "{'region': 'APAC'}" in str(info.value)


def test_check_actuals_writes_periods_as_months_and_numbers_as_floats(scenario):
    actuals = pd.DataFrame(
        {
            "period": ["2027-01", "2027-02-15", dt.date(2027, 3, 1), pd.Timestamp("2027-03-31")],
            "stage": ["A", "B", "Won", "C"],
            "entered": [5, "12", 3, 0],
            "revenue": [None, None, 20000, None],
        }
    )
    out = check_actuals(actuals, scenario, SOURCE)
    assert list(out["period"]) == ["2027-01", "2027-02", "2027-03", "2027-03"]
    assert out["entered"].dtype == np.float64
    np.testing.assert_array_equal(out["entered"], [5.0, 12.0, 3.0, 0.0])
    np.testing.assert_array_equal(out["revenue"], [np.nan, np.nan, 20000.0, np.nan])


def test_check_actuals_missing_column_names_it(scenario):
    with pytest.raises(PipesimError) as info:
        check_actuals(pd.DataFrame({"period": ["2027-01"], "stage": ["A"]}), scenario, SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: required column(s) 'entered' missing")
    assert "columns present: period, stage" in message


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("period", "2027-13", "column 'period' has values that are not months: row 3 ('2027-13')"),
        ("period", "March", "column 'period' has values that are not months: row 3 ('March')"),
        ("stage", "Lost", "column 'stage' has unknown stages: row 3 ('Lost'). Use A, B, C, Won."),
        ("entered", -1, "column 'entered' needs numbers >= 0: row 3 (-1)"),
        ("entered", None, "column 'entered' needs numbers >= 0: row 3 (None)"),
        ("entered", "many", "column 'entered' needs numbers >= 0: row 3 ('many')"),
        ("revenue", -5.0, "column 'revenue' needs numbers >= 0: row 3 (-5.0)"),
    ],
)
def test_check_actuals_bad_value_names_file_column_row_and_value(scenario, column, value, expected):
    actuals = pd.DataFrame(
        {
            "period": ["2027-01"] * 4,
            "stage": ["A", "B", "C", "Won"],
            "entered": [1, 2, 3, 4],
            "revenue": [None, None, None, 10.0],
        },
        dtype=object,
    )
    actuals.loc[2, column] = value
    with pytest.raises(PipesimError) as info:
        check_actuals(actuals, scenario, SOURCE)
    assert str(info.value).startswith(f"{SOURCE}: {expected}")


def test_check_actuals_accepts_a_blank_revenue(scenario):
    actuals = _actuals(
        [("2027-01", "Won", 1, None), ("2027-01", "A", 1, None)],
        columns=("period", "stage", "entered", "revenue"),
    )
    out = check_actuals(actuals, scenario, SOURCE)
    assert out["revenue"].isna().all()
