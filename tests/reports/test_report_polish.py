"""The report reads well: labels once, numbers formatted, words for headers, one scale,
what P10/P50/P90 mean, the target and health results, the currency everywhere."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from pipesim.cli import main
from pipesim.reports import charts
from pipesim.reports.html import READING
from pipesim.reports.results_folder import load_report_data

TRIALS, SEED, REVENUE = 120, 7, 6_000_000.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A demo run by region with every planning file of the same scenario, trials and seed."""
    out = tmp_path_factory.mktemp("polish") / "results"
    sc = pipesim.load_scenario(pipesim.demo_path()).replace(horizon_months=4)
    pipesim.write_results(pipesim.simulate(sc, trials=TRIALS, seed=SEED, by="region"), out)
    settings = {"trials": TRIALS, "seed": SEED}
    pipesim.sensitivity(sc, **settings).write(out)
    pipesim.compare(sc, ["leads*1.1", "conversion:Offer+0.05@region=North"], **settings).write(out)
    pipesim.target(sc, REVENUE, months=4, **settings).write(out)
    pipesim.health(sc, REVENUE, months=4, **settings).write(out)
    pipesim.report(out)
    return out


def _page(folder) -> str:
    return (folder / "report.html").read_text(encoding="utf-8")


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}")
    end = page.find("<h2>", start + 4)
    return page[start : end if end > 0 else None]


def _cell(text: str) -> str:
    return f'<td class="n">{html.escape(text)}</td>'


def test_tornado_labels_are_each_input_once(folder):
    sens = pd.read_parquet(folder / "sensitivity.parquet")
    assert {"input", "quantity", "stage"} <= set(sens.columns)  # the parts next to the name
    svg = _section(_page(folder), "Sensitivity")
    svg = svg[svg.index('id="chart-tornado"') : svg.index("</figure>")]
    for name in sens["input"]:
        assert f">{name}<" in svg or f"{name}</text>" in svg, name
    assert "conversion Offer conversion Offer" not in svg
    assert "conversion Offer conversion Offer" not in _page(folder)


def test_sensitivity_table_is_formatted(folder):
    sens = pd.read_parquet(folder / "sensitivity.parquet")
    part = _section(_page(folder), "Sensitivity")
    for column in sens.columns.drop(["input", "rank", "swing"]):
        assert f"<th>{column}</th>" not in part  # words, not the file's column names
    assert "P50 change, input −10% (EUR)" in part and "<th>swing</th>" in part
    for _, r in sens.iterrows():
        down = f"{r['delta_p50_down']:+,.0f}".replace("-", "−")
        up = f"{r['delta_p50_up']:+,.0f}".replace("-", "−")
        row = f"<td>{html.escape(r['input'])}</td>{_cell(down)}{_cell(up)}"
        assert row + _cell(f"{abs(r['delta_p50_up'] - r['delta_p50_down']):,.0f}") in part
    assert not re.search(r"\de[+-]\d", part) and "nan" not in part.lower()
    assert f"Base P50: {sens['p50_base'].iloc[0]:,.0f} EUR." in part


def test_comparison_headers_are_words_and_numbers_formatted(folder):
    comp = pd.read_parquet(folder / "compare.parquet")
    part = _section(_page(folder), "Scenario comparison")
    for column in ("delta_p50", "p_better", "delta_mean", "delta_se"):
        assert column not in part
    assert "<th>mean (EUR)</th>" in part and "<th>P(better than base)</th>" in part
    for _, r in comp.iterrows():
        cells = "".join(_cell(f"{r[c]:,.0f}") for c in ("mean", "p10", "p50", "p90"))
        assert f"<td>{html.escape(r['variant'])}</td>{cells}" in part
    lever = comp.iloc[1]
    gain = f"{lever['delta_mean']:+,.0f} ± {lever['delta_se']:,.0f}"
    assert f"<td>{lever['variant']}</td>{_cell(gain)}" in part
    assert _cell(f"{lever['p_better']:.0%}") in part


def test_segment_panels_share_one_y_scale(folder):
    data = load_report_data(folder)
    chart = charts.segments_chart(data, data.segments())
    axes = [ax for ax in chart.figure.axes if ax.get_visible()]
    assert len(axes) == len(data.segments()) == 4
    limits = {ax.get_ylim() for ax in axes}
    assert len(limits) == 1
    bottom, top = limits.pop()
    assert bottom == 0.0
    highest = max(data.block(s, "revenue", False)["p90"].max() for s in data.segments())
    assert highest <= top <= highest * 1.1  # nothing cut off, no panel on its own scale


def test_a_sentence_says_what_p10_p50_p90_mean(folder):
    page = _page(folder)
    assert f'<p class="read">{html.escape(READING)}</p>' in page
    assert "10% end below P10" in READING
    assert "between P10 and P90 in 8 futures out of 10" in READING


def test_target_section_from_target_parquet(folder):
    target = pd.read_parquet(folder / "target.parquet")
    meta = pipesim.io.parquet.read_metadata(folder / "target.parquet")
    part = _section(_page(folder), "Target")
    assert f"Target: {REVENUE:,.0f} EUR won over the first 4 month(s)" in part
    assert f"New leads needed: {float(meta['leads_needed_per_month']):,.0f} a month" in part
    stages = [c for c in target.columns if c.startswith("needed_")]
    for _, r in target.iterrows():
        cells = "".join(_cell(f"{r[c]:,.1f}") for c in ("leads_current", "leads_needed", *stages))
        assert f"<td>{r['period']}</td>{cells}" in part


def test_health_section_from_health_parquet(folder):
    health = pd.read_parquet(folder / "health.parquet")
    meta = pipesim.io.parquet.read_metadata(folder / "health.parquet")
    part = _section(_page(folder), "Pipeline health")
    assert f"Target {REVENUE:,.0f} EUR over 4 month(s)" in part
    assert f"probability {float(meta['probability']):.1%}" in part
    assert "<th>value now (EUR)</th>" in part
    for _, r in health.iterrows():
        cells = _cell(f"{r['deals_now']:,}") + _cell(f"{r['value_now']:,.0f}")
        cells += _cell(f"{r['deals_needed']:,.0f}") + _cell(f"{r['coverage']:.0%}")
        assert f"<td>{r['stage']}</td>{cells}" in part
    assert health["bottleneck"].sum() == part.count(">bottleneck<")


def test_health_and_target_print_the_currency(tmp_path):
    common = ["--months", "3", "--trials", "60", "--seed", "1", "--out", str(tmp_path)]
    runner = CliRunner()
    health = runner.invoke(main, ["health", "--revenue", "2000000", *common])
    target = runner.invoke(main, ["target", "--revenue", "2500000", *common])
    assert health.exit_code == 0 and target.exit_code == 0, health.output + target.output
    assert "Target 2,000,000 EUR over 3 month(s)" in health.output
    assert "value now (EUR)" in health.output
    assert "P(revenue over 3 month(s) >= 2,000,000 EUR)" in health.output
    assert "Target: 2,500,000 EUR won over the first 3 month(s)" in target.output


def test_numbers_in_planning_sections_never_show_raw_floats(folder):
    page = _page(folder)
    for title in ("Target", "Pipeline health", "Scenario comparison", "Sensitivity"):
        part = _section(page, title)
        text = re.sub(r"<svg.*?</svg>", "", part, flags=re.S)
        assert not re.search(r"\d\.\d{4,}", text), title  # no 0.123456 or 9409000.25
        assert "nan" not in text.lower() and "inf" not in re.sub(r"<[^>]+>", "", text).lower()
    assert np.isfinite(pd.read_parquet(folder / "health.parquet")["coverage"]).all()


def test_workbook_has_target_and_health_sheets(folder, tmp_path):
    import openpyxl

    book = pipesim.report(folder, out=tmp_path / "r.html", xlsx=tmp_path / "b.xlsx")[-1]
    wb = openpyxl.load_workbook(book)
    assert {"Comparison", "Sensitivity", "Target", "Health"} <= set(wb.sheetnames)
    health = pd.read_parquet(folder / "health.parquet")
    ws = wb["Health"]
    header = [c.value for c in ws[1]]
    value = ws.cell(row=2, column=header.index("value_now") + 1)
    assert value.value == pytest.approx(health["value_now"].iloc[0], rel=1e-15)
    assert value.number_format == '#,##0 "EUR";-#,##0 "EUR"'
