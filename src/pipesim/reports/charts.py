"""The report's charts as matplotlib figures; matplotlib is imported only inside these functions.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot, so
no global backend or state is touched) and rendered with the Agg (PNG) or SVG
canvas. Text is kept as SVG text, and matplotlib's math parser is off, so a
label such as ``US$ 5$`` or ``<b>`` is drawn literally (and XML-escaped in SVG).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipesim.reports.results_folder import ReportData, tornado_frame
from pipesim.simulation.reaching import share_reaching
from pipesim.text_table import percent

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
WIDTH = 8.0
MAX_PANELS = 12  # small multiples drawn; the segment table lists them all
BAND, LINE, MEAN, TARGET = "#9ecae1", "#08519c", "#e6550d", "#d62728"
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "pipesim",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


@dataclasses.dataclass
class Chart:
    """One chart of the report: an ``id`` (also its PNG file name), a title, a figure."""

    id: str
    title: str
    figure: Figure

    @property
    def size_px(self) -> tuple[int, int]:
        """Width and height of its PNG, in pixels."""
        w, h = self.figure.get_size_inches()
        return round(w * DPI), round(h * DPI)


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        yield


def _figure(height: float, width: float = WIDTH) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def short_money(value: float, _pos: object = None) -> str:
    """1.2M, 350k, 12: axis labels that fit."""
    a = abs(value)
    for size, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if a >= size:
            return f"{value / size:,.1f}".removesuffix(".0") + suffix
    return f"{value:,.0f}"


def _money_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(short_money))


def _fan(
    ax: Axes,
    block: pd.DataFrame,
    target: float | None,
    legend: bool,
    ticks: int = 12,
    target_label: str = "target",
) -> None:
    """P10-P90 band, P50 line and mean of one block of summary rows (indexed by period)."""
    x = np.arange(len(block))
    ax.fill_between(x, block["p10"], block["p90"], color=BAND, alpha=0.7, label="P10–P90")
    ax.plot(x, block["p50"], color=LINE, lw=2, label="P50")
    ax.plot(x, block["mean"], color=MEAN, lw=1.2, ls="--", label="mean")
    if target is not None:
        ax.axhline(target, color=TARGET, lw=1.2, ls=":", label=target_label)
    step = max(1, math.ceil(len(x) / ticks))
    ax.set_xticks(x[::step], [str(p) for p in block.index[::step]], rotation=45, ha="right")
    _money_axis(ax.yaxis)
    ax.set_ylim(bottom=0)
    if legend:
        ax.legend(loc="best", frameon=False)


def fan_chart(data: ReportData, cumulative: bool) -> Chart:
    """Fan of monthly (or cumulative) whole-book revenue, with the target when there is one."""
    with _style():
        fig = _figure(4.0)
        ax = fig.add_subplot()
        target, label = data.target, "target"
        if target is not None and not cumulative:
            target = target / max(1, len(data.periods))
            label = f"target ÷ {len(data.periods)} months"
        _fan(ax, data.whole("revenue", cumulative), target, legend=True, target_label=label)
        kind = "Cumulative" if cumulative else "Monthly"
        cur = f" ({data.currency})" if data.currency else ""
        ax.set_ylabel(f"revenue{cur}")
        ax.set_title(f"{kind} revenue: P10–P90 band, P50 and mean")
    name = "cumulative" if cumulative else "monthly"
    return Chart(f"fan-{name}", f"{kind} revenue", fig)


def histogram_chart(data: ReportData, totals: np.ndarray) -> Chart:
    """Distribution of total revenue over the horizon, P10/P50/P90 (and target) marked."""
    with _style():
        fig = _figure(3.6)
        ax = fig.add_subplot()
        ax.hist(
            totals, bins=min(50, max(10, len(totals) // 40)), color=BAND, edgecolor=LINE, lw=0.3
        )
        q = np.quantile(totals, (0.1, 0.5, 0.9))
        for value, name, ls in zip(q, ("P10", "P50", "P90"), (":", "-", ":"), strict=True):
            ax.axvline(value, color=LINE, ls=ls, lw=1.5)
            ax.annotate(
                f"{name} {short_money(value)}",
                (value, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
            )
        if data.target is not None:
            ax.axvline(data.target, color=TARGET, ls="--", lw=1.5, label="target")
            share = share_reaching(totals, data.target)
            ax.legend(title=f"P(total ≥ target) = {share:.0%}", frameon=False, loc="upper right")
        _money_axis(ax.xaxis)
        cur = f" ({data.currency})" if data.currency else ""
        ax.set_xlabel(f"total revenue over the horizon{cur}")
        ax.set_ylabel("trials")
        ax.set_title(f"Total revenue over {len(data.periods)} months, {len(totals):,} trials")
    return Chart("histogram", "Distribution of total revenue", fig)


def funnel_chart(funnel: pd.DataFrame, currency: str) -> Chart:
    """Open deals and their value per stage, with the conversion to the next stage."""
    with _style():
        fig = _figure(0.5 + 0.55 * max(3, len(funnel)))
        left, right = fig.subplots(1, 2, sharey=True)
        y = np.arange(len(funnel))[::-1]
        names = [str(s) for s in funnel["stage"]]
        nxt = [*names[1:], "Won"]
        labels = [
            f"{s}\n{c:.0%} → {n}"
            for s, c, n in zip(names, funnel["conversion"].astype(float), nxt, strict=True)
        ]
        deals = funnel["deals"].to_numpy(dtype=float)
        value = funnel["value"].to_numpy(dtype=float)
        left.barh(y, deals, color=LINE, alpha=0.8)
        right.barh(y, value, color=MEAN, alpha=0.8)
        for ax, vals, fmt in ((left, deals, "{:,.0f}"), (right, value, None)):
            for yi, v in zip(y, vals, strict=True):
                ax.annotate(
                    fmt.format(v) if fmt else short_money(v),
                    (v, yi),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
            ax.margins(x=0.18)
            ax.grid(axis="y", visible=False)
        left.set_yticks(y, labels)
        left.set_title("open deals per stage")
        cur = f" ({currency})" if currency else ""
        right.set_title(f"value per stage{cur}")
        _money_axis(right.xaxis)
    return Chart("funnel", "Funnel", fig)


def segments_chart(data: ReportData, segments: list[tuple[object, ...]]) -> Chart:
    """Small multiples: the monthly revenue fan of each segment (at most MAX_PANELS).

    The panels share one y-scale, so a small segment looks small next to a large one.
    """
    shown = segments[:MAX_PANELS]
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    with _style():
        fig = _figure(0.4 + 2.4 * rows)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharey=True)).ravel()
        top = 0.0
        for i, (ax, labels) in enumerate(zip(axes, shown, strict=False)):
            block = data.block(labels, "revenue", False)
            _fan(ax, block, None, legend=i == 0, ticks=4)
            top = max(top, float(np.nanmax(block[["p90", "mean"]].to_numpy(dtype=float))))
            title = " · ".join("(none)" if v is None else str(v) for v in labels)
            ax.set_title(title if len(title) <= 40 else title[:39] + "…", fontsize=9)
            ax.tick_params(labelsize=7)
        axes[0].set_ylim(0, top * 1.05 if top > 0 else 1.0)  # shared: every panel
        for ax in axes[len(shown) :]:
            ax.set_visible(False)
    return Chart("segments", "Monthly revenue by segment (one scale for all)", fig)


def compare_chart(compare: pd.DataFrame, currency: str) -> Chart:
    """Each variant's P10-P90 range of revenue, with P50 and mean (base first)."""
    with _style():
        fig = _figure(0.9 + 0.45 * max(2, len(compare)))
        ax = fig.add_subplot()
        y = np.arange(len(compare))[::-1]
        ax.hlines(y, compare["p10"], compare["p90"], color=BAND, lw=8, label="P10–P90")
        ax.plot(compare["p50"], y, "o", color=LINE, label="P50")
        ax.plot(compare["mean"], y, "x", color=MEAN, label="mean")
        ax.set_yticks(y, [str(v) for v in compare["variant"]])
        _money_axis(ax.xaxis)
        cur = f" ({currency})" if currency else ""
        ax.set_xlabel(f"revenue over the horizon{cur}")
        ax.set_title("Scenario comparison (common random numbers)")
        ax.legend(frameon=False, loc="lower right", fontsize=8)
        ax.margins(y=0.15)
    return Chart("compare", "Scenario comparison", fig)


def quarter_chart(quarters: pd.DataFrame, currency: str) -> Chart:
    """Each fiscal quarter's (and year's) revenue: P10-P90 bar, P50, mean; partial ones pale."""
    with _style():
        fig = _figure(0.9 + 0.45 * max(2, len(quarters)))
        ax = fig.add_subplot()
        y = np.arange(len(quarters))[::-1]
        whole = quarters["complete"].to_numpy(dtype=bool)
        ax.hlines(y[whole], quarters["p10"][whole], quarters["p90"][whole], color=BAND, lw=8,
                  label="P10–P90")  # fmt: skip
        if (~whole).any():
            ax.hlines(y[~whole], quarters["p10"][~whole], quarters["p90"][~whole], color=BAND,
                      lw=8, alpha=0.45, label="P10–P90, part of the quarter")  # fmt: skip
        ax.plot(quarters["p50"], y, "o", color=LINE, label="P50")
        ax.plot(quarters["mean"], y, "x", color=MEAN, label="mean")
        ax.set_yticks(y, [str(v) for v in quarters["label"]])
        _money_axis(ax.xaxis)
        ax.set_xlim(left=0)
        cur = f" ({currency})" if currency else ""
        ax.set_xlabel(f"revenue{cur}")
        ax.set_title("Revenue per fiscal quarter and year")
        # Under the axes: a year's bar reaches the right edge, where a legend would hide it.
        fig.legend(frameon=False, loc="outside lower center", ncols=4, fontsize=8)
        ax.margins(y=0.15)
    return Chart("quarters", "Fiscal quarters", fig)


def call_chart(call: pd.DataFrame, currency: str) -> Chart:
    """The reps' call as bars (Commit, + Best Case, weighted pipeline) against the model's range."""
    r = call.iloc[0]
    with _style():
        fig = _figure(2.6)
        ax = fig.add_subplot()
        names = ["Commit", "Commit + Best Case", "weighted pipeline"]
        values = [float(r[c]) for c in ("commit", "commit_best_case", "weighted_pipeline")]
        y = np.arange(4)[::-1]
        ax.barh(y[:3], values, color=LINE, alpha=0.8, height=0.5, label="the reps' call")
        ax.hlines(y[3], r["p10"], r["p90"], color=BAND, lw=8, label="model P10–P90")
        ax.plot(r["p50"], y[3], "o", color=LINE, label="model P50")
        ax.plot(r["mean"], y[3], "x", color=MEAN, label="model mean")
        ax.axvline(values[0], color=TARGET, lw=1.2, ls=":", label="Commit")
        ax.set_yticks(y, [*names, "model"])
        _money_axis(ax.xaxis)
        ax.set_xlim(left=0)
        cur = f" ({currency})" if currency else ""
        ax.set_xlabel(f"revenue in {r['quarter']}{cur}")
        ax.set_title(
            f"Forecast call {r['quarter']}: P(revenue ≥ Commit) = {percent(r['p_commit'])}"
        )
        fig.legend(frameon=False, loc="outside lower center", ncols=5, fontsize=8)
    return Chart("forecast-call", "The reps' call against the model", fig)


def tornado_chart(tornado: pd.DataFrame, currency: str) -> Chart:
    """Change in P50 revenue when each input moves down or up, widest swing on top."""
    with _style():
        fig = _figure(0.9 + 0.4 * max(2, len(tornado)))
        ax = fig.add_subplot()
        y = np.arange(len(tornado))[::-1]
        ax.barh(y, tornado["down_p50"], color=MEAN, alpha=0.85, label="input down")
        ax.barh(y, tornado["up_p50"], color=LINE, alpha=0.85, label="input up")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [str(v) for v in tornado["input"]])
        _money_axis(ax.xaxis)
        cur = f" ({currency})" if currency else ""
        ax.set_xlabel(f"change in P50 revenue{cur}")
        ax.set_title("Sensitivity: which input moves P50 revenue most")
        ax.legend(frameon=False, loc="lower right", fontsize=8)
    return Chart("tornado", "Sensitivity (tornado)", fig)


def odds_chart(odds: pd.DataFrame) -> Chart:
    """Per stage with a loss clock: the chance to advance of a deal still open at each age."""
    from matplotlib.ticker import FuncFormatter

    with _style():
        fig = _figure(3.2)
        ax = fig.add_subplot()
        for stage, grp in odds.groupby("stage", sort=False):
            ax.plot(grp["age_days"], grp["odds"], lw=1.8, label=str(stage))
        ax.set_xlabel("days already in the stage")
        ax.set_ylabel("chance to advance")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0%}"))
        ax.set_ylim(0, 1)
        ax.set_title("Two clocks: an old deal is not a fresh one")
        ax.legend(frameon=False, fontsize=8)
    return Chart("odds", "Chance to advance by age", fig)


def backtest_chart(rows: pd.DataFrame, chart_id: str, metric: str, months: str) -> Chart:
    """Realized value per cutoff against the forecast's P10-P90 band and P50.

    ``rows`` has one row per cutoff (``cutoff``, ``realized``, ``p10``, ``p50``, ``p90``);
    a realized value outside the band is drawn as a red cross.
    """
    with _style():
        fig = _figure(3.8)
        ax = fig.add_subplot()
        x = np.arange(len(rows))
        lo, mid, hi = (rows[c].to_numpy(dtype=float) for c in ("p10", "p50", "p90"))
        y = rows["realized"].to_numpy(dtype=float)
        inside = (lo <= y) & (y <= hi)
        ax.fill_between(x, lo, hi, color=BAND, alpha=0.7, label="forecast P10–P90")
        ax.vlines(x, lo, hi, color=BAND, lw=6)  # a single cutoff still shows its band
        ax.plot(x, mid, "-", color=LINE, lw=1.5, marker="_", ms=12, label="forecast P50")
        ax.plot(x[inside], y[inside], "o", color="black", ms=6, label="realized, inside")
        ax.plot(x[~inside], y[~inside], "X", color=TARGET, ms=8, label="realized, outside")
        step = max(1, math.ceil(len(x) / 12))
        ax.set_xticks(x[::step], [str(c) for c in rows["cutoff"].iloc[::step]], rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        if metric == "revenue":
            _money_axis(ax.yaxis)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.05)
        what = "revenue won" if metric == "revenue" else "deals won"
        ax.set_ylabel(what)
        ax.set_xlabel("cutoff (forecast date)")
        ax.set_title(f"{what.capitalize()} in the {months} month(s) from each cutoff")
        # Below the band (the axis starts at 0): the legend never hides a cutoff's dot.
        ax.legend(frameon=False, fontsize=8, loc="lower right", ncol=2)
    return Chart(chart_id, f"Realized against the forecast band: {what}, {months} month(s)", fig)


def build_charts(data: ReportData) -> list[Chart]:
    """Every chart the data allows, in report order."""
    charts = [fan_chart(data, cumulative=False), fan_chart(data, cumulative=True)]
    if data.totals is not None and len(data.totals):
        charts.append(histogram_chart(data, data.totals))
    quarters = data.whole_quarters("revenue")
    if len(quarters):
        charts.append(quarter_chart(quarters, data.currency))
    if data.forecast_call is not None and len(data.forecast_call):
        charts.append(call_chart(data.forecast_call, data.currency))
    if data.funnel is not None and len(data.funnel):
        charts.append(funnel_chart(data.funnel, data.currency))
    segments = data.segments()
    if segments:
        charts.append(segments_chart(data, segments))
    if data.odds is not None and len(data.odds):
        charts.append(odds_chart(data.odds))
    if data.compare is not None and len(data.compare):
        charts.append(compare_chart(data.compare, data.currency))
    if data.sensitivity is not None:
        tornado = tornado_frame(data.sensitivity)
        if tornado is not None and len(tornado):
            charts.append(tornado_chart(tornado, data.currency))
    return charts


def to_svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element to inline in HTML (no XML prolog)."""
    buf = io.StringIO()
    with _style():
        chart.figure.savefig(buf, format="svg", metadata={"Date": None})  # same bytes each time
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # Ids unique across the page: prefix every id and every reference with the chart id.
    prefix = f"{chart.id}-"
    text = re.sub(r'\bid="', f'id="{prefix}', text)
    text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
    return text


def save_png(chart: Chart, folder: str | os.PathLike[str]) -> str:
    """Write ``folder/<id>.png`` (Agg) and return its path."""
    path = os.path.join(folder, f"{chart.id}.png")
    with _style():
        chart.figure.savefig(path, format="png", dpi=DPI)
    return path
