"""p2p_claimed_work: a hello's chain work is a hint; headers prove work before any block is fetched.

The liar (127.66.0.1) claims 10^40 chain work and replays the honest chain's real headers (no work of its own),
serving the real blocks for them. Before (main at bd848d0): the node believed the claim, synced from the liar on
every visit and fetched again, each time, blocks it already had (the issue measured 965 block requests in
40 s with 2,000 headers, and the node fell 20 blocks behind); after: the replayed headers show no more work than
ours, so nothing is downloaded from the liar, it backs off, and the node keeps up with its honest peer.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.framework.fakepeer import FakePeer, hello_answer, reply
from tests.framework.nodes import running_node, wait_until


def test_claimed_work_without_headers_to_show_for_it_downloads_nothing(tmp_path: Path) -> None:
    with running_node(tmp_path / "a", mine=True, pause=0.5, host="127.10.0.1") as honest:
        wait_until(lambda: honest.status()["height"] >= 15, timeout=60, what="the honest chain")
        genesis = honest.get("/block/0").json()["hash"]
        replayed = honest.get("/headers", params={"locator": genesis}).json()["headers"][:15]

        def headers(handler, path, query):
            reply(handler, {"headers": replayed})

        def blocks(handler, path, query):  # a proxy for the honest node's real blocks: costs the liar nothing
            answer = requests.get(f"{honest.url}/p2p/blocks?{query}", timeout=10)
            reply(handler, answer.json(), answer.status_code)

        answers = {
            "/p2p/hello": hello_answer(height=10**6, chain_work=10**40),
            "/headers": headers,
            "/p2p/blocks": blocks,
            "/peers": lambda h, p, q: reply(h, {"peers": []}),
            "POST /p2p/inv": lambda h, p, q: reply(h, {"want": {"blocks": [], "txs": []}}),
        }
        with running_node(tmp_path / "n", host="127.20.0.1", peers=(f"http://{honest.address}",)) as node:
            wait_until(lambda: node.status()["height"] >= 15, timeout=60, what="the node to sync the honest chain")
            with FakePeer("127.66.0.1", answers) as liar:
                assert node.post("/peers", json={"url": f"http://{liar.address}"}).status_code == 200
                wait_until(lambda: liar.count("GET", "/headers") >= 1, timeout=30, what="the liar's headers asked")
                lags = []
                end = time.monotonic() + 20
                while time.monotonic() < end:  # a fixed window: the claim is that nothing bad happens in it
                    lags.append(honest.status()["height"] - node.status()["height"])
                    time.sleep(0.5)
                assert liar.count("GET", "/p2p/blocks") == 0, liar.requests
                assert max(lags[4:]) <= 3, lags
                assert liar.count("GET", "/headers") <= 10, liar.count("GET", "/headers")
