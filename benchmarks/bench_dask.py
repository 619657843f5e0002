"""Dask engine benchmark: time and per-process peak memory, workers reading deal chunks.

Writes a benchmark book of ``--deals`` deals (on disk: over one deal chunk), starts
a LocalCluster of ``--workers`` worker processes on 127.0.0.1 (one thread each), and
runs ``--trials`` trials with the Dask engine, then with the local chunked engine in
this process; checks that the arrays are the same bits and prints wall times and
peak resident memory of the client and of each worker.

    python benchmarks/bench_dask.py [--deals 3000000] [--trials 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster

import pipesim
from pipesim.engines import chunked, dask_worker
from pipesim.engines import dask as dask_engine
from pipesim.prepare.kernel_inputs import prepare_context
from pipesim.simulation.bench import machine, write_bench_book


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=3_000_000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="pipesim-bench-dask-") as tmp:
        folder = write_bench_book(Path(tmp) / "book", args.deals)
        book = pipesim.load_scenario(folder)
        context = prepare_context(book)
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(args.workers)
            client.run(dask_worker.reset)
            warm = prepare_context(pipesim.load_scenario(pipesim.demo_path()))
            dask_engine.run(pipesim.load_scenario(pipesim.demo_path()), warm, 10, 0, client=client)
            start = time.perf_counter()
            rev, won = dask_engine.run(book, context, args.trials, 1, client=client)
            dask_s = time.perf_counter() - start
            workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
            stats = client.run(dask_worker.stats)
        client_peak = _peak_gib()
        start = time.perf_counter()
        local_rev, local_won = chunked.run(book, context, args.trials, 1)
        local_s = time.perf_counter() - start
    assert np.array_equal(rev, local_rev) and np.array_equal(won, local_won)
    work = args.deals * args.trials
    print(f"{args.deals:,} deals x {args.trials:,} trials, {args.workers} workers x 1 thread")
    print(f"dask: {dask_s:.1f} s ({work / dask_s / 1e6:.0f} M deal-trials/s), same bits as local")
    print(f"local chunked engine, this process: {local_s:.1f} s")
    print(f"client peak RSS (before the local run): {client_peak:.2f} GiB")
    for address, peak in workers.items():
        s = stats[address]
        print(
            f"worker {address}: peak RSS {peak:.2f} GiB, steps {s.get('path', 0)} from the "
            f"file, {s.get('scattered', 0)} scattered, most rows read at once "
            f"{s.get('max_read', 0):,}, held {s.get('max_held', 0):,}"
        )


if __name__ == "__main__":
    main()
