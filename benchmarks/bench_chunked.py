"""Deals on disk (read chunk by chunk) against deals in memory, on the same book.

Writes the benchmark book once, then for each mode runs a fresh process that
loads it (``deals_in_memory`` True or False), prepares and simulates it, and
reports read/validate, prepare and simulate seconds and the process's peak
memory. The two modes must give the same bits; the summary digests are printed.

    python benchmarks/bench_chunked.py [--deals 10000000] [--trials 100]
        [--modes disk,memory] [--book DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pipesim.simulation.bench import machine, write_bench_book

CHILD = r"""
import hashlib, json, resource, sys, time
import pipesim
from pipesim.io import scenario_folder
from pipesim.engines import chunked
from pipesim.engines import numba as numba_engine
from pipesim.prepare.kernel_inputs import prepare, prepare_context

folder, trials, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
numba_engine.run(prepare(pipesim.load_scenario(pipesim.demo_path())), 1, 0)  # kernels loaded
t = time.perf_counter()
scenario = scenario_folder.load_scenario(folder, deals_in_memory=(mode == "memory"))
load = time.perf_counter() - t
t = time.perf_counter()
if mode == "memory":
    prepared = prepare(scenario)
    prep = time.perf_counter() - t
    t = time.perf_counter()
    rev, won = numba_engine.run_blocks(prepared, trials, 0)
    sim = time.perf_counter() - t
else:
    context = prepare_context(scenario)
    spent = {}
    rev, won = chunked.run(scenario, context, trials, 0, timings=spent)
    prep = time.perf_counter() - t - spent["simulate"]
    sim = spent["simulate"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
digest = hashlib.sha256(rev.tobytes() + won.tobytes()).hexdigest()[:16]
print(json.dumps({"load": load, "prepare": prep, "simulate": sim, "peak": peak, "bits": digest}))
"""


def main() -> None:
    """Run each mode in a fresh process and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=10_000_000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--modes", default="disk,memory")
    parser.add_argument("--book", type=Path, default=None, help="reuse or write the book here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipesim-chunked-") as tmp:
        book = args.book or Path(tmp) / "book"
        if not (book / "deals.parquet").is_file():
            write_bench_book(book, args.deals)
        print(f"machine: {machine()}")
        print(f"book: {args.deals:,} deals x {args.trials:,} trials x 12 months\n")
        print("| deals | load s | prepare s | simulate s | M deal-trials/s | peak GiB | bits |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for mode in args.modes.split(","):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(book), str(args.trials), mode],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            r = json.loads(out.strip().splitlines()[-1])
            rate = args.deals * args.trials / r["simulate"] / 1e6
            print(
                f"| {'on disk' if mode == 'disk' else 'in memory'} | {r['load']:.2f} | "
                f"{r['prepare']:.2f} | {r['simulate']:.2f} | {rate:.1f} | "
                f"{r['peak'] / 2**30:.2f} | {r['bits']} |"
            )


if __name__ == "__main__":
    main()
