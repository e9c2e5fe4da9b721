"""The explorer's pictures in a real browser: headless Chromium against two real mining regtest nodes that forked.

`tests/framework/nodes.forked_pair`: node `a` mines alone, node `b` mines a short chain of its own, then follows
`a`'s longer one; `b`'s own blocks stay in its index as a side branch. The dashboard's charts must be SVG the
browser draws (also with JavaScript off), one mark per block shown; `b`'s forks page must show its branch and
why it lost; its peers page must show `a`, which sent it blocks. Nothing may break the page's CSP (a console
error). Screenshots of the three pages land in test-artifacts/ (`images/make_screenshots.py` makes the README's).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.framework.browser import chromium
from tests.framework.nodes import REPO, NodeProcess, forked_pair

ARTIFACTS = REPO / "test-artifacts"
WAIT = 30
CHARTS = ("difficulty", "interval", "hashrate", "mempool")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    with forked_pair(tmp_path_factory.mktemp("explorer-fork")) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium(1280, 1600) as driver:
        yield driver


def severe_console_messages(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name))


def drawn_marks(driver: WebDriver, name: str) -> dict:
    """What the browser drew of chart `name`: its size and its marks with a visible size."""
    return driver.execute_script(
        "var f = document.getElementById('chart-' + arguments[0]); var svg = f.querySelector('svg');"
        "var box = svg.getBoundingClientRect();"
        "var marks = Array.from(svg.querySelectorAll('circle.dot, rect.rect'))"
        "  .filter(function (m) { var b = m.getBoundingClientRect(); return b.width > 0 && b.height >= 0; });"
        "return {width: box.width, height: box.height, marks: marks.length, expected: f.dataset.marks || null};",
        name,
    )


def test_dashboard_charts_are_drawn(pair, browser: WebDriver):
    _, b = pair
    browser.get(b.url + "/")
    WebDriverWait(browser, WAIT).until(EC.visibility_of_element_located((By.ID, "chart-difficulty")))
    for name in CHARTS:
        drawn = drawn_marks(browser, name)
        assert drawn["width"] > 300, (name, drawn)
        assert drawn["height"] > 100, (name, drawn)
        if drawn["expected"] is not None:
            assert drawn["marks"] == int(drawn["expected"]) > 0, (name, drawn)
    assert browser.find_elements(By.CSS_SELECTOR, "script[src^='http'], link[href^='http'], img[src^='http']") == []
    assert severe_console_messages(browser) == []  # nothing the CSP blocked: pygal's script and style are gone
    screenshot(browser, "explorer-charts.png")


def test_charts_show_without_javascript(pair):
    _, b = pair
    with chromium(1280, 1600, javascript=False) as plain:
        plain.get(b.url + "/")
        for name in CHARTS:
            svg = plain.find_element(By.CSS_SELECTOR, f"#chart-{name} svg")
            assert svg.size["width"] > 300, name
            assert svg.size["height"] > 100, name
        difficulty = plain.find_element(By.ID, "chart-difficulty")
        dots = difficulty.find_elements(By.CSS_SELECTOR, "circle.dot")
        assert len(dots) == int(difficulty.get_attribute("data-marks")) > 0


def cells_of(row) -> list[str]:
    return [td.text for td in row.find_elements(By.TAG_NAME, "td")]


def test_forks_page_shows_the_branch_b_left(pair, browser: WebDriver):
    a, b = pair
    browser.get(b.url + "/explorer/forks")
    # Both keep mining, so later races may have left one-block branches too: b's own chain forks at genesis.
    rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "#forks tr") if cells_of(r)[2] == "0"]
    assert len(rows) == 1
    cells = cells_of(rows[0])
    tip_hash = rows[0].get_attribute("data-tip")
    length = int(cells[3])
    assert length >= 2  # b mined its own from genesis
    assert cells[6] == "less work"
    block = b.get(f"/block/{tip_hash}").json()
    assert block["height"] == int(cells[1]) == length
    assert a.get(f"/block/{tip_hash}").status_code == 404  # b never relayed its branch: a does not have it
    screenshot(browser, "explorer-forks.png")
    rows[0].find_element(By.TAG_NAME, "a").click()
    WebDriverWait(browser, WAIT).until(EC.url_contains(f"/explorer/block/{tip_hash}"))
    assert severe_console_messages(browser) == []


def test_peers_page_shows_a_and_what_it_sent(pair, browser: WebDriver):
    a, b = pair
    browser.get(b.url + "/explorer/peers")
    row = browser.find_element(By.CSS_SELECTOR, f'#peers tr[data-address="{a.address}"]')
    cells = cells_of(row)
    assert cells[0] == a.address
    assert cells[1] == "manual"
    assert cells[2] == "yes"
    assert cells[3].endswith("UTC")
    assert int(cells[5]) >= 8  # a's blocks that b took on (at least those of the reorg)
    assert severe_console_messages(browser) == []
    screenshot(browser, "explorer-peers.png")
