"""pipesim report: the HTML file, its charts, the PNGs, the workbook, the CSVs, --json."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import pipesim
from pipesim.cli import main
from pipesim.reports.export import finance_table
from pipesim.reports.results_folder import load_report_data, tornado_frame
from report_fixtures import EVIL_REGION, EVIL_STAGE, SEED, TARGET, TRIALS, make_results

CHARTS = (
    "fan-monthly",
    "fan-cumulative",
    "histogram",
    "quarters",
    "funnel",
    "segments",
    "compare",
    "tornado",
)
# PNG size in pixels at 100 dpi: fixed figure sizes (funnel and segments grow with their rows).
PNG_SIZES = {
    "fan-monthly": (800, 400),
    "fan-cumulative": (800, 400),
    "histogram": (800, 360),
    "funnel": (800, 215),
    "segments": (800, 280),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = root / "results"
    result = make_results(results)
    written = pipesim.report(
        results,
        out=root / "report.html",
        png=root / "png",
        xlsx=root / "book.xlsx",
        csv=root / "csv",
        target=TARGET,
    )
    return root, results, result, written


def test_every_output_is_written(made):
    root, _, _, written = made
    names = {p.relative_to(root).as_posix() for p in written}
    assert "report.html" in names and "book.xlsx" in names
    assert {f"png/{c}.png" for c in CHARTS} <= names
    assert {"csv/summary.csv", "csv/settings.csv", "csv/funnel.csv", "csv/comparison.csv"} <= names
    assert "csv/forecast_call.csv" not in names  # no forecast categories on these deals
    assert not list(root.rglob(".*tmp-*")), "no temporary file left behind"


def test_html_is_self_contained_with_every_chart(made):
    root, _, _, _ = made
    page = (root / "report.html").read_text(encoding="utf-8")
    for chart in CHARTS:
        assert re.search(
            rf'<figure class="chart" id="chart-{chart}"><figcaption>[^<]*</figcaption><svg', page
        )
    # Nothing fetched: no src/href to a URL, no script at all, no stylesheet link.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "Forecast call" not in page and "chart-forecast-call" not in page  # no categories
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)) > 50  # unique across the inline SVGs
    for ref in re.findall(r'(?:url\(#|href="#)([^")]+)', page):
        assert ref in ids


def test_crm_text_is_escaped_in_html_and_svg(made):
    root, _, _, _ = made
    page = (root / "report.html").read_text(encoding="utf-8")
    assert EVIL_STAGE not in page and EVIL_REGION not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the funnel table and chart
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the segment table and small multiples
    assert "&lt;b&gt;price cut&lt;/b&gt;" in page and "hostile &lt;book&gt;" in page
    assert "onerror=" not in page.replace("onerror=alert(2)&gt;", "")


def test_settings_block(made):
    root, results, _, _ = made
    page = (root / "report.html").read_text(encoding="utf-8")
    meta = pipesim.io.parquet.read_metadata(results / "summary.parquet")
    for key, value in (
        ("as of", "2027-01-01"),
        ("trials", f"{TRIALS:,}"),
        ("seed", str(SEED)),
        ("pipesim version", pipesim.__version__),
        ("scenario", "hostile &lt;book&gt;"),
    ):
        assert f"<td>{key}</td><td>{value}</td>" in page
    assert meta["seed"] == str(SEED) and meta["trials"] == str(TRIALS)


def test_headline_numbers_are_the_summary(made):
    root, results, _, _ = made
    page = (root / "report.html").read_text(encoding="utf-8")
    s = pd.read_parquet(results / "summary.parquet")
    last = s[s.region.isna() & s.cumulative & (s.metric == "revenue") & (s.period == "2027-06")]
    for q in ("p10", "p50", "p90", "mean"):
        label = q.upper() if q != "mean" else q
        assert f"<b>{last[q].iloc[0]:,.0f} EUR</b><span>revenue {label}</span>" in page
    # The histogram's P10/P50/P90 and P(total >= target) come from trials.parquet: the same
    # trials as summary.parquet, so its quantiles equal the cumulative row's (float sums aside).
    data = load_report_data(results, target=TARGET)
    assert data.totals is not None and len(data.totals) == TRIALS
    np.testing.assert_allclose(
        np.quantile(data.totals, (0.1, 0.5, 0.9)), last[["p10", "p50", "p90"]].iloc[0], rtol=1e-12
    )
    assert f"{np.mean(data.totals >= TARGET):.0%}</b><span>P(total ≥ target)" in page


def test_pngs_are_images_of_the_expected_size(made):
    root, _, _, _ = made
    for chart in CHARTS:
        path = root / "png" / f"{chart}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            if chart in PNG_SIZES:
                assert img.size == PNG_SIZES[chart], chart
            assert img.size[0] == 800 and img.size[1] >= 200
            lo, hi = img.convert("L").getextrema()
            assert hi - lo > 100, f"{chart}.png is blank"
            colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 20, f"{chart}.png has nothing drawn"


def test_workbook_numbers_equal_summary_parquet(made):
    root, results, _, _ = made
    summary = pd.read_parquet(results / "summary.parquet")
    wb = openpyxl.load_workbook(root / "book.xlsx")
    assert wb.sheetnames == [
        "Summary",
        "Settings",
        "Quarters",
        "Funnel",
        "Comparison",
        "Sensitivity",
    ]
    ws = wb["Summary"]
    assert ws.freeze_panes == "C2"
    header = [c.value for c in ws[1]]
    assert header[:6] == [
        "month",
        "segment",
        "Revenue P10",
        "Revenue P50",
        "Revenue P90",
        "Revenue mean",
    ]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 3 * 6  # All, and the two regions, for six months
    checked = 0
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        seg = (
            summary.region.isna()
            if cells["segment"] == "All"
            else (summary.region == cells["segment"].removeprefix("region="))
        )
        for title, metric, cumulative in (
            ("Revenue", "revenue", False),
            ("Won deals", "won_deals", False),
            ("Cumulative revenue", "revenue", True),
            ("Cumulative won deals", "won_deals", True),
        ):
            match = summary[
                seg
                & (summary.period == cells["month"])
                & (summary.metric == metric)
                & (summary.cumulative == cumulative)
            ]
            assert len(match) == 1
            for stat in ("p10", "p50", "p90", "mean"):
                label = f"{title} {'mean' if stat == 'mean' else stat.upper()}"
                # openpyxl writes 16 significant digits ("%.16g"; Excel shows 15): equal
                # to within one part in 1e15, far below a cent on any revenue.
                assert cells[label] == pytest.approx(match[stat].iloc[0], rel=1e-15, abs=0)
                checked += 1
    assert checked == 18 * 16
    assert ws["C2"].number_format == '#,##0 "EUR";-#,##0 "EUR"'
    assert ws["G2"].number_format == "#,##0"  # won deals are counts
    settings = dict(wb["Settings"].iter_rows(min_row=2, values_only=True))
    assert settings["seed"] == str(SEED) and settings["trials"] == str(TRIALS)
    assert settings["pipesim_version"] == pipesim.__version__
    funnel = list(wb["Funnel"].iter_rows(min_row=2, values_only=True))
    assert funnel[1][0] == EVIL_STAGE  # a cell holds text; Excel does not run it


def test_csv_matches_the_workbook(made):
    root, results, _, _ = made
    summary = pd.read_parquet(results / "summary.parquet")
    csv = pd.read_csv(root / "csv" / "summary.csv")
    expected = finance_table(summary, ("region",))
    pd.testing.assert_frame_equal(csv, expected, check_exact=False, rtol=1e-15)


def test_tornado_reads_long_and_wide_forms():
    long = pd.DataFrame(
        {
            "input": ["a", "a", "b", "b"],
            "direction": ["down", "up", "down", "up"],
            "delta_p50": [-1.0, 2.0, -5.0, 4.0],
            "delta_p10": [-0.5, 1.0, -3.0, 2.0],
        }
    )
    wide = pd.DataFrame(
        {
            "parameter": ["a", "b"],
            "step": [0.1, 0.1],
            "p50_down": [-1.0, -5.0],
            "p50_up": [2.0, 4.0],
            "p10_down": [-0.5, -3.0],
            "p10_up": [1.0, 2.0],
        }
    )
    for frame in (long, wide):
        t = tornado_frame(frame)
        assert t is not None
        assert list(t["input"]) == ["b", "a"]  # widest swing first
        assert list(t["down_p50"]) == [-5.0, -1.0] and list(t["up_p10"]) == [2.0, 1.0]
    assert tornado_frame(pd.DataFrame({"input": ["a"], "revenue": [1.0]})) is None


def test_report_without_extras_or_segments(tmp_path, demo):
    result = pipesim.simulate(demo.replace(horizon_months=3), trials=200, seed=1)
    pipesim.write_results(result, tmp_path / "res")
    written = pipesim.report(tmp_path / "res")
    assert written == [tmp_path / "res" / "report.html"]
    page = written[0].read_text(encoding="utf-8")
    assert page.count('<figure class="chart"') == 5  # two fans, histogram, quarters, funnel
    assert "Scenario comparison" not in page and "Sensitivity" not in page


def test_cli_report_and_bad_folders(made, tmp_path):
    _, results, _, _ = made
    runner = CliRunner()
    ok = runner.invoke(main, ["report", str(results), "--out", str(tmp_path / "r.html")])
    assert ok.exit_code == 0, ok.output
    assert f"Wrote {tmp_path / 'r.html'}" in ok.output
    assert "revenue P10" in ok.output and "EUR" in ok.output  # the horizon table
    missing = runner.invoke(main, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "summary.parquet: missing" in missing.output and "Traceback" not in missing.output
    (tmp_path / "afile").write_text("x")
    clash = runner.invoke(main, ["report", str(results), "--png", str(tmp_path / "afile")])
    assert clash.exit_code == 2 and "--png " in clash.output
    assert "is a file; give a folder" in clash.output


def test_run_json_prints_only_json_and_report_in_one_go(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipesim.cli",
            "run",
            "--trials",
            "200",
            "--seed",
            "5",
            "--json",
            "--out",
            str(out),
            "--report",
            "--target",
            "9000000",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # nothing else on stdout
    assert doc["settings"]["seed"] == 5 and doc["settings"]["trials"] == 200  # numbers
    summary = pd.read_parquet(out / "summary.parquet")
    assert len(doc["summary"]) == len(summary)
    first = doc["summary"][0]
    assert first["mean"] == summary["mean"].iloc[0] and first["period"] == "2027-01"
    quarters = pd.read_parquet(out / "quarters.parquet")
    assert [r["p50"] for r in doc["quarters"]] == quarters["p50"].tolist()
    assert doc["quarters"][0]["start"] == "2027-01-01"
    assert (out / "report.html").is_file() and "Wrote" in proc.stderr
    assert "9,000,000 EUR" in (out / "report.html").read_text(encoding="utf-8")
    # --target is kept in the results' metadata, so a later `pipesim report` draws it too.
    assert pipesim.io.parquet.read_metadata(out / "funnel.parquet")["target"] == "9000000.0"
    assert list(pd.read_parquet(out / "funnel.parquet").columns) == [
        "stage",
        "deals",
        "value",
        "conversion",
        "win_probability",
    ]


def test_matplotlib_is_imported_only_to_draw():
    code = (
        "import sys, pipesim, pipesim.cli, pipesim.api\n"
        "r = pipesim.run_scenario(trials=20)\n"
        "pipesim.api.format_run(r); pipesim.api.run_json(r)\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_many_segments_all_in_the_table_first_twelve_drawn(tmp_path):
    from conftest import build, deals_frame, stages_frame

    regions = [f"R{i:02d}" for i in range(14)]
    deals = deals_frame(["S1", "S3"] * 14, 1_000.0, region=[r for r in regions for _ in (0, 1)])
    scenario = build(stages_frame([0.5, 0.5, 0.6]), deals, horizon_months=3)
    result = pipesim.simulate(scenario, trials=100, seed=2, by="region")
    pipesim.write_results(result, tmp_path)
    page = pipesim.report(tmp_path)[0].read_text(encoding="utf-8")
    assert all(f"<td>{r}</td>" in page for r in regions)
    assert "The charts show the first 12 of 14 segments; the table lists them all." in page
    svg = page[page.index('id="chart-segments"') :]
    svg = svg[: svg.index("</figure>")]
    assert "R11" in svg and "R12" not in svg


def test_the_forecast_call_in_the_report_workbook_and_csv(tmp_path):
    from conftest import build, deals_frame, stages_frame

    # Every deal in the last stage, won after 3 days with probability 0.5: 4 Commit, 3 Best
    # Case, 5 Pipeline and 1 Omitted deal of 100 EUR, plus 250 EUR won in January before
    # as_of. By hand: Commit 250 + 400, + Best Case 950, weighted pipeline 12 x 100 x 0.5.
    stages = stages_frame([1.0, 1.0, 0.5], dwell_days=[1.0, 1.0, 3.0], dwell_cv=0.0)
    deals = deals_frame(["S3"] * 13, 100.0)
    deals["forecast_category"] = ["Commit"] * 4 + ["Best Case"] * 3 + ["Pipeline"] * 5 + ["Omitted"]
    won = pd.DataFrame(
        {"deal_id": ["w1"], "closed_at": pd.to_datetime(["2027-01-05"]), "amount": [250.0]}
    )
    scenario = build(stages, deals, as_of="2027-01-10", horizon_months=4, currency="EUR", won=won)
    pipesim.write_results(pipesim.simulate(scenario, trials=300, seed=4), tmp_path / "res")
    call = pd.read_parquet(tmp_path / "res" / "forecast_call.parquet")
    r = call.iloc[0]
    assert (r["booked"], r["commit"], r["commit_best_case"]) == (250.0, 650.0, 950.0)
    assert r["weighted_pipeline"] == pytest.approx(600.0)
    written = pipesim.report(
        tmp_path / "res", xlsx=tmp_path / "book.xlsx", csv=tmp_path / "csv", png=tmp_path / "png"
    )
    assert tmp_path / "png" / "forecast-call.png" in written
    page = (tmp_path / "res" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Forecast call: the reps' call and the model, FY2027-Q1</h2>" in page
    assert re.search(r'<figure class="chart" id="chart-forecast-call"><figcaption>', page)
    section = page[page.index("<h2>Forecast call") :]
    section = section[: section.index("<h2>", 4)]
    cells = dict(re.findall(r'<tr><td>([^<]*)</td><td class="n">([^<]*)</td></tr>', section))
    assert cells == {
        "won 2027-01-01 to 2027-01-09 (in Commit and the model)": "250 EUR",
        "Commit (4 open deals)": "650 EUR",
        "Commit + Best Case (3 Best Case deals)": "950 EUR",
        "weighted pipeline (Omitted left out)": "600 EUR",
        "model P10": f"{r['p10']:,.0f} EUR",
        "model P50": f"{r['p50']:,.0f} EUR",
        "model P90": f"{r['p90']:,.0f} EUR",
        "model mean": f"{r['mean']:,.0f} EUR",
        "P(revenue ≥ Commit)": f"{r['p_commit']:.0%}",
    }
    assert "2027-01-01 – 2027-03-31; part of the quarter" in section  # as_of cuts it
    wb = openpyxl.load_workbook(tmp_path / "book.xlsx")
    assert wb.sheetnames[:4] == ["Summary", "Settings", "Quarters", "Forecast call"]
    ws = wb["Forecast call"]
    header = [c.value for c in ws[1]]
    assert header == list(call.columns)
    row = dict(zip(header, next(ws.iter_rows(min_row=2, values_only=True)), strict=True))
    assert (row["quarter"], row["start"], row["end"]) == ("FY2027-Q1", "2027-01-01", "2027-03-31")
    for col in ("booked", "commit", "commit_best_case", "weighted_pipeline", "p10", "p50"):
        assert row[col] == pytest.approx(r[col], rel=1e-15, abs=0)  # openpyxl: 16 digits
    assert row["p_commit"] == r["p_commit"] and row["commit_deals"] == 4
    assert ws.cell(2, header.index("p_commit") + 1).number_format == "0.0%"
    assert ws.cell(2, header.index("commit") + 1).number_format == '#,##0 "EUR";-#,##0 "EUR"'
    csv = pd.read_csv(tmp_path / "csv" / "forecast_call.csv")
    assert csv["commit"].item() == 650.0 and csv["p_commit"].item() == r["p_commit"]
