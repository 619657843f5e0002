"""Benchmark: the numba engine against the NumPy reference on the same scenario.

100,000 open deals, 5 stages, 1,000 new leads a month, 1,000 trials, 12 months.
The JIT is warmed first; each engine's best of ``--repeat`` runs is reported as
deal-trials per second (open deals x trials / seconds), with the ratio; then the
same book with a loss clock on every stage, per-deal engine and fast path. Then the
whole `pipesim run` process is timed on a 400,000-deal book x 1,000 trials.

    python benchmarks/bench_engine.py [--deals 100000] [--trials 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pipesim
from pipesim.engines import fast
from pipesim.engines import numba as numba_engine
from pipesim.engines import numpy as numpy_engine
from pipesim.prepare.kernel_inputs import prepare
from pipesim.simulation.bench import machine

STAGES = ["Lead", "Qualified", "Visited", "Offer", "Negotiation"]


def bench_tables(n_deals: int, leads_per_month: float = 1_000.0, seed: int = 1) -> dict:
    """A realistic 5-stage book: most deals near the top, gamma dwell, value spread."""
    rng = np.random.default_rng(seed)
    stages = pd.DataFrame(
        {
            "stage": STAGES,
            "conversion": [0.40, 0.50, 0.60, 0.55, 0.70],
            "dwell_days": [15.0, 20.0, 25.0, 20.0, 15.0],
            "dwell_cv": [1.0, 0.8, 0.7, 0.6, 0.5],
            "value_cv": [0.0, 0.0, 0.0, 0.1, 0.2],
            "conversion_n": [500.0, 300.0, 200.0, 150.0, 100.0],
        }
    )
    stage = rng.choice(STAGES, n_deals, p=[0.35, 0.25, 0.20, 0.12, 0.08])
    deals = pd.DataFrame(
        {
            "deal_id": np.arange(n_deals),
            "stage": stage,
            "amount": rng.lognormal(np.log(8_000.0), 0.6, n_deals).round(2),
            "days_in_stage": rng.exponential(15.0, n_deals).round(),
            "region": rng.choice(["North", "South", "East", "West"], n_deals),
        }
    )
    months = [f"2027-{m:02d}" for m in range(1, 13)]
    arrivals = pd.DataFrame(
        {
            "period": np.repeat(months, 4),
            "leads": leads_per_month / 4,
            "amount": 8_000.0,
            "amount_cv": 0.6,
            "region": np.tile(["North", "South", "East", "West"], 12),
        }
    )
    scenario = pd.DataFrame(
        {
            "as_of": [pd.Timestamp("2027-01-01").date()],
            "horizon_months": [12],
            "name": ["bench"],
            "currency": ["EUR"],
        }
    )
    return {"stages": stages, "deals": deals, "arrivals": arrivals, "scenario": scenario}


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--run-deals",
        type=int,
        default=400_000,
        help="book size for the whole-process `pipesim run` timing (0: skip)",
    )
    args = parser.parse_args()

    tables = bench_tables(args.deals)
    scenario = pipesim.make_scenario(
        tables["stages"], tables["deals"], tables["arrivals"], as_of="2027-01-01", horizon_months=12
    )
    prepared = prepare(scenario)
    start = time.perf_counter()
    numba_engine.run(prepared, 4, seed=0)  # compile, or load the on-disk cache
    warm = time.perf_counter() - start
    work = args.deals * args.trials
    t_numba = _best(lambda: numba_engine.run(prepared, args.trials, seed=0), args.repeat)
    t_numpy = _best(
        lambda: numpy_engine.run(prepared, args.trials, seed=0, thin_arrivals=True),
        max(1, args.repeat - 2),
    )
    print(f"machine: {machine()}")
    print(
        f"scenario: {args.deals:,} open deals, 5 stages, 1,000 new leads/month, "
        f"{args.trials:,} trials, 12 months"
    )
    print(f"first call (compile or cache load): {warm:.2f} s")
    print(f"numba engine : {t_numba:8.3f} s  {work / t_numba / 1e6:8.1f} M deal-trials/s")
    print(f"numpy engine : {t_numpy:8.3f} s  {work / t_numpy / 1e6:8.1f} M deal-trials/s")
    print(f"ratio numba / numpy: {t_numpy / t_numba:.1f}x")

    # The same book with a loss clock on every stage (losses 3x slower than advances):
    # every aged deal gets its own odds. Timed in this run against the one-clock book.
    stages = tables["stages"].assign(loss_days=tables["stages"]["dwell_days"] * 3, loss_cv=1.0)
    clocked = prepare(
        pipesim.make_scenario(
            stages, tables["deals"], tables["arrivals"], as_of="2027-01-01", horizon_months=12
        )
    )
    numba_engine.run(clocked, 4, seed=0)
    fast.run(prepared, 4, seed=0)
    t_clock = _best(lambda: numba_engine.run(clocked, args.trials, seed=0), args.repeat)
    t_fast = _best(lambda: fast.run(prepared, args.trials, seed=0), args.repeat)
    t_fast_clock = _best(lambda: fast.run(clocked, args.trials, seed=0), args.repeat)
    aged = int((clocked.deals.survival_ratio != 1.0).sum())
    print(f"loss clocks on every stage ({aged:,} deals with their own odds):")
    rate, rate_fast = work / t_clock / 1e6, work / t_fast_clock / 1e6
    print(f"numba engine : {t_clock:8.3f} s  {rate:8.1f} M deal-trials/s", end="")
    print(f"  ({t_numba / t_clock:.0%} of one clock)")
    print(f"fast path    : {t_fast_clock:8.3f} s  {rate_fast:8.1f} M deal-trials/s", end="")
    print(f"  ({t_fast / t_fast_clock:.0%} of one clock; {t_clock / t_fast_clock:.1f}x numba)")

    # The same book with monthly odds shocks (market 0.3, each region's own 0.2, persistence
    # 0.5): every open deal's odds move by the month it entered its stage.
    arrivals = tables["arrivals"].assign(segment_shock_sd=0.2)
    shocked = prepare(
        pipesim.make_scenario(
            tables["stages"], tables["deals"], arrivals, as_of="2027-01-01", horizon_months=12,
            market_shock_sd=0.3, shock_persistence=0.5, calibrated=True,
        )
    )  # fmt: skip
    numba_engine.run(shocked, 4, seed=0)
    fast.run(shocked, 4, seed=0)
    t_shock = _best(lambda: numba_engine.run(shocked, args.trials, seed=0), args.repeat)
    t_fast_shock = _best(lambda: fast.run(shocked, args.trials, seed=0), args.repeat)
    t_numpy_shock = _best(
        lambda: numpy_engine.run(shocked, args.trials, seed=0, thin_arrivals=True),
        max(1, args.repeat - 2),
    )
    print("monthly odds shocks (market and region, persistent):")
    print(f"numba engine : {t_shock:8.3f} s  {work / t_shock / 1e6:8.1f} M deal-trials/s", end="")
    print(f"  ({t_numba / t_shock:.0%} of no shock; {t_numpy_shock / t_shock:.1f}x numpy)")
    rate_fast = work / t_fast_shock / 1e6
    print(f"fast path    : {t_fast_shock:8.3f} s  {rate_fast:8.1f} M deal-trials/s", end="")
    print(f"  ({t_fast / t_fast_shock:.0%} of no shock)")

    if args.run_deals:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "big"
            folder.mkdir()
            for name, frame in bench_tables(args.run_deals).items():
                frame.to_parquet(folder / f"{name}.parquet")
            cmd = [
                sys.executable,
                "-m",
                "pipesim.cli",
                "run",
                str(folder),
                "--trials",
                str(args.trials),
                "--out",
                str(Path(tmp) / "out"),
            ]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            whole = time.perf_counter() - start
        print(
            f"`pipesim run` on {args.run_deals:,} deals x {args.trials:,} trials, "
            f"whole process: {whole:.2f} s"
        )


if __name__ == "__main__":
    main()
