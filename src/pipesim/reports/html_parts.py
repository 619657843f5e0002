"""Pieces every HTML page of pipesim is made of: escaping, tables, figures, the page shell.

Every text that comes from data (stage names, segment values, variant names,
settings) goes through :func:`esc`; chart text is escaped by matplotlib's SVG writer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from pipesim.reports.charts import Chart, to_svg

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
.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:.85em;margin:8px 0}
th,td{border:1px solid #d8dee4;padding:4px 8px;overflow-wrap:break-word}
th{background:#eef3f8;text-align:left}td:first-child{min-width:11ch}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{color:#57606a;font-size:.85em}
.read{background:#fff;border-left:4px solid #9ecae1;padding:8px 12px;margin:16px 0}
"""


def esc(value: object) -> str:
    """HTML-escaped text (None: empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def money(value: object, currency: str = "") -> str:
    """``1,234,567 EUR``."""
    number = float(value)  # type: ignore[arg-type]
    if not np.isfinite(number):
        return ""
    return f"{number:,.0f}" + (f" {currency}" if currency else "")


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int) -> str:
    """An escaped table; cells from column ``numeric_from`` on are right-aligned.

    The table sits in a box as wide as the page that scrolls sideways rather than
    overflowing it.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{esc(c)}</td>' if i >= numeric_from else f"<td>{esc(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table">{table}</div>'


def figure_html(chart: Chart) -> str:
    """The chart as a captioned inline SVG figure."""
    return (
        f'<figure class="chart" id="chart-{esc(chart.id)}">'
        f"<figcaption>{esc(chart.title)}</figcaption>{to_svg(chart)}</figure>"
    )


def cards(items: Sequence[tuple[str, str]]) -> str:
    """Headline numbers: (value, label) pairs."""
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for v, k in items)
        + "</div>"
    )


def page(title: str, parts: Sequence[str]) -> str:
    """The whole HTML document: one file, inline CSS, no script."""
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
