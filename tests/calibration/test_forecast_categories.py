"""Calibration by forecast category: each category's conversion per stage, recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipesim
from crm_synth import pipeline_history
from pipesim.calibration.history import make_history

Z = 4.0  # tolerance in binomial standard errors (two-sided p ~ 6e-5)
TRUTH = {
    "Commit": (0.8, 0.85, 0.9),
    "Best Case": (0.6, 0.6, 0.6),
    "Pipeline": (0.5, 0.4, 0.3),
}


@pytest.fixture(scope="module")
def tagged():
    deals, events = [], []
    for k, (category, conversion) in enumerate(TRUTH.items()):
        d, e, export = pipeline_history(seed=11 + k, n=2000, conversion=conversion)
        d["deal_id"] = f"{k}-" + d["deal_id"]
        e["deal_id"] = f"{k}-" + e["deal_id"]
        # CRM spellings: the history maps them to the categories.
        d["forecast_category"] = {"Best Case": "BestCase", "Commit": "COMMIT"}.get(
            category, category
        )
        deals.append(d)
        events.append(e)
    deals, events = pd.concat(deals, ignore_index=True), pd.concat(events, ignore_index=True)
    history = make_history(deals, events)
    return deals, events, pipesim.calibrate(history, as_of=export.date())


def _closed_in_stage(deals, events, category, s):
    """Deals of the category that left stage s (advanced or lost) in the history."""
    ids = deals.loc[deals["forecast_category"].map(lambda v: v.lower().replace(" ", ""))
                    == category.lower().replace(" ", ""), "deal_id"]  # fmt: skip
    entered = events.loc[events["stage"] == f"S{s + 1}", "deal_id"]
    nxt = (
        set(events.loc[events["stage"] == f"S{s + 2}", "deal_id"])
        if s < 2
        else set(deals.loc[deals["status"] == "won", "deal_id"])
    )
    lost = set(deals.loc[(deals["status"] == "lost") & (deals["stage"] == f"S{s + 1}"), "deal_id"])
    inside = set(ids) & set(entered)
    return len(inside & (nxt | lost))


def test_each_category_conversion_is_recovered_per_stage(tagged):
    deals, events, cal = tagged
    stages = cal.scenario.stages
    rows = stages[stages["forecast_category"].notna()]
    assert set(rows["forecast_category"]) == set(TRUTH)
    # Category rows set the conversion only: the clocks stay the stage's.
    assert rows["dwell_days"].isna().all() and rows["conversion_n"].notna().all()
    for category, conversion in TRUTH.items():
        for s, p in enumerate(conversion):
            row = rows[(rows["forecast_category"] == category) & (rows["stage"] == f"S{s + 1}")]
            n = _closed_in_stage(deals, events, category, s)
            se = np.sqrt(p * (1 - p) / n)  # binomial se of the category's own share
            got = row["conversion"].item()
            assert abs(got - p) < Z * se, (category, s, got, p, se, n)


def test_the_book_carries_categories_and_the_report_says_where_they_came_from(tagged):
    _, _, cal = tagged
    book = cal.scenario.deals
    assert set(book["forecast_category"]) == set(TRUTH)
    note = cal.report.set_index("item").loc["forecast categories"]
    assert "current value (may leak the outcome)" in note["rule"]
    # Simulated, Commit deals win more often than Pipeline ones (their own rows apply).
    res = pipesim.simulate(cal.scenario, trials=200, seed=1, by="forecast_category")
    won = res.summary("forecast_category")
    last = won[won["cumulative"] & (won["metric"] == "won_deals")
               & (won["period"] == won["period"].max())].set_index("forecast_category")  # fmt: skip
    per_deal = last["mean"] / book["forecast_category"].value_counts()
    assert per_deal["Commit"] > per_deal["Best Case"] > per_deal["Pipeline"]


def test_field_history_gives_the_category_as_of_the_cutoff():
    deals, events, export = pipeline_history(seed=5, n=300)
    deals["forecast_category"] = "Closed"  # the current value of closed deals: dropped
    events["forecast_category"] = np.where(events["stage"] == "S3", "Commit", "Pipeline")
    cal = pipesim.calibrate(make_history(deals, events), as_of=export.date())
    note = cal.report.set_index("item").loc["forecast categories"]
    assert note["rule"].startswith("field history")
    book = cal.scenario.deals
    np.testing.assert_array_equal(
        book["forecast_category"], np.where(book["stage"] == "S3", "Commit", "Pipeline")
    )
