"""Quotas: P(attain) against the exact binomial for a rep, a team and the company; bad files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import pipesim
from conftest import Z, build, deals_frame, stages_frame
from pipesim.cli import main
from pipesim.errors import InputError
from pipesim.io.scenario_folder import write_scenario

P = 0.6  # each deal's chance to win; it wins or is lost 5 days after as_of (fixed dwell)
TRIALS = 4_000


def _binomial_tail(n: int, k: int, p: float = P) -> float:
    """P(Binomial(n, p) >= k)."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(max(k, 0), n + 1))


def _gap(n: int, quota: float, booked: float, amount: float = 1_000.0, p: float = P) -> float:
    """E[max(quota - booked - amount X, 0)], X ~ Binomial(n, p)."""
    return sum(
        math.comb(n, j) * p**j * (1 - p) ** (n - j) * max(quota - booked - amount * j, 0.0)
        for j in range(n + 1)
    )


def _book():
    # Rep A: 10 deals, rep B: 6 (team X); rep C: 4 (team Y). Every deal is worth 1,000,
    # wins with probability 0.6 exactly (no parameter uncertainty), 5 days after as_of:
    # inside FY2027-Q1 (April-June, fiscal year from April). Rep A has 2,000 booked in
    # April (won.parquet), and 700 booked in March (FY2026: not in the quarter).
    stages = stages_frame([P], dwell_days=5.0, dwell_cv=0.0, names=["Offer"])
    reps = ["A"] * 10 + ["B"] * 6 + ["C"] * 4
    teams = ["X"] * 16 + ["Y"] * 4
    deals = deals_frame(["Offer"] * 20, 1_000.0, rep=reps, team=teams)
    won = pd.DataFrame(
        {
            "deal_id": ["w1", "w2"],
            "closed_at": ["2026-04-10", "2026-03-20"],
            "amount": [2_000.0, 700.0],
            "rep": ["A", "A"],
            "team": ["X", "X"],
        }
    )
    quotas = pd.DataFrame(
        {
            "rep": ["A", None, None, "C"],
            "team": [None, "X", None, None],
            "period": ["FY2027-Q1", "FY2027-Q1", "FY2027-Q1", "2026-05"],
            "quota": [6_000.0, 11_000.0, 13_000.0, 3_000.0],
        }
    )
    return build(
        stages,
        deals,
        as_of="2026-05-01",
        horizon_months=2,
        fiscal_year_start=4,
        calibrated=True,
        won=won,
        quotas=quotas,
    )


def test_attainment_matches_the_exact_binomial():
    sc = _book()
    quota = pipesim.simulate(sc, trials=TRIALS, seed=7).quota()
    assert list(quota.columns) == [
        "rep",
        "team",
        "period",
        "quota",
        "mean",
        "p10",
        "p50",
        "p90",
        "p_attain",
        "p_attain_80",
        "expected_gap",
    ]
    # (deals, booked, quota) of: rep A, team X (A + B), the company, rep C in May.
    cases = [(10, 2_000.0, 6_000.0), (16, 2_000.0, 11_000.0), (20, 2_000.0, 13_000.0)]
    cases.append((4, 0.0, 3_000.0))
    for row, (n, booked, q) in zip(quota.to_dict("records"), cases, strict=True):
        k = math.ceil((q - booked) / 1_000.0)
        k80 = math.ceil((0.8 * q - booked) / 1_000.0)
        for got, exact in (
            (row["p_attain"], _binomial_tail(n, k)),
            (row["p_attain_80"], _binomial_tail(n, k80)),
        ):
            # Monte Carlo standard error sqrt(p(1-p)/T); Z = 4.5 of them.
            assert abs(got - exact) <= Z * math.sqrt(exact * (1 - exact) / TRIALS) + 1e-12
        mean = booked + 1_000.0 * n * P
        sd = 1_000.0 * math.sqrt(n * P * (1 - P))
        assert abs(row["mean"] - mean) <= Z * sd / math.sqrt(TRIALS)
        gap = _gap(n, q, booked)
        # The gap is bounded by q: its sd is at most q; Z standard errors.
        assert abs(row["expected_gap"] - gap) <= Z * q / math.sqrt(TRIALS)


def test_a_team_is_its_reps_summed_trial_by_trial():
    sc = _book()
    res = pipesim.simulate(sc, trials=500, seed=3)
    by_rep = res.breakdown("rep,team")
    seg = by_rep.segments
    cols = [1 + int(k) for k in np.flatnonzero(seg["team"].to_numpy() == "X")]
    team = by_rep.revenue[:, :, cols].sum(axis=(1, 2)) + 2_000.0
    quota = res.quota()
    row = quota[quota["team"] == "X"].iloc[0]
    assert row["p_attain"] == np.mean(np.round(team, 2) >= 11_000.0)  # exactly
    assert row["p50"] == np.quantile(team, 0.5)


def test_cent_precision():
    # A rep whose revenue is exactly its quota up to float noise attains it.
    from pipesim.simulation.attainment import attainment

    got = attainment(0.3, np.array([0.1 + 0.2, 0.29, 0.3]), (0.1, 0.5, 0.9))
    assert got["p_attain"] == pytest.approx(2 / 3)
    assert got["expected_gap"] == pytest.approx(0.01 / 3)


def test_run_writes_and_prints_quota(tmp_path):
    write_scenario(tmp_path / "s", _book())
    out = tmp_path / "r"
    res = CliRunner().invoke(
        main, ["run", str(tmp_path / "s"), "--trials", "300", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    text = res.output[res.output.index("Quotas:") :]
    lines = [ln for ln in text.splitlines()[3:7]]
    assert lines[0].startswith("team=X") or lines[0].startswith("company") or "rep=" in lines[0]
    shown = [float(ln.split()[-3].rstrip("%<")) for ln in lines if "%" in ln]
    assert shown == sorted(shown)  # least likely first
    table = pq.read_table(out / "quota.parquet").to_pandas()
    assert len(table) == 4 and list(table["period"])[-1] == "2026-05"
    assert pipesim.load_scenario(tmp_path / "s").won is not None
    shown = CliRunner().invoke(main, ["show", str(tmp_path / "s")]).output
    assert "won (2 deal(s) already won, 2,700 booked)" in shown and "quotas (4 row(s))" in shown
    quarters = pd.read_parquet(out / "quarters.parquet")
    q1 = quarters[(quarters["quarter"] == "Q1") & (quarters["metric"] == "revenue")].iloc[0]
    assert not q1["complete"] and q1["mean"] > 2_000.0  # booked April revenue included
    page = pipesim.report(out, xlsx=tmp_path / "book.xlsx")[0].read_text(encoding="utf-8")
    assert "Quotas and attainment" in page
    import openpyxl

    assert "Quota" in openpyxl.load_workbook(tmp_path / "book.xlsx").sheetnames


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda q: q.assign(region=["N", None, None, None]),
            "quotas.parquet: owner column(s) 'region'",
        ),
        (
            lambda q: q.assign(period=["FY2027-Q1", "FY2028-Q1", "FY2027-Q1", "2026-05"]),
            "quotas.parquet, column 'period': 1 row(s) are outside the horizon "
            "(2026-05-01 to 2026-06-30): row 2 ('FY2028-Q1')",
        ),
        (
            lambda q: q.assign(quota=[6_000.0, -1.0, 13_000.0, 3_000.0]),
            "quotas.parquet, column 'quota': 1 row(s) are missing or negative: row 2 (-1.0)",
        ),
        (
            lambda q: q.assign(period=["FY2027-Q1", "FY2027", "FY2027-Q1", "2026-05"]),
            "row 2 ('FY2027')",  # the fiscal year runs past the horizon
        ),
    ],
)
def test_bad_quota_files_exit_2(tmp_path, change, message):
    write_scenario(tmp_path / "s", _book())
    quotas = pd.read_parquet(tmp_path / "s" / "quotas.parquet")
    change(quotas).to_parquet(tmp_path / "s" / "quotas.parquet")
    res = CliRunner().invoke(
        main, ["run", str(tmp_path / "s"), "--trials", "10", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_target_for_an_owner_aims_at_its_quota(tmp_path):
    # Rep C has no leads: its 4 deals alone decide; with the quota 3,000 for May the
    # probability the open deals reach it is P(Binomial(4, 0.6) >= 3) = 0.4752 < 0.8,
    # and no lead of rep C can be scaled: the search says so.
    sc = _book()
    with pytest.raises(InputError, match="no new leads"):
        pipesim.target(sc, owner="rep=C", period="2026-05", trials=200)
    leads = pd.DataFrame(
        {"period": ["2026-05", "2026-06"], "leads": 5.0, "amount": 1_000.0, "rep": "A", "team": "X"}
    )
    sc = sc.replace(arrivals=leads)
    res = pipesim.target(sc, owner="rep=A", period="FY2027-Q1", trials=TRIALS, seed=1)
    meta = res.metadata
    assert meta["owner"] == "rep=A" and meta["window"] == "FY2027-Q1"
    assert float(meta["revenue_target"]) == 6_000.0 and float(meta["booked"]) == 2_000.0
    # Open deals alone (and the 2,000 booked): P(Binomial(10, 0.6) >= 4) = 0.9452.
    exact = _binomial_tail(10, 4)
    got = float(meta["probability_open_deals_only"])
    assert abs(got - exact) <= Z * math.sqrt(exact * (1 - exact) / TRIALS)
    assert "by rep=A in FY2027-Q1" in res.text
    write_scenario(tmp_path / "s", sc)
    cli = CliRunner().invoke(
        main,
        ["target", str(tmp_path / "s"), "--period", "FY2027-Q1", "--owner", "rep=A",
         "--trials", "200", "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    bad = CliRunner().invoke(
        main,
        ["target", str(tmp_path / "s"), "--period", "FY2027-Q1", "--owner", "region=N",
         "--trials", "20", "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert bad.exit_code == 2 and "--owner 'region=N'" in bad.output


def test_new_leads_count_for_the_owner_of_their_arrival_row():
    # Rep A also gets Poisson(10) new leads in May (arrival rows carry rep and team); each
    # wins with probability 0.6 five days after it arrives (in May or early June), worth
    # 1,000: a thinned Poisson(6). Its Q1 revenue is 2,000 booked + 1,000 x (Binomial(10,
    # 0.6) + Poisson(6)).
    leads = pd.DataFrame(
        {"period": ["2026-05"], "leads": [10.0], "amount": [1_000.0], "rep": ["A"], "team": ["X"]}
    )
    sc = _book().replace(arrivals=leads)
    # P(B + N >= 12), B ~ Binomial(10, 0.6), N ~ Poisson(6): the exact convolution.
    pois = [math.exp(-6.0) * 6.0**j / math.factorial(j) for j in range(80)]
    binom = [math.comb(10, j) * P**j * (1 - P) ** (10 - j) for j in range(11)]
    exact = sum(b * p for i, b in enumerate(binom) for j, p in enumerate(pois) if i + j >= 12)
    sc = sc.replace(quotas=sc.quotas.assign(quota=[14_000.0, 11_000.0, 13_000.0, 3_000.0]))
    quota = pipesim.simulate(sc, trials=TRIALS, seed=11).quota()
    rep_a = quota.iloc[0]
    # Monte Carlo standard error sqrt(p(1-p)/T); Z = 4.5 of them. Amounts of 1,000 drawn
    # as exp(log(1000)) may be off by 1e-13: the comparison at cent precision absorbs it.
    assert abs(rep_a["p_attain"] - exact) <= Z * math.sqrt(exact * (1 - exact) / TRIALS)
    sd = 1_000.0 * math.sqrt(10 * P * (1 - P) + 6.0)
    assert abs(rep_a["mean"] - (2_000.0 + 1_000.0 * (6.0 + 6.0))) <= Z * sd / math.sqrt(TRIALS)
    # Rep C (no leads) keeps its binomial: P(Binomial(4, 0.6) >= 3) in May.
    exact_c = _binomial_tail(4, 3)
    rep_c = quota.iloc[3]
    assert abs(rep_c["p_attain"] - exact_c) <= Z * math.sqrt(exact_c * (1 - exact_c) / TRIALS)


def test_a_months_quota_is_pro_rated_to_its_week_period():
    # 4-4-5 from April: FY2027's first periods are 2026-03-29..04-25 (28 days, "2026-04"),
    # 04-26..05-23 (28 days, "2026-05"), 05-24..06-27 (35 days, "2026-06"). A May quota of
    # 3,100 (100 a day over May's 31 days) is 2,800 for the 28-day period named May.
    stages = stages_frame([P], dwell_days=5.0, dwell_cv=0.0, names=["Offer"])
    deals = deals_frame(["Offer"] * 4, 1_000.0, rep=["C"] * 4)
    quotas = pd.DataFrame({"rep": ["C", "C"], "period": ["2026-05", "FY2027-Q1"]})
    quotas["quota"] = [3_100.0, 9_000.0]
    sc = build(
        stages,
        deals,
        as_of="2026-04-01",
        horizon_months=3,
        fiscal_year_start=4,
        fiscal_calendar="4-4-5",
        calibrated=True,
        quotas=quotas,
    )
    table = pipesim.simulate(sc, trials=200, seed=1).quota()
    assert table["quota"].tolist() == [3_100.0 * 28 / 31, 9_000.0]  # a quarter keeps its own
