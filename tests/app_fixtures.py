"""The planning page's test scenario (hostile names, new leads, a region) and its server.

One server for the whole test run (``page_server``, session scope): started in-process on
a free loopback port in a background thread, stopped when the run ends.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import build, deals_frame, stages_frame
from report_fixtures import EVIL_REGION, EVIL_STAGE, STAGES

TRIALS, SEED = 300, 7
EVIL_INDEX = STAGES.index(EVIL_STAGE)  # the stage's number in the form's field names


def write_hostile_scenario(folder: Path) -> Path:
    """A 3-stage book whose second stage and one region are HTML, with new leads per region."""
    from pipesim.io.scenario_folder import write_scenario

    stages = stages_frame([0.6, 0.5, 0.7], dwell_days=15.0, names=STAGES)
    region = ["North" if i % 2 else EVIL_REGION for i in range(60)]
    deals = deals_frame([STAGES[i % 3] for i in range(60)], 10_000.0, region=region)
    months = [f"2027-{m:02d}" for m in range(1, 7)]
    arrivals = pd.DataFrame(
        {
            "period": months * 2,
            "leads": [12.0] * 12,
            "amount": [8_000.0] * 12,
            "region": ["North"] * 6 + [EVIL_REGION] * 6,
        }
    )
    scenario = build(
        stages, deals, arrivals, horizon_months=6, name="hostile <book>", currency="EUR"
    )
    write_scenario(folder, scenario)
    return folder


@pytest.fixture(scope="session")
def hostile_folder(tmp_path_factory) -> Path:
    return write_hostile_scenario(tmp_path_factory.mktemp("app") / "scenario")


@pytest.fixture(scope="session")
def page_server(hostile_folder):
    """The planning page of the hostile scenario, served on loopback for the whole run."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from pipesim.app.server import running

    with running(hostile_folder, port=0, trials=TRIALS, seed=SEED) as server:
        yield server
