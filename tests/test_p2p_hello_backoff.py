"""p2p_hello_backoff: a backoff earned by a false claim survives the peer's hellos (issue 21, row 7).

The liar (127.66.0.1) claims 10^40 chain work in its hello's answer and has no headers to show for it, and says
hello to the node (127.20.0.1) every 0.5 s. Before (main at 509fbc0): each hello made the liar due at once, so the
node asked it for headers after every hello (the issue measured 120 header batches in 30 s, never banned); after:
the backoff doubles from 2 s whatever the liar says, so 30 s of hellos cost the node a handful of batches.
"""

from __future__ import annotations

import time
from pathlib import Path

from simplecoin.core.params import REGTEST
from tests.framework.fakepeer import FakePeer, call, hello_answer, reply
from tests.framework.nodes import running_node, wait_until


def test_hellos_do_not_reset_the_backoff_of_a_peer_whose_claim_was_false(tmp_path: Path) -> None:
    answers = {
        "/p2p/hello": hello_answer(height=10**6, chain_work=10**40),
        "/headers": lambda h, p, q: reply(h, {"headers": []}),
        "/peers": lambda h, p, q: reply(h, {"peers": []}),
        "POST /p2p/inv": lambda h, p, q: reply(h, {"want": {"blocks": [], "txs": []}}),
    }
    with (
        running_node(tmp_path / "n", host="127.20.0.1") as node,
        FakePeer("127.66.0.1", answers) as liar,
    ):
        hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": liar.port}
        status, answer = call(node.address, "POST", "/p2p/hello", hello, source=liar.host)
        assert status == 200, answer
        wait_until(lambda: liar.count("GET", "/headers") >= 1, timeout=30, what="the node to ask the liar")
        end = time.monotonic() + 30
        while time.monotonic() < end:  # a fixed window: the claim is about how often the node asks in it
            call(node.address, "POST", "/p2p/hello", hello, source=liar.host)
            time.sleep(0.5)
        # Backoff 2, 4, 8, 16 s: at most 5 visits in 30 s (8 leaves room for a slow start).
        assert liar.count("GET", "/headers") <= 8, liar.count("GET", "/headers")
        failures = next(p["failures"] for p in node.get("/peers").json()["peers"] if p["address"] == liar.address)
        assert failures >= 3
