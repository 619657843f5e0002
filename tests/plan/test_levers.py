"""Levers: the command-line syntax, levers.parquet, what each lever changes, and bad levers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.plan.levers import apply_lever, levers_from_frame, parse_lever


def _scenario():
    stages = stages_frame([0.5, 0.4, 0.8], names=["Lead", "Visit", "Offer"])
    deals = deals_frame(["Lead", "Visit", "Offer"], [100.0, 200.0, 300.0], region=["N", "S", "N"])
    arrivals = pd.DataFrame(
        {"period": ["2027-01", "2027-01"], "leads": [10.0, 20.0], "amount": [50.0, 60.0],
         "region": ["N", "S"]}
    )  # fmt: skip
    return build(stages, deals, arrivals)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("conversion:Visited+0.05@region=North",
         ("conversion", "add", 0.05, "Visited", (("region", "North"),))),
        ("leads*1.2@market=Spain", ("leads", "scale", 1.2, None, (("market", "Spain"),))),
        ("amount*0.95", ("amount", "scale", 0.95, None, ())),
        ("dwell:Offer*0.8", ("dwell", "scale", 0.8, "Offer", ())),
        ("conversion:Offer-0.1", ("conversion", "add", -0.1, "Offer", ())),
        ("leads=40", ("leads", "set", 40.0, None, ())),
    ],
)  # fmt: skip
def test_parse(text, expected):
    lv = parse_lever(text)
    assert (lv.quantity, lv.how, lv.value, lv.stage, lv.segment) == expected
    assert lv.label() == text


def test_each_quantity_changes_only_its_rows():
    sc = _scenario()
    v = apply_lever(sc, parse_lever("leads*2@region=S"))
    assert list(v.arrivals["leads"]) == [10.0, 40.0]
    v = apply_lever(sc, parse_lever("amount:Offer*0.5"))
    assert list(v.deals["amount"]) == [100.0, 200.0, 150.0]
    assert list(v.arrivals["amount"]) == [50.0, 60.0]
    v = apply_lever(sc, parse_lever("amount*0.5"))
    assert list(v.arrivals["amount"]) == [25.0, 30.0]
    v = apply_lever(sc, parse_lever("dwell:Visit*0.5"))
    assert list(v.stages["dwell_days"]) == [10.0, 5.0, 10.0]
    v = apply_lever(sc, parse_lever("conversion:Visit+0.1@region=N"))
    # The default row is untouched; an override row for region N carries the change.
    assert list(v.stages["conversion"]) == pytest.approx([0.5, 0.4, 0.8, 0.5])
    over = v.stages.iloc[-1]
    assert (over["stage"], over["region"]) == ("Visit", "N")


def test_segment_conversion_only_moves_that_segment():
    """A +0.1 conversion for region N raises N's win rate and leaves S's exactly as it was."""
    sc = _scenario()
    v = apply_lever(sc, parse_lever("conversion:Visit+0.1@region=N"))
    base = pipesim.simulate(sc, 2000, seed=3, by="region")
    var = pipesim.simulate(v, 2000, seed=3, by="region")
    s_col = 1 + int(np.flatnonzero(base.segments["region"] == "S")[0])
    np.testing.assert_array_equal(base.revenue[:, :, s_col], var.revenue[:, :, s_col])
    assert var.revenue[:, :, 0].sum() > base.revenue[:, :, 0].sum()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("conversion:Nope+0.1", "unknown stage 'Nope'"),
        ("conversion:Offer+0.5", "outside [0, 1]"),
        ("conversion*3", "outside [0, 1]"),
        ("leads*2@market=Spain", "unknown segment column 'market'"),
        ("leads*2@region=Mars", "no row has region=Mars"),
        ("leads:Lead*2", "take no stage"),
        ("amount-1000", "outside"),
        ("price*2", "unknown quantity"),
        ("conversion+", "cannot read"),
    ],
)
def test_bad_levers_name_the_lever(text, fragment):
    with pytest.raises(pipesim.PipesimError, match=None) as err:
        apply_lever(_scenario(), parse_lever(text))
    assert fragment in str(err.value)
    assert text in str(err.value)


def test_bad_lever_on_the_command_line_exits_2(demo_copy, tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        main, ["compare", str(demo_copy), "--lever", "conversion:Offer+0.9",
               "--out", str(tmp_path / "o")]
    )  # fmt: skip
    assert res.exit_code == 2
    assert "conversion:Offer+0.9" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_levers_table():
    frame = pd.DataFrame(
        {
            "variant": ["training", "training", "price cut"],
            "quantity": ["conversion", "dwell", "amount"],
            "how": ["add", "scale", "scale"],
            "value": [0.05, 0.8, 0.95],
            "stage": ["Visited", "Offer", None],
            "region": ["North", None, None],
        }
    )
    variants = levers_from_frame(frame)
    assert list(variants) == ["training", "price cut"]
    assert [lv.label() for lv in variants["training"]] == [
        "conversion:Visited+0.05@region=North",
        "dwell:Offer*0.8",
    ]
    bad = frame.assign(how=["add", "times", "scale"])
    with pytest.raises(pipesim.PipesimError, match="row 2: how 'times' unknown"):
        levers_from_frame(bad)


def test_compare_with_a_memo_gives_the_same_bits_as_without(demo):
    # The planning page keeps the base's runs between calls: every figure must stay the same,
    # for stage levers, segment levers (extra stage columns) and lead-only variants.
    memo: dict = {}
    for levers in (
        ["conversion:Offer+0.05"],
        ["leads*1.2"],
        ["conversion:Offer+0.05@region=North"],
        ["leads*0.9@region=North"],
        ["dwell:Visited*0.8", "leads*1.1"],
        ["conversion:Offer+0.05"],
    ):
        fresh = pipesim.compare(demo, levers, trials=200, seed=4).table
        kept = pipesim.compare(demo, levers, trials=200, seed=4, memo=memo).table
        pd.testing.assert_frame_equal(kept, fresh, check_exact=True)
    assert len(memo) >= 3


def test_a_segment_lever_on_a_stage_with_that_segment_row_changes_that_row_once():
    # Stage B has a funnel row and a North row (conversion set, dwell not): a North lever
    # changes the North row (no second North row), the funnel row stays.
    stages = stages_frame([0.6, 0.5, 0.7], names=["A", "B", "C"]).assign(region=None)
    north = stages.iloc[[1]].assign(region="North", conversion=0.3, dwell_days=np.nan)
    sc = build(
        pd.concat([stages, north], ignore_index=True),
        deals_frame(["A", "B", "C"] * 4, 1000.0, region=["North", "South"] * 6),
    )
    out = apply_lever(sc, parse_lever("conversion:B+0.1@region=North")).stages
    b = out[out["stage"] == "B"]
    assert len(out) == 4 and len(b) == 2
    assert b.loc[b["region"] == "North", "conversion"].tolist() == pytest.approx([0.4])
    assert b.loc[b["region"].isna(), "conversion"].tolist() == [0.5]
    # dwell is not set on the North row: it takes the funnel row's, changed.
    out = apply_lever(sc, parse_lever("dwell:B*0.5@region=North")).stages
    b = out[out["stage"] == "B"]
    assert len(out) == 4
    assert b.loc[b["region"] == "North", "dwell_days"].tolist() == [5.0]
    assert b.loc[b["region"] == "North", "conversion"].tolist() == [0.3]
    assert b.loc[b["region"].isna(), "dwell_days"].tolist() == [10.0]
