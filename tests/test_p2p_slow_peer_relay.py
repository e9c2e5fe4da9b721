"""p2p_slow_peer_relay: each peer has its own send queue and sender, so a slow peer delays no one else.

Node A (not mining: a tx can reach H only by relay) holds a funded chain; two fake peers of A (127.40.0.1,
127.41.0.1) answer every relay call after 12 s; H (127.30.0.1) is A's honest peer. Before (main at bd848d0): relay
was one thread posting to each peer in turn, so three txs reached H after about 20, 40 and 60 s (each slow
peer costs the 10 s read timeout; issue 10 measured 0, 20 and 40 s); after: each reaches H within 3 s.
"""

from __future__ import annotations

import time
from pathlib import Path

from simplecoin.core.params import REGTEST
from tests.framework.builder import ChainBuilder
from tests.framework.fakepeer import FakePeer, call, hello_answer, reply, slow
from tests.framework.nodes import running_node, wait_until


def test_two_slow_peers_do_not_delay_relay_to_an_honest_one(tmp_path: Path) -> None:
    builder = ChainBuilder(REGTEST)
    blocks = builder.chain([f"m{i}" for i in range(1, REGTEST.coinbase_maturity + 4)])
    spends = [builder.spend(f"m{i}") for i in (1, 2, 3)]
    ok = lambda h, p, q: reply(h, {"status": "ok", "want": {"blocks": [], "txs": []}})  # noqa: E731
    slow_answers = {
        "/p2p/hello": hello_answer(),
        "POST /p2p/inv": slow(12, ok),
        "POST /p2p/block": slow(12, ok),
        "POST /tx": slow(12, ok),
        "/peers": lambda h, p, q: reply(h, {"peers": []}),
    }
    with (
        FakePeer("127.40.0.1", slow_answers) as slow1,
        FakePeer("127.41.0.1", slow_answers) as slow2,
        running_node(
            tmp_path / "a", host="127.10.0.1", peers=(f"http://{slow1.address}", f"http://{slow2.address}")
        ) as a,
    ):
        for block in blocks:
            status, answer = call(a.address, "POST", "/p2p/block", {"hex": block.serialize().hex()})
            assert status == 200, answer
        with running_node(tmp_path / "h", host="127.30.0.1", peers=(f"http://{a.address}",)) as honest:
            wait_until(lambda: honest.status()["height"] == len(blocks), timeout=60, what="H to sync A's chain")
            wait_until(lambda: slow1.count("POST", "/p2p/hello") >= 1, timeout=30, what="A to greet the slow peers")
            delays = []
            for tx in spends:
                status, answer = call(a.address, "POST", "/tx", {"hex": tx.serialize().hex()})
                assert status == 200, answer
                sent = time.monotonic()
                txid = answer["txid"]
                wait_until(lambda txid=txid: honest.get(f"/tx/{txid}").status_code == 200, timeout=90, what="the tx")
                delays.append(time.monotonic() - sent)
            assert max(delays) <= 3.0, delays
