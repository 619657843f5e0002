"""`pipesim bench` and the chunked Parquet helpers it uses."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import pipesim
from conftest import ROOT
from pipesim.io import parquet
from pipesim.simulation.bench import bench_deals, write_bench_book


def test_book_is_written_in_row_groups_and_reads_back_chunk_by_chunk(tmp_path):
    folder = write_bench_book(tmp_path / "book", 25_000)
    assert pq.ParquetFile(folder / "deals.parquet").num_row_groups == 1
    chunks = list(bench_deals(25_000, chunk=10_000))
    parquet.write_table_chunks(tmp_path / "deals.parquet", chunks)
    assert pq.ParquetFile(tmp_path / "deals.parquet").num_row_groups == 3
    back = list(parquet.read_table_chunks(tmp_path / "deals.parquet", ["deal_id", "amount"]))
    assert [len(c) for c in back] == [10_000, 10_000, 5_000]
    np.testing.assert_array_equal(
        pd.concat(back)["amount"].to_numpy(), pd.concat(chunks)["amount"].to_numpy()
    )
    scenario = pipesim.load_scenario(folder)
    assert len(scenario.deals) == 25_000
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_bench_command_reports_its_figures():
    run = subprocess.run(
        [sys.executable, "-m", "pipesim.cli", "bench", "--deals", "20000", "--trials", "50"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for needle in ("20,000 open deals x 50 trials", "M deal-trials/s", "peak memory", "compile"):
        assert needle in run.stdout
    report = pipesim.bench(5_000, 10)
    assert report.deals == 5_000 and report.deal_trials_per_second > 0
    assert report.peak_rss_bytes > 0


def test_bench_rejects_bad_sizes():
    run = subprocess.run(
        [sys.executable, "-m", "pipesim.cli", "bench", "--deals", "0"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "Traceback" not in run.stderr


def test_categorical_segments_read_like_plain_values(tmp_path):
    from conftest import build, deals_frame, stages_frame

    plain = deals_frame(["S1", "S2", "S3", "S4"], 100.0, region=["N", None, "S", "N"])
    plain["year"] = [2024.0, 2025.0, np.nan, 2024.0]
    cat = plain.astype({"region": "category", "year": "category"})
    stages = stages_frame([0.5, 0.6, 0.7, 0.8])
    a, b = build(stages, plain), build(stages, cat)
    for col in ("region", "year"):
        pd.testing.assert_series_equal(a.deals[col], b.deals[col])
    assert list(b.deals["year"].iloc[[0, 1, 3]]) == ["2024", "2025", "2024"]
    assert b.deals["year"].isna().iloc[2]
    ra = pipesim.simulate(a, trials=50, seed=1, by="region,year")
    rb = pipesim.simulate(b, trials=50, seed=1, by="region,year")
    np.testing.assert_array_equal(ra.revenue, rb.revenue)
