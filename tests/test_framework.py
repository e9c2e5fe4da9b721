"""The test framework's own promises: blocks by unique name on the tip, and a strict assert_rejected."""

from __future__ import annotations

import pytest

from simplecoin.core.errors import BlockValidationError, TxValidationError
from tests.framework.builder import assert_rejected


def test_blocks_build_on_the_tip_unless_told(builder):
    b1 = builder.block("b1")
    b2 = builder.block("b2")
    b2x = builder.block("b2x", parent="b1")
    assert b1.header.prev_hash == builder["genesis"].hash
    assert b2.header.prev_hash == b2x.header.prev_hash == b1.hash
    builder.move_tip("b2")
    assert builder.block("b3").header.prev_hash == b2.hash


def test_a_name_stands_for_one_block(builder):
    builder.block("b1")
    with pytest.raises(ValueError, match="b1"):
        builder.block("b1", parent="genesis")
    with pytest.raises(KeyError):
        builder.move_tip("nowhere")


def test_assert_rejected_passes_only_the_exact_rejection(funded):
    node, b = funded
    bad = b.block("bad", coinbase_extra=1)
    error = assert_rejected(node, lambda: node.submit_block(bad), "bad-cb-amount", BlockValidationError)
    assert error.reason == "bad-cb-amount"
    with pytest.raises(AssertionError, match="expected 'high-hash'"):
        assert_rejected(node, lambda: node.submit_block(bad), "high-hash")  # duplicate-invalid, not high-hash
    with pytest.raises(AssertionError, match="expected TxValidationError"):
        assert_rejected(node, lambda: node.submit_block(bad), "duplicate-invalid", TxValidationError)
    good = b.block("good", parent="m13")
    with pytest.raises(AssertionError, match="accepted"):
        assert_rejected(node, lambda: node.submit_block(good), "bad-cb-amount")


def test_assert_rejected_sees_a_rejection_that_changed_the_node(funded):
    node, b = funded
    tx = b.spend("m1")

    def submit_then_refuse():
        node.submit_tx(tx)  # changes the mempool
        raise TxValidationError("made-up", "refused after changing state")

    with pytest.raises(AssertionError, match="changed the node"):
        assert_rejected(node, submit_then_refuse, "made-up")
