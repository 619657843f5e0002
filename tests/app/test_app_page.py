"""The planning page: forms read as the CLI reads levers, the server's address, the
downloads, ``pipesim app`` as a user starts and stops it, and the page in headless Chromium
(tests/browser.py): nothing from elsewhere, hostile names as text, a lever's figures exactly
those of ``pipesim compare``, a bad value's message next to its input.

One server for the module: started in-process on a free loopback port in a background
thread, stopped at the end.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pytest
from click.testing import CliRunner

import pipesim
from browser import browser_or_skip
from conftest import ROOT, build, deals_frame, stages_frame
from pipesim import api
from pipesim.cli import main
from report_fixtures import EVIL_REGION, EVIL_STAGE, STAGES

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


TRIALS, SEED = 300, 7
EVIL_INDEX = STAGES.index(EVIL_STAGE)  # the stage's number in the form's field names


def write_hostile_scenario(folder: Path) -> Path:
    """A 3-stage book whose second stage and one region are HTML, with new leads per region."""
    from pipesim.io.scenario_folder import write_scenario

    stages = stages_frame([0.6, 0.5, 0.7], dwell_days=15.0, names=STAGES)
    region = ["North" if i % 2 else EVIL_REGION for i in range(60)]
    deals = deals_frame([STAGES[i % 3] for i in range(60)], 10_000.0, region=region)
    months = [f"2027-{m:02d}" for m in range(1, 7)]
    arrivals = pd.DataFrame(
        {
            "period": months * 2,
            "leads": [12.0] * 12,
            "amount": [8_000.0] * 12,
            "region": ["North"] * 6 + [EVIL_REGION] * 6,
        }
    )
    scenario = build(
        stages, deals, arrivals, horizon_months=6, name="hostile <book>", currency="EUR"
    )
    write_scenario(folder, scenario)
    return folder


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    return write_hostile_scenario(tmp_path_factory.mktemp("app") / "scenario")


@pytest.fixture(scope="module")
def page_server(hostile_folder):
    """The planning page of the hostile scenario, served on loopback for the module."""
    from pipesim.app.server import running

    with running(hostile_folder, port=0, trials=TRIALS, seed=SEED) as server:
        yield server


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the env


def _get(server, path: str, host: str | None = None) -> bytes:
    request = urllib.request.Request(server.url.rstrip("/") + path)
    if host is not None:
        request.add_header("Host", host)
    with DIRECT.open(request, timeout=120) as response:
        return response.read()


def _vary(server, **fields: str) -> dict:
    return json.loads(_get(server, "/variant?" + urlencode({"variant": "plan", **fields})))


def _cli_compare(folder, levers=(), extra_folder=None) -> list[dict]:
    args = ["compare", str(folder), *(a for lv in levers for a in ("--lever", lv))]
    args += ["--trials", str(TRIALS), "--seed", str(SEED), "--json", "--out", str(extra_folder)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["compare"]


# --- the lever form --------------------------------------------------------------------


def test_the_form_reads_levers_and_puts_each_message_next_to_its_field(demo):
    from pipesim.app.lever_form import read_form, segment_options

    options = segment_options(demo)
    north = options.index(("region", "North")) + 1
    form = {"variant": "push", "segment": str(north), "leads": "1.2", "amount": "1"}
    form |= {"conversion.3": "0.05", "dwell.0": "", "conversion.0": "0"}
    reading = read_form(demo, form)
    assert reading.errors == {}
    assert [lv.label() for lv in reading.levers] == [
        "leads*1.2@region=North",
        "conversion:Offer+0.05@region=North",
    ]  # x1 and +0 are no levers; an empty field neither
    bad = read_form(demo, {"leads": "lots", "conversion.3": "0.9", "dwell.1": "inf"})
    assert set(bad.errors) == {"leads", "conversion.3", "dwell.1"}
    assert "'lots' is not a number" in bad.errors["leads"]
    # The command line's own message for the same lever, word for word.
    with pytest.raises(pipesim.PipesimError) as exc:
        api.compare(demo, ["conversion:Offer+0.9"], trials=5)
    assert bad.errors["conversion.3"] in str(exc.value)
    assert bad.levers == ()
    assert read_form(demo, {"leads": "1.1", "variant": "base"}).errors.keys() == {"variant"}
    assert read_form(demo, {"segment": "9999"}).errors.keys() == {"segment"}


def test_a_variant_as_levers_parquet_rows_reads_back_as_the_same_levers(demo, tmp_path):
    from pipesim.plan.levers import levers_from_frame, parse_lever

    levers = [parse_lever("leads*1.2@region=North"), parse_lever("dwell:Offer*0.8")]
    rows = api.variant_rows("faster", levers)
    path = api.write_levers(rows, tmp_path)
    back = levers_from_frame(pipesim.io.parquet.read_table(path))
    assert [lv.label() for lv in back["faster"]] == [lv.label() for lv in levers]
    assert [(lv.quantity, lv.how, lv.value, lv.stage, lv.segment) for lv in back["faster"]] == [
        (lv.quantity, lv.how, lv.value, lv.stage, lv.segment) for lv in levers
    ]


# --- the server ------------------------------------------------------------------------


def test_the_server_binds_loopback_only_and_ignores_host_settings_in_the_environment(
    monkeypatch,
):
    from pipesim.app.server import bind

    for name in ("HOST", "UVICORN_HOST", "PIPESIM_HOST", "UVICORN_PORT"):
        monkeypatch.setenv(name, "0.0.0.0")
    sock = bind(None, 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    sock = bind("0.0.0.0", 0)  # only when asked for, explicitly
    try:
        assert sock.getsockname()[0] == "0.0.0.0"
    finally:
        sock.close()


def test_a_host_given_explicitly_is_the_one_bound(hostile_folder):
    from pipesim.app.server import running

    with running(hostile_folder, port=0, host="0.0.0.0", trials=20) as server:
        assert server.address[0] == "0.0.0.0"
        # Reached by another name than loopback's: no Host check on a server opened on purpose.
        port = server.address[1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/page.js")
        request.add_header("Host", f"planner.example:{port}")
        with DIRECT.open(request, timeout=60) as response:
            assert response.status == 200


def test_the_shared_server_is_on_loopback_and_refuses_other_host_names(page_server):
    assert page_server.address[0] == "127.0.0.1"
    assert page_server.url.startswith("http://127.0.0.1:")
    assert b"pipesim planning" in _get(page_server, "/")
    with pytest.raises(urllib.error.HTTPError) as exc:
        _get(page_server, "/", host="attacker.example")  # DNS rebinding
    exc.value.close()
    assert exc.value.code == 400


def test_a_taken_port_exits_2_with_a_message(hostile_folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = CliRunner().invoke(main, ["app", str(hostile_folder), "--port", str(port)])
    assert res.exit_code == 2, res.output
    assert "cannot listen there" in res.stderr and "--port" in res.stderr
    assert "Traceback" not in res.output


def test_bad_lever_values_answer_messages_not_tracebacks(page_server):
    answer = _vary(page_server, **{"leads": "1.5e", f"conversion.{EVIL_INDEX}": "-0.9"})
    assert set(answer["errors"]) == {"leads", f"conversion.{EVIL_INDEX}"}
    assert "pushes conversion to" in answer["errors"][f"conversion.{EVIL_INDEX}"]
    assert "Traceback" not in json.dumps(answer)


def test_downloads_are_what_is_on_screen_and_the_saved_variant_runs_in_compare(
    page_server, hostile_folder, tmp_path
):
    answer = _vary(page_server, leads="1.3", **{f"dwell.{EVIL_INDEX}": "0.7"})
    assert answer["errors"] == {}
    shown = page_server.session.compared.table
    with zipfile.ZipFile(io.BytesIO(_get(page_server, "/download/pipesim-results.zip"))) as zf:
        names = set(zf.namelist())
    assert {"summary.parquet", "trials.parquet", "compare.parquet", "levers.parquet"} <= names
    xlsx = tmp_path / "page.xlsx"
    xlsx.write_bytes(_get(page_server, "/download/pipesim.xlsx"))
    from openpyxl import load_workbook

    sheets = load_workbook(xlsx, read_only=True).sheetnames
    assert "Summary" in sheets and "Comparison" in sheets
    # levers.parquet in a copy of the scenario: pipesim compare gives the page's figures.
    folder = tmp_path / "scenario"
    shutil.copytree(hostile_folder, folder)
    (folder / "levers.parquet").write_bytes(_get(page_server, "/download/levers.parquet"))
    rows = _cli_compare(folder, extra_folder=tmp_path / "out")
    assert [r["variant"] for r in rows] == ["base", "plan"]
    for col in ("mean", "p10", "p50", "p90", "delta_mean", "p_better"):
        assert [r[col] for r in rows] == shown[col].tolist(), col


def test_a_target_gives_the_leads_needed_and_stage_health_of_the_commands(page_server):
    answer = json.loads(_get(page_server, "/goal?revenue=900000&confidence=0.8"))
    assert answer["errors"] == {}
    assert "New leads needed" in answer["html"] and "Stage health" in answer["html"]
    assert EVIL_STAGE not in answer["html"]  # escaped
    target = page_server.session.target
    direct = api.target(
        page_server.session.scenario, 900_000.0, confidence=0.8, trials=TRIALS, seed=SEED
    )
    assert target.metadata["leads_needed_per_month"] == direct.metadata["leads_needed_per_month"]
    bad = json.loads(_get(page_server, "/goal?revenue=-5&confidence=2"))
    assert set(bad["errors"]) == {"revenue", "confidence"}


# --- pipesim app, as a user runs it ----------------------------------------------------


def test_pipesim_app_serves_on_loopback_whatever_the_environment_says_and_stops_on_ctrl_c(
    hostile_folder,
):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env |= {"HOST": "0.0.0.0", "UVICORN_HOST": "0.0.0.0", "UVICORN_PORT": "1"}
    args = [sys.executable, "-m", "pipesim.cli", "app", str(hostile_folder), "--port", "0"]
    args += ["--no-browser", "--trials", "50"]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("pipesim planning page: http://127.0.0.1:"), line
        url = line.split()[3]
        with DIRECT.open(url, timeout=60) as response:
            assert b"hostile &lt;book&gt;" in response.read()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err


def test_the_settings_form_reruns_and_says_what_is_wrong_next_to_each_field(page_server):
    session = page_server.session
    before = session.settings
    try:
        html = _get(page_server, "/?trials=120&seed=3&by=").decode()
        assert session.settings.trials == 120 and session.settings.seed == 3
        assert "120 trials · seed 3" in html and session.result.trials_count == 120
        html = _get(page_server, "/?trials=0&seed=x&by=nowhere").decode()
        assert session.settings.trials == 120  # unchanged
        assert "give a whole number from 1 to 1,000,000" in html
        assert "pick a segment column from the list" in html
    finally:
        _get(page_server, f"/?trials={before.trials}&seed={before.seed}&by={before.by or ''}")
    assert session.settings == before


# --- in headless Chromium --------------------------------------------------------------


COLUMNS = ("mean", "p10", "p50", "p90", "delta_mean", "delta_se", "delta_p10", "delta_p50")
COLUMNS += ("delta_p90", "p_better")


@pytest.fixture(scope="module")
def driver(tmp_path_factory, page_server):
    pytest.importorskip("selenium")
    browser = browser_or_skip(tmp_path_factory.mktemp("chromium"))
    try:
        yield browser
    finally:
        browser.quit()


def _errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _wait_for_answer(driver, text: str):
    """Wait until the lever form's last request is answered and the section shows ``text``."""
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d):
        state = d.execute_script("return document.getElementById('levers').dataset.state")
        section = d.find_element("id", "variant").text
        return state == "done" and text in section

    WebDriverWait(driver, 60, poll_frequency=0.1).until(done)


def _type(driver, field: str, value: str) -> None:
    box = driver.find_element("id", f"in-{field}")
    box.clear()
    box.send_keys(value)


def _shown(driver) -> list[dict[str, float]]:
    rows = driver.find_elements("css selector", "#variant-table tbody tr")
    return [
        {
            cell.get_attribute("data-col"): float(cell.get_attribute("data-value"))
            for cell in row.find_elements("css selector", "td[data-col]")
        }
        for row in rows
    ]


def test_the_page_loads_with_nothing_from_elsewhere_and_names_as_text(driver, page_server):
    from selenium.common.exceptions import NoAlertPresentException

    driver.get(page_server.url)
    assert driver.execute_script("return document.readyState") == "complete"
    assert _errors(driver) == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018  (the stage name must not have run)
    scripts = driver.find_elements("tag name", "script")
    assert [s.get_attribute("src") for s in scripts] == [page_server.url + "page.js"]
    assert driver.find_elements("tag name", "img") == []  # the region name stayed text
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched and all(u.startswith(page_server.url) for u in fetched), fetched
    text = driver.find_element("tag name", "body").text
    assert EVIL_STAGE in text and EVIL_REGION in text and "hostile <book>" in text
    assert f"{TRIALS:,} trials" in text  # the trial count is on the page
    for chart in ("fan-monthly", "fan-cumulative", "quarters", "funnel", "segments"):
        svg = driver.find_element("css selector", f"figure#chart-{chart} > svg")
        assert svg.size["width"] > 400, chart


def test_a_lever_shows_exactly_what_pipesim_compare_gives(driver, page_server, tmp_path):
    assert _vary(page_server)["errors"] == {}  # no lever left from another test
    driver.get(page_server.url)
    _type(driver, f"conversion.{EVIL_INDEX}", "0.07")
    lever = f"conversion:{EVIL_STAGE}+0.07"
    _wait_for_answer(driver, lever)
    shown = _shown(driver)
    args = ["compare", str(page_server.session.scenario.path), "--lever", lever]
    args += ["--trials", str(TRIALS), "--seed", str(SEED), "--json", "--out", str(tmp_path)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)["compare"]
    assert [{c: r[c] for c in COLUMNS} for r in printed] == shown  # every figure, every digit
    assert shown[1]["delta_mean"] > 0
    # The next move replaces the figures: leads up too (two levers, one variant).
    _type(driver, "leads", "1.5")
    _wait_for_answer(driver, "leads*1.5")
    both = _shown(driver)
    assert both[1]["mean"] > shown[1]["mean"] and both[0] == shown[0]
    assert _errors(driver) == []


def test_a_bad_value_gets_a_message_next_to_its_input(driver, page_server):
    assert _vary(page_server)["errors"] == {}
    driver.get(page_server.url)
    _type(driver, f"conversion.{EVIL_INDEX}", "0.95")
    from selenium.webdriver.support.ui import WebDriverWait

    message = driver.find_element("css selector", f'[data-error-for="conversion.{EVIL_INDEX}"]')
    WebDriverWait(driver, 60, poll_frequency=0.1).until(lambda d: message.text)
    assert "pushes conversion to" in message.text and "outside [0, 1]" in message.text
    assert message.is_displayed()
    body = driver.find_element("tag name", "body").text
    assert "Traceback" not in body
    _type(driver, f"conversion.{EVIL_INDEX}", "0")
    WebDriverWait(driver, 60, poll_frequency=0.1).until(lambda d: not message.text)
