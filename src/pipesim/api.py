"""The functions behind each CLI command, usable from Python with the same names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pipesim import storage
from pipesim.demo import demo_path, demo_readme, demo_tables
from pipesim.errors import PipesimError
from pipesim.result import Result
from pipesim.simulate import simulate


def run_scenario(
    scenario: str | os.PathLike[str] | None = None,
    *,
    trials: int = 10_000,
    seed: int = 0,
    by: str | Sequence[str] | None = None,
    engine: str = "numba",
    threads: int | None = None,
    address: str | None = None,
    quiet: bool = False,
) -> Result:
    """Load a scenario folder (default: the bundled demo) and simulate it.

    A progress bar shows on stderr for runs over ~2 s unless ``quiet`` or stderr
    is not a terminal. ``address`` is the Dask scheduler for ``engine="dask"``.
    """
    from pipesim import progress

    if threads is not None:
        set_threads(threads)
    if address is not None and engine != "dask":
        raise PipesimError(f"--address is for --engine dask (the engine is {engine}).")
    path = Path(scenario) if scenario is not None else demo_path()
    return simulate(
        storage.load_scenario(path),
        trials=trials,
        seed=seed,
        by=by,
        engine=engine,
        address=address,
        progress=progress.wanted(quiet),
    )


def set_threads(threads: int) -> None:
    """Use ``threads`` numba threads (at most the ``NUMBA_NUM_THREADS`` set at import)."""
    import numba

    if threads <= 0:
        raise PipesimError(f"threads must be positive, got {threads}.")
    numba.set_num_threads(min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def format_run(result: Result) -> str:
    """The tables ``pipesim run`` prints."""
    from pipesim.display import run_report

    return run_report(result)


def write_results(result: Result, out: str | os.PathLike[str]) -> list[Path]:
    """Write ``summary.parquet`` and ``trials.parquet`` (with their metadata) into ``out``."""
    return storage.write_tables(
        out,
        {"summary": result.summary(result.by), "trials": result.trials(result.by)},
        result.metadata(),
    )


def init_scenario(directory: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Write the documented example scenario (and its README.md) into ``directory``."""
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise PipesimError(f"{folder} is a file; give a folder for the scenario.")
    clash = [
        folder / f"{n}.parquet"
        for n in storage.SCENARIO_FILES
        if (folder / f"{n}.parquet").exists()
    ]
    if clash and not force:
        raise PipesimError(
            f"{folder} already holds {', '.join(p.name for p in clash)}; "
            "choose another folder or add --force to overwrite them."
        )
    tables = demo_tables()
    written = storage.write_tables(folder, tables)
    readme = folder / "README.md"
    readme.write_text(demo_readme(tables), encoding="utf-8")
    return [*written, readme]
