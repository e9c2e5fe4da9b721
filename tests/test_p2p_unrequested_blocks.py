"""Blocks nobody asked for: stored only if they could become the tip, relayed only if they did, orphans bounded.

The attacker: 40 siblings of block 1 (35 MB) were each answered "accepted", stored and relayed to every peer
although they never added work; 100 orphan blocks raised the server's memory from 110 to 252 MB.
Bitcoin: AcceptBlock's fHasMoreOrSameWork and nMinimumChainWork (p2p_unrequested_blocks.py,
feature_minchainwork.py).
"""

from __future__ import annotations

import hashlib

import pytest

from simplecoin.core.mining import make_block, solve
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction, TxIn, TxOut
from simplecoin.node import orphans as node_module
from simplecoin.node.node import Node
from simplecoin.node.service import Event, NodeService
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import BOB, MINER_KEY, ChainBuilder, sign_all


def listen(service: NodeService) -> list[Event]:
    events: list[Event] = []
    service.subscribe(events.append)
    return events


def test_a_side_branch_with_less_work_is_not_stored(node, builder):
    """
    genesis - b1 - b2 - b3*
                \\
                 c2          (less work than b3: pushed, not stored; asked for, stored)
    """
    b = builder
    service = NodeService(node)
    for block in b.chain(["b1", "b2", "b3"]):
        service.submit_block(block, requested=False)
    c2 = b.block("c2", parent="b1")
    stored = len(list(node.store.load_index()))

    assert service.submit_block(c2, requested=False).status == "not-stored"
    assert c2.hash not in node.index
    assert len(list(node.store.load_index())) == stored
    assert service.submit_block(c2, requested=True).status == "accepted"  # the sync asked for it
    assert c2.hash in node.index
    assert node.tip.hash == b["b3"].hash


def test_only_blocks_on_the_active_chain_are_relayed(node, builder):
    """
    genesis - b1 - b2*
                \\
                 c2          (equal work: stored, as it could win; not our tip, so not relayed)
    """
    b = builder
    service = NodeService(node)
    events = listen(service)
    b.chain(["b1", "b2"])
    for name in ("b1", "b2"):
        service.submit_block(b[name], requested=False)
    c2 = b.block("c2", parent="b1")
    assert service.submit_block(c2, requested=False).status == "accepted"
    assert c2.hash in node.index
    assert node.tip.hash == b["b2"].hash
    assert [e.hash for e in events if e.kind == "block"] == [b["b1"].hash, b["b2"].hash]

    c3 = b.block("c3")  # on c2: now the heavier branch, our new tip, and relayed
    service.submit_block(c3, requested=False)
    assert node.tip.hash == c3.hash
    assert [e.hash for e in events if e.kind == "block"][-1] == c3.hash


def test_a_chain_below_the_minimum_chain_work_is_not_stored_from_a_push(tmp_path):
    params = REGTEST.replace(min_chain_work=10)  # regtest blocks carry 2 units of work each
    b = ChainBuilder(params)
    node = Node(Store(tmp_path / "chain.db", params), params, clock=lambda: NOW)
    try:
        service = NodeService(node)
        b1, b2 = b.chain(["b1", "b2"])
        assert service.submit_block(b1, requested=False).status == "not-stored"
        assert node.height == 0
        assert service.submit_block(b1, requested=True).status == "accepted"  # headers-first sync checked the work
        assert service.submit_block(b2, requested=True).status == "accepted"
        assert node.height == 2
    finally:
        node.close()


def junk_orphan(n: int, size: int) -> Block:
    """A well-formed, solved block on an unknown parent with one validly signed tx of about `size` bytes.

    Free to make: the tx spends nothing that exists, which only its parent's chain could tell.
    """
    outpoint = OutPoint(hashlib.sha256(b"junk %d" % n).digest(), 0)
    outputs = (TxOut(1, BOB.pubkey_hash),) * max(1, (size - 150) // 29)
    tx = sign_all(Transaction(1, (TxIn(outpoint, MINER_KEY.pubkey, b""),), outputs), MINER_KEY, REGTEST)
    parent = hashlib.sha256(b"unknown parent %d" % n).digest()
    block = make_block(parent, 5, REGTEST.pow_limit_bits, NOW, MINER_KEY.pubkey_hash, REGTEST, txs=[tx])
    solved = solve(block)
    assert solved is not None
    return solved


@pytest.fixture
def small_orphan_limits(monkeypatch):
    monkeypatch.setattr(node_module, "MAX_ORPHAN_BYTES", 400_000)
    monkeypatch.setattr(node_module, "MAX_ORPHAN_BYTES_PER_SOURCE", 150_000)


def test_orphans_are_bounded_in_bytes_per_source_and_in_all(node, builder, small_orphan_limits):
    service = NodeService(node)
    flood = [junk_orphan(n, 50_000) for n in range(12)]
    for block in flood:
        assert service.submit_block(block, source="attacker", requested=False).status == "orphan"
    assert node.orphan_bytes() <= 150_000
    kept = set(node.orphans)
    assert kept == {block.hash for block in flood[-len(kept) :]}  # the newest stay, the oldest went first
    honest = [junk_orphan(100 + n, 50_000) for n in range(2)]
    for block in honest:
        service.submit_block(block, source="honest", requested=False)
    assert {block.hash for block in honest} <= set(node.orphans)  # one flooding source cannot push others out
    for n in range(5):
        service.submit_block(junk_orphan(200 + n, 50_000), source=f"other{n}", requested=False)
    assert node.orphan_bytes() <= 400_000
    assert service.status()["orphan_bytes"] == node.orphan_bytes()


def test_orphans_are_bounded_in_count_too(node, monkeypatch):
    """Tiny orphans fit the byte bounds by the thousand; each would make every add walk them all."""
    monkeypatch.setattr(node.orphans, "limit", 10)
    service = NodeService(node)
    flood = [junk_orphan(n, 300) for n in range(25)]
    for block in flood:
        assert service.submit_block(block, source="attacker", requested=False).status == "orphan"
    assert set(node.orphans) == {block.hash for block in flood[-10:]}  # the newest ten, the oldest went first
