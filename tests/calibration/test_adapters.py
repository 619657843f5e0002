"""Adapters on small fixtures, the vendored Maven data, real data when present, messy files."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from conftest import ROOT
from pipesim.calibration.adapters import read_history
from pipesim.calibration.fit import calibrate_history
from pipesim.cli import main
from pipesim.datasets import load_maven_crm, maven_crm_path
from pipesim.errors import PipesimError

FIX = ROOT / "tests" / "fixtures" / "crm"
SHARED = ROOT / ".." / "shared" / "data"


def counts(history):
    return {i.reason: i.rows for i in history.issues}


def test_messy_generic_file_counts_every_row():
    h = read_history(FIX / "messy_deals.csv", stages=["Lead", "Demo", "Proposal"])
    assert h.rows_read == 12
    assert counts(h) == {
        "duplicate deal_id": 1,
        "no readable created_at": 1,
        "unknown status": 1,
        "closed without closed_at": 1,
        "closed before created": 1,
        "unknown stage": 1,
        "amount missing or 0": 2,
        "blank region": 1,
    }
    set_aside = sum(i.rows for i in h.issues if i.action == "set aside")
    assert len(h.deals) + set_aside == h.rows_read
    # US (02/15/2023) and European (15/02/2023) dates in one column both read
    got = h.deals.set_index("deal_id")["created_at"]
    assert got["9"] == pd.Timestamp("2023-02-15") == got["10"]
    cal = calibrate_history(h, "2023-04-01")
    report = cal.report.set_index("item")["rows"]
    assert report["rows read"] == 12 and report["rows used"] == 6


def test_generic_without_stage_order_says_what_to_do():
    with pytest.raises(PipesimError, match="stages="):
        read_history(FIX / "messy_deals.csv")


def test_unreadable_file_exits_2_with_a_message(tmp_path):
    bad = tmp_path / "deals.csv"
    bad.write_bytes(b"\xff\xfe\x00\x01binary\x00junk")
    runner = CliRunner()
    res = runner.invoke(main, ["calibrate", str(bad), "--as-of", "2023-01-01", "--out", "x"])
    assert res.exit_code == 2
    assert "cannot be read" in res.output or "column" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(
        main, ["calibrate", str(tmp_path / "nope.csv"), "--as-of", "2023-01-01", "--out", "x"]
    )
    assert res.exit_code == 2 and "no such file" in res.output


def test_maven_vendored_dataset():
    h = load_maven_crm()
    assert h.rows_read == 8800
    c = counts(h)
    assert c["Prospecting deal without dates"] == 500
    assert c["product name differs from products.csv"] == 1400  # GTXPro vs GTX Pro
    assert len(h.deals) == 8300 and h.funnel == ("Engaging",)
    # open deals are valued at list price; won deals book their close_value
    assert "GTXPro" not in set(h.deals["product"])
    gtx_pro = h.deals[h.deals["product"] == "GTX Pro"]
    assert (gtx_pro.loc[gtx_pro["status"] == "open", "open_amount"] == 4821).all()
    assert (h.deals["sector"] != "technolgy").all()
    assert "Public Domain" in pipesim.datasets.load_maven_crm.__doc__


def test_maven_cli_calibrate_then_run(tmp_path):
    runner = CliRunner()
    out = tmp_path / "maven"
    res = runner.invoke(
        main,
        [
            "calibrate",
            str(maven_crm_path()),
            "--format",
            "maven",
            "--as-of",
            "2017-07-01",
            "--out",
            str(out),
            "--segments",
            "product",
            "--horizon-months",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "rows read" in res.output and "set aside" in res.output
    deals = pd.read_parquet(out / "deals.parquet")
    assert len(deals) > 1000 and deals["amount"].gt(0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipesim.PipesimWarning)  # a one-stage funnel
        res = runner.invoke(
            main, ["run", str(out), "--trials", "200", "--out", str(tmp_path / "r")]
        )
    assert res.exit_code == 0, res.output


def test_salesforce_opportunity_with_history():
    h = read_history(
        FIX / "salesforce_opportunity.csv", FIX / "salesforce_history.csv", format="salesforce"
    )
    assert h.funnel == ("Prospecting", "Qualification", "Negotiation/Review")
    assert len(h.deals) == 8
    assert set(h.deals["status"]) == {"won", "lost", "open"}
    assert h.deals["created_at"].min() == pd.Timestamp("2022-02-27")  # DD/MM/YYYY, BOM
    assert counts(h)["lost deal: stage lost from unknown"] == 1
    cal = calibrate_history(h, "2022-09-01")
    assert len(cal.scenario.stages) == 3


def test_salesforce_flat_report():
    h = read_history(FIX / "salesforce_report.csv", format="salesforce")
    assert h.funnel == ("Qualify", "Discover", "Solution", "Decision", "Commit")
    assert counts(h)["closed before created"] == 2
    assert len(h.deals) == 11


def test_hubspot():
    h = read_history(FIX / "hubspot_deals.csv", format="hubspot")
    assert h.funnel[0] == "Appointment Scheduled"
    assert dict(h.deals["status"].value_counts()) == {"open": 4, "won": 1, "lost": 1}
    assert counts(h)["amount missing or 0"] == 1
    cal = calibrate_history(h, "2024-03-01")
    assert len(cal.scenario.deals) >= 3


def test_pipedrive():
    h = read_history(FIX / "pipedrive_deals.csv", format="pipedrive")
    assert h.funnel == (
        "Qualified",
        "Contact Made",
        "Demo Scheduled",
        "Proposal Made",
        "Negotiations Started",
    )
    assert counts(h)["unknown status"] == 1  # the deleted deal
    lost = h.deals[h.deals["status"] == "lost"]
    assert lost["stage"].tolist() == ["Contact Made"]


def test_ibm_fixture_conversions_only():
    h = read_history(FIX / "ibm_win_loss.csv", format="ibm")
    assert len(h.deals) == 12 and not h.dated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipesim.PipesimWarning)
        cal = calibrate_history(h, "2001-01-01", segments=["region"])
    assert len(cal.scenario.deals) == 0 and len(cal.scenario.arrivals) == 0
    assert 0 < cal.fits["Identified"].conversion < 1


@pytest.mark.skipif(
    not (SHARED / "ibm_win_loss").is_dir(), reason="../shared/data/ibm_win_loss not present"
)
def test_ibm_real_file_counts():
    h = read_history(SHARED / "ibm_win_loss" / "WA_Fn-UseC_-Sales-Win-Loss.csv.zip", format="ibm")
    assert h.rows_read == 78025
    assert counts(h)["duplicate deal_id"] == 196
    assert len(h.deals) == 78025 - 196
    assert "None" in set(h.deals["competitor_type"])  # not read as missing


@pytest.mark.skipif(
    not (SHARED / "salesforce_fixture").is_dir(), reason="../shared/data/salesforce_fixture absent"
)
def test_salesforce_real_fixture_contradictions_counted():
    folder = SHARED / "salesforce_fixture"
    h = read_history(
        folder / "Opportunity.csv", folder / "Opportunity History.csv", format="salesforce"
    )
    assert len(h.deals) == 219
    cal = calibrate_history(h, "2023-01-01")
    assert "stage order contradicts dates" in set(cal.report["item"])


def test_wheel_ships_the_maven_dataset(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("sales_pipeline", "products", "sales_teams", "accounts"):
        assert f"pipesim/datasets/maven_crm/{name}.csv" in names
    assert "pipesim/datasets/maven_crm/SOURCE.txt" in names


def test_events_with_a_format_that_has_none_is_refused():
    with pytest.raises(PipesimError, match="events="):
        read_history(FIX / "hubspot_deals.csv", FIX / "hubspot_deals.csv", format="hubspot")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--as-of", "2000-01-01"], "no deal was created before"),
        (["--as-of", "not a date"], "is not a date"),
        (["--as-of", "2023-04-01", "--segments", "planet"], "planet"),
    ],
)
def test_calibrate_bad_options_exit_2(tmp_path, extra, needle):
    args = ["calibrate", str(FIX / "messy_deals.csv"), "--stages", "Lead,Demo,Proposal"]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_wrong_separator_and_missing_columns_exit_2(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("deal_id;created_at;stage\n1;2023-01-01;Lead\n")
    res = CliRunner().invoke(main, ["calibrate", str(semi), "--as-of", "2023-02-01", "--out", "o"])
    assert res.exit_code == 2 and "comma-separated" in res.output
    few = tmp_path / "few.csv"
    few.write_text("deal_id,created_at,stage\n1,2023-01-01,Lead\n")
    res = CliRunner().invoke(main, ["calibrate", str(few), "--as-of", "2023-02-01", "--out", "o"])
    assert res.exit_code == 2 and "status" in res.output


def test_vendored_maven_files_match_their_published_checksums():
    import hashlib

    expected = {
        "sales_pipeline.csv": "825ce8f6c32d4009548b468df3173d55a46fd73f2531f532c5459371dc52adf2",
        "accounts.csv": "e5242324768a563fc632cddfed49a29acbbf2892b8a3c6453cc9650de9ae0358",
        "products.csv": "7c1c8cbbdb6d4c286902e1985eeb529a36366d6a43f43cd4a93c4b1da2a6eb84",
        "sales_teams.csv": "aeff1272ebe196f5a27e3fc0578aa27abf48ed9ae461aa344fb95990e5ad8bd1",
    }
    for name, digest in expected.items():
        data = (maven_crm_path() / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name


def test_calibrate_of_an_export_without_dates_does_not_invite_a_run_of_zeros(tmp_path):
    from click.testing import CliRunner

    from pipesim.cli import main

    args = ["calibrate", str(FIX / "ibm_win_loss.csv"), "--format", "ibm"]
    res = CliRunner().invoke(main, [*args, "--as-of", "2020-01-01", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "Run it with" not in res.output
    assert "a run would forecast 0: its stages table holds the conversions" in res.output
