"""``pipesim bench``: generate a large book in a temporary folder, run it, report speed and memory.

The book is written chunk by chunk (one Parquet row group per million deals) so
generating it never holds more than one chunk besides the scenario itself.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.scenario.scenario import DEAL_CHUNK

STAGES = ("Lead", "Qualified", "Visited", "Offer", "Negotiation")
REGIONS = ("North", "South", "East", "West")
CHUNK = 1_000_000


def bench_stages() -> pd.DataFrame:
    """A 5-stage funnel: gamma dwell, value spread late in the funnel, uncertain conversion."""
    return pd.DataFrame(
        {
            "stage": list(STAGES),
            "conversion": [0.40, 0.50, 0.60, 0.55, 0.70],
            "dwell_days": [15.0, 20.0, 25.0, 20.0, 15.0],
            "dwell_cv": [1.0, 0.8, 0.7, 0.6, 0.5],
            "value_cv": [0.0, 0.0, 0.0, 0.1, 0.2],
            "conversion_n": [500.0, 300.0, 200.0, 150.0, 100.0],
        }
    )


def bench_deals(n_deals: int, seed: int = 1, chunk: int = CHUNK) -> Iterator[pd.DataFrame]:
    """``n_deals`` open deals in chunks: most near the top of the funnel, four regions."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_deals, chunk):
        n = min(chunk, n_deals - start)
        yield pd.DataFrame(
            {
                "deal_id": np.arange(start, start + n, dtype=np.int64),
                "stage": pd.Categorical.from_codes(
                    rng.choice(5, n, p=[0.35, 0.25, 0.20, 0.12, 0.08]),
                    dtype=pd.CategoricalDtype(list(STAGES)),
                ),
                "amount": rng.lognormal(np.log(8_000.0), 0.6, n).round(2),
                "days_in_stage": rng.exponential(15.0, n).round(),
                "region": pd.Categorical.from_codes(
                    rng.integers(0, 4, n), dtype=pd.CategoricalDtype(list(REGIONS))
                ),
            }
        )


def bench_arrivals(leads_per_month: float = 1_000.0, months: int = 12) -> pd.DataFrame:
    """New leads per month and region."""
    periods = [f"{2027 + m // 12}-{m % 12 + 1:02d}" for m in range(months)]
    return pd.DataFrame(
        {
            "period": np.repeat(periods, len(REGIONS)),
            "leads": leads_per_month / len(REGIONS),
            "amount": 8_000.0,
            "amount_cv": 0.6,
            "region": np.tile(list(REGIONS), months),
        }
    )


def write_bench_book(folder: str | os.PathLike[str], n_deals: int, months: int = 12) -> Path:
    """Write the benchmark scenario folder (deals in row groups of a million)."""
    from pipesim.io import parquet

    out = Path(folder)
    settings = pd.DataFrame(
        {
            "as_of": [pd.Timestamp("2027-01-01").date()],
            "horizon_months": [months],
            "name": [f"bench-{n_deals}"],
            "currency": ["EUR"],
        }
    )
    parquet.write_tables(
        out,
        {"stages": bench_stages(), "arrivals": bench_arrivals(months=months), "scenario": settings},
    )
    parquet.write_table_chunks(out / "deals.parquet", bench_deals(n_deals))
    return out


@dataclasses.dataclass(frozen=True)
class BenchReport:
    """What ``pipesim bench`` measured."""

    deals: int
    trials: int
    months: int
    engine: str
    compile_seconds: float
    load_seconds: float
    prepare_seconds: float
    run_seconds: float
    peak_rss_bytes: int
    machine: str
    deals_on_disk: bool = False

    @property
    def deal_trials_per_second(self) -> float:
        """Open deals x trials per second of simulation."""
        return self.deals * self.trials / self.run_seconds

    def _where(self) -> str:
        if self.deals_on_disk:
            return (
                f"on disk, read {DEAL_CHUNK:,} at a time (prepare includes reading "
                "the chunks again while simulating)"
            )
        return "in memory"

    def text(self) -> str:
        """The report as lines of text."""
        return "\n".join(
            [
                f"machine: {self.machine}",
                f"book: {self.deals:,} open deals x {self.trials:,} trials x {self.months} months"
                f" (engine {self.engine})",
                f"first kernel call (compile or cache load): {self.compile_seconds:.2f} s",
                f"deals: {self._where()}",
                f"read and validate: {self.load_seconds:.2f} s, "
                f"prepare: {self.prepare_seconds:.2f} s",
                f"simulate: {self.run_seconds:.2f} s = "
                f"{self.deal_trials_per_second / 1e6:,.1f} M deal-trials/s",
                f"peak memory (max RSS of this process): {self.peak_rss_bytes / 2**30:.2f} GiB",
            ]
        )


def machine() -> str:
    """One line describing this machine."""
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, numba {numba.__version__} "
        f"({numba.get_num_threads()} threads), numpy {np.__version__}, "
        f"Python {platform.python_version()}"
    )


def _compile_seconds(engine: str = "numba") -> float:
    """Time of the first kernel calls in this process (the engine's too), on a one-deal book."""
    from pipesim.engines import fast
    from pipesim.engines import numba as numba_engine
    from pipesim.prepare.kernel_inputs import prepare
    from pipesim.scenario.scenario import make_scenario

    tiny = make_scenario(
        bench_stages(),
        next(bench_deals(1)),
        bench_arrivals(months=1),
        as_of="2027-01-01",
        horizon_months=1,
    )
    prepared = prepare(tiny)
    start = time.perf_counter()
    numba_engine.run(prepared, 1, seed=0)
    if engine == "fast":
        fast.run(prepared, 1, seed=0)
    return time.perf_counter() - start


def bench(
    deals: int = 1_000_000,
    trials: int = 1_000,
    *,
    months: int = 12,
    seed: int = 0,
    engine: str = "numba",
    progress: bool = False,
) -> BenchReport:
    """Generate a book of ``deals`` open deals in a temporary folder, simulate it, measure.

    Parameters
    ----------
    deals, trials, months : int
        Size of the book and of the run.
    seed : int
        Seed of the simulation.
    engine : {"numba", "dask", "fast", "dask-fast"}
        Engine to time (``dask``: a local cluster, or ``$DASK_SCHEDULER_ADDRESS``).
    progress : bool
        Show a progress bar (terminals only).

    Returns
    -------
    BenchReport
        Compile time, load time, simulation time and throughput, peak memory.
    """
    from pipesim.engines import registry
    from pipesim.io import scenario_folder
    from pipesim.progress import Progress

    runner = registry.get(engine)
    if not runner.benchmark:
        raise InputError(
            f"engine={engine!r}: not timed by bench; choose one of "
            f"{', '.join(n for n, e in registry.ENGINES.items() if e.benchmark)}.",
            parameters=("engine",),
        )
    if deals <= 0 or trials <= 0 or months <= 0:
        raise InputError(
            f"deals={deals}, trials={trials}, months={months}: all must be positive whole numbers.",
            parameters=("deals", "trials", "months"),
        )
    compile_s = _compile_seconds(engine)
    with tempfile.TemporaryDirectory(prefix="pipesim-bench-") as tmp:
        folder = write_bench_book(Path(tmp) / "book", deals, months)
        start = time.perf_counter()
        scenario = scenario_folder.load_scenario(folder)  # on disk when over DEAL_CHUNK deals
        loaded = time.perf_counter() - start
        spent: dict[str, float] = {}
        runner.run(scenario, (), trials, seed, Progress(trials, enabled=progress), timings=spent)
        prepare_s, run_s = spent["prepare"], spent["simulate"]
        on_disk = not scenario.deals_in_memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return BenchReport(
        deals, trials, months, engine, compile_s, loaded, prepare_s, run_s, peak, machine(), on_disk
    )
