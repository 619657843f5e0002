"""health: coverage against the target, the bottleneck, the flow kernel, drift against actuals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.io import scenario_folder
from pipesim.simulation.stage_flows import simulate_flows

PERIODS = [f"2027-{m:02d}" for m in range(1, 13)]


def _steady(starved: str | None = None, leads: float = 300.0):
    """Three 30-day stages fed 300 leads a month; open deals at their steady-state stock."""
    stages = stages_frame([0.5, 0.5, 0.5], dwell_days=30.0, dwell_cv=0.5)
    arrivals = pd.DataFrame({"period": PERIODS, "leads": leads, "amount": 1000.0})
    stock = {"S1": 300, "S2": 150, "S3": 75}
    if starved:
        stock[starved] = 10
    deals = deals_frame([s for s, n in stock.items() for _ in range(n)], 1000.0)
    return build(stages, deals, arrivals)


def test_starved_stage_is_the_bottleneck():
    sc = _steady(starved="S2")
    res = pipesim.health(sc, 600_000, months=6, trials=500, seed=0)
    t = res.table.set_index("stage")
    assert list(t.index) == ["S1", "S2", "S3"]
    assert res.metadata["short"] == "true"
    assert t["bottleneck"].tolist() == [False, True, False]
    assert t.loc["S2", "deals_now"] == 10
    assert t.loc["S2", "coverage"] == pytest.approx(10 / t.loc["S2", "deals_needed"])
    # Little's law: needed stock = leads needed a month x reach x dwell / days a month.
    scale = float(res.metadata["leads_scale_needed"])
    assert t.loc["S1", "deals_needed"] == pytest.approx(300 * scale * 30 / (365.25 / 12))
    assert t.loc["S3", "deals_needed"] == pytest.approx(t.loc["S1", "deals_needed"] / 4)
    assert "S2: 10 deals, target needs" in t.loc["S2", "note"]


def test_no_bottleneck_when_the_target_is_met():
    res = pipesim.health(_steady(starved="S2"), 10_000, months=6, trials=300, seed=0)
    assert res.metadata["short"] == "false"
    assert not res.table["bottleneck"].any()
    assert res.metadata["deals_needed_basis"] == "funnel arithmetic"
    assert (res.table["deals_needed"] > 0).all()


def test_flow_kernel_agrees_with_the_main_kernel():
    """Wins and revenue from the stage walk match `simulate` (same law, other coupling).

    Tolerance: Z = 4.5 standard errors of the difference of two independent means.
    """
    sc = _steady()
    trials = 2000
    flows = simulate_flows(sc, trials, seed=1)
    run = pipesim.simulate(sc, trials, seed=2)
    a = flows.entered[:, :, -1, 0].sum(axis=1)
    b = run.won[:, :, 0].sum(axis=1)
    se = np.sqrt(a.var(ddof=1) / trials + b.var(ddof=1) / trials)
    assert abs(a.mean() - b.mean()) <= Z * se
    # New leads enter S1 at the Poisson rate: 300 a month.
    s1 = flows.entered[:, 1, 0, 0]
    assert abs(s1.mean() - 300.0) <= Z * np.sqrt(300.0 / trials)


def _actuals(sc, trials=2000, seed=99, months=4):
    """Actuals at the model's medians (an independent run) for the first months."""
    flows = simulate_flows(sc, trials, seed)
    rows = []
    for k in range(months):
        for s, stage in enumerate(flows.stages):
            row = {"period": flows.periods[k], "stage": stage,
                   "entered": float(np.median(flows.entered[:, k, s, 0]))}  # fmt: skip
            if stage == "Won":
                row["revenue"] = float(np.median(flows.revenue[:, k, 0]))
            rows.append(row)
    return pd.DataFrame(rows)


def test_injected_drop_is_flagged_there_and_nowhere_else(tmp_path):
    sc = _steady()
    actuals = _actuals(sc)
    hit = (actuals["period"] == "2027-03") & (actuals["stage"] == "S2")
    actuals.loc[hit, "entered"] *= 0.5
    path = tmp_path / "actuals.parquet"
    actuals.to_parquet(path)
    res = pipesim.health(sc, 600_000, months=6, actuals=path, trials=2000, seed=0)
    drift = res.tables["drift"]
    flagged = drift[drift["flag"]]
    assert flagged[["period", "stage", "metric"]].values.tolist() == [["2027-03", "S2", "entered"]]
    assert flagged["direction"].tolist() == ["low"]
    assert "drift started at S2 in 2027-03" in res.text
    # Every month and stage was checked (and Won's revenue too).
    assert len(drift) == 4 * 4 + 4


def test_no_drift_at_the_medians():
    sc = _steady()
    res = pipesim.health(sc, 600_000, months=6, actuals=_actuals(sc), trials=2000, seed=0)
    assert not res.tables["drift"]["flag"].any()
    assert "no drift" in res.text


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"stage": "Nowhere"}, "unknown stages"),
        ({"period": "March"}, "not months"),
        ({"entered": -1.0}, "numbers >= 0"),
    ],
)
def test_bad_actuals_exit_2(tmp_path, change, fragment):
    sc = _steady()
    folder = tmp_path / "sc"
    scenario_folder.write_scenario(folder, sc)
    actuals = pd.DataFrame({"period": ["2027-01"], "stage": ["S1"], "entered": [300.0]})
    actuals = actuals.assign(**change)
    path = tmp_path / "actuals.parquet"
    actuals.to_parquet(path)
    res = CliRunner().invoke(
        main, ["health", str(folder), "--revenue", "600000", "--actuals", str(path),
               "--trials", "200", "--out", str(tmp_path / "o")]
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert fragment in res.output and str(path) in res.output
    assert not (tmp_path / "o").exists()


def test_health_cli_by_segment(tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(
        main, ["health", "--revenue", "12000000", "--by", "region", "--trials", "200",
               "--out", str(out)]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    t = pd.read_parquet(out / "health.parquet")
    for col in ("region", "stage", "deals_now", "value_now", "deals_needed", "coverage",
                "bottleneck"):  # fmt: skip
        assert col in t.columns
    assert len(t) == 16
    assert t.groupby("region")["bottleneck"].sum().tolist() == [1, 1, 1, 1]


def test_drift_per_segment():
    """Actuals with a region column are compared with that region's band."""
    stages = stages_frame([0.5, 0.5, 0.5], dwell_days=30.0, dwell_cv=0.5)
    arrivals = pd.DataFrame(
        {"period": PERIODS * 2, "leads": 300.0, "amount": 1000.0,
         "region": ["A"] * 12 + ["B"] * 12}
    )  # fmt: skip
    sc = build(stages, None, arrivals)
    flows = simulate_flows(sc, 2000, 99, ["region"])
    rows = []
    for col, region in enumerate(flows.segments["region"], start=1):
        for k in range(3):
            for s, stage in enumerate(flows.stages[:-1]):
                value = float(np.median(flows.entered[:, k, s, col]))
                rows.append({"period": PERIODS[k], "stage": stage, "entered": value,
                             "region": region})  # fmt: skip
    actuals = pd.DataFrame(rows)
    hit = (actuals["region"] == "B") & (actuals["period"] == "2027-02") & (actuals["stage"] == "S2")
    actuals.loc[hit, "entered"] *= 0.5
    res = pipesim.health(sc, 600_000, months=6, actuals=actuals, trials=2000, seed=0)
    flagged = res.tables["drift"].query("flag")
    assert flagged[["period", "stage", "region"]].values.tolist() == [["2027-02", "S2", "B"]]
    bad = actuals.assign(region="Z")
    with pytest.raises(pipesim.PipesimError, match="no deal or arrival"):
        pipesim.health(sc, 600_000, months=6, actuals=bad, trials=100, seed=0)


def test_deals_needed_count_both_clocks():
    # S2 loses its deals on a clock of 90 days (advances take 30): a deal entering S2
    # stays 0.5 x 30 + 0.5 x 90 = 60 days on average, twice the one-clock stock.
    sc = _steady()
    stages = sc.stages.assign(loss_days=[np.nan, 90.0, np.inf], loss_cv=[np.nan, 1.0, 1.0])
    clocked = sc.replace(stages=stages)
    base = pipesim.health(sc, 600_000, months=6, trials=200, seed=0).table.set_index("stage")
    res = pipesim.health(clocked, 600_000, months=6, trials=200, seed=0)
    t = res.table.set_index("stage")
    ratio = float(res.metadata["leads_scale_needed"]) / float(
        pipesim.health(sc, 600_000, months=6, trials=200, seed=0).metadata["leads_scale_needed"]
    )
    assert t.loc["S1", "deals_needed"] == pytest.approx(base.loc["S1", "deals_needed"] * ratio)
    assert t.loc["S2", "deals_needed"] == pytest.approx(base.loc["S2", "deals_needed"] * 2 * ratio)
    # Losses never recorded in S3: only the deals that will advance count (half of them).
    assert t.loc["S3", "deals_needed"] == pytest.approx(base.loc["S3", "deals_needed"] / 2 * ratio)
