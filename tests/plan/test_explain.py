"""``pipesim explain OLD NEW``: steps add up, idle steps are exactly 0, one change moves one step.

The snapshots are two dates of the bundled example CRM history (``pipesim snapshot``), and
edited copies of one of them; every file is real Parquet, every run goes through the CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.datasets import example_history_path
from pipesim.plan.movement_steps import STEPS
from pipesim.scenario.scenario import FORMAT_VERSION

TRIALS = 400
OLD, NEW = "2017-05-01", "2017-06-10"  # both in FY2017-Q2 (calendar fiscal year)
STATS = ("mean", "p10", "p50", "p90")


@pytest.fixture(scope="module")
def snaps(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explain") / "snaps"
    history = example_history_path()
    res = CliRunner().invoke(
        main,
        ["snapshot", str(history / "deals.csv"), "--events", str(history / "events.csv"),
         "--as-of", OLD, "--as-of", NEW, "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def _explain(old: Path, new: Path, out: Path, *extra: str) -> pd.DataFrame:
    res = CliRunner().invoke(
        main,
        ["explain", str(old), str(new), "--trials", str(TRIALS), "--seed", "3",
         "--out", str(out), *extra],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "NEW - OLD" in res.output
    return pd.read_parquet(out / "movement.parquet")


def _quarter(folder: Path, label: str = "Q2") -> dict[str, float]:
    """The window's levels from the snapshot's own run (quarters.parquet's row)."""
    q = pipesim.run_scenario(folder, trials=TRIALS, seed=3, quiet=True).quarters(())
    row = q[(q["metric"] == "revenue") & (q["fiscal_year"] == "FY2017") & (q["quarter"] == label)]
    return {k: float(row[k].item()) for k in STATS}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(folder: Path, table: str, change) -> None:
    path = folder / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path)


def test_the_steps_add_up_to_new_minus_old(snaps, tmp_path):
    moved = _explain(snaps / OLD, snaps / NEW, tmp_path / "out")
    assert list(moved.columns) == ["step", "deals", *(f"delta_{k}" for k in STATS)]
    assert list(moved["step"]) == list(STEPS)
    old, new = _quarter(snaps / OLD), _quarter(snaps / NEW)
    for k in STATS:
        # OLD and NEW are each snapshot's own forecast of FY2017-Q2 (quarters.parquet), and
        # the steps telescope from one to the other: equal up to float rounding.
        assert moved[f"delta_{k}"].sum() == pytest.approx(new[k] - old[k], rel=1e-9, abs=1e-6)
    # Between two dates every kind of change happened in this history.
    deals = dict(zip(moved["step"], moved["deals"], strict=True))
    assert deals["won"] > 0 and deals["lost"] > 0 and deals["new"] > 0 and deals["advanced"] > 0
    assert deals["parameters"] == 0
    # Common random numbers in the states between: each deal adds its own revenue to a
    # trial, so the lost deals' step is minus their revenue simulated alone (in OLD's
    # settings: the default order applies lost before parameters and time), and the new
    # deals' step is plus theirs, exactly (float rounding aside).
    old_ids = set(pd.read_parquet(snaps / OLD / "deals.parquet")["deal_id"])
    new_book = pd.read_parquet(snaps / NEW / "deals.parquet")
    won_ids = set(pd.read_parquet(snaps / NEW / "won.parquet")["deal_id"])
    old_book = pd.read_parquet(snaps / OLD / "deals.parquet")
    lost = old_book[~old_book["deal_id"].isin(set(new_book["deal_id"]) | won_ids)]
    fresh = new_book[~new_book["deal_id"].isin(old_ids)]
    step = moved.set_index("step")["delta_mean"]
    assert step["lost"] == pytest.approx(-_single_deal_revenue(snaps / OLD, lost).mean(), rel=1e-9)
    assert step["new"] == pytest.approx(_single_deal_revenue(snaps / OLD, fresh).mean(), rel=1e-9)
    # Another order splits the move otherwise, and adds up to the same total.
    other = _explain(snaps / OLD, snaps / NEW, tmp_path / "other", "--order", "time,parameters")
    assert list(other["step"][:3]) == ["time", "parameters", "won"]
    for k in STATS:
        assert other[f"delta_{k}"].sum() == pytest.approx(new[k] - old[k], rel=1e-9, abs=1e-6)
    assert not np.allclose(
        other.set_index("step")["delta_mean"], moved.set_index("step")["delta_mean"]
    )


def test_identical_snapshots_move_nothing(snaps, tmp_path):
    twin = _copy(snaps / NEW, tmp_path / "twin")
    moved = _explain(snaps / NEW, twin, tmp_path / "out")
    assert (moved["deals"] == 0).all()
    for k in STATS:
        assert (moved[f"delta_{k}"] == 0.0).all()


def _single_deal_revenue(folder: Path, deal: pd.DataFrame) -> np.ndarray:
    """Each trial's FY2017-Q2 revenue from the deal(s) alone (no leads, nothing booked)."""
    sc = pipesim.load_scenario(folder)
    alone = sc.replace(deals=deal, arrivals=sc.arrivals.iloc[0:0], won=None)
    res = pipesim.simulate(alone, TRIALS, seed=3)
    periods = [k for k, p in enumerate(res.periods) if p in ("2017-04", "2017-05", "2017-06")]
    return res.revenue[:, periods, 0].sum(axis=1)


def test_one_new_deal_moves_only_new_by_its_own_revenue(snaps, tmp_path):
    new = _copy(snaps / NEW, tmp_path / "new")
    deal = pd.DataFrame(
        {
            "deal_id": ["EX-NEW-1"],
            "stage": ["Proposal"],
            "amount": [40_000.0],
            "days_in_stage": [3.0],
        }
    )
    _edit(new, "deals", lambda d: pd.concat([d, deal], ignore_index=True))
    moved = _explain(snaps / NEW, new, tmp_path / "out").set_index("step")
    assert moved.loc["new", "deals"] == 1
    others = moved.drop(index="new")
    assert (others["deals"] == 0).all() and (others.filter(like="delta_") == 0.0).all().all()
    # Common random numbers: the deal's draws are its own stream, so each trial of NEW is
    # OLD's trial plus that deal's revenue: the mean moves by exactly the mean of the deal
    # simulated alone (float rounding aside), not by a noisy difference of two runs.
    alone = _single_deal_revenue(new, deal)
    assert alone.mean() > 0
    assert moved.loc["new", "delta_mean"] == pytest.approx(alone.mean(), rel=1e-9)


def test_a_deal_won_moves_only_won(snaps, tmp_path):
    old = snaps / NEW
    new = _copy(old, tmp_path / "new")
    deals = pd.read_parquet(old / "deals.parquet")
    deal = deals[deals["stage"] == "Proposal"].iloc[[0]].reset_index(drop=True)
    _edit(new, "deals", lambda d: d[d["deal_id"] != deal["deal_id"].item()])
    closed = dt.date.fromisoformat(NEW) - dt.timedelta(days=1)
    won = pd.DataFrame(
        {"deal_id": deal["deal_id"], "closed_at": [closed], "amount": deal["amount"]}
    )
    _edit(new, "won", lambda w: pd.concat([w, won], ignore_index=True))
    moved = _explain(old, new, tmp_path / "out").set_index("step")
    assert moved.loc["won", "deals"] == 1
    others = moved.drop(index="won")
    assert (others["deals"] == 0).all() and (others.filter(like="delta_") == 0.0).all().all()
    # The deal leaves the simulation and its amount is booked inside the quarter: on common
    # random numbers the mean moves by the amount minus what it won in OLD's trials.
    alone = _single_deal_revenue(old, deal)
    want = float(deal["amount"].item()) - alone.mean()
    assert moved.loc["won", "delta_mean"] == pytest.approx(want, rel=1e-9)


def test_close_date_moves_are_pushed_or_pulled_in(snaps, tmp_path):
    old = _copy(snaps / NEW, tmp_path / "old")
    new = _copy(snaps / NEW, tmp_path / "new")
    for folder in (old, new):
        # close_date is a column of the current scenario format.
        _edit(folder, "scenario", lambda s: s.assign(format_version=FORMAT_VERSION))
    _edit(old, "deals", lambda d: d.assign(close_date=pd.Timestamp("2017-06-20").date()))
    dates = [pd.Timestamp("2017-06-20").date()] * len(pd.read_parquet(new / "deals.parquet"))
    dates[0] = dt.date(2017, 8, 1)  # pushed
    dates[1] = dt.date(2017, 6, 12)  # pulled in
    dates[2] = None  # no longer dated: the rest of the change, in time
    _edit(new, "deals", lambda d: d.assign(close_date=dates))
    moved = _explain(old, new, tmp_path / "out").set_index("step")
    assert moved.loc["pushed", "deals"] == 1 and moved.loc["pulled_in", "deals"] == 1
    assert moved.loc["time", "deals"] == 1
    for step in ("won", "lost", "new", "advanced", "amount", "parameters"):
        assert moved.loc[step, "deals"] == 0 and moved.loc[step, "delta_mean"] == 0.0


def test_a_changed_slippage_law_moves_only_the_parameters_step(snaps, tmp_path):
    # The same dated deals in both snapshots; NEW's close_dates.parquet halves p_win.
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "engines"))
    from test_dated_deals import law

    old = _copy(snaps / NEW, tmp_path / "old")
    new = _copy(snaps / NEW, tmp_path / "new")
    stages = tuple(pd.read_parquet(old / "stages.parquet")["stage"])
    for folder, p in ((old, 0.6), (new, 0.3)):
        _edit(folder, "scenario", lambda s: s.assign(format_version=FORMAT_VERSION))
        _edit(folder, "deals", lambda d: d.assign(close_date=pd.Timestamp("2017-06-20").date()))
        law(p=p, stages=stages).to_parquet(folder / "close_dates.parquet")
    moved = _explain(old, new, tmp_path / "out").set_index("step")
    assert moved.loc["parameters", "delta_mean"] < 0
    others = [s for s in STEPS if s != "parameters"]
    assert (moved.loc[others, "delta_mean"] == 0.0).all(), moved


def test_different_funnels_exit_2_naming_the_stages(snaps, tmp_path):
    new = _copy(snaps / NEW, tmp_path / "new")
    rename = {"Demo": "Meeting"}
    _edit(new, "stages", lambda s: s.assign(stage=s["stage"].replace(rename)))
    _edit(new, "deals", lambda d: d.assign(stage=d["stage"].replace(rename)))
    res = CliRunner().invoke(
        main, ["explain", str(snaps / OLD), str(new), "--trials", "5", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "only in" in res.output and "Demo" in res.output and "Meeting" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("order", "fragment"),
    [("won,sideways", "unknown step(s) 'sideways'"), ("won,lost,won", "'won' named twice")],
)
def test_a_bad_order_exits_2(snaps, tmp_path, order, fragment):
    res = CliRunner().invoke(
        main,
        ["explain", str(snaps / OLD), str(snaps / NEW), "--order", order, "--trials", "5",
         "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert fragment in res.output and "--order" in res.output
    assert not (tmp_path / "o").exists()


def test_json_and_the_report_page(snaps, tmp_path):
    odd = _copy(snaps / OLD, tmp_path / "a<b>&c")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        main,
        ["explain", str(odd), str(snaps / NEW), "--trials", "50", "--out", str(out), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    assert [r["step"] for r in printed["movement"]] == list(STEPS)
    assert printed["settings"]["window"] == "FY2017-Q2" and "old_mean" in printed["settings"]
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert "FY2017-Q2" in res.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-movement-mean"' in page and "<svg" in page
    assert "a&lt;b&gt;&amp;c" in page and "a<b>" not in page
    res = CliRunner().invoke(main, ["report", str(out), "--xlsx", str(tmp_path / "x.xlsx")])
    assert res.exit_code == 2 and "movement.parquet" in res.output


def test_a_fiscal_year_window_and_a_past_one(snaps, tmp_path):
    moved = _explain(snaps / OLD, snaps / NEW, tmp_path / "out", "--window", "fy2017")
    old, new = _quarter(snaps / OLD, "FY"), _quarter(snaps / NEW, "FY")
    for k in STATS:  # the whole fiscal year: won since January included in both
        assert moved[f"delta_{k}"].sum() == pytest.approx(new[k] - old[k], rel=1e-9, abs=1e-6)
    res = CliRunner().invoke(
        main,
        ["explain", str(snaps / OLD), str(snaps / NEW), "--window", "FY2017-Q1", "--out",
         str(tmp_path / "o")],
    )  # fmt: skip
    assert res.exit_code == 2 and "--window FY2017-Q1: ended (2017-03-31)" in res.output


def test_integer_ids_keep_their_keys_in_every_state():
    # A deal's draws come from its id as text: 5 must stay 5 (not 5.0) in a state that
    # mixes the two books, where an integer column would get gaps.
    from pipesim.plan.movement_steps import changes, state_deals
    from pipesim.scenario.keys import deal_keys

    stages = pd.DataFrame({"stage": ["A", "B", "C"], "conversion": 0.5, "dwell_days": 9.0})
    old_deals = pd.DataFrame({"deal_id": [1, 2, 3], "stage": ["A", "A", "B"], "amount": 10.0})
    new_deals = pd.DataFrame({"deal_id": [2, 3, 4], "stage": ["B", "B", "A"], "amount": 10.0})
    old = pipesim.make_scenario(stages, old_deals, as_of="2027-01-01", horizon_months=3)
    new = pipesim.make_scenario(stages, new_deals, as_of="2027-01-01", horizon_months=3)
    ch = changes(old, new, dt.date(2027, 1, 1), dt.date(2027, 3, 31))
    assert ch.deals["lost"] == 1 and ch.deals["new"] == 1 and ch.deals["advanced"] == 1
    for applied in ({"lost"}, {"new"}, {"advanced"}, {"lost", "new", "advanced"}):
        table = state_deals(ch, applied)
        want = deal_keys(pd.Series([int(v) for v in table["deal_id"]]))
        np.testing.assert_array_equal(deal_keys(table["deal_id"]), want)
    final = state_deals(ch, set(STEPS))
    assert [int(v) for v in final["deal_id"]] == [2, 3, 4]
    assert list(final["stage"]) == ["B", "B", "A"]


def test_a_run_report_leaves_a_movement_out_saying_why(snaps, tmp_path):
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["run", str(snaps / NEW), "--trials", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    _explain(snaps / OLD, snaps / NEW, out)
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert "movement.parquet left out of the report: pipesim explain's steps" in res.stderr
