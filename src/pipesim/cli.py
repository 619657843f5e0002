"""The ``pipesim`` command: parse, call the API, write. Nothing else lives here."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from pipesim import api
from pipesim.errors import PipesimError, PipesimWarning
from pipesim.progress import compile_notice
from pipesim.progress import wanted as progress_wanted
from pipesim.version import __version__

# Python parameters that library messages name (``by=``), and their spelling here.
FLAGS = {"as_of": "--as-of", "cutoffs": "--cutoff", "levers": "--lever"}


def flag(parameter: str) -> str:
    """The flag spelling of a Python parameter (``horizon_months``: ``--horizon-months``)."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def cli_message(exc: PipesimError) -> str:
    """The error's message, the parameters it names in flag spelling (``by=x``: ``--by x``)."""
    text = str(exc)
    for name in exc.parameters:
        spelled = flag(name)
        text = re.sub(rf"(?<![\w-]){name}=True\b", spelled, text)
        text = re.sub(rf"(?<![\w-]){name}=(?=[\s.,;:)]|$)", spelled, text)
        text = re.sub(rf"(?<![\w-]){name}=", spelled + " ", text)
    return text


class UserError(click.ClickException):
    """One message and the exit code of its cause (errors.py), no traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]

    def show(self, file: object = None) -> None:
        """Print the message alone: the user needs no usage text for a data problem."""
        click.echo(f"Error: {self.format_message()}", err=True)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn pipesim's errors into their exit codes and show its warnings on stderr.

    Other libraries' warnings are passed on once the recording has stopped: passed on
    while recording, each would be recorded again, and the loop would never end.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            caught = recorded
            warnings.simplefilter("always", PipesimWarning)
            try:
                yield
            except PipesimError as exc:
                raise UserError(cli_message(exc), exc.exit_code) from None
    finally:
        for w in caught:
            if issubclass(w.category, PipesimWarning):
                click.echo(f"Warning: {w.message}", err=True)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _output_folder(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--out is checked before any work: an existing file or an unwritable place exits 2."""
    if value is not None:
        try:
            api.check_output_folder(value)
        except PipesimError as exc:
            raise click.BadParameter(cli_message(exc)) from None
    return value


def _required_out(help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A required --out folder, checked before any work."""
    return click.option(
        "--out",
        required=True,
        type=click.Path(path_type=Path),
        callback=_output_folder,
        help=help_text,
    )


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be a positive whole number, got {value}.")
    return value


def _positive_amount(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    """A revenue target, checked before any work (not after a whole simulation)."""
    if value is not None and not (value > 0 and value != float("inf")):
        raise click.BadParameter(
            f"must be a positive amount in the scenario's currency, got {value}."
        )
    return value


def _quiet_json(fn: Any) -> Any:
    """--quiet and --json, the same on every command that prints results."""
    fn = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the results as JSON on stdout (numbers as numbers), everything else on stderr.",
    )(fn)
    return click.option(
        "--quiet",
        "-q",
        is_flag=True,
        help="Print nothing but warnings and errors (no tables, no progress bar).",
    )(fn)


def _say(text: str, quiet: bool, err: bool = False) -> None:
    """Print ``text`` unless the user asked for quiet."""
    if not quiet:
        click.echo(text, err=err)


@contextlib.contextmanager
def _working(notice: bool = True) -> Iterator[None]:
    """A command that may simulate: errors by cause, Ctrl-C, and the compile notice."""
    with _user_errors(), _interrupts(), compile_notice(notice):
        yield


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipesim")
def main() -> None:
    """Monte Carlo forecasts of a sales pipeline: P10/P50/P90 revenue per month."""


def _trials(default: int, help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--trials: simulated futures, a positive whole number."""
    return click.option(
        "--trials", default=default, show_default=True, type=int, callback=_positive, help=help_text
    )


class _TrialCount(click.ParamType):
    """A positive whole number of trials, or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            count = value
        elif str(value).strip().lower() == "auto":
            return "auto"
        else:
            try:
                count = int(str(value))
            except ValueError:
                self.fail(f"must be a positive whole number or 'auto', got {value!r}.", param, ctx)
        if count <= 0:
            self.fail(f"must be a positive whole number or 'auto', got {value!r}.", param, ctx)
        return count


# --seed, the same on every command that simulates.
_SEED = click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2**63 - 1),
    help="Random seed, 0 to 2^63 - 1: the same seed gives the same numbers.",
)


def _run_options(fn: Any) -> Any:
    """--trials, --seed and --out, the same on every command that simulates."""
    fn = click.option(
        "--out",
        default="results",
        show_default=True,
        type=click.Path(path_type=Path),
        callback=_output_folder,
        help="Folder for the result Parquet files (made if missing).",
    )(fn)
    fn = _SEED(fn)
    return _trials(api.TRIALS, "Number of simulated futures (a positive whole number).")(fn)


def _run_options_auto(fn: Any) -> Any:
    """:func:`_run_options`, with ``--trials auto`` accepted (``pipesim run``)."""
    fn = _run_options(fn)
    trials = next(p for p in fn.__click_params__ if p.name == "trials")
    trials.type = _TrialCount()
    trials.callback = None
    trials.help = (
        "Number of simulated futures (a positive whole number), or auto: blocks of trials "
        "until the horizon's P10/P50/P90 revenue are known within --precision (the count "
        "used is printed and kept in the files' metadata)."
    )
    return fn


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@_run_options_auto
@click.option(
    "--precision",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="With --trials auto: the relative standard error the horizon's P10/P50/P90 must "
    "reach (default 0.005, i.e. 0.5%).",
)
@click.option(
    "--max-trials",
    type=int,
    default=None,
    callback=_positive,
    help="With --trials auto: stop at this many trials even if the precision is not reached "
    "(default 200000).",
)
@click.option(
    "--by",
    default=None,
    help="Segment column(s) to break results down by, comma-separated (e.g. region,product_line).",
)
@click.option(
    "--engine",
    type=click.Choice(list(api.ENGINES)),
    default="numba",
    show_default=True,
    help="; ".join(f"{e.name}: {e.summary}" for e in api.ENGINES.values()) + ".",
)
@click.option(
    "--address",
    default=None,
    help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: $DASK_SCHEDULER_ADDRESS, "
    "else a local cluster on 127.0.0.1). Only with --engine dask or dask-fast.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    callback=_positive,
    help="Threads for the numba engine (default: all cores).",
)
@click.option(
    "--report", "make_report", is_flag=True, help="Also write the HTML report OUT/report.html."
)
@click.option(
    "--extend-arrivals",
    is_flag=True,
    help="Horizon months without new leads take the same month a year before.",
)
@click.option(
    "--target",
    type=float,
    default=None,
    callback=_positive_amount,
    help="Revenue target over the horizon, in the scenario's currency (e.g. 12000000): kept "
    "in the results' metadata, drawn in the report.",
)
@click.option(
    "--deal-odds",
    is_flag=True,
    help="Also write OUT/deal_odds.parquet: each open deal's chance to win in the horizon and "
    "in the current fiscal quarter, expected revenue and median won date, over the same "
    "trials (engine numba or dask); prints the deals that carry the quarter and the oldest.",
)
@click.option(
    "--no-close-dates",
    is_flag=True,
    help="Time every deal by its stage's clocks, ignoring stated close dates and the "
    "slippage law (close_dates.parquet).",
)
@_quiet_json
def run(
    scenario: Path | None,
    trials: int | str,
    seed: int,
    out: Path,
    precision: float | None,
    max_trials: int | None,
    by: str | None,
    engine: str,
    address: str | None,
    quiet: bool,
    threads: int | None,
    make_report: bool,
    extend_arrivals: bool,
    target: float | None,
    deal_odds: bool,
    no_close_dates: bool,
    as_json: bool,
) -> None:
    """Simulate SCENARIO (a folder of Parquet files; default: the bundled demo).

    Prints mean, P10, P50 and P90 of revenue and won deals per month and
    cumulative, and writes OUT/summary.parquet, OUT/trials.parquet and
    OUT/funnel.parquet (OUT/forecast_call.parquet when deals carry forecast_category;
    OUT/deal_odds.parquet with --deal-odds; OUT/report.html with --report).
    """
    with _working(notice=not (quiet or as_json)):
        if make_report:
            api.require_report_extras()  # before the simulation, not after
        result = api.run_scenario(
            scenario,
            trials=trials,
            seed=seed,
            by=by,
            engine=engine,
            threads=threads,
            address=address,
            quiet=quiet,
            extend_arrivals=extend_arrivals,
            precision=precision,
            max_trials=max_trials,
            deal_odds=deal_odds,
            no_close_dates=no_close_dates,
        )
        if as_json:
            click.echo(api.run_json(result))
        else:
            _say(api.format_run(result), quiet)
        for note in result.notes:
            _say(f"Note: {note}", quiet, err=True)
        written = api.write_results(result, out, target=target)
        if make_report:
            written += api.report(out)
        _say(f"\nWrote {', '.join(str(p) for p in written)}", quiet, err=as_json)


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite the scenario files if DIRECTORY has them.")
def init(directory: Path, force: bool) -> None:
    """Write the documented example scenario into DIRECTORY."""
    with _user_errors():
        written = api.init_scenario(directory, force=force)
    click.echo(
        f"Wrote the example scenario to {directory}: "
        f"{', '.join(p.name for p in written)}\nRun it with: pipesim run {directory}"
    )


@main.command("report")
@click.argument("results", metavar="RESULTS_DIR", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The HTML file to write  [default: RESULTS_DIR/report.html].",
)
@click.option(
    "--png",
    type=click.Path(path_type=Path),
    help="Also write each chart as DIR/<chart>.png, 800 px wide (a folder, made if missing).",
)
@click.option(
    "--xlsx",
    type=click.Path(path_type=Path),
    help="Also write an Excel workbook FILE.xlsx: Summary, Settings and the run's other tables.",
)
@click.option(
    "--csv",
    type=click.Path(path_type=Path),
    help="Also write the tables as CSV files into this folder (made if missing).",
)
@click.option(
    "--target",
    type=float,
    default=None,
    help="Revenue target over the horizon, in the scenario's currency: drawn on the charts.",
)
@_quiet_json
def report_command(
    results: Path,
    out: Path | None,
    png: Path | None,
    xlsx: Path | None,
    csv: Path | None,
    target: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write a self-contained HTML report of RESULTS_DIR (a folder `pipesim run` wrote).

    Fans of monthly and cumulative revenue, the distribution of the total, the
    funnel, segments, and the comparison, tornado, target and health when their files
    are there and of the same run (files of another scenario, trials or seed are left
    out, one warning each). A folder `pipesim backtest` wrote gets the backtest page.
    """
    with _user_errors():
        written = api.report(results, out=out, png=png, xlsx=xlsx, csv=csv, target=target)
        if as_json:
            click.echo(api.report_json(results))
        else:
            _say(api.format_report(results) + "\n", quiet)
    _say(f"Wrote {written[0]}", quiet, err=as_json)
    if len(written) > 1:
        more = ", ".join(str(p) for p in written[1:])
        _say(f"and {len(written) - 1} more: {more}", quiet, err=as_json)


# --- scenarios planners read and edit: show, Excel export and import --------------------------


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--deal-rows",
    default=10,
    show_default=True,
    type=click.IntRange(0),
    help="Deals shown (the first ones; the count is always shown).",
)
def show(scenario: Path | None, deal_rows: int) -> None:
    """Print the tables of SCENARIO (default: the bundled demo) as pipesim reads them."""
    with _user_errors():
        click.echo(api.show_scenario(scenario, deal_rows=deal_rows))


@main.group("scenario")
def scenario_group() -> None:
    """A scenario folder as one Excel workbook, a sheet per table, and back."""


@scenario_group.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@click.argument("workbook", metavar="FILE.xlsx", type=click.Path(path_type=Path))
def scenario_export(directory: Path, workbook: Path) -> None:
    """Write the scenario folder DIRECTORY as the workbook FILE.xlsx.

    Sheets: stages, deals, arrivals, scenario, and levers when DIRECTORY has them.
    """
    with _user_errors():
        written = api.export_scenario(directory, workbook)
    click.echo(f"Wrote {written}\nEdit it, then: pipesim scenario import {written} DIR")


@scenario_group.command("import")
@click.argument("workbook", metavar="FILE.xlsx", type=click.Path(path_type=Path))
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite the scenario files if DIRECTORY has them.")
def scenario_import(workbook: Path, directory: Path, force: bool) -> None:
    """Check the workbook FILE.xlsx and write it as the scenario folder DIRECTORY."""
    with _user_errors():
        written = api.import_scenario(workbook, directory, force=force)
    click.echo(
        f"Wrote the scenario to {directory}: {', '.join(p.name for p in written)}\n"
        f"Run it with: pipesim run {directory}"
    )


# --- calibration from CRM history and backtests (issue 3) ---------------------------------------

_FORMATS = ["generic", "salesforce", "hubspot", "pipedrive", "maven", "ibm"]
_FORMAT_HELP = (
    "Which CRM wrote HISTORY: generic (a deals CSV), salesforce (an Opportunity CSV; "
    "--events: OpportunityHistory), hubspot and pipedrive (a deals CSV), maven (the folder of "
    "the Maven CRM CSV files), ibm (the win-loss CSV or a zip holding it)."
)
_EVENTS_HELP = "Stage history CSV: deal_id, stage, entered_at (one row per stage entry)."
_SEGMENTS_HELP = "Segment column(s) of HISTORY, comma-separated (e.g. region,product)."
_STAGES_HELP = "Open stages in funnel order, comma-separated (default: from the history)."


def _clock_laws(command: Callable[..., None]) -> Callable[..., None]:
    """The fitting options of calibrate and backtest: the clocks' laws, the history's window.

    ``--dwell-dist``/``--loss-dist`` (the laws fitted to each stage's clocks),
    ``--since`` (ignore older deals), ``--leads-until`` (where the lead sample
    ends), ``--half-life`` (recency of the lead rate's fit).
    """
    command = click.option(
        "--half-life",
        "half_life",
        type=click.FloatRange(min=0.0, min_open=True),
        default=api.HALF_LIFE_MONTHS,
        show_default=True,
        help="Months after which a month's weight in the new-lead rate's fit halves "
        "(inf: all months alike).",
    )(command)
    command = click.option(
        "--leads-until",
        "leads_until",
        default=None,
        help="Date (YYYY-MM-DD): fit the new-lead rate on deals created before it "
        "(default: as_of, or each cutoff).",
    )(command)
    command = click.option(
        "--moving-conversions",
        "moving_conversions",
        is_flag=True,
        help="Use where each stage's conversion stands now (its recent entry months) when it "
        "clearly moved, instead of the whole history's.",
    )(command)
    command = click.option(
        "--since",
        default=None,
        help="Date (YYYY-MM-DD): ignore deals created before it in every estimate "
        "(those still open stay in the book).",
    )(command)
    for flag, clock in (("--loss-dist", "loss"), ("--dwell-dist", "advance")):
        command = click.option(
            flag,
            type=click.Choice(["auto", "gamma", "lognormal"]),
            default="auto",
            show_default=True,
            help=f"Law of each stage's {clock} clock (auto: the likelier per stage).",
        )(command)
    return command


@main.command("example-history")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite deals.csv and events.csv in DIRECTORY.")
def example_history(directory: Path, force: bool) -> None:
    """Write a generated example CRM history (deals.csv, events.csv) into DIRECTORY.

    Not real data: 1,500 deals (stages Lead, Demo, Proposal; a region column) exported
    on 2017-07-01, in the generic format `pipesim calibrate` reads.
    """
    with _user_errors():
        written = api.example_history(directory, force=force)
    click.echo(
        f"Wrote {', '.join(str(p) for p in written)}\nCalibrate a scenario from it: pipesim "
        f"calibrate {written[0]} --events {written[1]} --as-of 2017-07-01 --out my_scenario "
        "--stages Lead,Demo,Proposal --segments region"
    )


_CLOSE_DATES = click.option(
    "--close-dates",
    type=click.Path(path_type=Path),
    default=None,
    help="Close-date history (CSV: deal_id, changed_at, close_date): learn how outcomes "
    "follow the stated close date (close_dates.parquet) and give open deals their "
    "close_date and pushes.",
)


def _calibration_inputs(command: Callable[..., None]) -> Callable[..., None]:
    """The options calibrate and snapshot share: what the history is and how to fit it."""
    options: list[Callable[[Callable[..., None]], Callable[..., None]]] = [
        click.option("--events", type=click.Path(path_type=Path), default=None, help=_EVENTS_HELP),
        _CLOSE_DATES,
        click.option("--segments", default=None, help=_SEGMENTS_HELP),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(_FORMATS),
            default="generic",
            show_default=True,
            help=_FORMAT_HELP,
        ),
        click.option(
            "--horizon-months",
            default=12,
            show_default=True,
            type=int,
            callback=_positive,
            help="Calendar months the scenario forecasts, the month of --as-of first.",
        ),
        click.option("--stages", default=None, help=_STAGES_HELP),
        _clock_laws,
        click.option(
            "--fiscal-year-start",
            type=click.IntRange(1, 12),
            default=None,
            help="Month (1-12) the fiscal year starts in (default 1); won.parquet holds the "
            "deals won from its start to the day before --as-of.",
        ),
        click.option(
            "--fiscal-calendar",
            type=click.Choice(["4-4-5", "4-5-4", "5-4-4"]),
            default=None,
            help="Plan in weeks: 4-4-5, 4-5-4 or 5-4-4 (default: calendar months).",
        ),
        click.option(
            "--currency",
            default="",
            help="The company currency (e.g. EUR) the scenario is in; default: the "
            "history's, when it has one.",
        ),
        click.option(
            "--fx",
            type=click.Path(path_type=Path),
            default=None,
            help="Exchange rates (Parquet: currency, rate = company currency per unit, "
            "optional from date): history amounts are converted to --currency, open deals "
            "keep theirs.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("history", type=click.Path(path_type=Path))
@click.option(
    "--as-of",
    "as_of",
    required=True,
    help="Calibration date, YYYY-MM-DD (e.g. 2017-07-01): only what was known before it is "
    "used; it is the scenario's as_of.",
)
@_required_out("Scenario folder to write (stages, deals, arrivals, scenario, calibration).")
@_calibration_inputs
@click.option("--force", is_flag=True, help="Overwrite a scenario already in OUT.")
@_quiet_json
def calibrate(
    history: Path,
    as_of: str,
    out: Path,
    fmt: str,
    force: bool,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Calibrate a scenario folder from a CRM export (HISTORY) as it stood at --as-of.

    Writes OUT/stages, deals, arrivals, scenario and calibration (data-quality
    report) .parquet; `pipesim run OUT` then forecasts from it.
    """
    # options: the _calibration_inputs, named as api.calibrate names them
    with _user_errors():
        cal = api.calibrate(history, as_of=as_of, out=out, format=fmt, force=force, **options)
    if as_json:
        click.echo(api.calibration_json(cal))
    else:
        _say(cal.summary(), quiet)
    sc = cal.scenario
    nothing = sc.deal_count == 0 and not len(sc.arrivals)
    then = (
        "No open deal and no new lead in it, so a run would forecast 0: its stages table "
        "holds the conversions and durations."
        if nothing
        else f"Run it with: pipesim run {out}"
    )
    _say(
        f"\nWrote {out}: {len(sc.funnel)} stage(s), {sc.deal_count:,} open deals, "
        f"{len(sc.arrivals):,} arrival rows, as of {sc.as_of}. {then}",
        quiet,
        err=as_json,
    )
    note = api.funnel_note(fmt, len(sc.funnel))
    if note:
        _say(f"\n{note}", quiet, err=as_json)


@main.command()
@click.argument("history", type=click.Path(path_type=Path))
@click.option(
    "--as-of",
    "as_of",
    required=True,
    multiple=True,
    help="A date, YYYY-MM-DD, to rebuild the pipeline at; repeat it for more snapshots.",
)
@_required_out("Folder to write one scenario folder per date in (OUT/YYYY-MM-DD).")
@_calibration_inputs
@click.option("--force", is_flag=True, help="Overwrite scenarios already in OUT's date folders.")
@_quiet_json
def snapshot(
    history: Path,
    as_of: tuple[str, ...],
    out: Path,
    fmt: str,
    force: bool,
    quiet: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Rebuild the pipeline of a CRM export (HISTORY) at each --as-of date.

    Writes OUT/YYYY-MM-DD, one scenario folder per date (with won.parquet), each as
    `pipesim calibrate --as-of` writes it, so that two dates can be compared.
    """
    with _user_errors():
        cals = api.snapshot(history, as_of=list(as_of), out=out, format=fmt, force=force, **options)
    rows = [
        {
            "as_of": cal.scenario.as_of.isoformat(),
            "folder": str(Path(out) / cal.scenario.as_of.isoformat()),
            "open_deals": cal.scenario.deal_count,
            "won_this_fiscal_year": 0 if cal.scenario.won is None else len(cal.scenario.won),
        }
        for cal in cals
    ]
    if as_json:
        click.echo(json.dumps(rows))
    for row in rows:
        _say(
            f"Wrote {row['folder']}: {row['open_deals']:,} open deals, "
            f"{row['won_this_fiscal_year']:,} won this fiscal year before {row['as_of']}.",
            quiet,
            err=as_json,
        )


@main.command()
@click.argument("history", type=click.Path(path_type=Path))
@click.option("--events", type=click.Path(path_type=Path), default=None, help=_EVENTS_HELP)
@click.option(
    "--cutoff",
    "cutoffs",
    multiple=True,
    help="Forecast date, YYYY-MM-DD (repeat for more cutoffs).",
)
@click.option(
    "--cutoffs",
    "span",
    default=None,
    help="FROM..TO, months as YYYY-MM: the first of each month from FROM to TO, both "
    "included (2017-01..2017-10).",
)
@click.option(
    "--metric",
    type=click.Choice(["revenue", "won_deals"]),
    default="revenue",
    show_default=True,
    help="What is forecast and scored.",
)
@click.option(
    "--keep-calibrations",
    is_flag=True,
    help="Also write each cutoff's scenario folder as OUT/calibration_<cutoff>/.",
)
@click.option(
    "--horizon-months",
    default=3,
    show_default=True,
    type=int,
    callback=_positive,
    help="Calendar months forecast from each cutoff (its month first).",
)
@click.option("--segments", default=None, help=_SEGMENTS_HELP)
@_trials(2000, "Simulated futures per cutoff (fewer than run's, as every cutoff is a forecast).")
@_SEED
@_required_out("Folder for backtest.parquet (made if missing).")
@click.option(
    "--report", "make_report", is_flag=True, help="Also write the HTML report OUT/report.html."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="generic",
    show_default=True,
    help=_FORMAT_HELP,
)
@click.option("--stages", default=None, help=_STAGES_HELP)
@_clock_laws
@_CLOSE_DATES
@click.option(
    "--no-close-dates",
    is_flag=True,
    help="Forecast every deal by its stage's clocks, ignoring stated close dates (the "
    "clocks-only model, to compare with).",
)
@_quiet_json
def backtest(
    history: Path,
    events: Path | None,
    cutoffs: tuple[str, ...],
    span: str | None,
    metric: str,
    keep_calibrations: bool,
    horizon_months: int,
    segments: str | None,
    trials: int,
    seed: int,
    out: Path,
    make_report: bool,
    fmt: str,
    stages: str | None,
    dwell_dist: str,
    loss_dist: str,
    since: str | None,
    leads_until: str | None,
    half_life: float,
    moving_conversions: bool,
    close_dates: Path | None,
    no_close_dates: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Forecast from each cutoff with only what was known then; score against what closed.

    Give the cutoffs with --cutoff (repeat) and/or --cutoffs FROM..TO. With --report, also
    OUT/report.html: realized against P10-P90 per cutoff, coverage, CRPS against baselines.
    """
    if span is not None and ".." not in span:
        raise click.BadParameter(
            f"{span!r}: write FROM..TO, e.g. 2017-01..2017-10 (both ends included).",
            param_hint="'--cutoffs'",
        )
    with _working(notice=not (quiet or as_json)):
        if make_report:
            api.require_report_extras()  # before the backtest, not after
        table = api.backtest(
            history,
            cutoffs=[*cutoffs, *([span] if span else [])],
            metric=metric,
            keep_calibrations=keep_calibrations,
            events=events,
            out=out,
            horizon_months=horizon_months,
            segments=segments,
            trials=trials,
            seed=seed,
            format=fmt,
            stages=stages,
            dwell_dist=dwell_dist,
            loss_dist=loss_dist,
            since=since,
            leads_until=leads_until,
            half_life=half_life,
            moving_conversions=moving_conversions,
            progress=progress_wanted(quiet or as_json),
            close_dates=close_dates,
            no_close_dates=no_close_dates,
        )
    if as_json:
        click.echo(api.backtest_json(table))
    else:
        _say(api.format_backtest(table), quiet)
    written = [out / "backtest.parquet"]
    if make_report:
        with _user_errors():
            written += api.report(out)
    _say(f"\nWrote {', '.join(str(p) for p in written)}", quiet, err=as_json)


# --- Planning: target, compare, sensitivity, health -------------------------------------


def _show(result: Any, out: Path, quiet: bool, as_json: bool) -> None:
    """Print a planning command's result (text, or JSON on stdout), then write its files."""
    if as_json:
        click.echo(api.plan_json(result))
    else:
        _say(result.text, quiet)
    written = result.write(out)
    _say(f"\nWrote {', '.join(str(p) for p in written)}", quiet, err=as_json)


_REVENUE = click.option(
    "--revenue",
    required=True,
    type=float,
    help="Revenue target X over the window, in the scenario's currency (e.g. 12000000).",
)
_MONTHS = click.option(
    "--months",
    type=int,
    default=None,
    callback=_positive,
    help="Window in calendar months, the month of as_of first (default: the whole horizon).",
)
_CONFIDENCE = click.option(
    "--confidence",
    default=0.8,
    show_default=True,
    type=float,
    help="P(revenue >= X) wanted, between 0 and 1.",
)
_BY = click.option(
    "--by", default=None, help="Segment column(s) to break the table down by, comma-separated."
)


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--revenue",
    type=float,
    default=None,
    help="Revenue target X over the window, in the scenario's currency (e.g. 12000000); "
    "with --owner, default: the owner's quota for --period in quotas.parquet.",
)
@_MONTHS
@click.option(
    "--period",
    default=None,
    help="Window: a fiscal quarter (FY2027-Q2), fiscal year (FY2027) or month (2026-04).",
)
@click.option(
    "--owner",
    default=None,
    help="Aim at one owner's revenue and quota: COL=VALUE[,COL=VALUE] (e.g. rep=Ana).",
)
@click.option(
    "--quarter",
    default=None,
    help="Window: a fiscal quarter of the horizon, e.g. FY2027-Q2 (instead of --months).",
)
@click.option(
    "--fiscal-year",
    default=None,
    help="Window: a fiscal year of the horizon, e.g. FY2027 (instead of --months).",
)
@_CONFIDENCE
@_BY
@_run_options
@_quiet_json
def target(
    scenario: Path | None,
    revenue: float | None,
    months: int | None,
    period: str | None,
    owner: str | None,
    quarter: str | None,
    fiscal_year: str | None,
    confidence: float,
    by: str | None,
    trials: int,
    seed: int,
    out: Path,
    quiet: bool,
    as_json: bool,
) -> None:
    """New leads per month needed to reach a revenue target; writes OUT/target.parquet."""
    with _working(notice=not (quiet or as_json)):
        result = api.target(
            scenario, revenue or 0.0, months=months, confidence=confidence, by=by,
            trials=trials, seed=seed, progress=progress_wanted(quiet), quarter=quarter,
            fiscal_year=fiscal_year, period=period, owner=owner,
        )  # fmt: skip
        _show(result, out, quiet, as_json)


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--lever",
    "levers",
    multiple=True,
    help="QUANTITY[:STAGE](+|-|*|=)VALUE[@COLUMN=VALUE], one variant each (repeatable).",
)
@_run_options
@_quiet_json
def compare(
    scenario: Path | None,
    levers: tuple[str, ...],
    trials: int,
    seed: int,
    out: Path,
    quiet: bool,
    as_json: bool,
) -> None:
    """Base vs lever variants on common random numbers; writes OUT/compare.parquet."""
    with _working(notice=not (quiet or as_json)):
        result = api.compare(
            scenario, list(levers), trials=trials, seed=seed, progress=progress_wanted(quiet)
        )
        _show(result, out, quiet, as_json)


@main.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option(
    "--window",
    default=None,
    help="The window whose revenue is explained: a fiscal quarter (FY2027-Q2), fiscal year "
    "(FY2027) or month (2026-04); default: the fiscal quarter holding NEW's as_of.",
)
@click.option(
    "--order",
    default=None,
    help="The order of the steps, comma-separated (default: won,lost,new,advanced,pushed,"
    "pulled_in,amount,parameters,time; steps left out follow in that order). The split "
    "depends on it: each step meets the book the steps before it left.",
)
@_run_options
@_quiet_json
def explain(
    old: Path,
    new: Path,
    window: str | None,
    order: str | None,
    trials: int,
    seed: int,
    out: Path,
    quiet: bool,
    as_json: bool,
) -> None:
    """Why the forecast moved from snapshot OLD to NEW; writes OUT/movement.parquet."""
    with _working(notice=not (quiet or as_json)):
        result = api.explain(
            old, new, window=window, order=order, trials=trials, seed=seed,
            progress=progress_wanted(quiet),
        )  # fmt: skip
        _show(result, out, quiet, as_json)


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--step",
    default=0.1,
    show_default=True,
    type=float,
    help="Relative move of each input, between 0 and 1 (0.1: down 10% and up 10%).",
)
@_run_options
@_quiet_json
def sensitivity(
    scenario: Path | None,
    step: float,
    trials: int,
    seed: int,
    out: Path,
    quiet: bool,
    as_json: bool,
) -> None:
    """Tornado of P50/P10 revenue per input; writes OUT/sensitivity.parquet."""
    with _working(notice=not (quiet or as_json)):
        result = api.sensitivity(
            scenario, step=step, trials=trials, seed=seed, progress=progress_wanted(quiet)
        )
        _show(result, out, quiet, as_json)


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@_REVENUE
@_MONTHS
@_CONFIDENCE
@click.option(
    "--actuals",
    type=click.Path(path_type=Path),
    default=None,
    help="Parquet file of monthly actuals: period (YYYY-MM), stage (a funnel stage or Won), "
    "entered (+ revenue on Won rows, segment columns).",
)
@_BY
@_run_options
@_quiet_json
def health(
    scenario: Path | None,
    revenue: float,
    months: int | None,
    confidence: float,
    actuals: Path | None,
    by: str | None,
    trials: int,
    seed: int,
    out: Path,
    quiet: bool,
    as_json: bool,
) -> None:
    """Stage coverage against a target, bottleneck, drift; writes OUT/health.parquet."""
    with _working(notice=not (quiet or as_json)):
        result = api.health(
            scenario, revenue, months=months, confidence=confidence, actuals=actuals, by=by,
            trials=trials, seed=seed, progress=progress_wanted(quiet),
        )  # fmt: skip
        _show(result, out, quiet, as_json)


# --- the planning page -------------------------------------------------------------


@main.command("app")
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to serve the page on (0: any free port; the address is printed).",
)
@click.option(
    "--host",
    default=None,
    help="Address to listen on (default 127.0.0.1: this computer only). Give one, e.g. "
    "0.0.0.0, only to let other computers reach the page: whoever reaches it can use it.",
)
@click.option("--no-browser", is_flag=True, help="Do not open the page in a web browser.")
@_trials(2_000, "Simulated futures behind every figure of the page (changeable on the page).")
@_SEED
def app(
    scenario: Path | None, port: int, host: str | None, no_browser: bool, trials: int, seed: int
) -> None:
    """A planning page for SCENARIO (default: the demo) in your browser, until Ctrl-C.

    Forecast, levers against the base on common random numbers, target and stage health,
    downloads (Parquet, Excel, levers.parquet). Needs the app extra: pip install "pipesim[app]".
    """
    with _working():
        from pipesim.app.server import serve

        serve(
            scenario, port=port, host=host, browser=not no_browser, trials=trials, seed=seed,
            say=click.echo,
        )  # fmt: skip


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
@click.option(
    "--deals",
    default=1_000_000,
    show_default=True,
    type=int,
    callback=_positive,
    help="Open deals in the generated book (above 1,048,576 the book is read from disk).",
)
@_trials(1_000, "Simulated futures (a timing, not a forecast: fewer than run's).")
@click.option(
    "--months",
    default=12,
    show_default=True,
    type=int,
    callback=_positive,
    help="Horizon in calendar months.",
)
@_SEED
@click.option(
    "--engine",
    type=click.Choice([n for n, e in api.ENGINES.items() if e.benchmark]),
    default="numba",
    show_default=True,
    help="; ".join(f"{e.name}: {e.summary}" for e in api.ENGINES.values() if e.benchmark) + ".",
)
@_quiet_json
def bench(
    deals: int, trials: int, months: int, seed: int, engine: str, quiet: bool, as_json: bool
) -> None:
    """Generate a book of DEALS open deals in a temporary folder, run it, report.

    Prints the first kernel call's time (compile or cache load), the time to
    load the book, the simulation time and throughput (deal-trials per second)
    and the peak memory of the process.
    """
    with _working(notice=not (quiet or as_json)):
        report = api.bench(
            deals, trials, months=months, seed=seed, engine=engine, progress=progress_wanted(quiet)
        )
    if as_json:
        click.echo(api.bench_json(report))
    else:
        _say(report.text(), quiet)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
