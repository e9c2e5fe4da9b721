"""Fork choice and reorgs: the node follows the valid chain with the most work.

Blocks are built by name; a drawing above each test shows the tree, `*` marks the expected tip.
"""

from __future__ import annotations

import pytest

from simplecoin.core.chain import BlockStatus
from simplecoin.core.errors import BlockValidationError
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import BOB, ChainBuilder, recompute_utxos


def submit_all(node: Node, b: ChainBuilder, names: str) -> None:
    for name in names.split():
        node.submit_block(b[name])


def assert_consistent(node: Node) -> None:
    assert node.store.utxos() == recompute_utxos(node)
    assert node.store.active_chain() == node.active


def test_reorg_to_more_work(node, builder):
    """
    genesis - b1 - b2 - b3
                \\
                 c2 - c3 - c4*
    """
    b = builder
    b.chain(["b1", "b2", "b3"])
    b.chain(["c2", "c3", "c4"], parent="b1")
    submit_all(node, b, "b1 b2 b3 c2 c3")
    assert node.tip.hash == b["b3"].hash  # c3 has only equal work: the first seen stays

    outcome = node.submit_block(b["c4"])

    assert node.tip.hash == b["c4"].hash
    assert outcome.reorg.disconnected == (b["b3"].hash, b["b2"].hash)
    assert outcome.reorg.connected == (b["c2"].hash, b["c3"].hash, b["c4"].hash)
    assert_consistent(node)


def test_shorter_but_heavier_branch_wins(tmp_path):
    """With retargeting, blocks mined fast raise the difficulty: fewer blocks, more work.

    genesis - a1 - a2 - a3 - a4 - a5 - a6 - a7 - a8      (slow blocks: easiest target, work 2 each)
           \\
            f1 - f2 - f3 - f4 - f5*                       (fast: f4, f5 at a 4x harder target)
    """
    params = REGTEST.replace(no_retargeting=False, retarget_interval=4)
    b = ChainBuilder(params)
    for name in ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"]:
        b.block(name, time_delta=params.target_spacing * 4)
    parent = "genesis"
    for name in ["f1", "f2", "f3", "f4", "f5"]:
        b.block(name, parent=parent, time_delta=1)
        parent = name
    assert b["f4"].header.bits != b["f3"].header.bits  # the retarget happened
    node = Node(Store(tmp_path / "chain.db", params), params, clock=lambda: NOW)
    try:
        submit_all(node, b, "a1 a2 a3 a4 a5 a6 a7 a8")
        assert node.height == 8
        outcome = node.submit_block(b["f1"])
        submit_all(node, b, "f2 f3 f4")
        assert node.tip.hash == b["a8"].hash  # 4 fast blocks: 2+2+2+8 = 14 < 16
        outcome = node.submit_block(b["f5"])
        assert node.tip.hash == b["f5"].hash
        assert node.height == 5
        assert len(outcome.reorg.disconnected) == 8
        assert node.tip.chain_work > node.index[b["a8"].hash].chain_work
        assert_consistent(node)
    finally:
        node.close()


def test_reorg_across_an_invalid_block_falls_back(node, builder):
    """
    genesis - b1 - b2 - b3*
                \\
                 c2 - c3 - c4 - c5          c3 pays itself too much: c3, c4 and later c5 are invalid
    """
    b = builder
    b.chain(["b1", "b2", "b3"])
    b.block("c2", parent="b1")
    b.block("c3", parent="c2", coinbase_extra=1)
    b.chain(["c4", "c5"], parent="c3")
    submit_all(node, b, "b1 b2 b3 c2 c3")
    before = node.store.utxos()

    outcome = node.submit_block(b["c4"])  # now c4 has more work: the node tries, fails at c3, comes back

    assert node.tip.hash == b["b3"].hash
    assert outcome.reorg.disconnected == ()
    assert outcome.reorg.connected == ()
    assert [(h, e.reason) for h, e in outcome.reorg.invalid] == [(b["c3"].hash, "bad-cb-amount")]
    assert node.index[b["c3"].hash].status == BlockStatus.INVALID
    assert node.index[b["c4"].hash].status == BlockStatus.INVALID
    assert node.index[b["c2"].hash].status != BlockStatus.INVALID
    assert node.store.utxos() == before
    with pytest.raises(BlockValidationError) as err:
        node.submit_block(b["c5"])
    assert err.value.reason == "bad-prevblk"
    assert_consistent(node)


def test_invalid_block_status_survives_restart(tmp_path, builder):
    """
    genesis - b1 - b2*
                \\
                 c2 - c3 - c4               c2 double-pays its coinbase
    """
    b = builder
    b.chain(["b1", "b2"])
    b.block("c2", parent="b1", coinbase_extra=1)
    b.chain(["c3", "c4"], parent="c2")
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    submit_all(node, b, "b1 b2 c2 c3")
    node.close()
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert node.tip.hash == b["b2"].hash
        assert node.index[b["c3"].hash].status == BlockStatus.INVALID
        with pytest.raises(BlockValidationError) as err:
            node.submit_block(b["c4"])
        assert err.value.reason == "bad-prevblk"
    finally:
        node.close()


def test_orphans_connect_when_the_parent_arrives(node, builder):
    """
    genesis - b1 - b2 - b3 - b4*       received in the order b1, b3, b4, b2
    """
    b = builder
    b.chain(["b1", "b2", "b3", "b4"])
    node.submit_block(b["b1"])
    assert node.submit_block(b["b3"]).status == "orphan"
    assert node.submit_block(b["b4"]).status == "orphan"
    assert node.tip.hash == b["b1"].hash

    outcome = node.submit_block(b["b2"])

    assert node.tip.hash == b["b4"].hash
    assert outcome.reorg.connected == (b["b2"].hash, b["b3"].hash, b["b4"].hash)
    assert not node.orphans
    assert_consistent(node)


def test_equal_work_keeps_the_first_seen_tip(node, builder):
    """
    genesis - b1*
           \\
            c1                           c1 arrives second with the same work
    """
    b = builder
    b.block("b1")
    b.block("c1", parent="genesis")
    submit_all(node, b, "b1 c1")
    assert node.tip.hash == b["b1"].hash
    assert node.submit_block(b["c1"]).status == "duplicate"


def test_reorg_returns_transactions_to_the_mempool(funded):
    """
    ... m13 - t14 - t15                 t14 holds a payment p and q, a spend of p's output
           \\
            u14 - u15 - u16*            u14 holds r; the pending s spends the same coin as r

    After the reorg p and q are pending again; s, which conflicts with the now-confirmed r, is gone.
    """
    node, b = funded
    p = b.spend("m1")
    q = b.spend(OutPoint(p.txid, 0), [(p.outputs[0].amount - 10_000, BOB.pubkey_hash)], key=BOB)
    b.block("t14", parent="m13", txs=[p, q])
    b.block("t15", parent="t14")
    r = b.spend("m2", fee=20_000)
    s = b.spend("m2", fee=30_000)  # conflicts with r
    b.block("u14", parent="m13", txs=[r])
    b.chain(["u15", "u16"], parent="u14")
    submit_all(node, b, "t14 t15")
    node.submit_tx(s)
    assert set(node.mempool.entries) == {s.txid}

    submit_all(node, b, "u14 u15")
    outcome = node.submit_block(b["u16"])

    assert node.tip.hash == b["u16"].hash
    assert set(node.mempool.entries) == {p.txid, q.txid}  # s lost to r, which is now confirmed
    assert outcome.reorg.returned == (p.txid, q.txid)
    assert_consistent(node)


def test_connected_block_removes_mined_and_conflicting_transactions(funded):
    node, b = funded
    mined, conflicting, kept = b.spend("m1"), b.spend("m2", fee=30_000), b.spend("m3")
    for tx in (conflicting, kept):
        node.submit_tx(tx)
    child = b.spend(OutPoint(conflicting.txid, 0), [(1_000, BOB.pubkey_hash)], key=BOB)
    node.submit_tx(child)
    winner = b.spend("m2", fee=20_000)
    node.submit_block(b.block("n14", parent="m13", txs=[mined, winner]))
    assert set(node.mempool.entries) == {kept.txid}


def test_tips_are_every_childless_block_newest_first(node, builder):
    """
    genesis - b1 - b2 - b3*         tips, newest first: d4 (invalid, still a tip), c3, b3
                \\
                 c2 - c3
                \\
                 d2! - d3 - d4      d2 pays its coinbase too much
    """
    b = builder
    b.chain(["b1", "b2", "b3"])
    b.chain(["c2", "c3"], parent="b1")
    b.block("d2", parent="b1", coinbase_extra=1)
    b.block("d3")
    b.block("d4")
    submit_all(node, b, "b1 b2 b3 c2 c3 d2 d3")
    node.submit_block(b["d4"])  # more work: connecting d2 fails, d2..d4 are invalid
    assert node.tip.hash == b["b3"].hash
    assert node.index[b["d4"].hash].status == BlockStatus.INVALID
    assert [b.name_of(e.hash) for e in node.index.tips(10)] == ["d4", "c3", "b3"]
    assert [b.name_of(e.hash) for e in node.index.tips(2)] == ["d4", "c3"]


def test_the_node_locator_reads_the_active_chain_and_follows_a_reorg(node, builder):
    """The node's locator (from its active chain by height) is the index's (by skip pointers), before and after
    a reorg to a branch that leaves the old chain below the first of the locator's doubling steps."""
    b = builder
    b.chain([f"a{i}" for i in range(1, 25)])
    b.chain([f"f{i}" for i in range(3, 27)], parent="a2")
    submit_all(node, b, " ".join(f"a{i}" for i in range(1, 25)))
    assert node.locator() == node.index.locator(node.tip)
    assert node.locator()[0] == b["a24"].hash
    assert node.locator()[-1] == REGTEST.genesis_hash

    submit_all(node, b, " ".join(f"f{i}" for i in range(3, 27)))

    assert node.tip.hash == b["f26"].hash
    assert node.locator() == node.index.locator(node.tip)
    assert b["f3"].hash in node.locator()
    assert b["a3"].hash not in node.locator()
