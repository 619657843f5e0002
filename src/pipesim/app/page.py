"""The planning page's HTML: the whole page, and the parts the page's script replaces.

Every text that comes from data (stage names, segment values, variant names, messages)
goes through :func:`pipesim.reports.html_parts.esc`, as in the HTML report; the forecast
below the forms is the report's own sections (charts are inline SVG drawn by matplotlib).
"""

from __future__ import annotations

import dataclasses
import math
import shlex

import pandas as pd

from pipesim.app.lever_form import Field
from pipesim.app.session import PlanningSession
from pipesim.reports import charts, html_plans
from pipesim.reports.html import report_sections
from pipesim.reports.html_parts import CSS, esc
from pipesim.reports.results_folder import load_report_data

PAGE_CSS = """
form.panel{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:10px 16px;
margin:8px 0}
form.panel label{margin-right:14px;white-space:nowrap}
form.panel input{width:8em;font:inherit}form.panel input.name{width:14em}
form.panel td input{width:6em}
.err{color:#b42318;font-size:.85em;display:block;max-width:40em}
.err:empty{display:none}
#status{color:#57606a;font-size:.85em;margin-left:12px}
.downloads a{margin-right:16px}
code{background:#eef3f8;padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
"""
# The command that prints a variant's figures (the page is a front end, as the CLI is).
COMMAND = "pipesim compare {folder}--lever {lever} --trials {trials} --seed {seed}"
SAVED_COMMAND = "pipesim compare {folder}--trials {trials} --seed {seed}"
SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _error(name: str, errors: dict[str, str]) -> str:
    return f'<span class="err" data-error-for="{esc(name)}">{esc(errors.get(name, ""))}</span>'


def _input(name: str, value: object, errors: dict[str, str], css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return (
        f'<input name="{esc(name)}" id="in-{esc(name)}" value="{esc(value)}"{cls} '
        f'autocomplete="off">{_error(name, errors)}'
    )


def settings_form(session: PlanningSession, errors: dict[str, str]) -> str:
    """Trials, seed and breakdown: a plain form (the page is drawn again)."""
    s = session.settings
    options = ['<option value="">none</option>'] + [
        f'<option value="{esc(c)}"{" selected" if c == s.by else ""}>{esc(c)}</option>'
        for c in session.segment_columns
    ]
    return (
        '<form class="panel" id="settings" method="get" action="/">'
        f"<label>trials {_input('trials', s.trials, errors)}</label>"
        f"<label>seed {_input('seed', s.seed, errors)}</label>"
        f'<label>by <select name="by" id="in-by">{"".join(options)}</select>'
        f"{_error('by', errors)}</label>"
        '<button type="submit">Run again</button></form>'
    )


def _stage_now(session: PlanningSession) -> dict[str, tuple[float, float]]:
    """Each stage's conversion and mean days on the funnel row (before any segment row)."""
    stages = session.scenario.stages
    segs = [c for c in session.scenario.stage_segments if c in stages.columns]
    rows = stages[stages[segs].isna().all(axis=1)] if segs else stages
    return {
        str(r["stage"]): (float(r["conversion"]), float(r["dwell_days"]))
        for _, r in rows.iterrows()
    }


def levers_form(session: PlanningSession) -> str:
    """The lever inputs; the page's script sends them as they change."""
    reading = session.reading
    errors, values = reading.errors, reading.values
    options = ['<option value="0">the whole book</option>'] + [
        f'<option value="{i}"{" selected" if i == reading.segment else ""}>'
        f"{esc(col)} = {esc(val)}</option>"
        for i, (col, val) in enumerate(session.options, start=1)
    ]

    def cell(field: Field) -> str:
        shown = values.get(field.name) or f"{field.neutral:g}"
        return f"<td>{_input(field.name, shown, errors)}</td>"

    by_name = {f.name: f for f in session.fields}
    top = "".join(
        f"<label>{esc(by_name[n].label)} {_input(n, values.get(n) or '1', errors)}</label>"
        for n in ("leads", "amount")
        if n in by_name
    )
    now = _stage_now(session)
    rows = []
    for i, stage in enumerate(session.scenario.funnel):
        conv, days = now.get(stage, (math.nan, math.nan))
        rows.append(
            f'<tr><td>{esc(stage)}</td><td class="n">{conv:.1%}</td>'
            f'{cell(by_name[f"conversion.{i}"])}<td class="n">{days:,.1f}</td>'
            f"{cell(by_name[f'dwell.{i}'])}</tr>"
        )
    table = (
        "<table><thead><tr><th>stage</th><th>conversion now</th><th>conversion + (0.05: five "
        "points more)</th><th>days in stage now</th><th>cycle time × (0.8: 20% faster)</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return (
        '<form class="panel" id="levers" method="get" action="/">'
        f"<label>variant {_input('variant', reading.name, errors, 'name')}</label>"
        f'<label>for <select name="segment" id="in-segment">{"".join(options)}</select>'
        f"{_error('segment', errors)}</label><br>{top}{table}"
        '<button type="submit">Compare</button><span id="status"></span></form>'
    )


def _cells(row: pd.Series, cols: tuple[str, ...], fmt: object) -> str:
    out = []
    for c in cols:
        value = float(row[c])
        out.append(f'<td class="n" data-col="{c}" data-value="{value!r}">{esc(fmt(value))}</td>')  # type: ignore[operator]
    return "".join(out)


def variant_section(session: PlanningSession) -> str:
    """The variant against the base on common random numbers, or how to get one."""
    s = session.settings
    compared = session.compared
    if compared is None:
        return (
            '<p class="note">Move a lever: the variant and the base are then simulated on the '
            f"same random numbers ({s.trials:,} trials, seed {s.seed}), so the gain is the "
            "lever's, not chance's.</p>"
        )
    table = compared.table
    cur = session.scenario.currency
    head = ["", f"mean{f' ({cur})' if cur else ''}", "P10", "P50", "P90", "gain in mean"]
    head += ["± s.e.", "gain in P10", "gain in P50", "gain in P90", "P(better)"]
    body = []
    for _, r in table.iterrows():
        body.append(
            f'<tr data-variant="{esc(r["variant"])}"><td>{esc(r["variant"])}</td>'
            + _cells(r, ("mean", "p10", "p50", "p90"), html_plans.amount)
            + _cells(r, ("delta_mean",), html_plans.signed)
            + _cells(r, ("delta_se",), html_plans.amount)
            + _cells(r, ("delta_p10", "delta_p50", "delta_p90"), html_plans.signed)
            + _cells(r, ("p_better",), lambda v: html_plans.share(v, 1))
            + "</tr>"
        )
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    levers = session.reading.levers
    said = "; ".join(lv.label() for lv in levers)
    folder = session.scenario.path
    where = shlex.quote(str(folder)) + " " if folder else ""
    settings = {"folder": where, "trials": s.trials, "seed": s.seed}
    if len(levers) == 1:
        command = COMMAND.format(lever=shlex.quote(levers[0].label()), **settings)
        same = f"The same figures as <code>{esc(command)}</code>."
    else:
        same = (
            f"The same figures as <code>{esc(SAVED_COMMAND.format(**settings))}</code> with this "
            "variant's <code>levers.parquet</code> (download below) in the scenario folder."
        )
    return (
        f'<p class="note">Levers: {esc(said)}. Revenue over the horizon, {s.trials:,} trials, '
        f"seed {s.seed}; gains trial by trial against the base (computed in "
        f"{session.compare_seconds:.2f} s).</p>"
        f'<div class="table"><table id="variant-table"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="note">{same}</p>'
    )


def target_form(session: PlanningSession) -> str:
    """Revenue target, confidence and window."""
    g, errors = session.goal, session.goal_errors
    return (
        '<form class="panel" id="target" method="get" action="/">'
        f"<label>revenue {_input('revenue', f'{g.revenue:.0f}' if g else '', errors)}</label>"
        f"<label>confidence {_input('confidence', g.confidence if g else 0.8, errors)}</label>"
        f"<label>months (empty: the horizon) "
        f"{_input('months', g.months if g and g.months else '', errors)}</label>"
        '<button type="submit">Leads needed and stage health</button>'
        '<span id="target-status"></span></form>'
    )


def goal_section(session: PlanningSession) -> str:
    """Leads needed for the target and each stage's health (base scenario)."""
    if session.target is None or session.health is None:
        return (
            '<p class="note">Give a revenue target: the new leads a month it needs and each '
            "stage's stock against it, for the base scenario, as <code>pipesim target</code> "
            "and <code>pipesim health</code> give them.</p>"
        )
    cur = session.scenario.currency
    t, h = session.target, session.health
    notes = [*t.messages, *h.messages]
    said = '<p class="note">' + "<br>".join(esc(m) for m in notes) + "</p>" if notes else ""
    return (
        "<h3>New leads needed</h3>"
        + html_plans.target_section(t.table, t.metadata, cur)
        + "<h3>Stage health</h3>"
        + html_plans.health_section(h.table, h.metadata, cur, None)
        + said
    )


def forecast_section(session: PlanningSession) -> str:
    """The base forecast as the HTML report draws it (drawn once per run)."""
    with session.lock:
        if session.drawn[0] != session.run_number:
            data = load_report_data(session.folder)
            data = dataclasses.replace(
                data, compare=None, sensitivity=None, target_plan=None, health=None, drift=None
            )
            drawn = charts.build_charts(data)
            session.drawn = (session.run_number, "\n".join(report_sections(data, drawn)))
        return session.drawn[1]


def downloads() -> str:
    """Links to the files of what is on screen."""
    return (
        '<p class="downloads">'
        '<a href="/download/pipesim-results.zip" download>Parquet results (zip)</a>'
        '<a href="/download/pipesim.xlsx" download>Excel workbook</a>'
        '<a href="/download/levers.parquet" download id="save-levers">Save the variant '
        "(levers.parquet)</a></p>"
        '<p class="note">The zip holds the run of the page (summary, quarters, trials, funnel), '
        "and compare, target, health and levers when shown; the workbook, the report's sheets "
        "of the same files. Put <code>levers.parquet</code> in a scenario folder and "
        "<code>pipesim compare</code> runs the variant.</p>"
    )


def page_html(session: PlanningSession, errors: dict[str, str]) -> str:
    """The whole page."""
    sc, s = session.scenario, session.settings
    name = sc.name or "scenario"
    deals = f"{sc.deal_count:,} open deals · " if sc.deal_count else ""
    parts = [
        f"<h1>pipesim planning: {esc(name)}</h1>",
        f'<p class="sub">as of {esc(sc.as_of.isoformat())} · {sc.horizon_months} months · '
        f"{deals}{s.trials:,} trials · seed {s.seed} · run in {session.run_seconds:.1f} s</p>",
        settings_form(session, errors),
        "<h2>Levers: a variant against the base</h2>",
        levers_form(session),
        f'<section id="variant">{variant_section(session)}</section>',
        "<h2>Target</h2>",
        target_form(session),
        f'<section id="goal">{goal_section(session)}</section>',
        "<h2>Downloads</h2>",
        downloads(),
        "<h2>Forecast (base)</h2>",
        f'<section id="forecast">{forecast_section(session)}</section>',
    ]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>pipesim planning: {esc(name)}</title><style>{CSS}{PAGE_CSS}</style>"
        '<script src="/page.js" defer></script></head>'
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
