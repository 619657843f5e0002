"""Calibration recovers the conversion and both clocks from histories with a known truth.

Histories come from ``crm_synth.two_clock_history`` (numpy, not pipesim): one Offer
stage, 10 deals a day, 40% destined to be won after a gamma time (mean 30 days, cv
0.7), the rest lost after a time from the loss law (gamma, lognormal, or never
recorded). *Mature*: two years of history (few deals open relative to the closed);
*young*: 90 days (a third or more still open, the laws' tails not seen yet).
Tolerances: the conversion within 4 of its reported standard errors; a clock's mean
within 10% (mature; several SE at these sample sizes) or 4 SE (young).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pipesim
from crm_synth import two_clock_history
from pipesim.calibration.fit import calibrate_history
from pipesim.calibration.history import make_history
from pipesim.prepare.loss_clock import odds_by_age
from pipesim.scenario.scenario import FORMAT_VERSION

Z = 4.0
P, ADV = 0.4, ("gamma", 30.0, 0.7)
LOSSES = {
    "gamma-loss": ("gamma", 90.0, 1.0),
    "lognormal-loss": ("lognormal", 60.0, 1.5),
    "never-recorded": ("never", np.inf, 1.0),
}


def _calibrate(days, loss, seed=3, **laws):
    deals, export = two_clock_history(seed=seed, days=days, p=P, adv=ADV, loss=loss)
    history = make_history(deals, stages=["Offer"], source="two-clock")
    return calibrate_history(history, export.date(), horizon_months=3, **laws)


@pytest.fixture(scope="module", params=list(LOSSES))
def mature(request):
    return request.param, _calibrate(730, LOSSES[request.param])


def test_mature_history_recovers_the_conversion_within_its_standard_error(mature):
    _, cal = mature
    fit = cal.fits["Offer"]
    assert abs(fit.conversion - P) < Z * fit.conversion_se, (fit.conversion, fit.conversion_se)
    assert fit.conversion_se < 0.01  # ~7,000 deals: the estimate is sharp


def test_mature_history_recovers_both_clocks_within_ten_percent(mature):
    name, cal = mature
    fit = cal.fits["Offer"]
    assert abs(fit.dwell_days / ADV[1] - 1) < 0.10, fit.dwell_days
    assert abs(fit.dwell_cv / ADV[2] - 1) < 0.10, fit.dwell_cv
    assert fit.dwell_dist == "gamma"
    dist, mean, cv = LOSSES[name]
    if dist == "never":
        assert fit.never_lost and np.isinf(fit.loss_days)
        assert np.isinf(cal.scenario.stages["loss_days"].iloc[0])
    else:
        assert abs(fit.loss_days / mean - 1) < 0.10, fit.loss_days
        assert abs(fit.loss_cv / cv - 1) < 0.10, fit.loss_cv
        assert fit.loss_dist == dist  # auto finds the law that made the data


def test_the_scenario_carries_the_fitted_clocks_and_keeps_every_open_deal(mature):
    name, cal = mature
    fit = cal.fits["Offer"]
    row = cal.scenario.stages.iloc[0]
    assert row["loss_days"] == fit.loss_days and row["dwell_days"] == fit.dwell_days
    assert row["loss_dist"] == fit.loss_dist and row["dwell_dist"] == fit.dwell_dist
    # no stale rule: every open deal is in the book, however old
    assert len(cal.scenario.deals) == fit.still_open
    assert "stale open deals" not in set(cal.report["item"])
    notes = set(cal.report["item"])
    assert ("stage Offer: no recorded loss" in notes) == (name == "never-recorded")


@pytest.mark.parametrize("name", list(LOSSES))
def test_young_history_is_within_four_standard_errors(name):
    cal = _calibrate(90, LOSSES[name])
    fit = cal.fits["Offer"]
    assert fit.still_open > 0.3 * (fit.advanced + fit.lost + fit.still_open)
    assert abs(fit.conversion - P) < Z * fit.conversion_se, (fit.conversion, fit.conversion_se)
    assert abs(fit.dwell_days - ADV[1]) < Z * fit.se["dwell_days"], fit.dwell_days
    if LOSSES[name][0] != "never":
        assert abs(fit.loss_days - LOSSES[name][1]) < Z * fit.se["loss_days"], fit.loss_days


@pytest.mark.parametrize("days", [121, 730], ids=["young", "mature"])
def test_a_share_of_unrecorded_losses_is_recovered(days):
    # 60% of the losing deals are abandoned (never closed); the rest lost after ~20 days
    deals, export = two_clock_history(
        seed=3, days=days, p=P, adv=ADV, loss=("gamma", 20.0, 1.0), recorded=0.4
    )
    cal = calibrate_history(make_history(deals, stages=["Offer"]), export.date())
    fit = cal.fits["Offer"]
    assert abs(fit.loss_recorded - 0.4) < Z * fit.se["loss_recorded"], fit.loss_recorded
    assert abs(fit.conversion - P) < Z * fit.conversion_se
    assert abs(fit.loss_days / 20.0 - 1) < 0.10 if days == 730 else True
    row = cal.scenario.stages.iloc[0]
    assert row["loss_recorded"] == fit.loss_recorded
    # a deal open 90 days is most likely abandoned: its odds fall far below a fresh one's
    odds = odds_by_age(cal.scenario, ages=(90.0,)).iloc[0]
    assert odds["odds_90d"] < 0.25 * odds["conversion"]


def test_every_loss_recorded_keeps_the_share_at_one_and_out_of_the_stages_table(mature):
    name, cal = mature
    fit = cal.fits["Offer"]
    if name != "never-recorded":
        assert fit.loss_recorded == 1.0 and "loss_recorded" not in fit.se
    assert "loss_recorded" not in cal.scenario.stages.columns


def test_young_history_beats_the_closed_deals_only_estimate():
    # 90 days: wins take 30 days, losses 90; closed deals alone over-count the wins
    fit = _calibrate(90, LOSSES["gamma-loss"]).fits["Offer"]
    assert fit.naive_conversion > P + 0.1
    assert abs(fit.conversion - P) < Z * fit.conversion_se


def test_never_recorded_losses_do_not_give_the_conversion_of_a_prior():
    # Before the loss clock, no recorded loss gave (wins + 1) / (wins + 2) ~ 1.
    fit = _calibrate(730, LOSSES["never-recorded"]).fits["Offer"]
    assert fit.lost == 0
    assert fit.conversion < 0.5


def test_chosen_laws_are_kept_when_given():
    cal = _calibrate(365, LOSSES["lognormal-loss"], dwell_dist="lognormal", loss_dist="gamma")
    fit = cal.fits["Offer"]
    assert (fit.dwell_dist, fit.loss_dist) == ("lognormal", "gamma")
    assert set(cal.scenario.stages["dwell_dist"]) == {"lognormal"}


def test_calibration_parquet_lists_every_estimate_with_its_standard_error(tmp_path):
    deals, export = two_clock_history(seed=5, days=365, loss=LOSSES["gamma-loss"])
    deals["region"] = np.where(np.arange(len(deals)) % 3 == 0, "North", "South")
    deals.to_csv(tmp_path / "deals.csv", index=False)
    out = tmp_path / "scen"
    pipesim.calibrate(
        tmp_path / "deals.csv",
        as_of=str(export.date()),
        out=out,
        stages="Offer",
        segments="region",
        horizon_months=3,
    )
    table = pd.read_parquet(out / "calibration.parquet")
    assert {"item", "rows", "action", "rule", "stage", "region", "parameter", "value", "se"} <= set(
        table.columns
    )
    assert table.loc[table["item"] == "rows read", "rows"].item() == len(deals)
    est = table[table["item"] == "estimate"]
    params = ["conversion", "dwell_days", "dwell_cv", "loss_days", "loss_cv", "loss_recorded"]
    for region in (None, "North", "South"):
        rows = est[est["region"].isna()] if region is None else est[est["region"] == region]
        assert rows["parameter"].tolist() == params, region
        assert (rows["stage"] == "Offer").all()
    whole = est[est["region"].isna()].set_index("parameter")
    stages = pd.read_parquet(out / "stages.parquet")
    funnel = stages[stages["region"].isna()].iloc[0]
    for p in params[:-1]:
        assert whole.loc[p, "value"] == pytest.approx(funnel[p])
    assert whole.loc["loss_recorded", "value"] == 1.0  # every loss recorded: no column
    assert (whole["se"].iloc[:-1] > 0).all()
    c, n = funnel["conversion"], funnel["conversion_n"]
    assert whole.loc["conversion", "se"] == pytest.approx(np.sqrt(c * (1 - c) / (n + 1)))
    scenario = pipesim.load_scenario(out)  # a calibrated one-stage funnel: no size warning
    assert scenario.format_version == FORMAT_VERSION


def test_cli_calibrate_takes_the_laws_and_prints_the_errors(tmp_path):
    from click.testing import CliRunner

    from pipesim.cli import main

    deals, export = two_clock_history(seed=6, days=365, loss=LOSSES["lognormal-loss"])
    deals.to_csv(tmp_path / "deals.csv", index=False)
    args = ["calibrate", str(tmp_path / "deals.csv"), "--as-of", str(export.date())]
    args += ["--stages", "Offer", "--out", str(tmp_path / "s")]
    res = CliRunner().invoke(main, [*args, "--dwell-dist", "gamma", "--loss-dist", "lognormal"])
    assert res.exit_code == 0, res.output
    assert "±" in res.output and "lognormal" in res.output
    stages = pd.read_parquet(tmp_path / "s" / "stages.parquet")
    assert stages["loss_dist"].tolist() == ["lognormal"]
    bad = CliRunner().invoke(main, [*args, "--loss-dist", "weibull"])
    assert bad.exit_code == 2 and "weibull" in bad.output


def test_closes_recorded_late_are_reported_not_silent():
    # The Maven export records no close before 2017-03-01 though deals were engaged from
    # October 2016 on: at the pace seen later, hundreds should have closed before.
    from pipesim.datasets import load_maven_crm

    report = calibrate_history(load_maven_crm(), "2017-07-01", horizon_months=3).report
    late = report[report["item"] == "closes recorded late"]
    assert len(late) == 1 and "2017-03-01" in late["rule"].item()
    d = load_maven_crm().deals
    closed = (d["closed_at"] < "2017-07-01") & (d["created_at"] < "2017-03-01")
    assert late["rows"].item() == int(closed.sum())
    # a history that records its closes from the start gets no such note
    clean = _calibrate(365, LOSSES["gamma-loss"]).report
    assert "closes recorded late" not in set(clean["item"])
