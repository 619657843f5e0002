"""The report of a folder ``pipesim explain`` wrote: the waterfall from OLD's forecast to NEW's.

``movement.parquet`` holds one row per step (``step``, ``deals``, ``delta_mean``,
``delta_p10``, ``delta_p50``, ``delta_p90``) in the order applied; its metadata holds the
two levels (``old_mean`` .. ``new_p90``), the window and both as_of dates.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipesim.errors import InputError
from pipesim.io import parquet
from pipesim.reports.charts import DPI, STYLE, WIDTH, Chart, short_money
from pipesim.reports.html_parts import cards, esc, figure_html, html_table, page

MOVEMENT_NEEDS = ("step", "deals", "delta_mean", "delta_p10", "delta_p50", "delta_p90")
LEVELS = ("mean", "p10", "p50", "p90")
UP, DOWN, LEVEL = "#31a354", "#de2d26", "#08519c"
READ = (
    "Each bar is one step from the older snapshot to the newer one, applied one after "
    "another on the same random numbers: won (deals won since, their revenue now booked), "
    "lost, new (deals created since), advanced (stage moves), pushed and pulled_in (close "
    "dates moved later or earlier), amount, parameters (conversions, clocks, new leads) "
    "and time (the days gone by: the forecast starts later, deals are older). The steps "
    "add up to the newer forecast minus the older one. The split depends on the order of "
    "the steps: a step meets the book the steps before it left."
)


@dataclasses.dataclass(frozen=True)
class MovementData:
    """``movement.parquet``'s rows and its settings (levels, window, dates)."""

    folder: Path
    settings: dict[str, str]
    rows: pd.DataFrame

    def level(self, which: str, stat: str) -> float:
        """OLD's (``which`` = ``old``) or NEW's level of ``mean``, ``p10``, ``p50`` or ``p90``."""
        value = self.settings.get(f"{which}_{stat}")
        if value is None:  # the deltas still add up from the other end
            other = "new" if which == "old" else "old"
            total = float(self.rows[f"delta_{stat}"].sum())
            return self.level(other, stat) + (total if which == "new" else -total)
        return float(value)

    @property
    def currency(self) -> str:
        """The scenarios' currency label (may be empty)."""
        return self.settings.get("currency", "")


def is_movement_folder(folder: str | os.PathLike[str]) -> bool:
    """A folder ``pipesim explain`` wrote (movement.parquet) and no run did (summary.parquet)."""
    path = Path(folder)
    return (path / "movement.parquet").is_file() and not (path / "summary.parquet").is_file()


def load_movement(folder: str | os.PathLike[str]) -> MovementData:
    """Read ``folder/movement.parquet`` and check it holds a movement."""
    path = Path(folder) / "movement.parquet"
    rows = parquet.read_table(path)
    missing = [c for c in MOVEMENT_NEEDS if c not in rows.columns]
    settings = parquet.read_metadata(path)
    if missing or not ({"old_mean", "new_mean"} & set(settings)):
        what = f"column(s) {', '.join(missing)} missing" if missing else "no levels in its metadata"
        raise InputError(
            f"{path}: {what}; this is not what pipesim explain writes. Write it again with "
            "pipesim explain OLD NEW."
        )
    return MovementData(Path(folder), settings, rows.reset_index(drop=True))


def waterfall_chart(data: MovementData, stat: str = "mean") -> Chart:
    """OLD's level, one floating bar per step (green up, red down), NEW's level."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    deltas = data.rows[f"delta_{stat}"].to_numpy(dtype=float)
    old, new = data.level("old", stat), data.level("new", stat)
    tops = old + np.cumsum(deltas)
    bottoms = tops - deltas
    labels = [f"OLD\n{data.settings.get('old_as_of', '')}", *map(str, data.rows["step"])]
    labels.append(f"NEW\n{data.settings.get('as_of', '')}")
    x = np.arange(len(labels))
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        fig = Figure(figsize=(WIDTH, 3.8), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        ax.bar(x[0], old, color=LEVEL, width=0.6)
        ax.bar(x[-1], new, color=LEVEL, width=0.6)
        colors = [UP if d >= 0 else DOWN for d in deltas]
        ax.bar(x[1:-1], deltas, bottom=bottoms, color=colors, width=0.6)
        for k in range(len(deltas) + 1):  # the connectors: each bar starts where the last ended
            level = old if k == 0 else tops[k - 1]
            ax.plot([x[k] + 0.3, x[k + 1] - 0.3], [level, level], color="#57606a", lw=0.6)
        ax.set_xticks(x, labels, fontsize=8)
        ax.yaxis.set_major_formatter(FuncFormatter(short_money))
        cur = f" ({data.currency})" if data.currency else ""
        ax.set_ylabel(f"revenue in {data.settings.get('window', 'the window')}{cur}")
        name = "mean" if stat == "mean" else stat.upper()
        ax.set_title(f"Why the forecast moved: {name} of the window's revenue, step by step")
        ends = [old, new, *tops, *bottoms]
        low, high = min(0.0, *ends), max(0.0, *ends)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low) or 1.0)
    return Chart(f"movement-{stat}", f"What moved the forecast ({name})", fig)


def movement_charts(data: MovementData) -> list[Chart]:
    """The waterfall of the mean, then of P50."""
    return [waterfall_chart(data, "mean"), waterfall_chart(data, "p50")]


def _money(value: float) -> str:
    return f"{value:,.0f}"


def render_movement_html(data: MovementData, charts: list[Chart]) -> str:
    """The movement page as one HTML string."""
    s = data.settings
    window = s.get("window", "")
    cur = f" {data.currency}" if data.currency else ""
    items = [
        (_money(data.level("old", "mean")) + cur, f"OLD mean, as of {s.get('old_as_of', '')}"),
        (_money(data.level("new", "mean")) + cur, f"NEW mean, as of {s.get('as_of', '')}"),
        (
            f"{data.level('new', 'mean') - data.level('old', 'mean'):+,.0f}{cur}",
            "moved (NEW − OLD)",
        ),
    ]
    head = ["step", "deals", "Δ mean", "Δ P10", "Δ P50", "Δ P90"]
    rows: list[list[object]] = [
        [f"OLD ({s.get('old_as_of', '')})", "", *(_money(data.level("old", k)) for k in LEVELS)]
    ]
    for _, r in data.rows.iterrows():
        rows.append(
            [r["step"], f"{int(r['deals']):,}", *(f"{r[f'delta_{k}']:+,.0f}" for k in LEVELS)]
        )
    rows.append(
        [f"NEW ({s.get('as_of', '')})", "", *(_money(data.level("new", k)) for k in LEVELS)]
    )
    parts = [
        f"<h1>pipesim explain: {esc(window)}</h1>",
        f'<p class="sub">Revenue in {esc(window)} ({esc(s.get("window_start", ""))} to '
        f"{esc(s.get('window_end', ''))}), revenue won before as_of included: "
        f"{esc(s.get('old', 'OLD'))} against {esc(s.get('scenario', 'NEW'))}</p>",
        f'<p class="read">{esc(READ)}</p>',
        cards(items),
        *(figure_html(c) for c in charts),
        "<h2>Each step</h2>",
        html_table(head, rows, 1),
        "<h2>Settings</h2>",
        html_table(
            ["setting", "value"],
            [
                ("OLD", s.get("old", "")),
                ("NEW", s.get("scenario", "")),
                ("window", f"{window} ({s.get('window_start', '')} to {s.get('window_end', '')})"),
                ("order of the steps", s.get("order", "")),
                ("trials", s.get("trials", "")),
                ("seed", s.get("seed", "")),
                ("pipesim version", s.get("pipesim_version", "not recorded")),
                ("results folder", str(data.folder.resolve())),
            ],
            2,
        ),
    ]
    return page(f"pipesim explain: {window}", parts)


def movement_summary(data: MovementData) -> str:
    """What ``pipesim report`` prints for an explain folder: the levels and each step's mean."""
    s = data.settings
    old, new = data.level("old", "mean"), data.level("new", "mean")
    steps = ", ".join(
        f"{r['step']} {r['delta_mean']:+,.0f}" for _, r in data.rows.iterrows() if r["delta_mean"]
    )
    return (
        f"{s.get('window', 'window')}: mean {old:,.0f} as of {s.get('old_as_of', '?')} -> "
        f"{new:,.0f} as of {s.get('as_of', '?')} ({new - old:+,.0f}); "
        + (f"steps: {steps}" if steps else "no step moved it")
    )
