"""Shared builders and fixtures: small scenarios, the demo, the wheel (built once per run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipesim

ROOT = Path(__file__).resolve().parents[1]  # the checkout: pyproject.toml, src/, tests/
Z = 4.5  # tolerance in Monte Carlo standard errors for mean checks (two-sided p ~ 7e-6)


def stages_frame(conversion, dwell_days=10.0, dwell_cv=1.0, names=None, **extra):
    n = len(conversion)
    names = names or [f"S{i + 1}" for i in range(n)]
    frame = pd.DataFrame(
        {
            "stage": names,
            "conversion": conversion,
            "dwell_days": np.broadcast_to(dwell_days, n).astype(float),
            "dwell_cv": np.broadcast_to(dwell_cv, n).astype(float),
        }
    )
    for key, value in extra.items():
        frame[key] = np.broadcast_to(np.asarray(value, dtype=object), n)
    return frame


def deals_frame(stages, amounts, ages=0.0, **segments):
    n = len(stages)
    frame = pd.DataFrame(
        {
            "deal_id": [f"d{i}" for i in range(n)],
            "stage": stages,
            "amount": np.broadcast_to(amounts, n).astype(float),
            "days_in_stage": np.broadcast_to(ages, n).astype(float),
        }
    )
    for key, value in segments.items():
        frame[key] = value
    return frame


def build(stages, deals=None, arrivals=None, as_of="2027-01-01", horizon_months=12, **kw):
    return pipesim.make_scenario(
        stages, deals, arrivals, as_of=as_of, horizon_months=horizon_months, **kw
    )


@pytest.fixture(scope="session")
def demo():
    return pipesim.load_scenario(pipesim.demo_path())


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    """A writable copy of the demo scenario folder."""
    target = tmp_path / "scenario"
    shutil.copytree(pipesim.demo_path(), target)
    return target


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once per test run (as a user's pip would build it)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
         "-q", str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (built,) = out.glob("pipesim-*.whl")
    return built
