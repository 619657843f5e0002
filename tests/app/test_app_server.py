"""The planning page without a browser: forms read as the CLI reads levers, the server's
address, the downloads, and ``pipesim app`` as a user starts and stops it."""

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
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

import pipesim
from app_fixtures import EVIL_INDEX, SEED, TRIALS, hostile_folder, page_server
from conftest import ROOT
from pipesim import api
from pipesim.cli import main
from report_fixtures import EVIL_STAGE

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


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
