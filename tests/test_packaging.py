"""What a fresh install gets: the demo inside the wheel, and the numba cache between processes."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pipesim

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_demo_scenario(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for table in ("stages", "deals", "arrivals", "scenario"):
        assert f"pipesim/scenarios/demo/{table}.parquet" in names
    assert "pipesim/kernels/trial.py" in names
    for name in ("deals", "events"):  # the example history the README calibrates
        assert f"pipesim/datasets/example_crm/{name}.csv" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pipesim = pipesim.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_second_process_loads_the_kernel_from_the_cache(demo):
    pipesim.simulate(demo, trials=5, seed=0)  # compiles, or loads, and writes the cache
    code = (
        "import pipesim; from pipesim.kernels import per_deal as K; "
        "pipesim.simulate(pipesim.load_scenario(pipesim.demo_path()), trials=5); "
        "s = K.simulate_deals.stats; print(sum(s.cache_hits.values()), "
        "sum(s.cache_misses.values()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out == ["1", "0"], out
