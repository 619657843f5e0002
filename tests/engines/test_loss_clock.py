"""Two clocks per stage: an aged deal's odds against the formula, on every engine.

A deal open at age a in a stage of conversion c advances with probability
p(a) = c S_adv(a) / (c S_adv(a) + (1 - c) S_loss(a)), then waits the advance law's
remaining time given a. For deals in the last stage the expected wins of month k are
N p(a) [F_adv(a + t_k+1) - F_adv(a + t_k)] / S_adv(a): each deal wins or not on its own
(no parameter uncertainty here), so a month's wins per trial have variance
sum N q (1 - q), and the mean over T trials is checked within Z standard errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

import pipesim
from conftest import Z
from pipesim.cli import main
from pipesim.engines import chunked, fast
from pipesim.engines import numba as numba_engine
from pipesim.engines import numpy as numpy_engine
from pipesim.io import parquet, scenario_folder
from pipesim.prepare.kernel_inputs import prepare, prepare_context
from pipesim.scenario.calendar import period_bounds
from pipesim.scenario.scenario import FORMAT_VERSION
from pipesim.simulation.stage_flows import simulate_flows

AS_OF = "2027-01-01"
MONTHS = 6
C = 0.6
N_AGED, AGE = 3000, 45.0
N_FRESH = 1000
TRIALS = 300


def law(dist, mean, cv):
    if dist == "lognormal":
        sigma = np.sqrt(np.log1p(cv**2))
        return stats.lognorm(sigma, scale=mean * np.exp(-0.5 * sigma**2))
    return stats.gamma(1.0 / cv**2, scale=mean * cv**2)


def odds(adv, loss, age, recorded=1.0):
    """p(a); a share ``recorded`` of the losses is recorded, the rest stay open for ever."""
    s_adv = adv.sf(age)
    s_loss = 1.0 if loss is None else (1 - recorded) + recorded * loss.sf(age)
    return C * s_adv / (C * s_adv + (1 - C) * s_loss)


def expected_wins(adv, loss, recorded=1.0):
    """Exact mean and variance of each month's wins of the book (aged and fresh deals)."""
    t = period_bounds(pd.Timestamp(AS_OF).date(), MONTHS)
    mean = np.zeros(MONTHS)
    var = np.zeros(MONTHS)
    for n, age in ((N_AGED, AGE), (N_FRESH, 0.0)):
        p = odds(adv, loss, age, recorded) if age > 0 else C
        q = p * (adv.cdf(age + t[1:]) - adv.cdf(age + t[:-1])) / adv.sf(age)
        mean += n * q
        var += n * q * (1 - q)
    return mean, var


def book(
    adv_dist, adv_cv, loss_days, loss_cv=1.0, loss_dist="gamma", with_loss=True, recorded=None
):
    stages = pd.DataFrame(
        {
            "stage": ["Lead", "Meeting", "Offer"],
            "conversion": [0.5, 0.5, C],
            "dwell_days": [10.0, 10.0, 30.0],
            "dwell_cv": [1.0, 1.0, adv_cv],
            "dwell_dist": ["gamma", "gamma", adv_dist],
        }
    )
    if with_loss:
        stages["loss_days"] = [np.nan, np.nan, loss_days]
        stages["loss_cv"] = [np.nan, np.nan, loss_cv if loss_days == loss_days else np.nan]
        stages["loss_dist"] = [None, None, loss_dist if loss_days == loss_days else None]
    if recorded is not None:
        stages["loss_recorded"] = [np.nan, np.nan, recorded]
    n = N_AGED + N_FRESH
    deals = pd.DataFrame(
        {
            "deal_id": [f"d{i}" for i in range(n)],
            "stage": "Offer",
            "amount": 100.0,
            "days_in_stage": np.r_[np.full(N_AGED, AGE), np.zeros(N_FRESH)],
        }
    )
    # Aged and fresh deals interleaved: the fast path's cells then mix both odds.
    deals = deals.iloc[np.argsort(np.arange(n) % 7, kind="stable")].reset_index(drop=True)
    return pipesim.make_scenario(stages, deals, None, as_of=AS_OF, horizon_months=MONTHS)


LAWS = [
    # (advance dist, advance cv, loss mean, loss cv, loss dist)
    ("gamma", 1.0, 90.0, 1.0, "gamma"),  # exponential advance, exponential loss
    ("gamma", 1.0, 90.0, 0.5, "gamma"),  # exponential advance, gamma loss
    ("gamma", 1.0, 90.0, 0.8, "lognormal"),  # exponential advance, lognormal loss
    ("gamma", 1.0, np.inf, 1.0, "gamma"),  # losses never recorded
    ("gamma", 0.6, 20.0, 1.0, "gamma"),  # gamma advance, fast exponential loss
    ("gamma", 0.6, 90.0, 0.5, "gamma"),
    ("gamma", 0.6, 90.0, 0.8, "lognormal"),
    ("gamma", 0.6, np.inf, 1.0, "gamma"),
]


def _check(won, adv, loss, recorded=1.0):
    mean, var = expected_wins(adv, loss, recorded)
    got = won[:, :, 0]
    se = np.sqrt(var / got.shape[0])
    assert np.all(np.abs(got.mean(axis=0) - mean) <= Z * se), (got.mean(axis=0), mean, se)
    total_se = np.sqrt(var.sum() / got.shape[0])
    assert abs(got.sum(axis=1).mean() - mean.sum()) <= Z * total_se


@pytest.mark.parametrize(("adv_dist", "adv_cv", "loss_days", "loss_cv", "loss_dist"), LAWS)
def test_aged_deals_win_as_the_formula_says_on_every_engine(
    adv_dist, adv_cv, loss_days, loss_cv, loss_dist
):
    sc = book(adv_dist, adv_cv, loss_days, loss_cv, loss_dist)
    adv = law(adv_dist, 30.0, adv_cv)
    loss = None if np.isinf(loss_days) else law(loss_dist, loss_days, loss_cv)
    prepared = prepare(sc)
    assert (prepared.deals.survival_ratio != 1.0).sum() == N_AGED
    _check(numba_engine.run(prepared, TRIALS, seed=1)[1], adv, loss)
    _check(fast.run(prepared, TRIALS, seed=2, window=512)[1], adv, loss)
    _check(numpy_engine.run(prepared, TRIALS, seed=3)[1], adv, loss)
    flows = simulate_flows(sc, TRIALS, seed=4)
    _check(flows.entered[:, :, -1, :], adv, loss)  # entries into Won are the wins


@pytest.mark.parametrize(
    ("loss_days", "loss_cv", "loss_dist", "recorded"),
    [(20.0, 1.0, "gamma", 0.3), (90.0, 0.8, "lognormal", 0.5), (20.0, 1.0, "gamma", 0.0)],
)
def test_a_share_of_losses_never_recorded_follows_the_formula_on_every_engine(
    loss_days, loss_cv, loss_dist, recorded
):
    # loss_recorded = rho: a deal bound to be lost is open at a with 1 - rho + rho S_loss(a)
    sc = book("gamma", 0.6, loss_days, loss_cv, loss_dist, recorded=recorded)
    adv, loss = law("gamma", 30.0, 0.6), law(loss_dist, loss_days, loss_cv)
    assert odds(adv, loss, AGE, recorded) < odds(adv, loss, AGE)  # the unrecorded linger
    prepared = prepare(sc)
    _check(numba_engine.run(prepared, TRIALS, seed=1)[1], adv, loss, recorded)
    _check(fast.run(prepared, TRIALS, seed=2, window=512)[1], adv, loss, recorded)
    _check(numpy_engine.run(prepared, TRIALS, seed=3)[1], adv, loss, recorded)
    _check(simulate_flows(sc, TRIALS, seed=4).entered[:, :, -1, :], adv, loss, recorded)


def test_all_losses_recorded_gives_the_bits_of_no_loss_recorded_column():
    with_column = prepare(book("gamma", 0.6, 90.0, 0.5, "gamma", recorded=1.0))
    without = prepare(book("gamma", 0.6, 90.0, 0.5, "gamma"))
    np.testing.assert_array_equal(with_column.deals.survival_ratio, without.deals.survival_ratio)
    a, b = numba_engine.run(with_column, 40, seed=5), numba_engine.run(without, 40, seed=5)
    np.testing.assert_array_equal(a[0], b[0])


def test_the_loss_clock_changes_the_forecast_as_expected():
    # Losses slower than wins: an old deal is likelier lost than a fresh one.
    adv = law("gamma", 30.0, 1.0)
    slow = odds(adv, law("gamma", 90.0, 1.0), AGE)
    assert slow < C
    fast_losses = odds(adv, law("gamma", 10.0, 1.0), AGE)
    assert fast_losses > C  # losses come early: a deal still open is likelier to win


def test_empty_loss_columns_give_the_one_clock_bits():
    without = book("gamma", 0.6, np.nan, with_loss=False)
    empty = book("gamma", 0.6, np.nan)
    assert "loss_days" in empty.stages.columns
    same_law = book("gamma", 0.6, 30.0, 0.6, "gamma")  # the advance law as loss law
    base = prepare(without)
    for sc in (empty, same_law):
        p = prepare(sc)
        assert np.all(p.deals.survival_ratio == 1.0)
        for run in (
            lambda x: numba_engine.run(x, 40, seed=5),
            lambda x: fast.run(x, 40, seed=5),
            lambda x: numpy_engine.run(x, 40, seed=5),
        ):
            a, b = run(base), run(p)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_a_book_on_disk_and_one_seed_give_the_same_bits(tmp_path):
    sc = book("gamma", 0.6, 90.0, 0.5, "gamma")
    folder = tmp_path / "sc"
    scenario_folder.write_scenario(folder, sc)
    chunks = (sc.deals.iloc[s : s + 700] for s in range(0, sc.deal_count, 700))
    parquet.write_table_chunks(folder / "deals.parquet", chunks)
    disk = scenario_folder.load_scenario(folder, deals_in_memory=False, chunk=700)
    memory = scenario_folder.load_scenario(folder)
    assert memory.format_version == FORMAT_VERSION
    rev0, won0 = numba_engine.run(prepare(memory, chunk=1000), 64, seed=9)
    rev1, won1 = chunked.run(disk, prepare_context(disk), 64, seed=9, chunk=1000)
    np.testing.assert_array_equal(rev0, rev1)
    np.testing.assert_array_equal(won0, won1)
    f0 = fast.run(prepare(memory, chunk=1000), 64, seed=9, window=500)
    f1 = chunked.run(disk, prepare_context(disk), 64, seed=9, chunk=1000, engine="fast", window=500)
    np.testing.assert_array_equal(f0[0], f1[0])
    # One seed, one answer: a trial prefix and another block size give the same rows.
    part = numba_engine.run_blocks(prepare(memory), 24, seed=9, block_size=8)
    whole = numba_engine.run(prepare(memory), 64, seed=9)
    np.testing.assert_array_equal(part[0], whole[0][:24])


def _folder(tmp_path, stages, version=FORMAT_VERSION):
    folder = tmp_path / "sc"
    folder.mkdir(parents=True)
    stages.to_parquet(folder / "stages.parquet")
    pd.DataFrame(
        {"deal_id": ["a"], "stage": ["Offer"], "amount": [10.0], "days_in_stage": [5.0]}
    ).to_parquet(folder / "deals.parquet")
    settings = {"as_of": [pd.Timestamp(AS_OF)], "horizon_months": [3]}
    if version is not None:
        settings["format_version"] = [version]
    pd.DataFrame(settings).to_parquet(folder / "scenario.parquet")
    return folder


def _stages(**loss):
    frame = pd.DataFrame(
        {
            "stage": ["Lead", "Meeting", "Offer"],
            "conversion": [0.5, 0.5, 0.6],
            "dwell_days": [10.0, 10.0, 30.0],
        }
    )
    for col, values in loss.items():
        frame[col] = values
    return frame


@pytest.mark.parametrize(
    ("loss", "needle"),
    [
        ({"loss_days": [np.nan, -5.0, 40.0]}, "column 'loss_days': 1 row(s) are not a positive"),
        ({"loss_days": [None, "soon", "40"]}, "column 'loss_days': 1 row(s) are not numbers"),
        ({"loss_days": [np.nan, 3.0, 40.0], "loss_cv": [np.nan, -1.0, np.nan]}, "'loss_cv'"),
        ({"loss_cv": [np.nan, 0.5, np.nan]}, "set loss_cv, loss_dist or loss_recorded without"),
        ({"loss_recorded": [np.nan, 0.5, np.nan]}, "set loss_cv, loss_dist or loss_recorded with"),
        (
            {"loss_days": [1.0, 2.0, 3.0], "loss_recorded": [1.0, 1.5, 0.0]},
            "column 'loss_recorded': 1 row(s) are not a share between 0 and 1",
        ),
        ({"loss_days": [1.0, 2.0, 3.0], "loss_dist": [None, "weibull", None]}, "'loss_dist'"),
    ],
)
def test_bad_loss_columns_exit_2_naming_file_column_and_rows(tmp_path, loss, needle):
    folder = _folder(tmp_path, _stages(**loss))
    res = CliRunner().invoke(main, ["run", str(folder), "--trials", "5", "--out",
                                    str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert needle in res.output and "stages.parquet" in res.output
    assert "row 2" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_an_override_may_set_loss_cv_when_it_inherits_loss_days(tmp_path):
    stages = _stages(loss_days=[np.nan, np.nan, 60.0], loss_cv=[np.nan, np.nan, 1.0])
    stages["region"] = None
    extra = pd.DataFrame(
        {"stage": ["Offer", "Meeting"], "loss_cv": [0.5, 0.3], "region": ["North", "North"]}
    )
    deals = pd.DataFrame(
        {"deal_id": ["a", "b"], "stage": ["Offer", "Meeting"], "amount": 10.0,
         "days_in_stage": 5.0, "region": "North"}
    )  # fmt: skip
    ok = pd.concat([stages, extra.iloc[:1]], ignore_index=True)
    sc = pipesim.make_scenario(ok, deals, None, as_of=AS_OF, horizon_months=3)
    p = prepare(sc)
    assert p.loss_cv[0, 2] == 0.5 and p.loss_mean[0, 2] == 60.0  # the override's cv
    assert np.isnan(p.loss_mean[0, 1])  # Meeting: no loss clock of its own
    # Meeting's loss_cv with no loss_days anywhere to inherit: named, row 5.
    orphan = pd.concat([stages, extra], ignore_index=True)
    sc = pipesim.make_scenario(orphan, deals, None, as_of=AS_OF, horizon_months=3)
    with pytest.raises(pipesim.ScenarioError, match=r"row 5 sets the loss law of stage 'Meeting'"):
        pipesim.simulate(sc, trials=5)


def test_an_old_scenario_with_a_segment_named_like_a_loss_column_is_told_what_to_do(tmp_path):
    stages = _stages(loss_days=["a", "b", "c"])  # an old segment column of that name
    folder = _folder(tmp_path, stages, version=None)
    res = CliRunner().invoke(main, ["run", str(folder), "--trials", "5", "--out",
                                    str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 2
    assert "'loss_days' are reserved since scenario format 2" in res.output
    assert "rename them" in res.output and f"format_version = {FORMAT_VERSION}" in res.output
    good = _folder(tmp_path / "v2", _stages(loss_days=[np.nan, np.nan, 40.0]), version=2)
    assert scenario_folder.load_scenario(good).format_version == FORMAT_VERSION
    res = CliRunner().invoke(main, ["run", str(good), "--trials", "5", "--quiet", "--out",
                                    str(tmp_path / "out2")])  # fmt: skip
    assert res.exit_code == 0, res.output


def test_the_loss_lever_moves_the_loss_clock_only(demo):
    from pipesim.plan.levers import apply_lever, parse_lever

    lever = parse_lever("loss:Offer*2")
    assert (lever.quantity, lever.how, lever.stage) == ("loss", "scale", "Offer")
    # The demo has no loss clock: nothing to scale, and the message says how to set one.
    with pytest.raises(pipesim.PipesimError, match=r"no loss clock.*'loss:Offer=90'"):
        apply_lever(demo, lever)
    with_clock = apply_lever(demo, parse_lever("loss:Offer=90"))
    offer = with_clock.stages[with_clock.stages["stage"] == "Offer"]
    assert list(offer["loss_days"].dropna()) == [90.0]
    doubled = apply_lever(with_clock, lever)
    offer = doubled.stages[doubled.stages["stage"] == "Offer"]
    assert list(offer["loss_days"].dropna()) == [180.0]
    assert list(offer["dwell_days"].dropna()) == list(
        demo.stages.loc[demo.stages["stage"] == "Offer", "dwell_days"].dropna()
    )
    # A dwell lever leaves the loss clock alone.
    moved = apply_lever(with_clock, parse_lever("dwell:Offer*0.5"))
    assert list(moved.stages.loc[moved.stages["stage"] == "Offer", "loss_days"].dropna()) == [90.0]


def test_slower_losses_on_common_random_numbers_lower_the_forecast(demo):
    # Offer deals in the demo are aged; a loss clock slower than the 20-day advance law
    # makes an old Offer a likelier loss: every trial's revenue can only fall, and the
    # mean falls by more than Z standard errors of the paired difference.
    base = pipesim.apply_lever(demo, pipesim.parse_lever("loss:Offer=20"))
    result = pipesim.compare(base, ["loss:Offer*4"], trials=400, seed=3)
    row = result.table.set_index("variant").loc["loss:Offer*4"]
    assert row["delta_mean"] < -Z * row["delta_se"]


def test_run_prints_the_odds_of_aged_deals(tmp_path, demo):
    from pipesim.prepare.loss_clock import odds_by_age

    sc = book("gamma", 1.0, 90.0, 1.0, "gamma")  # exponential clocks: odds in closed form
    table = odds_by_age(sc).set_index("stage")
    assert list(table.index) == ["Offer"]

    def exact(age):
        adv, loss = np.exp(-age / 30.0), np.exp(-age / 90.0)
        return C * adv / (C * adv + (1 - C) * loss)

    assert table.loc["Offer", "conversion"] == C
    assert table.loc["Offer", "odds_30d"] == pytest.approx(exact(30.0), rel=1e-12)
    assert table.loc["Offer", "odds_90d"] == pytest.approx(exact(90.0), rel=1e-12)
    assert table.loc["Offer", "oldest_days"] == AGE
    assert table.loc["Offer", "odds_oldest"] == pytest.approx(exact(AGE), rel=1e-12)
    folder = tmp_path / "sc"
    scenario_folder.write_scenario(folder, sc)
    res = CliRunner().invoke(main, ["run", str(folder), "--trials", "20",
                                    "--out", str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Two clocks: the chance to advance of a deal still open at an age" in res.output
    line = next(x for x in res.output.splitlines() if x.startswith("Offer") and "days" in x)
    assert f"{exact(30.0):.0%}" in line and f"{exact(AGE):.0%} at 45 days" in line
    # No loss clock, no such block.
    assert odds_by_age(demo).empty


def test_results_and_report_show_the_odds_by_age(tmp_path, demo):
    sc = book("gamma", 1.0, 90.0, 1.0, "gamma")  # exponential clocks: odds in closed form
    out = tmp_path / "results"
    written = pipesim.write_results(pipesim.simulate(sc, trials=50, seed=1), out)
    assert out / "odds.parquet" in written
    odds = pd.read_parquet(out / "odds.parquet")
    assert list(odds.columns) == ["stage", "age_days", "odds"]
    assert set(odds["stage"]) == {"Offer"} and {0.0, 30.0, 90.0} <= set(odds["age_days"])
    a = odds["age_days"].to_numpy()
    exact = C * np.exp(-a / 30) / (C * np.exp(-a / 30) + (1 - C) * np.exp(-a / 90))
    np.testing.assert_allclose(odds["odds"], exact, rtol=1e-12)
    assert odds["age_days"].max() >= 3 * 90.0
    pipesim.report(out)
    html = (out / "report.html").read_text()
    assert "Two clocks: the chance to advance by age" in html
    assert 'id="chart-odds"' in html
    sentence = f"Offer: a deal 90 days old advances {exact[a == 90][0]:.0%}, a fresh one {C:.0%}."
    assert sentence in html
    # A scenario without loss clocks writes no odds file and shows no such section.
    plain = tmp_path / "plain"
    pipesim.write_results(pipesim.simulate(demo, trials=20, seed=1), plain)
    assert not (plain / "odds.parquet").exists()
    pipesim.report(plain)
    assert "Two clocks" not in (plain / "report.html").read_text()


def test_a_small_chance_is_not_printed_as_never():
    from pipesim.text_table import percent

    assert (percent(0.001), percent(0.0), percent(0.17)) == ("<1%", "0%", "17%")
