"""p2p_ssrf: a hello or POST /peers cannot make the node call a third party, nor a path of anyone's choosing.

The attacker (on 127.66.0.1) sends 20 hellos naming a third party's URL with a path and query, and asks
POST /peers for it. Before (main at bd848d0): the node POSTed /p2p/hello to the third party 20 times (and
followed redirects); after: the node calls back only the hello's connection IP, at the announced port and fixed
paths; POST /peers from another address is refused (403 local-only); the third party hears nothing.
"""

from __future__ import annotations

from pathlib import Path

from simplecoin.core.params import REGTEST
from tests.framework.fakepeer import FakePeer, call, counting_server, hello_answer
from tests.framework.nodes import running_node, wait_until


def test_hellos_naming_a_third_party_reach_only_the_sender(tmp_path: Path) -> None:
    with (
        running_node(tmp_path / "n", host="127.20.0.1") as node,
        counting_server("127.77.0.1") as third_party,
        FakePeer("127.66.0.1", {"/p2p/hello": hello_answer(), "/headers": hello_answer()}) as attacker,
    ):
        victim_url = f"http://{third_party.address}/p2p/hello?steal=1"
        for _ in range(20):
            hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "url": victim_url}
            status, _ = call(node.address, "POST", "/p2p/hello", hello, source="127.66.0.1")
            assert status == 200
        status, answer = call(node.address, "POST", "/peers", {"url": victim_url}, source="127.66.0.1")
        assert status in (400, 403), answer
        status, answer = call(
            node.address, "POST", "/peers", {"url": f"http://{third_party.address}"}, source="127.66.0.1"
        )
        assert (status, answer["reason"]) == (403, "local-only"), answer
        # The hello's own address (the connection's IP at the port of the URL it named) is called back: once that
        # call has happened, the node has processed every hello.
        hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": attacker.port}
        call(node.address, "POST", "/p2p/hello", hello, source="127.66.0.1")
        wait_until(lambda: attacker.count("POST", "/p2p/hello") >= 1, timeout=30, what="the call back to the sender")
        assert third_party.requests == []
        listed = [p["address"] for p in node.get("/peers").json()["peers"]]
        assert not any(a.startswith("127.77.") for a in listed), listed
