"""The planning page in a real browser: headless Chromium (tests/browser.py), one server.

The page loads with nothing from another origin and its one script; a hostile stage name
shows as text; changing a lever shows exactly the figures ``pipesim compare`` prints for
that lever, trials and seed; a bad value gets its message next to the input.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app_fixtures import EVIL_INDEX, SEED, TRIALS, hostile_folder, page_server
from browser import browser_or_skip
from pipesim.cli import main
from report_fixtures import EVIL_REGION, EVIL_STAGE

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
