"""A results folder with hostile names, segments, a comparison and a sensitivity table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import pipesim
from conftest import build, deals_frame, stages_frame
from pipesim.io import parquet

EVIL_STAGE = "<script>alert(1)</script>"
EVIL_REGION = "<img src=x onerror=alert(2)>"
STAGES = ["Lead", EVIL_STAGE, 'Offer & "Quote"']
TRIALS, SEED, TARGET = 400, 11, 600_000.0


def compare_frame() -> pd.DataFrame:
    """compare.parquet as the planning branch writes it (one row per variant, base first)."""
    mean = np.array([500_000.0, 560_000.0, 470_000.0])
    return pd.DataFrame(
        {
            "variant": ["base", "leads*1.2", "<b>price cut</b>"],
            "mean": mean,
            "p10": mean * 0.8,
            "p50": mean * 0.99,
            "p90": mean * 1.2,
            "delta_mean": mean - mean[0],
            "delta_p10": (mean - mean[0]) * 0.5,
            "delta_p50": mean - mean[0],
            "delta_p90": (mean - mean[0]) * 1.5,
            "p_better": [0.0, 0.93, 0.08],
        }
    )


def sensitivity_long() -> pd.DataFrame:
    """sensitivity.parquet, long form: one row per input moved down / up."""
    inputs = ["conversion Lead", "dwell Lead", f"conversion {EVIL_STAGE}", "amount"]
    p50 = {"conversion Lead": (-90e3, 85e3), "dwell Lead": (20e3, -25e3)}
    p50 |= {f"conversion {EVIL_STAGE}": (-40e3, 41e3), "amount": (-50e3, 50e3)}
    rows = []
    for name in inputs:
        for side, d in zip(("down", "up"), p50[name], strict=True):
            rows.append({"input": name, "direction": side, "delta_p50": d, "delta_p10": d * 0.8})
    return pd.DataFrame(rows)


def make_results(folder: Path) -> pipesim.Result:
    """Simulate a 3-stage book in two regions and write it, plus compare and sensitivity."""
    stages = stages_frame([0.6, 0.5, 0.7], dwell_days=15.0, names=STAGES)
    stage_of = [STAGES[i % 3] for i in range(60)]
    region = ["North" if i % 2 else EVIL_REGION for i in range(60)]
    deals = deals_frame(stage_of, 10_000.0, region=region)
    scenario = build(stages, deals, horizon_months=6, name="hostile <book>", currency="EUR")
    result = pipesim.simulate(scenario, trials=TRIALS, seed=SEED, by="region")
    pipesim.write_results(result, folder)
    parquet.write_tables(
        folder, {"compare": compare_frame(), "sensitivity": sensitivity_long()}, result.metadata()
    )
    return result
