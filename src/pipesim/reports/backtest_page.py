"""The backtest's report: a folder ``pipesim backtest`` wrote, as one self-contained HTML page.

Per window length and metric: realized against the P10-P90 band at each cutoff, the
coverage (cutoffs whose realized value fell inside P10-P90, counted), and the mean CRPS
of pipesim's forecast against each baseline's. Every figure is computed here from the
per-cutoff rows of ``backtest.parquet`` (its ``overall`` row is not read).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pandas as pd

from pipesim.errors import InputError
from pipesim.io import parquet
from pipesim.reports.charts import Chart, backtest_chart
from pipesim.reports.html_parts import cards, esc, figure_html, html_table, page

BACKTEST_NEEDS = ("cutoff", "realized", "p10", "p50", "p90", "crps")
WINDOW_COLUMNS = ("months", "horizon_months", "window")
OVERALL = "overall"
EXPLAIN = (
    "At each cutoff pipesim was calibrated on what the CRM knew that day and forecast the "
    "next months; the dot is what was really won. Of a forecast's simulated futures 10% end "
    "below P10 and 90% below P90, so a forecast whose bands are honest holds the realized "
    "value inside P10–P90 at about 8 cutoffs in 10 (coverage 80%). CRPS (continuous ranked "
    "probability score) scores the whole forecast distribution against what happened, in the "
    "metric's own units: lower is better; for a single-number forecast, as the baselines are, "
    "it is the absolute error."
)
BASELINE_NAMES = {
    "weighted_pipeline": "weighted pipeline (open amount × P(won) of its stage)",
    "run_rate": "run rate (the last three months, repeated)",
    "chain_ladder": "chain ladder (won per created deal by cohort age)",
}


@dataclasses.dataclass(frozen=True)
class Window:
    """The cutoffs of one window length and metric, in date order."""

    months: str
    metric: str
    rows: pd.DataFrame

    @property
    def id(self) -> str:
        """``backtest-revenue-3m``: the chart id (and PNG name)."""
        return f"backtest-{self.metric}-{self.months}m".replace(" ", "_")

    @property
    def inside(self) -> int:
        """Cutoffs whose realized value lies in [P10, P90]."""
        r = self.rows
        return int(((r["p10"] <= r["realized"]) & (r["realized"] <= r["p90"])).sum())

    @property
    def baselines(self) -> list[str]:
        """The baselines scored next to pipesim (``name`` of each ``name_crps`` column)."""
        return [c[: -len("_crps")] for c in self.rows.columns if c.endswith("_crps")]

    def fmt(self, value: float) -> str:
        """Revenue in whole units, a count of deals with one decimal."""
        if not math.isfinite(value):
            return "–"
        return f"{value:,.0f}" if self.metric == "revenue" else f"{value:,.1f}"


@dataclasses.dataclass(frozen=True)
class BacktestData:
    """``backtest.parquet``'s per-cutoff rows by window, with the settings it carries."""

    folder: Path
    settings: dict[str, str]
    windows: list[Window]


def is_backtest_folder(folder: str | os.PathLike[str]) -> bool:
    """A folder ``pipesim backtest`` wrote (backtest.parquet) and no run did (summary.parquet)."""
    path = Path(folder)
    return (path / "backtest.parquet").is_file() and not (path / "summary.parquet").is_file()


def _months(value: object) -> str:
    """``3`` for 3, 3.0 or "3" (a column with an empty overall row reads as floats)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def load_backtest(folder: str | os.PathLike[str]) -> BacktestData:
    """Read ``folder/backtest.parquet``; one :class:`Window` per window length and metric."""
    path = Path(folder) / "backtest.parquet"
    table = parquet.read_table(path)
    missing = [c for c in BACKTEST_NEEDS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: column(s) {', '.join(missing)} missing; this is not a pipesim backtest. "
            "Write it again with pipesim.backtest(..., out=folder)."
        )
    settings = parquet.read_metadata(path)
    rows = table[table["cutoff"].astype(str) != OVERALL].copy()
    window = next((c for c in WINDOW_COLUMNS if c in rows.columns), None)
    rows["_months"] = (
        rows[window].map(_months) if window else _months(settings.get("horizon_months", "?"))
    )
    if "metric" not in rows.columns:
        rows["metric"] = settings.get("metric", "revenue")
    rows["cutoff"] = rows["cutoff"].astype(str)
    windows = [
        Window(str(months), str(metric), grp.sort_values("cutoff").reset_index(drop=True))
        for (months, metric), grp in rows.groupby(["_months", "metric"], sort=True)
    ]
    return BacktestData(Path(folder), settings, windows)


def crps_rows(w: Window) -> list[list[object]]:
    """Mean CRPS of pipesim and each baseline; each baseline's ratio and cutoffs won."""
    mine = w.rows["crps"].astype(float)
    first: list[object] = ["pipesim (the forecast distribution)", w.fmt(mine.mean()), "1.00×", "–"]
    out: list[list[object]] = [first]
    for name in w.baselines:
        theirs = w.rows[f"{name}_crps"].astype(float)
        ratio = theirs.mean() / mine.mean() if mine.mean() > 0 else math.nan
        better = int((mine < theirs).sum())
        out.append(
            [
                BASELINE_NAMES.get(name, name.replace("_", " ")),
                w.fmt(theirs.mean()),
                f"{ratio:.2f}×" if math.isfinite(ratio) else "–",
                f"{better} of {len(w.rows)}",
            ]
        )
    return out


def _cutoff_rows(w: Window) -> list[list[object]]:
    out: list[list[object]] = []
    for _, r in w.rows.iterrows():
        inside = r["p10"] <= r["realized"] <= r["p90"]
        out.append(
            [
                r["cutoff"],
                *(w.fmt(float(r[c])) for c in ("realized", "p10", "p50", "p90")),
                "yes" if inside else "no",
                w.fmt(float(r["crps"])),
                *(w.fmt(float(r[f"{b}_crps"])) for b in w.baselines),
            ]
        )
    return out


def coverage_text(w: Window) -> str:
    """``7 of 10 cutoffs (70%)``."""
    n = len(w.rows)
    return f"{w.inside} of {n} cutoffs ({w.inside / n:.0%})" if n else "no cutoff"


def _window_section(w: Window, chart: Chart | None) -> str:
    what = "Revenue" if w.metric == "revenue" else "Won deals"
    n = len(w.rows)
    se = math.sqrt(0.8 * 0.2 / n) if n else math.nan
    best = min(w.baselines, key=lambda b: float(w.rows[f"{b}_crps"].mean()), default=None)
    items = [
        (f"{w.inside} of {n}", "cutoffs inside P10–P90"),
        (f"{w.inside / n:.0%}" if n else "–", "coverage (aim: 80%)"),
        (w.fmt(float(w.rows["crps"].mean())), "pipesim mean CRPS"),
    ]
    if best is not None:
        score = w.fmt(float(w.rows[f"{best}_crps"].mean()))
        items.append((score, f"best baseline: {best.replace('_', ' ')}, mean CRPS"))
    head = ["cutoff", "realized", "P10", "P50", "P90", "inside P10–P90", "CRPS pipesim"]
    head += [f"CRPS {b.replace('_', ' ')}" for b in w.baselines]
    parts = [
        f"<h2>{esc(what)}, {esc(w.months)}-month windows</h2>",
        cards(items),
        f'<p class="note">The realized value fell inside P10–P90 at {esc(coverage_text(w))}. '
        f"From {n} cutoffs a coverage is known to about ±{se:.0%} (binomial standard error "
        "at 80%), and less well when windows overlap.</p>",
    ]
    if chart is not None:
        parts.append(figure_html(chart))
    parts += [
        "<h3>Mean CRPS: pipesim against each baseline</h3>",
        html_table(
            ["forecast", "mean CRPS", "÷ pipesim's", "cutoffs where pipesim scores better"],
            crps_rows(w),
            1,
        ),
        "<h3>Each cutoff</h3>",
        html_table(head, _cutoff_rows(w), 1),
    ]
    return "".join(parts)


def backtest_charts(data: BacktestData) -> list[Chart]:
    """One chart per window length and metric."""
    return [backtest_chart(w.rows, w.id, w.metric, w.months) for w in data.windows if len(w.rows)]


def render_backtest_html(data: BacktestData, charts: list[Chart]) -> str:
    """The backtest page as one HTML string."""
    by_id = {c.id: c for c in charts}
    s = data.settings
    history = s.get("history", "")
    name = Path(history).name if history else data.folder.name
    cutoffs = sorted({c for w in data.windows for c in w.rows["cutoff"]})
    parts = [
        f"<h1>pipesim backtest: {esc(name)}</h1>",
        f'<p class="sub">{len(cutoffs)} cutoff(s)'
        + (f", {esc(cutoffs[0])} to {esc(cutoffs[-1])}" if cutoffs else "")
        + "</p>",
        f'<p class="read">{esc(EXPLAIN)}</p>',
    ]
    parts += [_window_section(w, by_id.get(w.id)) for w in data.windows]
    trials = s.get("trials", "")
    settings = [
        ("history", history),
        ("cutoffs", ", ".join(cutoffs)),
        ("months forecast", ", ".join(sorted({w.months for w in data.windows}))),
        ("metric", ", ".join(sorted({w.metric for w in data.windows}))),
        ("trials per cutoff", f"{int(trials):,}" if trials.isdigit() else trials),
        ("seed", s.get("seed", "")),
        ("pipesim version", s.get("pipesim_version", "not recorded")),
        ("results folder", str(data.folder.resolve())),
    ]
    parts += ["<h2>Settings</h2>", html_table(["setting", "value"], settings, 2)]
    return page(f"pipesim backtest: {name}", parts)


def backtest_summary(data: BacktestData) -> str:
    """What ``pipesim report`` prints for a backtest folder: coverage and mean CRPS."""
    lines = []
    for w in data.windows:
        scores = ", ".join(
            f"{b.replace('_', ' ')} {w.fmt(float(w.rows[f'{b}_crps'].mean()))}" for b in w.baselines
        )
        lines.append(
            f"{w.metric}, {w.months}-month windows: realized inside P10-P90 at "
            f"{coverage_text(w)}; mean CRPS {w.fmt(float(w.rows['crps'].mean()))}"
            + (f" (baselines: {scores})" if scores else "")
        )
    return "\n".join(lines)
