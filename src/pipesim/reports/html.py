"""The HTML report: one self-contained file (inline SVG charts, inline CSS, no script, no network).

Every text that comes from data (stage names, segment values, variant names,
settings) goes through :func:`html.escape`; chart text is escaped by
matplotlib's SVG writer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipesim.reports.charts import MAX_PANELS, Chart, to_svg
from pipesim.reports.results_folder import ReportData
from pipesim.text_table import percent

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;
background:#f6f7f9}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;border-bottom:1px solid #ccd}
.sub{color:#57606a;margin:0 0 16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:10px 16px;min-width:150px}
.card b{display:block;font-size:1.35em}.card span{color:#57606a;font-size:.85em}
figure.chart{background:#fff;border:1px solid #d8dee4;border-radius:8px;margin:12px 0;padding:8px}
figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-weight:600;margin:4px 8px}
table{border-collapse:collapse;background:#fff;font-size:.85em;margin:8px 0}
th,td{border:1px solid #d8dee4;padding:4px 8px}th{background:#eef3f8;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#57606a;font-size:.85em}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(value: object, currency: str = "") -> str:
    """``1,234,567 EUR``."""
    number = float(value)  # type: ignore[arg-type]
    if not np.isfinite(number):
        return ""
    return f"{number:,.0f}" + (f" {currency}" if currency else "")


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int) -> str:
    """An escaped table; cells from column ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_e(c)}</td>' if i >= numeric_from else f"<td>{_e(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart: Chart) -> str:
    return (
        f'<figure class="chart" id="chart-{_e(chart.id)}">'
        f"<figcaption>{_e(chart.title)}</figcaption>{to_svg(chart)}</figure>"
    )


def _bands(data: ReportData, cumulative: bool) -> str:
    rev = data.whole("revenue", cumulative)
    won = data.whole("won_deals", cumulative)
    cur = data.currency
    rows = [
        [
            p,
            *(money(rev.loc[p, c], cur) for c in ("p10", "p50", "p90", "mean")),
            *(f"{won.loc[p, c]:,.0f}" for c in ("p10", "p50", "p90")),
            f"{won.loc[p, 'mean']:,.1f}",
        ]
        for p in rev.index
    ]
    head = ["month", "revenue P10", "P50", "P90", "mean", "won deals P10", "P50", "P90", "mean"]
    return html_table(head, rows, 1)


def _cards(data: ReportData) -> str:
    last = data.periods[-1]
    rev = data.whole("revenue", True).loc[last]
    won = data.whole("won_deals", True).loc[last]
    cards = [(money(rev[c], data.currency), f"revenue {c.upper()}") for c in ("p10", "p50", "p90")]
    cards.append((money(rev["mean"], data.currency), "revenue mean"))
    cards.append((f"{won['p50']:,.0f}", "won deals P50"))
    if data.target is not None:
        cards.append((money(data.target, data.currency), "target"))
        if data.totals is not None and len(data.totals):
            cards.append((f"{np.mean(data.totals >= data.target):.0%}", "P(total ≥ target)"))
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in cards)
        + "</div>"
    )


def _settings(data: ReportData) -> str:
    s = data.settings
    rows = [
        ("scenario", s.get("scenario_name", "")),
        ("scenario folder", s.get("scenario", "")),
        ("as of", s.get("as_of", "")),
        ("horizon", f"{s.get('horizon_months', len(data.periods))} months"),
        ("trials", f"{int(s['trials']):,}" if s.get("trials", "").isdigit() else s.get("trials")),
        ("seed", s.get("seed", "")),
        ("engine", s.get("engine", "")),
        ("segments (--by)", ", ".join(data.by) or "none"),
        ("currency", data.currency or "none"),
        ("target", money(data.target, data.currency) if data.target is not None else "none"),
        ("scenario fingerprint", s.get("scenario_fingerprint", "none (older pipesim)")),
        ("pipesim version", s.get("pipesim_version", "")),
        ("results folder", str(data.folder.resolve())),
    ]
    return html_table(["setting", "value"], rows, 2)


def _funnel(funnel: pd.DataFrame, currency: str) -> str:
    names = [str(s) for s in funnel["stage"]]
    rows = [
        [
            s,
            f"{int(d):,}",
            money(v, currency),
            f"{c:.0%} → {n}",
            f"{w:.1%}" if "win_probability" in funnel else "",
        ]
        for s, d, v, c, w, n in zip(
            names,
            funnel["deals"],
            funnel["value"],
            funnel["conversion"],
            funnel.get("win_probability", pd.Series([np.nan] * len(funnel))),
            [*names[1:], "Won"],
            strict=True,
        )
    ]
    return html_table(["stage", "open deals", "value", "conversion", "P(won) from here"], rows, 1)


def _segment_table(data: ReportData) -> str:
    last = data.periods[-1]
    rows = []
    for labels in data.segments():
        rev = data.block(labels, "revenue", True).loc[last]
        won = data.block(labels, "won_deals", True).loc[last]
        rows.append(
            [
                *("(none)" if v is None else v for v in labels),
                *(money(rev[c], data.currency) for c in ("p10", "p50", "p90", "mean")),
                f"{won['p50']:,.0f}",
                f"{won['mean']:,.1f}",
            ]
        )
    head = [*data.by, "revenue P10", "P50", "P90", "mean", "won deals P50", "mean"]
    return html_table(head, rows, len(data.by))


def _compare(compare: pd.DataFrame, currency: str) -> str:
    cols = [c for c in compare.columns if c != "variant"]
    rows = []
    for _, r in compare.iterrows():
        cells: list[object] = [r["variant"]]
        for c in cols:
            v = r[c]
            if c == "p_better":
                cells.append(f"{float(v):.0%}" if pd.notna(v) else "")
            elif isinstance(v, int | float | np.number):
                cells.append(money(float(v), currency))
            else:
                cells.append(v)
        rows.append(cells)
    return html_table(["variant", *cols], rows, 1)


def _raw(frame: pd.DataFrame) -> str:
    rows = [
        [f"{v:,.4g}" if isinstance(v, float) else v for v in r]
        for r in frame.itertuples(index=False, name=None)
    ]
    return html_table([str(c) for c in frame.columns], rows, len(frame.columns))


def _odds(odds: pd.DataFrame) -> str:
    """One sentence per stage: a deal 90 days old against a fresh one."""
    lines = []
    for stage, grp in odds.groupby("stage", sort=False):
        fresh = grp.loc[grp["age_days"] == 0, "odds"]
        old = grp.loc[grp["age_days"] == 90, "odds"]
        if len(fresh) and len(old):
            lines.append(
                f"{_e(stage)}: a deal 90 days old advances {percent(old.iloc[0])}, "
                f"a fresh one {percent(fresh.iloc[0])}."
            )
    return '<p class="note">' + "<br>".join(lines) + "</p>" if lines else ""


def render_html(data: ReportData, charts: list[Chart]) -> str:
    """The whole report as one HTML string."""
    by_id = {c.id: c for c in charts}
    name = data.settings.get("scenario_name") or data.folder.name
    parts = [
        f"<h1>pipesim report: {_e(name)}</h1>",
        f'<p class="sub">as of {_e(data.settings.get("as_of", ""))} · {len(data.periods)} months'
        f" · revenue over the horizon</p>",
        _cards(data),
    ]
    parts.append("<h2>Revenue</h2>")
    parts += [
        _figure(by_id[i]) for i in ("fan-monthly", "fan-cumulative", "histogram") if i in by_id
    ]
    parts += ["<h3>Per month</h3>", _bands(data, False), "<h3>Cumulative</h3>", _bands(data, True)]
    if data.funnel is not None:
        parts += ["<h2>Funnel</h2>"]
        parts += [_figure(by_id["funnel"])] if "funnel" in by_id else []
        parts.append(_funnel(data.funnel, data.currency))
    if data.odds is not None and len(data.odds):
        parts += ["<h2>Two clocks: the chance to advance by age</h2>"]
        parts += [_figure(by_id["odds"])] if "odds" in by_id else []
        parts.append(_odds(data.odds))
    segments = data.segments()
    if segments:
        parts += [f"<h2>By {_e(', '.join(data.by))}</h2>", _segment_table(data)]
        if "segments" in by_id:
            parts.append(_figure(by_id["segments"]))
        if len(segments) > MAX_PANELS:
            parts.append(
                f'<p class="note">The charts show the first {MAX_PANELS} of {len(segments)} '
                "segments; the table lists them all.</p>"
            )
    if data.compare is not None:
        parts += ["<h2>Scenario comparison</h2>"]
        parts += [_figure(by_id["compare"])] if "compare" in by_id else []
        parts.append(_compare(data.compare, data.currency))
    if data.sensitivity is not None:
        parts += ["<h2>Sensitivity</h2>"]
        if "tornado" in by_id:
            parts.append(_figure(by_id["tornado"]))
        else:
            parts.append('<p class="note">No change in P50 found in sensitivity.parquet.</p>')
        parts.append(_raw(data.sensitivity))
    parts += ["<h2>Settings</h2>", _settings(data)]
    notes = (*data.left_out, *data.skipped)
    if notes:
        parts.append('<p class="note">' + "<br>".join(_e(s) for s in notes) + "</p>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pipesim report: {_e(name)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
