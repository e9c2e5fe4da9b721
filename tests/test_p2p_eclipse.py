"""p2p_eclipse: a flood of hellos and of addresses from one party cannot keep an honest peer out.

The attacker (127.66.0.1) sends 300 hellos, each naming another address, and, once called back, answers every
address exchange with 100 new made-up addresses. Before (main at bd848d0): the first 32
filled the peer table, nothing was ever evicted, and the honest node's hello was refused from then on (it never
appeared in /peers); after: inbound slots evict from the most crowded network group, so the honest node (its own
/16) gets a slot, is called back and synced from; the flooder's addresses land in its own few buckets only.
"""

from __future__ import annotations

from pathlib import Path

from simplecoin.core.params import REGTEST
from tests.framework.fakepeer import FakePeer, call, hello_answer, reply
from tests.framework.nodes import running_node, wait_until


def test_a_hello_and_address_flood_does_not_eclipse_the_node(tmp_path: Path) -> None:
    made_up = iter(range(10**6))

    def addresses(handler, path, query):
        batch = [next(made_up) for _ in range(100)]
        listed = [{"address": f"127.{100 + n % 100}.{n // 100 % 250}.1:5000", "connected": True} for n in batch]
        reply(handler, {"peers": listed})

    flooder_answers = {"/p2p/hello": hello_answer(), "/peers": addresses}
    with (
        running_node(tmp_path / "n", host="127.20.0.1") as node,
        FakePeer("127.66.0.1", flooder_answers) as flooder,
    ):
        for i in range(300):
            hello = {
                "network": REGTEST.name,
                "genesis": REGTEST.genesis_hash_hex,
                "port": 20_000 + i,
                "url": f"http://127.66.{i // 200}.{i % 200 + 2}:{20_000 + i}",
            }
            status, _ = call(node.address, "POST", "/p2p/hello", hello, source="127.66.0.1")
            assert status == 200
        hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": flooder.port}
        call(node.address, "POST", "/p2p/hello", hello, source="127.66.0.1")  # the flooder's own, answering one
        with running_node(
            tmp_path / "h", mine=True, pause=0.5, host="127.30.0.1", peers=(f"http://{node.address}",)
        ) as honest:

            def honest_connected() -> bool:
                return any(p["url"] == honest.url and p["connected"] for p in node.get("/peers").json()["peers"])

            wait_until(honest_connected, timeout=60, what="the node to call the honest peer back")
            target = honest.status()["height"] + 2
            wait_until(lambda: node.status()["height"] >= target, timeout=60, what="sync from the honest peer")
            listed = node.get("/peers").json()["peers"]
            assert len(listed) <= 16 + 8 + 16, len(listed)
            wait_until(
                lambda: flooder.count("GET", "/peers") >= 1, timeout=60, what="an address exchange with the flood"
            )
