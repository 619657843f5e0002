"""The HTML report in a real browser: headless Chromium driven by selenium, network closed.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the
``selenium`` package (the ``test`` extra): see tests/browser.py.
"""

from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image

import pipesim
from browser import browser_or_skip
from report_fixtures import EVIL_REGION, EVIL_STAGE, TARGET, make_results

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


def test_report_in_headless_chromium(tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    results = tmp_path / "results"
    make_results(results)
    page = pipesim.report(results, target=TARGET)[0]
    driver = browser_or_skip(tmp_path)
    try:
        driver.get(page.resolve().as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert  # noqa: B018  (the CRM text must not have run)
        assert driver.find_elements(By.TAG_NAME, "script") == []
        assert driver.find_elements(By.TAG_NAME, "img") == []  # the region name stayed text
        # Nothing was fetched: the page is the only resource.
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        for chart in CHARTS:
            svg = driver.find_element(By.CSS_SELECTOR, f"figure#chart-{chart} > svg")
            assert svg.size["width"] > 500 and svg.size["height"] > 150, chart
            assert len(svg.find_elements(By.CSS_SELECTOR, "path")) > 5, chart
        assert len(driver.find_elements(By.CSS_SELECTOR, "figure.chart svg")) == len(CHARTS)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert EVIL_STAGE in text and EVIL_REGION in text  # shown as text, literally
        # Every table fits the page's column: none overflows its card or scrolls sideways.
        widths = driver.execute_script(
            "const main = document.querySelector('main');"
            "const room = main.clientWidth - 2 * parseFloat(getComputedStyle(main).paddingLeft);"
            "return [room, Array.from(document.querySelectorAll('table'),"
            " t => [t.querySelector('th').textContent, t.getBoundingClientRect().width])];"
        )
        room, tables = widths
        assert len(tables) >= 8 and room > 900
        assert [t for t in tables if t[1] > room] == [], room
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1100, height)
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    with Image.open(shot) as img:
        assert img.size[0] >= 1000 and img.size[1] >= 3000
        lo, hi = img.convert("L").getextrema()
        assert hi - lo > 100
    if os.environ.get("PIPESIM_SCREENSHOT"):
        shutil.copy(shot, os.environ["PIPESIM_SCREENSHOT"])


def test_backtest_page_in_headless_chromium(tmp_path):
    from click.testing import CliRunner
    from selenium.webdriver.common.by import By

    from pipesim.cli import main
    from pipesim.datasets import maven_crm_path

    out = tmp_path / "bt"
    args = ["backtest", str(maven_crm_path()), "--format", "maven", "--cutoffs", "2017-05..2017-08"]
    res = CliRunner().invoke(main, [*args, "--trials", "100", "--out", str(out), "--report"])
    assert res.exit_code == 0, res.output
    driver = browser_or_skip(tmp_path)
    try:
        driver.get((out / "report.html").resolve().as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        assert driver.find_elements(By.TAG_NAME, "script") == []
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        svg = driver.find_element(By.CSS_SELECTOR, "figure#chart-backtest-revenue-3m > svg")
        assert svg.size["width"] > 500 and svg.size["height"] > 200
        assert len(svg.find_elements(By.CSS_SELECTOR, "path")) > 5
        room, widths = driver.execute_script(
            "const main = document.querySelector('main');"
            "const room = main.clientWidth - 2 * parseFloat(getComputedStyle(main).paddingLeft);"
            "return [room, Array.from(document.querySelectorAll('table'),"
            " t => t.getBoundingClientRect().width)];"
        )
        assert len(widths) == 3 and max(widths) <= room
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "cutoffs inside P10–P90" in text
        assert "Mean CRPS: pipesim against each baseline" in text
        date = driver.find_element(By.XPATH, "//td[text()='2017-05-01']")
        assert date.size["height"] < 30  # a cutoff's date stays on one line
    finally:
        driver.quit()
