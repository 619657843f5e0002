"""The functions behind each CLI command, usable from Python with the same names.

The command line calls only this module: the run and report functions are here,
the others come from their packages (calibration, planning, bench).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipesim.calibration.backtest import format_backtest
from pipesim.calibration.commands import backtest, calibrate, snapshot
from pipesim.calibration.fit import Calibration
from pipesim.calibration.lead_rates import HALF_LIFE_MONTHS
from pipesim.datasets import write_example_history
from pipesim.engines import registry
from pipesim.errors import InputError, MissingDependencyError, PipesimWarning, install_hint
from pipesim.io import parquet, scenario_folder, scenario_workbook
from pipesim.io.parquet import check_output_folder
from pipesim.io.workbook import require_openpyxl
from pipesim.plan.compare import compare
from pipesim.plan.explain import explain
from pipesim.plan.health import health
from pipesim.plan.levers import Lever, apply_lever, gather_variants, variant_rows
from pipesim.plan.plan_result import PlanResult
from pipesim.plan.sensitivity import sensitivity
from pipesim.plan.target import target
from pipesim.scenario.demo import demo_path, demo_readme, demo_tables
from pipesim.scenario.extend_arrivals import extend_arrivals as carry_arrivals
from pipesim.scenario.show import DEAL_ROWS, scenario_text
from pipesim.simulation.bench import BenchReport, bench
from pipesim.simulation.result import Result
from pipesim.simulation.simulate import simulate

ENGINES = registry.ENGINES

__all__ = [
    "ENGINES",
    "HALF_LIFE_MONTHS",
    "TRIALS",
    "Lever",
    "apply_lever",
    "backtest",
    "backtest_json",
    "bench",
    "bench_json",
    "calibrate",
    "calibration_json",
    "check_output_folder",
    "compare",
    "demo_path",
    "example_history",
    "explain",
    "export_scenario",
    "format_backtest",
    "format_report",
    "format_run",
    "funnel_note",
    "health",
    "import_scenario",
    "init_scenario",
    "load_scenario",
    "plan_json",
    "report",
    "report_json",
    "require_app_extras",
    "require_report_extras",
    "run_json",
    "run_scenario",
    "sensitivity",
    "set_threads",
    "show_scenario",
    "simulate",
    "snapshot",
    "target",
    "variant_rows",
    "workbook",
    "write_levers",
    "write_results",
]

load_scenario = scenario_folder.load_scenario

TRIALS = 10_000  # simulated futures of a forecast or a plan when not told (run, target, ...)


def run_scenario(
    scenario: str | os.PathLike[str] | None = None,
    *,
    trials: int | str = TRIALS,
    seed: int = 0,
    by: str | Sequence[str] | None = None,
    engine: str = "numba",
    threads: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    extend_arrivals: bool = False,
    precision: float | None = None,
    max_trials: int | None = None,
    deal_odds: bool = False,
    no_close_dates: bool = False,
) -> Result:
    """Load a scenario folder (default: the bundled demo) and simulate it.

    A progress bar shows on stderr for runs over ~2 s unless ``quiet`` or stderr
    is not a terminal. ``address`` is the Dask scheduler for ``engine="dask"``/``"dask-fast"``.
    ``extend_arrivals`` fills horizon months without new leads with the same month a
    year before (:mod:`pipesim.scenario.extend_arrivals`); the result's notes count them.
    ``trials="auto"`` (with ``precision`` and ``max_trials``) runs blocks of trials until the
    horizon's P10/P50/P90 are known within ``precision`` (see :func:`pipesim.simulate`).
    ``deal_odds`` also counts each open deal's odds over the same trials
    (``result.deal_odds``, :mod:`pipesim.simulation.deal_odds`; engine numba or dask).
    ``no_close_dates`` leaves out the slippage law (``close_dates.parquet``): every deal
    is then timed by its stage's clocks, its ``close_date`` unused.
    """
    from pipesim import progress
    from pipesim.simulation import deal_odds as odds

    if threads is not None:
        set_threads(threads)
    if address is not None and not registry.get(engine).cluster:
        raise InputError(
            f"address= is for the Dask engines (engine=dask or engine=dask-fast), "
            f"not engine={engine}.",
            parameters=("address", "engine"),
        )
    if deal_odds:
        odds.check_engine(engine)
    path = Path(scenario) if scenario is not None else demo_path()
    loaded = scenario_folder.load_scenario(path)
    dropped = no_close_dates and loaded.close_law is not None
    if dropped:
        loaded = loaded.replace(close_law=None)
    added = 0
    if extend_arrivals:
        loaded, added = carry_arrivals(loaded)
    result = simulate(
        loaded,
        trials=trials,
        seed=seed,
        by=by,
        engine=engine,
        address=address,
        progress=progress.wanted(quiet),
        precision=precision,
        max_trials=max_trials,
    )
    if added:
        note = f"arrivals: {added} row(s) added for horizon months without new leads, "
        note += "each the same month a year before (or the latest month)."
        result = dataclasses.replace(result, notes=(*result.notes, note))
    if deal_odds:
        found = odds.deal_odds(loaded, result.trials_count, seed)
        result = dataclasses.replace(result, deal_odds=found)
    if dropped:
        note = (
            "close dates off: every deal timed by its stage's clocks (close_dates.parquet unused)."
        )
        result = dataclasses.replace(result, notes=(*result.notes, note))
    return result


def set_threads(threads: int) -> None:
    """Use ``threads`` numba threads (at most the ``NUMBA_NUM_THREADS`` set at import)."""
    import numba

    if threads <= 0:
        raise InputError(f"threads must be positive, got {threads}.")
    numba.set_num_threads(min(threads, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def format_run(result: Result) -> str:
    """The tables ``pipesim run`` prints."""
    from pipesim.reports.terminal import run_report

    return run_report(result)


def write_results(
    result: Result, out: str | os.PathLike[str], target: float | None = None
) -> list[Path]:
    """Write ``summary.parquet``, ``quarters.parquet``, ``trials.parquet``, ``funnel.parquet``.

    ``quarters.parquet`` holds the fiscal quarters and years (:meth:`Result.quarters`);
    a scenario with quotas also gets ``quota.parquet`` (:meth:`Result.quota`).
    All carry the run's settings in their metadata (and ``target``, the
    revenue target over the horizon, when given: ``pipesim report`` draws it);
    ``funnel.parquet`` (stage, deals, value, conversion, win_probability) makes
    the folder enough for ``pipesim report``. A scenario with loss clocks also gets
    ``odds.parquet`` (stage, age_days, odds: the chance to advance by age); one whose
    deals carry ``forecast_category`` gets ``forecast_call.parquet`` (the reps' call
    next to the model's for the quarter of as_of, :mod:`pipesim.reports.forecast_call`);
    a result with ``deal_odds`` gets ``deal_odds.parquet`` (each open deal's odds,
    :mod:`pipesim.simulation.deal_odds`; its quarter in the metadata).
    one whose deals were timed by their stated close dates gets ``close_dates.parquet``
    (the slippage law used, :mod:`pipesim.scenario.close_law`).
    """
    from pipesim.prepare.dated_deals import uses_close_dates
    from pipesim.prepare.loss_clock import odds_curve
    from pipesim.reports.forecast_call import forecast_call
    from pipesim.reports.funnel_table import funnel_table

    metadata = result.metadata()
    if target is not None:
        if not target > 0:
            raise InputError(f"the target must be a positive amount, got {target}.")
        metadata["target"] = repr(float(target))

    tables = {
        "summary": result.summary(result.by),
        "quarters": result.quarters(result.by),
        "trials": result.trials(result.by),
        "funnel": funnel_table(result.scenario),
    }
    quota = result.quota()
    if quota is not None:
        tables["quota"] = quota
    odds = odds_curve(result.scenario)
    if len(odds):
        tables["odds"] = odds
    call = forecast_call(result)
    if call is not None:
        tables["forecast_call"] = call
    if result.deal_odds is not None:
        tables["deal_odds"] = result.deal_odds.table
        metadata["deal_odds_quarter"] = result.deal_odds.quarter
        metadata["deal_odds_quarter_start"] = result.deal_odds.quarter_start.isoformat()
        metadata["deal_odds_quarter_end"] = result.deal_odds.quarter_end.isoformat()
    if result.scenario.close_law is not None and uses_close_dates(result.scenario):
        tables["close_dates"] = result.scenario.close_law  # the slippage law the run used
    return parquet.write_tables(out, tables, metadata)


def init_scenario(directory: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Write the documented example scenario (and its README.md) into ``directory``."""
    folder = Path(directory)
    scenario_folder.refuse_to_overwrite(folder, force)
    tables = demo_tables()
    written = parquet.write_tables(folder, tables)
    readme = folder / "README.md"
    readme.write_text(demo_readme(tables), encoding="utf-8")
    return [*written, readme]


def show_scenario(
    scenario: str | os.PathLike[str] | None = None, *, deal_rows: int = DEAL_ROWS
) -> str:
    """A scenario folder's tables as text (default: the bundled demo), as pipesim reads them.

    The settings, every stage row, the first ``deal_rows`` deals with their count, every
    arrivals row, and the levers table when the folder has one.
    """
    if deal_rows < 0:
        raise InputError(f"deal_rows={deal_rows}: must be 0 or more.", parameters=("deal_rows",))
    folder = Path(scenario) if scenario is not None else demo_path()
    loaded = scenario_folder.load_scenario(folder)
    levers = parquet.read_tables(folder, ("levers",)).get("levers")
    settings = scenario_folder.settings_table(loaded)
    return scenario_text(loaded, settings, levers, deal_rows=deal_rows)


def export_scenario(scenario: str | os.PathLike[str], workbook: str | os.PathLike[str]) -> Path:
    """Write a scenario folder as one Excel workbook, a sheet per table.

    Sheets ``stages``, ``deals``, ``arrivals``, ``scenario`` (the tables as pipesim reads
    them: checked, defaults filled) and ``levers`` when the folder has ``levers.parquet``.
    :func:`import_scenario` reads it back to the same tables. Needs openpyxl (the
    ``report`` extra).
    """
    require_openpyxl("scenario export")
    folder = Path(scenario)
    loaded = scenario_folder.load_scenario(folder)
    levers = parquet.read_tables(folder, ("levers",)).get("levers")
    return scenario_workbook.write_scenario_workbook(workbook, loaded, levers)


def import_scenario(
    workbook: str | os.PathLike[str], directory: str | os.PathLike[str], force: bool = False
) -> list[Path]:
    """Write the scenario an Excel workbook holds as a scenario folder of Parquet files.

    The workbook has the sheets :func:`export_scenario` writes (``arrivals`` and
    ``levers`` optional); they are checked as a scenario folder is, and nothing is
    written unless all pass. A folder that already holds a scenario is refused unless
    ``force``; with ``force``, a ``levers.parquet`` the workbook has no sheet for is
    removed (a warning says so). Needs openpyxl (the ``report`` extra).
    """
    require_openpyxl("scenario import")
    folder = Path(directory)
    scenario_folder.refuse_to_overwrite(folder, force, (*scenario_folder.SCENARIO_FILES, "levers"))
    loaded, levers = scenario_workbook.read_scenario_workbook(workbook)
    tables = scenario_folder.scenario_tables(loaded)
    if levers is not None:
        source = f"{workbook}, sheet 'levers'"
        table = scenario_workbook.levers_table(levers, source)
        try:
            gather_variants(loaded, (), table, source)
        except InputError as exc:
            note = scenario_workbook.ROWS_NOTE if "row " in str(exc) else ""
            raise InputError(str(exc) + note, parameters=exc.parameters) from None
        tables["levers"] = table
    written = parquet.write_tables(folder, tables, scenario_folder.scenario_metadata(loaded))
    for name, absent in (("levers", levers is None), ("fx", loaded.fx is None)):
        stale = folder / f"{name}.parquet"
        if absent and stale.is_file():
            stale.unlink()
            warnings.warn(
                f"{stale}: removed, as the workbook has no {name} sheet (the folder now holds "
                "the workbook's scenario only).",
                PipesimWarning,
                stacklevel=2,
            )
    return written


def example_history(directory: str | os.PathLike[str] = ".", force: bool = False) -> list[Path]:
    """Write the generated example CRM history (``deals.csv``, ``events.csv``) into ``directory``.

    Generic format, stages Lead, Demo, Proposal, a ``region`` segment, exported on
    2017-07-01: the files the README's calibrate example reads. Not real data.
    """
    return write_example_history(directory, force=force)


def funnel_note(format: str, stages: int) -> str:
    """What a calibrated funnel's size means for this export (empty when there is nothing to say).

    The Maven export gives one stage: it says why, and what that means for a forecast.
    """
    if format != "maven" or stages != 1:
        return ""
    return (
        "Why one stage: the Maven export records each deal's current stage only (Prospecting, "
        "Engaging, Won, Lost), never when a deal changed stage, and gives Prospecting deals no "
        "date at all. So the funnel is the one stage that can be timed, Engaging, from "
        "engage_date to the close: its conversion is the share of engaged deals that are won, its "
        "clocks the time from engaging to a win or to a loss. Every open deal is forecast from "
        "that stage at its age since engage_date (an old one has lower odds); there is no "
        "stage-by-stage view (health, stage levers and the funnel report have one stage). The "
        "funnel is what the data holds, so runs do not warn about its size."
    )


def run_json(result: Result) -> str:
    """What ``pipesim run --json`` prints: settings, summary, quarters (and quota) rows.

    With forecast categories on the deals, ``"forecast_call"`` holds the call's row too.
    """
    from pipesim.reports.export import tables_json
    from pipesim.reports.forecast_call import forecast_call

    tables = {"summary": result.summary(result.by), "quarters": result.quarters(result.by)}
    quota = result.quota()
    if quota is not None:
        tables["quota"] = quota
    call = forecast_call(result)
    if call is not None:
        tables["forecast_call"] = call
    return tables_json(tables, result.metadata())


def plan_json(result: PlanResult) -> str:
    """What a planning command prints with ``--json``: settings, its tables, its findings."""
    from pipesim.reports.export import tables_json

    return tables_json(result.tables, result.metadata, result.messages)


def calibration_json(calibration: Calibration) -> str:
    """What ``pipesim calibrate --json`` prints: settings, the report and estimates, the stages."""
    from pipesim.reports.export import tables_json

    sc = calibration.scenario
    settings = {"as_of": str(sc.as_of), "horizon_months": str(sc.horizon_months)}
    tables = {"calibration": calibration.table(), "stages": sc.stages}
    return tables_json(tables, settings)


def backtest_json(table: pd.DataFrame) -> str:
    """What ``pipesim backtest --json`` prints: every row of ``backtest.parquet``."""
    from pipesim.reports.export import tables_json

    return tables_json({"backtest": table}, {"command": "backtest"})


def bench_json(report: BenchReport) -> str:
    """What ``pipesim bench --json`` prints: every figure, in seconds, bytes and counts."""
    import json

    figures = dataclasses.asdict(report)
    figures["deal_trials_per_second"] = report.deal_trials_per_second
    return json.dumps(figures, indent=1)


def report_json(results: str | os.PathLike[str]) -> str:
    """What ``pipesim report --json`` prints: the settings and the totals over the horizon.

    For a run's folder the cumulative rows of its last month (``horizon``: whole book
    and segments); for a backtest's folder every row of ``backtest.parquet``.
    """
    from pipesim.reports import backtest_page, movement_page
    from pipesim.reports.export import tables_json
    from pipesim.reports.results_folder import load_report_data

    if backtest_page.is_backtest_folder(results):
        path = Path(results) / "backtest.parquet"
        return tables_json({"backtest": parquet.read_table(path)}, parquet.read_metadata(path))
    if movement_page.is_movement_folder(results):
        moved = movement_page.load_movement(results)
        return tables_json({"movement": moved.rows}, moved.settings)
    data = load_report_data(results)
    summary = data.summary
    last = summary["period"].astype(str).max()
    horizon = summary[summary["cumulative"] & (summary["period"].astype(str) == last)]
    return tables_json({"horizon": horizon.reset_index(drop=True)}, data.settings)


def report(
    results: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    png: str | os.PathLike[str] | None = None,
    xlsx: str | os.PathLike[str] | None = None,
    csv: str | os.PathLike[str] | None = None,
    target: float | None = None,
) -> list[Path]:
    """Write the HTML report of a results folder, and optionally PNGs, a workbook, CSVs.

    Parameters
    ----------
    results : path
        A folder written by ``pipesim backtest`` (``backtest.parquet``, no
        ``summary.parquet``): the backtest page (per window length and metric,
        realized against P10-P90 at each cutoff, coverage, mean CRPS against each
        baseline; ``png`` applies, ``xlsx``, ``csv`` and ``target`` do not). Or a
        folder written by ``pipesim run`` (``summary.parquet``, ``trials.parquet``,
        ``funnel.parquet``; ``compare.parquet``, ``sensitivity.parquet``,
        ``target.parquet`` and ``health.parquet`` are drawn when present and written
        for the same scenario, trials and seed; a :class:`PipesimWarning` names each
        file left out, and why). Or a folder written by ``pipesim explain``
        (``movement.parquet``, no ``summary.parquet``): the waterfall page of the
        steps from OLD's forecast to NEW's (``png`` applies, the others do not).
    out : path, optional
        The HTML file (default: ``results/report.html``). Self-contained: charts
        are inline SVG, no script, nothing fetched from the network.
    png : path, optional
        A folder to write each chart into as ``<chart id>.png``.
    xlsx : path, optional
        An Excel workbook: Summary (month, segment, P10/P50/P90 and mean of revenue
        and won deals, monthly and cumulative), Settings, and Funnel / Comparison /
        Sensitivity sheets when there is data for them.
    csv : path, optional
        A folder for the same tables as CSV files.
    target : float, optional
        Revenue target over the horizon, drawn on the charts.

    Returns
    -------
    list of Path
        Every file written, the HTML first.
    """
    from pipesim.reports import backtest_page, charts, export, html, movement_page
    from pipesim.reports.results_folder import load_report_data

    require_report_extras(xlsx=xlsx is not None)

    for folder, name in ((png, "png"), (csv, "csv")):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise InputError(f"{name}={folder}: is a file; give a folder.", parameters=(name,))
    if target is not None and not target > 0:
        raise InputError(f"target={target}: give a positive amount.", parameters=("target",))
    html_path = Path(out) if out is not None else Path(results) / "report.html"
    backtest, moved = (
        backtest_page.is_backtest_folder(results),
        movement_page.is_movement_folder(results),
    )
    if backtest or moved:
        holds = "a backtest (backtest.parquet" if backtest else "an explanation (movement.parquet"
        for name, given in (("xlsx", xlsx), ("csv", csv), ("target", target)):
            if given is not None:
                raise InputError(
                    f"{name}= is for a run's results; {results} holds {holds}, readable with "
                    "pandas). Leave out " + name + "=.",
                    parameters=(name,),
                )
    if backtest:
        bt = backtest_page.load_backtest(results)
        drawn = backtest_page.backtest_charts(bt)
        text = backtest_page.render_backtest_html(bt, drawn)
    elif moved:
        movement = movement_page.load_movement(results)
        drawn = movement_page.movement_charts(movement)
        text = movement_page.render_movement_html(movement, drawn)
    else:
        data = load_report_data(results, target=target)
        for line in data.left_out:
            warnings.warn(line, PipesimWarning, stacklevel=2)
        drawn = charts.build_charts(data)
        text = html.render_html(data, drawn)
    written = [export.atomic_write(html_path, lambda p: p.write_text(text, encoding="utf-8"))]
    if png is not None:
        Path(png).mkdir(parents=True, exist_ok=True)
        written += [Path(charts.save_png(c, png)) for c in drawn]
    if xlsx is not None:
        written.append(export.write_xlsx(data, xlsx))
    if csv is not None:
        written += export.write_csv(data, csv)
    return written


def require_report_extras(xlsx: bool = False) -> None:
    """Fail now, with the install command, when the report's packages are missing."""
    _require("matplotlib", "the charts")
    if xlsx:
        _require("openpyxl", "xlsx=")


def require_app_extras() -> None:
    """Fail now, with the install command, when the planning page's packages are missing."""
    for module in ("starlette", "uvicorn", "matplotlib", "openpyxl"):
        _require(module, "the planning page", extra="app")


def _require(module: str, what: str, extra: str = "report") -> None:
    """Fail with the install command when an optional package is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"{what}: the {module} package is not installed. {install_hint(extra)}"
        )


def workbook(results: str | os.PathLike[str], xlsx: str | os.PathLike[str]) -> Path:
    """Write the Excel workbook of a results folder (the sheets ``report(xlsx=)`` writes)."""
    from pipesim.reports.export import write_xlsx
    from pipesim.reports.results_folder import load_report_data

    require_report_extras(xlsx=True)
    return write_xlsx(load_report_data(results), xlsx)


def write_levers(table: pd.DataFrame, folder: str | os.PathLike[str]) -> Path:
    """Write a levers table as ``folder/levers.parquet`` (checked first: it must read back)."""
    from pipesim.plan.levers import levers_from_frame

    levers_from_frame(table, "levers table")
    return parquet.write_tables(folder, {"levers": table})[0]


def format_report(results: str | os.PathLike[str]) -> str:
    """What ``pipesim report`` prints: totals over the horizon, whole book and segments.

    For a backtest folder: the coverage and mean CRPS of each window length and metric.
    """
    from pipesim.reports import backtest_page, movement_page
    from pipesim.reports.results_folder import load_report_data
    from pipesim.reports.terminal import horizon_table

    if backtest_page.is_backtest_folder(results):
        return backtest_page.backtest_summary(backtest_page.load_backtest(results))
    if movement_page.is_movement_folder(results):
        return movement_page.movement_summary(movement_page.load_movement(results))
    data = load_report_data(results)
    trials = data.settings.get("trials", "?")
    trials = f"{int(trials):,}" if trials.isdigit() else trials
    head = (
        f"pipesim · {data.settings.get('scenario_name', '')} · as of "
        f"{data.settings.get('as_of', '')} · over {len(data.periods)} months "
        f"({data.periods[0]} to {data.periods[-1]}) · {trials} trials"
    )
    return head + "\n" + horizon_table(data.summary, data.by, data.currency)
