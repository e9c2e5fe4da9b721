"""Make the README's pictures of the explorer: images/explorer.png (the dashboard and its charts),
images/explorer-phone.png (the dashboard on a phone), images/explorer-forks.png and images/explorer-peers.png.

    python images/make_screenshots.py

Starts two regtest mining nodes in a temporary directory that fork and join again
(`tests/framework/nodes.forked_pair`: the second follows the first's longer chain, its own blocks become a side
branch), makes a few wallet payments so the mempool chart and history are not empty, and photographs the second
node's pages in headless Chromium (Debian's `chromium` and `chromium-driver`). Every process is stopped before
it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import REGTEST
from tests.framework.browser import chromium
from tests.framework.nodes import REPO, forked_pair, wait_until

IMAGES = REPO / "images"
WALLET = [sys.executable, "wallet.py", "--network", "regtest"]
# name, page, window (CSS pixels), a phone's. The forks page first: both nodes keep mining, and every race
# between them adds a one-block branch above the one that forks at genesis.
FORKS_AND_PEERS = (
    ("explorer-forks.png", "/explorer/forks", (1280, 560), False),
    ("explorer-peers.png", "/explorer/peers", (1280, 460), False),
)
DASHBOARD = (
    ("explorer.png", "/", (1280, 1400), False),
    ("explorer-phone.png", "/", (390, 844), True),
)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="explorer-shots-") as tmp, forked_pair(Path(tmp)) as (a, b):
        photograph(b.url, FORKS_AND_PEERS)
        wait_until(lambda: a.status()["height"] >= REGTEST.coinbase_maturity + 4, timeout=60, what="mature coins")
        friend = address_from_pubkey_hash(bytes(range(1, 21)), REGTEST.address_version)
        wallet = str(a.data_dir / "wallet.json")  # the first node's rewards, paid through the second
        for amount in ("1.25", "0.5", "2"):
            subprocess.run(
                [*WALLET, "--wallet", wallet, "--node", b.url, "send", friend, amount, "--yes"],
                cwd=REPO,
                check=True,
                timeout=60,
                stdout=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"},
            )
        photograph(b.url, DASHBOARD)


def photograph(url: str, shots: tuple[tuple[str, str, tuple[int, int], bool], ...]) -> None:
    for name, page, size, mobile in shots:
        with chromium(*size, mobile=mobile) as browser:
            browser.get(url + page)
            if page == "/":
                WebDriverWait(browser, 30).until(
                    EC.text_to_be_present_in_element((By.ID, "live"), "Live: updated"), "the dashboard's update"
                )
            browser.save_screenshot(str(IMAGES / name))
            print(f"wrote images/{name}")


if __name__ == "__main__":
    main()
