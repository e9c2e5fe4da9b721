"""p2p_withheld_tx: a stranger that announces a tx first and never sends it delays it, but cannot withhold it.

    S (127.66.0.1, fake) --inv tx--> V (127.20.0.1) <--inv tx-- H (127.30.0.1, V's outbound peer)
    S never sends the tx: its answers to GET /tx/<txid> stall for 20 s.

Before (main at 509fbc0): V asked S (the first announcer) and ignored every other announcer for 10 s; H announces
once, so V never got the tx (the issue: not within 40 s). After (Bitcoin: TxRequestTracker): V remembers H's
announcement and, once S has failed to deliver (its read timeout, 10 s), asks H; the tx arrives within 90 s.
"""

from __future__ import annotations

import time
from pathlib import Path

from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import REGTEST
from tests.framework.builder import ChainBuilder
from tests.framework.fakepeer import FakePeer, call, hello_answer, reply, stalled
from tests.framework.nodes import running_node, wait_until


def test_a_tx_withheld_by_its_first_announcer_comes_from_an_honest_one(tmp_path: Path) -> None:
    builder = ChainBuilder(REGTEST)
    blocks = builder.chain([f"m{i}" for i in range(1, REGTEST.coinbase_maturity + 3)])
    tx = builder.spend("m1")
    txid = hash_hex(tx.txid)
    answers = {
        "/p2p/hello": hello_answer(),
        "POST /p2p/inv": lambda h, p, q: reply(h, {"want": {"blocks": [], "txs": []}}),
        "/peers": lambda h, p, q: reply(h, {"peers": []}),
        f"/tx/{txid}": stalled(20),  # asked for the tx, it says nothing
    }
    with running_node(tmp_path / "h", host="127.30.0.1") as honest:
        for block in blocks:
            status, answer = call(honest.address, "POST", "/p2p/block", {"hex": block.serialize().hex()})
            assert status == 200, answer
        with (
            running_node(tmp_path / "v", host="127.20.0.1", peers=(f"http://{honest.address}",)) as victim,
            FakePeer("127.66.0.1", answers) as stranger,
        ):
            wait_until(lambda: victim.status()["height"] == len(blocks), timeout=60, what="V to sync H's chain")
            wait_until(
                lambda: any(p["connected"] for p in honest.get("/peers").json()["peers"]),
                timeout=30,
                what="H to verify V (so it announces to V)",
            )
            body = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": stranger.port}
            status, answer = call(victim.address, "POST", "/p2p/hello", body, source=stranger.host)
            assert status == 200, answer
            status, answer = call(
                victim.address, "POST", "/p2p/inv", {**body, "blocks": [], "txs": [txid]}, source=stranger.host
            )
            assert status == 200, answer
            wanted_at_once = txid in answer["want"]["txs"]  # today's code: the first announcer is asked at once
            wait_until(
                lambda: wanted_at_once or stranger.count("GET", f"/tx/{txid}") >= 1,
                timeout=30,
                what="V to ask the stranger for the tx",
            )
            status, answer = call(honest.address, "POST", "/tx", {"hex": tx.serialize().hex()})
            assert status == 200, answer
            sent = time.monotonic()
            wait_until(lambda: victim.get(f"/tx/{txid}").status_code == 200, timeout=90, what="the tx to reach V")
            assert time.monotonic() - sent <= 90
            assert stranger.count("GET", f"/tx/{txid}") <= 1  # asked once, then the next announcer
