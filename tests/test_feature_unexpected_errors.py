"""An unexpected error while connecting a block never leaves a broken node, and never condemns the block.

The attacker found a signature that made the verifier raise TypeError instead of refusing it: the block was
stored, could not be connected, and the node never started again. Whatever raises inside validation (ours
to fix, not the block's fault), the node logs it, stays on its best valid chain, keeps the block unmarked,
and connects it normally after a restart. Here the fault is injected into connect_block.
"""

from __future__ import annotations

import logging

import pytest

from simplecoin.core.chain import BlockStatus
from simplecoin.core.params import REGTEST
from simplecoin.node import node as node_module
from simplecoin.node.node import InternalError, Node
from simplecoin.node.store import Store
from tests.conftest import NOW


@pytest.fixture
def faulty(monkeypatch):
    """connect_block raises TypeError for the blocks in the returned set."""
    broken: set[bytes] = set()
    original = node_module.connect_block

    def connect_block(block, *args, **kwargs):
        if block.hash in broken:
            raise TypeError("unsupported operand type(s) for +: 'INFINITY' and 'Point'")
        return original(block, *args, **kwargs)

    monkeypatch.setattr(node_module, "connect_block", connect_block)
    return broken


def test_an_unexpected_error_keeps_the_node_on_its_valid_chain(node, builder, faulty, caplog):
    """
    genesis - b1 - b2 - b3 (raises) - b4
    """
    b = builder
    for block in b.chain(["b1", "b2"]):
        node.submit_block(block)
    b3, b4 = b.chain(["b3", "b4"])
    faulty.add(b3.hash)

    with caplog.at_level(logging.ERROR, logger="simplecoin.node.node"), pytest.raises(InternalError):
        node.submit_block(b3)

    assert node.tip.hash == b["b2"].hash
    assert "TypeError" in caplog.text  # the traceback is logged
    assert node.index[b3.hash].status == BlockStatus.STORED  # not marked invalid: the fault may be ours
    assert [e.status for e in node.store.load_index()][-1] == BlockStatus.STORED
    with pytest.raises(InternalError):  # its child cannot be connected in this run either, and says so
        node.submit_block(b4)
    assert node.tip.hash == b["b2"].hash
    assert node.index[b4.hash].status == BlockStatus.STORED


def stored_but_unconnected(path, builder, faulty) -> bytes:
    """A store at b2 that keeps b3, whose connection raised; returns b3's hash."""
    first = Node(Store(path, REGTEST), REGTEST, clock=lambda: NOW)
    for block in builder.chain(["b1", "b2"]):
        first.submit_block(block)
    b3 = builder.block("b3")
    faulty.add(b3.hash)
    with pytest.raises(InternalError):
        first.submit_block(b3)
    first.close()
    return b3.hash


def test_the_block_connects_after_a_restart(tmp_path, builder, faulty):
    path = tmp_path / "chain.db"
    b3 = stored_but_unconnected(path, builder, faulty)
    faulty.clear()  # the bug is fixed: the next start connects the block it kept
    again = Node(Store(path, REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert again.tip.hash == b3
        assert again.index[b3].status == BlockStatus.VALID
    finally:
        again.close()


def test_a_start_that_hits_the_error_still_starts(tmp_path, builder, faulty):
    """The stored best block raises on every start: the node starts anyway, on the chain it can connect."""
    path = tmp_path / "chain.db"
    stored_but_unconnected(path, builder, faulty)
    again = Node(Store(path, REGTEST), REGTEST, clock=lambda: NOW)  # b3 still raises
    try:
        assert again.tip.hash == builder["b2"].hash
        assert again.submit_block(builder.block("b3x", parent="b2")).status == "accepted"
        assert again.tip.hash == builder["b3x"].hash
    finally:
        again.close()
