"""The backtest page: realized against P10-P90 per cutoff, coverage, CRPS against baselines.

Every figure on the page is checked against one computed here from backtest.parquet.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.datasets import maven_crm_path
from pipesim.io import parquet
from pipesim.reports.backtest_page import load_backtest

CUTOFFS = ("2017-03-01", "2017-05-01", "2017-07-01", "2017-09-01")
BASELINES = ("weighted_pipeline", "run_rate", "chain_ladder")
EVIL = "<script>alert(3)</script>.csv"


def _cell(text: str) -> str:
    return f'<td class="n">{html.escape(text)}</td>'


@pytest.fixture(scope="module")
def backtested(tmp_path_factory):
    """`pipesim backtest --report` on the bundled Maven CRM: four cutoffs, three months."""
    out = tmp_path_factory.mktemp("backtest") / "bt"
    args = ["backtest", str(maven_crm_path()), "--format", "maven", "--horizon-months", "3"]
    args += [a for c in CUTOFFS for a in ("--cutoff", c)]
    res = CliRunner().invoke(main, [*args, "--trials", "200", "--out", str(out), "--report"])
    assert res.exit_code == 0, res.output
    assert f"Wrote {out / 'backtest.parquet'}, {out / 'report.html'}" in res.output
    return out


def test_coverage_is_counted_from_the_table(backtested):
    table = pd.read_parquet(backtested / "backtest.parquet")
    rows = table[table["cutoff"] != "overall"]
    inside = int(((rows["p10"] <= rows["realized"]) & (rows["realized"] <= rows["p90"])).sum())
    assert inside == int(rows["inside_p10_p90"].sum())  # the backtest's own flag agrees
    page = (backtested / "report.html").read_text(encoding="utf-8")
    n = len(CUTOFFS)
    assert f"<b>{inside} of {n}</b><span>cutoffs inside P10–P90</span>" in page
    assert f"<b>{inside / n:.0%}</b><span>coverage (aim: 80%)</span>" in page
    assert f"inside P10–P90 at {inside} of {n} cutoffs ({inside / n:.0%})" in page
    assert "<h2>Revenue, 3-month windows</h2>" in page


def test_mean_crps_against_each_baseline(backtested):
    table = pd.read_parquet(backtested / "backtest.parquet")
    rows = table[table["cutoff"] != "overall"]
    page = (backtested / "report.html").read_text(encoding="utf-8")
    mine = rows["crps"].mean()
    assert f"<td>pipesim (the forecast distribution)</td>{_cell(f'{mine:,.0f}')}" in page
    for name in BASELINES:
        theirs = rows[f"{name}_crps"]
        wins = int((rows["crps"] < theirs).sum())
        cells = _cell(f"{theirs.mean():,.0f}") + _cell(f"{theirs.mean() / mine:.2f}×")
        cells += _cell(f"{wins} of {len(CUTOFFS)}")
        label = name.replace("_", " ")
        assert re.search(rf"<td>{label} \([^<]*\)</td>{re.escape(cells)}", page), name
    # The table's own overall row holds the same means (it is not what the page reads).
    overall = table[table["cutoff"] == "overall"].iloc[0]
    assert overall["crps"] == pytest.approx(mine, rel=1e-12)


def test_each_cutoff_row_and_the_chart(backtested):
    table = pd.read_parquet(backtested / "backtest.parquet")
    page = (backtested / "report.html").read_text(encoding="utf-8")
    for _, r in table[table["cutoff"] != "overall"].iterrows():
        cells = "".join(_cell(f"{r[c]:,.0f}") for c in ("realized", "p10", "p50", "p90"))
        inside = "yes" if r["p10"] <= r["realized"] <= r["p90"] else "no"
        cells += _cell(inside) + _cell(f"{r['crps']:,.0f}")
        cells += "".join(_cell(f"{r[f'{b}_crps']:,.0f}") for b in BASELINES)
        assert f"<td>{r['cutoff']}</td>{cells}" in page
    figure = page[page.index('id="chart-backtest-revenue-3m"') :]
    svg = figure[: figure.index("</figure>")]
    for cutoff in CUTOFFS:
        assert cutoff in svg  # one tick per cutoff
    assert "realized, inside" in svg and "forecast P10–P90" in svg


def test_report_command_on_a_backtest_folder(backtested, tmp_path):
    res = CliRunner().invoke(main, ["report", str(backtested), "--out", str(tmp_path / "b.html")])
    assert res.exit_code == 0, res.output
    data = load_backtest(backtested)
    w = data.windows[0]
    assert f"revenue, 3-month windows: realized inside P10-P90 at {w.inside} of 4 cutoffs" in (
        res.output
    )
    page = (backtested / "report.html").read_text(encoding="utf-8")
    assert (tmp_path / "b.html").read_text(encoding="utf-8") == page  # as backtest --report
    bad = CliRunner().invoke(main, ["report", str(backtested), "--xlsx", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "Error: --xlsx is for a run's results" in bad.output


def _synthetic(folder, metric_rows):
    """A backtest.parquet with two window lengths (a ``months`` column) and a hostile name."""
    parquet.write_tables(
        folder,
        {"backtest": pd.DataFrame(metric_rows)},
        {"command": "backtest", "seed": "9", "history": f"/data/{EVIL}"},
    )


def test_windows_and_counts_from_a_hand_made_table(tmp_path):
    rows = []
    for months, shift in ((1, 0.0), (3, 10.0)):
        for k, cutoff in enumerate(("2020-01-01", "2020-02-01", "2020-03-01")):
            realized = 10.0 + shift + 5.0 * k
            rows.append(
                {
                    "cutoff": cutoff,
                    "months": months,
                    "metric": "won_deals",
                    "realized": realized,
                    "mean": 12.0 + shift,
                    "p10": 8.0 + shift,
                    "p50": 12.0 + shift,
                    "p90": 16.0 + shift,
                    "crps": 1.25 + k,
                    "run_rate": 11.0,
                    "run_rate_crps": abs(realized - 11.0),
                }
            )
    rows.append({"cutoff": "overall", "metric": "won_deals", "realized": np.nan, "crps": 99.0})
    _synthetic(tmp_path, rows)
    page = pipesim.report(tmp_path)[0].read_text(encoding="utf-8")
    # realized 10, 15, 20 against [8, 16]: 2 of 3 inside, in each window
    assert page.count("<b>2 of 3</b><span>cutoffs inside P10–P90</span>") == 2
    assert "<h2>Won deals, 1-month windows</h2>" in page
    assert "<h2>Won deals, 3-month windows</h2>" in page
    assert page.index("1-month windows") < page.index("3-month windows")
    assert 'id="chart-backtest-won_deals-1m"' in page and 'id="chart-backtest-won_deals-3m"' in page
    # counts keep one decimal; the overall row (crps 99) is not read
    assert f"<td>pipesim (the forecast distribution)</td>{_cell('2.2')}" in page
    assert "99.0" not in page
    # 1-month run rate CRPS: |10-11|, |15-11|, |20-11| = 1, 4, 9: mean 4.67; pipesim wins 2 of 3
    assert f"{_cell('4.7')}{_cell(f'{(14 / 3) / 2.25:.2f}×')}{_cell('2 of 3')}" in page
    assert html.escape(EVIL) in page and EVIL not in page and "<script" not in page
