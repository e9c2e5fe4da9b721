"""p2p_eclipse: a flood of hellos from one address cannot keep an honest peer out.

The attacker (127.66.0.1) sends 300 hellos, each naming another address. Before (main at bd848d0): the first 32
filled the peer table, nothing was ever evicted, and the honest node's hello was refused from then on (it never
appeared in /peers); after: inbound slots evict from the most crowded network group, so the honest node (its own
/16) gets a slot, is called back and synced from; the flooder's addresses land in its own few buckets only.
"""

from __future__ import annotations

from pathlib import Path

from simplecoin.core.params import REGTEST
from tests.framework.fakepeer import call
from tests.framework.nodes import running_node, wait_until


def test_a_hello_flood_does_not_eclipse_the_node(tmp_path: Path) -> None:
    with running_node(tmp_path / "n", host="127.20.0.1") as node:
        for i in range(300):
            hello = {
                "network": REGTEST.name,
                "genesis": REGTEST.genesis_hash_hex,
                "port": 20_000 + i,
                "url": f"http://127.66.{i // 200}.{i % 200 + 2}:{20_000 + i}",
            }
            status, _ = call(node.address, "POST", "/p2p/hello", hello, source="127.66.0.1")
            assert status == 200
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
