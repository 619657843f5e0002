"""`pipesim show`: every table of a scenario, readable and bounded (the first deals, counted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from click.testing import CliRunner

from pipesim import api
from pipesim.cli import main


def test_show_prints_every_table_and_the_first_deals_with_their_count():
    res = CliRunner().invoke(main, ["show"])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "pipesim · demo · as of 2027-01-01 · 12 months · EUR" in text
    assert "stages (funnel Prospect > Qualified > Visited > Offer > Won; 1 segment override" in text
    assert "deals (3,000 open deal(s); the first 10)" in text
    assert "D00010" in text and "D00011" not in text
    lines = text.splitlines()
    arrivals = lines[lines.index("arrivals (144 row(s))") :]
    assert sum(line.startswith("2027-") for line in arrivals) == 144  # every row
    assert "horizon_months" in text and "levers" not in text


def test_show_takes_fewer_deals_and_shows_levers_inf_and_empty_cells(demo_copy):
    stages = pd.read_parquet(demo_copy / "stages.parquet")
    stages["loss_days"] = np.where(stages["stage"] == "Offer", np.inf, np.nan)
    stages.to_parquet(demo_copy / "stages.parquet")
    settings = pd.read_parquet(demo_copy / "scenario.parquet").assign(format_version=3)
    settings.to_parquet(demo_copy / "scenario.parquet")
    pd.DataFrame({"variant": ["v"], "quantity": ["leads"], "how": ["scale"], "value": [1.5]}
                 ).to_parquet(demo_copy / "levers.parquet")  # fmt: skip
    text = api.show_scenario(demo_copy, deal_rows=2)
    assert "deals (3,000 open deal(s); the first 2)" in text and "D00003" not in text
    offer = next(line for line in text.splitlines() if line.startswith("Offer "))
    assert offer.split()[-3:] == ["inf", "1", "gamma"]  # loss_days inf, its defaults filled
    assert "levers (1 row(s))" in text
    res = CliRunner().invoke(main, ["show", str(demo_copy), "--deal-rows", "0"])
    assert res.exit_code == 0, res.output
    assert "deals (3,000 open deal(s); the first 0)" in res.output
    assert "columns: deal_id, stage, amount, days_in_stage, region, product_line" in res.output


def test_show_of_a_bad_folder_exits_2(tmp_path):
    res = CliRunner().invoke(main, ["show", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no such scenario folder" in res.output
