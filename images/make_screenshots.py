"""Make images/explorer.png (and images/explorer-phone.png) for the README: the explorer's dashboard.

    python images/make_screenshots.py

Starts a regtest mining node in a temporary directory, lets it mine a few blocks, makes one wallet payment so
the mempool and history are not empty, and photographs the dashboard in headless Chromium (Debian's
`chromium` and `chromium-driver`) at desktop and phone size. Every process is stopped before it exits.
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
from tests.framework.nodes import REPO, running_node, wait_until

IMAGES = REPO / "images"
WALLET = [sys.executable, "wallet.py", "--network", "regtest"]


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="explorer-shots-") as tmp,
        running_node(Path(tmp) / "node", mine=True, pause=0.5) as node,
    ):
        wait_until(lambda: node.status()["height"] >= REGTEST.coinbase_maturity + 2, timeout=60, what="blocks")
        friend = address_from_pubkey_hash(bytes(range(1, 21)), REGTEST.address_version)
        wallet = str(node.data_dir / "wallet.json")
        subprocess.run(
            [*WALLET, "--wallet", wallet, "--node", node.url, "send", friend, "1.25", "--yes"],
            cwd=REPO,
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "SIMPLECOIN_PASSPHRASE"},
        )
        for name, size, mobile in (("explorer.png", (1280, 860), False), ("explorer-phone.png", (390, 844), True)):
            with chromium(*size, mobile=mobile) as browser:
                browser.get(node.url + "/")
                WebDriverWait(browser, 30).until(
                    EC.text_to_be_present_in_element((By.ID, "live"), "Live: updated"), "the dashboard's first update"
                )
                browser.save_screenshot(str(IMAGES / name))
                print(f"wrote images/{name}")


if __name__ == "__main__":
    main()
