"""The mempool: chains of unconfirmed transactions, fees, a bounded size, and block templates."""

from __future__ import annotations

import pytest

from simplecoin.core.errors import TxValidationError
from simplecoin.core.hashing import hash160
from simplecoin.core.mempool import MempoolPolicy, entry_usage
from simplecoin.core.mining import solve
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint, Transaction, TxIn, TxOut
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, snapshot

SPEND_SIZE = 179  # a one-input, one-output payment with a 71-byte signature


def test_chain_of_unconfirmed_transactions(funded):
    node, b = funded
    parent = b.spend("m1")
    child = b.spend(OutPoint(parent.txid, 0), [(parent.outputs[0].amount - 5_000, ALICE.pubkey_hash)], key=BOB)
    grandchild = b.spend(OutPoint(child.txid, 0), [(child.outputs[0].amount - 5_000, BOB.pubkey_hash)], key=ALICE)
    for tx in (parent, child, grandchild):
        node.submit_tx(tx)
    assert len(node.mempool) == 3
    # The whole chain fits one block, parents first, and the block is valid.
    block = solve(node.block_template(ALICE.pubkey_hash))
    assert [tx.txid for tx in block.txs[1:]] == [parent.txid, child.txid, grandchild.txid]
    node.submit_block(block)
    assert node.tip.hash == block.hash
    assert len(node.mempool) == 0
    assert node.store.balance(BOB.pubkey_hash) == grandchild.outputs[0].amount


def test_spend_of_an_unknown_pending_output_is_rejected(funded):
    node, b = funded
    parent = b.spend("m1")  # never submitted
    child = b.spend(OutPoint(parent.txid, 0), [(1_000, ALICE.pubkey_hash)], key=BOB)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(child)
    assert err.value.reason == "bad-txns-inputs-missingorspent"


def test_template_orders_by_fee_rate_and_pays_the_fees(funded):
    node, b = funded
    cheap, dear, middle = b.spend("m1", fee=1_000), b.spend("m2", fee=90_000), b.spend("m3", fee=20_000)
    for tx in (cheap, dear, middle):
        node.submit_tx(tx)
    block = node.block_template(ALICE.pubkey_hash)
    assert [tx.txid for tx in block.txs[1:]] == [dear.txid, middle.txid, cheap.txid]
    assert block.txs[0].outputs[0].amount == REGTEST.subsidy(14) + 111_000


def test_child_paying_more_than_parent_still_follows_it(funded):
    node, b = funded
    parent = b.spend("m1", fee=500)
    child = b.spend(OutPoint(parent.txid, 0), [(parent.outputs[0].amount - 80_000, ALICE.pubkey_hash)], key=BOB)
    node.submit_tx(parent)
    node.submit_tx(child)
    block = node.block_template(ALICE.pubkey_hash)
    assert [tx.txid for tx in block.txs[1:]] == [parent.txid, child.txid]


def small_pool_node(tmp_path, funded_builder_blocks, max_txs):
    """A node whose pool holds `max_txs` one-input payments (their sizes differ by a byte or two)."""
    # The cap counts memory now (entry_usage), no longer serialized bytes.
    largest = Transaction(1, (TxIn(OutPoint(bytes(32), 0), bytes(33), bytes(72)),), (TxOut(1, bytes(20)),))
    policy = MempoolPolicy(max_usage=max_txs * entry_usage(largest))
    node = Node(Store(tmp_path / "small.db", REGTEST), REGTEST, clock=lambda: NOW, policy=policy)
    for block in funded_builder_blocks:
        node.submit_block(block)
    return node


def test_full_pool_evicts_the_lowest_fee_rate_with_its_descendants(funded, tmp_path):
    _, b = funded
    node = small_pool_node(tmp_path, [b[f"m{i}"] for i in range(1, 14)], max_txs=3)
    try:
        low = b.spend("m1", fee=1_000)
        low_child = b.spend(OutPoint(low.txid, 0), [(low.outputs[0].amount - 50_000, BOB.pubkey_hash)], key=BOB)
        mid = b.spend("m2", fee=40_000)
        node.submit_tx(low)
        node.submit_tx(low_child)
        node.submit_tx(mid)
        assert len(node.mempool) == 3

        high = b.spend("m3", fee=60_000)
        node.submit_tx(high)

        # low had the lowest rate; its child goes with it even though it paid more.
        assert set(node.mempool.entries) == {mid.txid, high.txid}
        assert node.mempool.usage <= node.mempool.policy.max_usage
    finally:
        node.close()


def test_full_pool_refuses_a_lower_fee_rate(funded, tmp_path):
    _, b = funded
    node = small_pool_node(tmp_path, [b[f"m{i}"] for i in range(1, 14)], max_txs=2)
    try:
        node.submit_tx(b.spend("m1", fee=50_000))
        node.submit_tx(b.spend("m2", fee=50_000))
        before = snapshot(node)
        with pytest.raises(TxValidationError) as err:
            node.submit_tx(b.spend("m3", fee=1_000))
        assert err.value.reason == "mempool-full"
        assert snapshot(node) == before
    finally:
        node.close()


def spend_paying(b, source: str, fee_for_size) -> Transaction:
    """A spend whose fee is `fee_for_size(its own size)` (a signature's length varies by a byte)."""
    value = b[source].txs[0].outputs[0].amount
    for recipient in range(100):  # each recipient gives another signature, of 70 to 72 bytes
        for size in range(SPEND_SIZE - 2, SPEND_SIZE + 2):
            tx = b.spend(source, [(value - fee_for_size(size), hash160(bytes([recipient])))])
            if tx.size == size:
                return tx
    raise AssertionError("no spend of a matching size")


def test_minimum_relay_fee_is_per_byte(funded):
    node, b = funded
    rate = MempoolPolicy().min_fee_rate
    short = spend_paying(b, "m1", lambda size: size * rate - 1)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(short)
    assert err.value.reason == "min-relay-fee-not-met"
    exact = spend_paying(b, "m1", lambda size: size * rate)
    assert node.submit_tx(exact).fee == exact.size * rate


def test_immature_coinbase_becomes_spendable_in_the_pool(funded):
    node, b = funded
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(b.spend("m5"))
    assert err.value.reason == "bad-txns-premature-spend-of-coinbase"
    node.submit_block(b.block("m14", parent="m13"))
    assert node.submit_tx(b.spend("m5")).fee > 0
