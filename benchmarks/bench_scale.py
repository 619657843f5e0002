"""Scale benchmark: the engine across book sizes, against the NumPy reference and plain Python.

For each book size the whole ``pipesim bench`` command runs in a fresh process
(so its "first kernel call" is the numba cache load of a second process) and
reports deal-trials per second, compile/cache time and peak memory. At the
smaller sizes the NumPy reference (``thin_arrivals=True``, the fair form) and a
plain Python loop run on the same book in this process for the ratio.

    python benchmarks/bench_scale.py [--sizes 10000,100000,1000000,10000000]
        [--trials 1000,10000] [--budget 1e10] [--numpy-max 1000000] [--engines numba,fast]

Each engine (``numba``: per deal; ``fast``: winners only) gets its own row.

Runs whose deals x trials exceed ``--budget`` are run with fewer trials
(deals x trials = budget), and the table says so: the machine here has 2 cores
shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

import numpy as np

import pipesim
from pipesim.engines import numba as numba_engine
from pipesim.engines import numpy as numpy_engine
from pipesim.prepare.kernel_inputs import prepare
from pipesim.simulation.bench import bench_arrivals, bench_deals, bench_stages, machine


def pipesim_bench(deals: int, trials: int, engine: str = "numba") -> dict[str, float]:
    """Run ``pipesim bench --json`` in a new process and read its figures."""
    out = subprocess.run(
        [sys.executable, "-m", "pipesim.cli", "bench", "--deals", str(deals), "--trials",
         str(trials), "--engine", engine, "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    report = json.loads(out)
    return {
        "compile_s": report["compile_seconds"],
        "prepare_s": report["prepare_seconds"],
        "run_s": report["run_seconds"],
        "rate": report["deal_trials_per_second"] / 1e6,
        "peak_gib": report["peak_rss_bytes"] / 2**30,
    }


def python_loop(prepared, trials: int, seed: int = 0) -> float:
    """Seconds for a plain Python per-deal loop (win draw, gamma dwell, value) on the book."""
    rng = random.Random(seed)
    unit_conv, unit_of = prepared.funnel.unit_conv, prepared.funnel.unit_of
    gs_of, amount = prepared.deals.cell, prepared.deals.amount
    n_stages = unit_of.shape[1]
    pwin = np.flip(np.cumprod(np.flip(unit_conv[unit_of[0]])))
    horizon = float(prepared.day_period.shape[0])
    gs_list, amount_list = gs_of.tolist(), amount.tolist()
    start = time.perf_counter()
    for _ in range(trials):
        total = 0.0
        for gs, value in zip(gs_list, amount_list, strict=True):
            s = gs % n_stages
            if rng.random() < pwin[s]:
                t = 0.0
                for _stage in range(s, n_stages):
                    t += rng.gammavariate(1.0, 15.0)
                if t < horizon:
                    total += value
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    parser.add_argument("--trials", default="1000,10000")
    parser.add_argument("--budget", type=float, default=1e10)
    parser.add_argument("--numpy-max", type=int, default=1_000_000)
    parser.add_argument("--python-deals", type=int, default=10_000)
    parser.add_argument("--engines", default="numba,fast")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    trial_counts = [int(t) for t in args.trials.split(",")]
    print(f"machine: {machine()}")
    print(
        "| engine | deals | trials asked | trials run | M deal-trials/s | x NumPy ref | peak GiB "
        "| cache load s (2nd process) | prepare s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [
        (engine, deals, trials)
        for deals in sizes
        for trials in trial_counts
        for engine in args.engines.split(",")
    ]
    np_rates: dict[int, float] = {}
    for engine, deals, trials in rows:
        run_trials = int(min(trials, max(1, args.budget // deals)))
        fig = pipesim_bench(deals, run_trials, engine)
        ratio = "-"
        if deals <= args.numpy_max and trials == trial_counts[0] and deals not in np_rates:
            scenario = pipesim.make_scenario(
                bench_stages(), next(bench_deals(deals)), bench_arrivals(),
                as_of="2027-01-01", horizon_months=12,
            )  # fmt: skip
            prepared = prepare(scenario)
            numba_engine.run(prepared, 2, seed=0)
            np_trials = max(1, min(run_trials, 20_000_000 // deals))
            start = time.perf_counter()
            numpy_engine.run(prepared, np_trials, seed=0, thin_arrivals=True)
            np_rates[deals] = deals * np_trials / (time.perf_counter() - start) / 1e6
        if deals in np_rates and trials == trial_counts[0]:
            ratio = f"{fig['rate'] / np_rates[deals]:.1f} (NumPy {np_rates[deals]:.1f})"
        note = "" if run_trials == trials else " (reduced)"
        print(
            f"| {engine} | {deals:,} | {trials:,} | {run_trials:,}{note} | {fig['rate']:.1f} "
            f"| {ratio} | {fig['peak_gib']:.2f} | {fig['compile_s']:.2f} | {fig['prepare_s']:.2f} |"
        )
    scenario = pipesim.make_scenario(
        bench_stages(), next(bench_deals(args.python_deals)), bench_arrivals(),
        as_of="2027-01-01", horizon_months=12,
    )  # fmt: skip
    prepared = prepare(scenario)
    py_trials = 5
    seconds = python_loop(prepared, py_trials)
    py_rate = args.python_deals * py_trials / seconds / 1e6
    print(f"\nplain Python loop ({args.python_deals:,} deals x {py_trials} trials, wins and "
          f"timing only): {py_rate:.2f} M deal-trials/s")  # fmt: skip


if __name__ == "__main__":
    main()
