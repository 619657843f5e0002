"""Benchmark: the planning commands against `pipesim run`, whole process, side by side.

Each command runs as a user runs it (a fresh ``python -m pipesim.cli`` process: start-up,
loading the scenario, numba's cached kernels, simulation, writing the files) on the
bundled demo at ``--trials`` (10,000) and seed 0. Every command is first run once with
100 trials, so that numba's cache is warm for all of them; then the commands run one
after the other, ``--repeat`` rounds, and each one's best time is reported with its
ratio to ``pipesim run``'s (the issue's goals: target and health within 2x, sensitivity
within 4x, compare with 3 levers within 2x).

    python benchmarks/bench_planning.py [--trials 10000] [--repeat 2] [--revenue 12000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipesim.simulation.bench import machine

LEVERS = ("leads*1.1", "conversion:Offer+0.05", "dwell*0.9")
GOALS = {"target": 2.0, "health": 2.0, "sensitivity": 4.0, "compare": 2.0}


def commands(revenue: float) -> dict[str, list[str]]:
    """Each command's arguments after ``pipesim`` (the demo is the default scenario)."""
    money = ["--revenue", f"{revenue:.0f}"]
    levers = [a for lever in LEVERS for a in ("--lever", lever)]
    return {
        "run": ["run"],
        "target": ["target", *money],
        "health": ["health", *money],
        "sensitivity": ["sensitivity"],
        "compare": ["compare", *levers],
    }


def timed(args: list[str], trials: int, out: Path) -> float:
    """Seconds of one whole ``pipesim`` process (exits non-zero: raise with its stderr)."""
    cmd = [sys.executable, "-m", "pipesim.cli", *args, "--trials", str(trials), "--seed", "0"]
    cmd += ["--out", str(out), "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--revenue", type=float, default=12_000_000.0)
    args = parser.parse_args()
    print(machine())
    print(f"demo, {args.trials:,} trials, seed 0, best of {args.repeat}, X {args.revenue:,.0f}")
    cases = commands(args.revenue)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in cases.items():  # warm numba's cache for every command
            timed(argv, 100, Path(tmp) / f"warm_{name}")
        for round_ in range(args.repeat):
            for name, argv in cases.items():
                seconds = timed(argv, args.trials, Path(tmp) / f"{name}_{round_}")
                best[name] = min(best.get(name, seconds), seconds)
    base = best["run"]
    print(f"{'command':<12} {'seconds':>8} {'x run':>6} {'goal':>6}")
    for name, seconds in best.items():
        goal = GOALS.get(name)
        mark = "" if goal is None else ("  ok" if seconds / base <= goal else "  over")
        goal_text = f"{goal:.0f}x" if goal else "-"
        print(f"{name:<12} {seconds:8.2f} {seconds / base:6.2f} {goal_text:>6}{mark}")


if __name__ == "__main__":
    main()
