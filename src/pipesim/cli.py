"""The ``pipesim`` command: parse, call the API, write. Nothing else lives here."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import click

from pipesim import __version__
from pipesim.errors import PipesimError, PipesimWarning


class UserError(click.ClickException):
    """A bad input: one message, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        """Print the message alone: the user needs no usage text for a data problem."""
        click.echo(f"Error: {self.format_message()}", err=True)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn pipesim's errors into exit 2 and show its warnings on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PipesimWarning)
        try:
            yield
        except PipesimError as exc:
            raise UserError(str(exc)) from None
        finally:
            for w in caught:
                if issubclass(w.category, PipesimWarning):
                    click.echo(f"Warning: {w.message}", err=True)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be a positive whole number, got {value}.")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipesim")
def main() -> None:
    """Monte Carlo forecasts of a sales pipeline: P10/P50/P90 revenue per month."""


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--trials",
    default=10_000,
    show_default=True,
    type=int,
    callback=_positive,
    help="Number of simulated futures.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Random seed: the same seed gives the same numbers.",
)
@click.option(
    "--out",
    default="results",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for summary.parquet and trials.parquet.",
)
@click.option(
    "--by",
    default=None,
    help="Segment column(s) to break results down by, comma-separated (e.g. region,product_line).",
)
@click.option(
    "--engine",
    type=click.Choice(["numba", "numpy", "dask", "fast"]),
    default="numba",
    show_default=True,
    help="numba (fast), numpy (the reference implementation), dask (a Dask cluster) "
    "or fast (numba at the cost of the winners only: same law, other bits).",
)
@click.option(
    "--address",
    default=None,
    help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: $DASK_SCHEDULER_ADDRESS, "
    "else a local cluster on 127.0.0.1). Only with --engine dask.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--threads",
    type=int,
    default=None,
    callback=_positive,
    help="Threads for the numba engine (default: all cores).",
)
def run(
    scenario: Path | None,
    trials: int,
    seed: int,
    out: Path,
    by: str | None,
    engine: str,
    address: str | None,
    quiet: bool,
    threads: int | None,
) -> None:
    """Simulate SCENARIO (a folder of Parquet files; default: the bundled demo).

    Prints mean, P10, P50 and P90 of revenue and won deals per month and
    cumulative, and writes OUT/summary.parquet and OUT/trials.parquet.
    """
    from pipesim import api

    with _user_errors(), _interrupts():
        result = api.run_scenario(
            scenario,
            trials=trials,
            seed=seed,
            by=by,
            engine=engine,
            threads=threads,
            address=address,
            quiet=quiet,
        )
        click.echo(api.format_run(result))
        for note in result.notes:
            click.echo(f"Note: {note}", err=True)
        written = api.write_results(result, out)
        click.echo(f"\nWrote {', '.join(str(p) for p in written)}")


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite the scenario files if DIRECTORY has them.")
def init(directory: Path, force: bool) -> None:
    """Write the documented example scenario into DIRECTORY."""
    from pipesim import api

    with _user_errors():
        written = api.init_scenario(directory, force=force)
    click.echo(
        f"Wrote the example scenario to {directory}: "
        f"{', '.join(p.name for p in written)}\nRun it with: pipesim run {directory}"
    )


# --- scale: interruption, bench -------------------------------------------------


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """Ctrl-C: stop, say that nothing was written, exit 130 (results are written last)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("\nInterrupted: no results written.", err=True)
        sys.exit(130)


@main.command()
@click.option("--deals", default=1_000_000, show_default=True, type=int, callback=_positive)
@click.option("--trials", default=1_000, show_default=True, type=int, callback=_positive)
@click.option("--months", default=12, show_default=True, type=int, callback=_positive)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--engine", type=click.Choice(["numba", "dask", "fast"]), default="numba", show_default=True
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def bench(deals: int, trials: int, months: int, seed: int, engine: str, quiet: bool) -> None:
    """Generate a book of DEALS open deals in a temporary folder, run it, report.

    Prints the first kernel call's time (compile or cache load), the time to
    load the book, the simulation time and throughput (deal-trials per second)
    and the peak memory of the process.
    """
    from pipesim import progress
    from pipesim.benchmark import bench as run_bench

    with _user_errors(), _interrupts():
        report = run_bench(
            deals, trials, months=months, seed=seed, engine=engine, progress=progress.wanted(quiet)
        )
    click.echo(report.text())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
