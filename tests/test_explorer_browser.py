"""The explorer in a real browser: headless Chromium (Selenium) against a real mining regtest node.

One `miner.py` process (a block about every 0.2 s) and one browser serve the module. The dashboard must show
new blocks without a reload, the search box must land on the right page for a height, a hash, a txid and
an address, a wallet payment (`wallet.py send`, a real process) must show on the recipient's address page,
and a search string holding HTML must come back as text. Screenshots of the dashboard (desktop and phone)
are kept in test-artifacts/. Chromium missing is a failure, not a skip (tests/framework/browser.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from simplecoin.core.amounts import format_coins
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import REGTEST
from simplecoin.wallet.keyfile import WalletFile
from tests.framework.browser import chromium
from tests.framework.nodes import REPO, NodeProcess, running_node, wait_until

ARTIFACTS = REPO / "test-artifacts"
WALLET = [sys.executable, "wallet.py", "--network", "regtest"]
WAIT = 30  # seconds any one wait may take
XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with running_node(tmp_path_factory.mktemp("explorer-node"), mine=True, pause=0.2) as n:
        wait_until(lambda: n.status()["height"] >= 3, timeout=WAIT, what="a few blocks")
        yield n


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium(1280, 900) as driver:
        yield driver


def wait(driver: WebDriver, condition, what: str):
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        live = driver.find_elements(By.ID, "live")
        raise AssertionError(
            f"timed out waiting for {what} on {driver.current_url}; the page says "
            f"{live[0].text if live else '-'!r}; console: {driver.get_log('browser')}"
        ) from None


def search(driver: WebDriver, node: NodeProcess, query: str) -> None:
    """Type `query` into the search box of the dashboard and press Enter."""
    driver.get(node.url + "/")
    box = wait(driver, EC.element_to_be_clickable((By.ID, "search")), "the search box")
    box.send_keys(query, Keys.ENTER)


def text(driver: WebDriver, element_id: str) -> str:
    return wait(driver, EC.visibility_of_element_located((By.ID, element_id)), f"#{element_id}").text


def severe_console_messages(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_dashboard_shows_new_blocks_without_reload(node: NodeProcess, browser: WebDriver):
    browser.get(node.url + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#latest-blocks tr")
    first_height = int(rows[0].get_attribute("data-height"))
    assert first_height >= 3
    assert browser.find_element(By.CSS_SELECTOR, '[data-field="network"]').text == "regtest"
    browser.execute_script("window.sameDocument = 'yes';")  # gone if the page were reloaded
    newer = first_height + 2
    # The node mines several blocks a second, so by its first poll the dashboard may be well past `newer`:
    # wait for a newest row at or above it, and read the rows in one snapshot (the page keeps changing).
    snapshot = wait(
        browser,
        lambda d: d.execute_script(
            "var rows = Array.from(document.querySelectorAll('#latest-blocks tr'));"
            f"if (!rows.length || parseInt(rows[0].dataset.height, 10) < {newer}) return false;"
            "var a = rows[0].querySelector('td.mono a');"
            "return {heights: rows.map(r => parseInt(r.dataset.height, 10)), href: a.href, title: a.title,"
            " shown: parseInt(document.querySelector('[data-field=height]').textContent, 10),"
            " counts: rows.map(r => r.querySelector('td.tx-count').textContent)};"
        ),
        f"a block at height {newer} or above on the dashboard",
    )
    assert browser.execute_script("return window.sameDocument;") == "yes"
    heights = snapshot["heights"]
    block_hash = node.get(f"/block/{heights[0]}").json()["hash"]
    assert snapshot["href"] == f"{node.url}/explorer/block/{block_hash}"
    assert snapshot["title"] == block_hash
    assert snapshot["shown"] >= heights[0]
    assert heights == list(range(heights[0], max(heights[0] - 10, -1), -1))  # the latest ten, newest first
    # The script's rows count each block's transactions too (at least its coinbase).
    assert all(count.isdigit() and int(count) >= 1 for count in snapshot["counts"]), snapshot["counts"]
    assert snapshot["counts"][0] == str(len(node.get(f"/block/{heights[0]}").json()["txs"]))
    assert browser.find_element(By.CSS_SELECTOR, '[data-field="difficulty"]').text == "1.000"
    assert browser.find_element(By.ID, "live").text.startswith("Live: updated")
    assert severe_console_messages(browser) == []  # no script error, nothing the CSP blocked
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "explorer-dashboard.png"))


def test_dashboard_on_a_phone(node: NodeProcess):
    with chromium(390, 844, mobile=True) as phone:
        phone.get(node.url + "/")
        wait(phone, EC.visibility_of_element_located((By.ID, "latest-blocks")), "the latest blocks")
        # Nothing wider than the screen: the page does not scroll sideways.
        assert phone.execute_script("return document.documentElement.scrollWidth;") <= 390
        assert phone.execute_script("return window.innerWidth;") == 390
        ARTIFACTS.mkdir(exist_ok=True)
        assert phone.save_screenshot(str(ARTIFACTS / "explorer-dashboard-phone.png"))


def test_search_by_height_hash_txid_and_address(node: NodeProcess, browser: WebDriver):
    block = node.get("/block/2").json()
    search(browser, node, "2")
    wait(browser, EC.url_to_be(f"{node.url}/explorer/block/{block['hash']}"), "the block page of height 2")
    assert text(browser, "block-height") == "2"
    assert text(browser, "block-hash") == block["hash"]

    block3 = node.get("/block/3").json()
    search(browser, node, block3["hash"])
    wait(browser, EC.url_to_be(f"{node.url}/explorer/block/{block3['hash']}"), "the block page of block 3")
    assert text(browser, "block-height") == "3"

    coinbase = block3["txs"][0]
    search(browser, node, coinbase["txid"])
    wait(browser, EC.url_to_be(f"{node.url}/explorer/tx/{coinbase['txid']}"), "the tx page")
    assert text(browser, "txid") == coinbase["txid"]
    assert text(browser, "tx-block") == "3"

    address = coinbase["outputs"][0]["address"]
    search(browser, node, address)
    wait(browser, EC.url_to_be(f"{node.url}/explorer/address/{address}"), "the address page")
    assert text(browser, "address") == address
    assert text(browser, "balance").endswith(".00000000")  # whole coinbases of 50 coins (no fees yet)
    assert int(text(browser, "balance").split(".")[0]) >= 50

    search(browser, node, "99999999")
    assert "There is no block at height 99999999" in text(browser, "query") + browser.page_source
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_wallet_payment_shows_on_the_recipients_page(node: NodeProcess, browser: WebDriver):
    maturity = REGTEST.coinbase_maturity
    wait_until(lambda: node.status()["height"] >= maturity + 2, timeout=WAIT, what="a mature coinbase")
    recipient = address_from_pubkey_hash(os.urandom(20), REGTEST.address_version)
    wallet = node.data_dir / "wallet.json"
    assert WalletFile.addresses(wallet, REGTEST)  # the miner's reward wallet
    sent = subprocess.run(
        [*WALLET, "--wallet", str(wallet), "--node", node.url, "--json", "send", recipient, "1.25", "--yes"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"},
    )
    assert sent.returncode == 0, sent
    txid = json.loads(sent.stdout)["txid"]
    wait_until(lambda: (node.get(f"/tx/{txid}").json()["confirmations"] or 0) >= 1, timeout=WAIT, what="mined")

    search(browser, node, recipient)
    wait(browser, EC.url_to_be(f"{node.url}/explorer/address/{recipient}"), "the recipient's page")
    assert text(browser, "balance") == "1.25000000"
    assert text(browser, "pending-balance") == "1.25000000"
    history = browser.find_elements(By.CSS_SELECTOR, "#history tr")
    assert len(history) == 1
    assert history[0].find_element(By.TAG_NAME, "a").get_attribute("href") == f"{node.url}/explorer/tx/{txid}"
    assert "1.25000000" in history[0].text

    history[0].find_element(By.TAG_NAME, "a").click()  # on to the payment itself
    wait(browser, EC.url_to_be(f"{node.url}/explorer/tx/{txid}"), "the payment's page")
    outputs = text(browser, "outputs")
    assert f"{recipient} 1.25000000" in outputs
    tx = node.get(f"/tx/{txid}").json()
    spent = sum(node.get(f"/tx/{i['txid']}").json()["outputs"][i["index"]]["amount"] for i in tx["inputs"])
    fee = spent - sum(o["amount"] for o in tx["outputs"])
    assert fee > 0
    assert text(browser, "fee") == format_coins(fee)


def test_search_string_with_html_is_shown_as_text(node: NodeProcess, browser: WebDriver):
    search(browser, node, XSS)
    assert text(browser, "query") == XSS
    assert browser.find_elements(By.CSS_SELECTOR, "#query *") == []  # no element was made from it
    assert browser.execute_script("return window.pwned === undefined;") is True
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 -- raises when there is no alert
    assert browser.find_element(By.ID, "search").get_attribute("value") == XSS
    assert browser.current_url.startswith(f"{node.url}/explorer/search?q=")


def test_screenshot_artifacts_exist():
    for name in ("explorer-dashboard.png", "explorer-dashboard-phone.png"):
        path: Path = ARTIFACTS / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
