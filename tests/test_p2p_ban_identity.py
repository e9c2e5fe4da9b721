"""p2p_ban_identity: ban score goes to the connection's IP, whatever the sender calls itself; an honest relayer of
a block we already know to be invalid is not banned.

The attacker (127.66.0.1) pushes invalid blocks without and with made-up X-SimpleCoin-Peer names. Before (main at
bd848d0): a push without the header was never scored, and each spelling of a banned URL (`localhost`, `HTTP://`,
`:09999`, a path) was a new identity; an honest relayer that passed on a block the victim knew to be invalid
was banned for a day. After: the IP is banned after the first invalid block, every spelling and every port from
it gets 403, another IP is still served, and `duplicate-invalid` scores nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block
from tests.framework.builder import ChainBuilder
from tests.framework.fakepeer import call
from tests.framework.nodes import running_node


def bad_root(block: Block) -> Block:
    return Block(dataclasses.replace(block.header, merkle_root=bytes(32)), block.txs)


def push(node_address: str, block: Block, source: str, claimed: str | None = None) -> tuple[int, dict]:
    headers = {"X-SimpleCoin-Peer": claimed} if claimed is not None else {}
    return call(node_address, "POST", "/p2p/block", {"hex": block.serialize().hex()}, source=source, headers=headers)


def test_bans_are_per_ip_whatever_the_sender_claims(tmp_path: Path) -> None:
    builder = ChainBuilder(REGTEST)
    bad = builder.block("bad1", parent="genesis", tweak=bad_root)
    b1 = builder.block("b1", parent="genesis")
    with running_node(tmp_path / "n", host="127.20.0.1") as node:
        status, answer = push(node.address, bad, "127.66.0.1")  # no header at all
        assert (status, answer.get("reason")) == (400, "bad-txnmrklroot"), answer
        for claimed in (
            None,
            "http://127.66.0.1:9999",
            "http://127.66.0.1:9999/x",
            "http://localhost:9999",
            "HTTP://127.66.0.1:9999",
            "http://127.66.0.1:09999",
            "http://127.1:9999",
        ):
            status, answer = push(node.address, b1, "127.66.0.1", claimed)
            assert (status, answer.get("reason")) == (403, "banned"), (claimed, answer)
        status, answer = call(node.address, "POST", "/p2p/hello", {"network": "regtest"}, source="127.66.0.1")
        assert status == 403, answer
        status, answer = push(node.address, b1, "127.67.0.1")  # another IP is still served
        assert (status, answer.get("status")) == (200, "accepted"), answer


def test_an_honest_relayer_of_a_block_known_invalid_is_not_banned(tmp_path: Path) -> None:
    """
    genesis - x1 (overpays its coinbase: invalid)      the attacker pushes x1; the honest relayer pushes it again
           \\
            b1                                          then the honest relayer's next block is still taken
    """
    builder = ChainBuilder(REGTEST)
    x1 = builder.block("x1", parent="genesis", coinbase_extra=1)
    b1 = builder.block("b1", parent="genesis")
    with running_node(tmp_path / "n", host="127.20.0.1") as node:
        status, answer = push(node.address, x1, "127.66.0.1", "http://127.66.0.1:7000")
        assert (status, answer.get("reason")) == (400, "bad-cb-amount"), answer
        relayer = "127.30.0.1"
        status, answer = push(node.address, x1, relayer, f"http://{relayer}:7001")
        assert (status, answer.get("reason")) == (400, "duplicate-invalid"), answer
        status, answer = push(node.address, b1, relayer, f"http://{relayer}:7001")
        assert (status, answer.get("status")) == (200, "accepted"), answer
        peers = node.get("/peers").json()["peers"]
        assert not any(p["address"].startswith(relayer) and p["banned"] for p in peers), peers
