"""p2p_slow_peer_relay: each peer has its own send queue and sender, so a slow peer delays no one else.

Two fake peers (127.40.0.1, 127.41.0.1) answer every relay call after 12 s. Before (main at bd848d0): relay was
one thread posting to each peer in turn, so three txs reached the honest peer after 0, 20 and 40 s (issue 10);
after: each tx reaches the honest peer within 3 s.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.framework.fakepeer import FakePeer, hello_answer, reply, slow
from tests.framework.nodes import running_node, wait_until
from tests.test_functional import mature_coinbases, reward_key, spend, submit


def test_two_slow_peers_do_not_delay_relay_to_an_honest_one(tmp_path: Path) -> None:
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
            tmp_path / "a",
            mine=True,
            pause=1.0,
            host="127.10.0.1",
            peers=(f"http://{slow1.address}", f"http://{slow2.address}"),
        ) as a,
        running_node(tmp_path / "h", host="127.30.0.1", peers=(f"http://{a.address}",)) as honest,
    ):
        key, address = reward_key(a)
        coins = wait_until(
            lambda: len(c := mature_coinbases(a, address)) >= 3 and c, timeout=90, what="three mature coinbases"
        )
        wait_until(lambda: slow1.count("POST", "/p2p/block") + slow1.count("POST", "/p2p/inv") >= 1, timeout=30)
        delays = []
        for coin in coins[:3]:
            txid = submit(a, spend(coin, key))
            sent = time.monotonic()
            wait_until(lambda txid=txid: honest.get(f"/tx/{txid}").status_code == 200, timeout=60, what="the tx")
            delays.append(time.monotonic() - sent)
        assert max(delays) <= 3.0, delays
