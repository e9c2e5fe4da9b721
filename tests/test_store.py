"""The store: address index, transaction index, undo, and refusing another network's data."""

from __future__ import annotations

import pytest

from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node.node import Node
from simplecoin.node.store import Store, StoreError
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, recompute_utxos


def test_balance_and_history_follow_the_active_chain(funded):
    """
    ... m13 - p14 - p15*          p14 pays Bob 2 coins from m1, and Bob pays Alice 1 coin of it in p15
           \\
            q14 - q15 - q16       later: a heavier branch without those payments
    """
    node, b = funded
    pay_bob = b.spend("m1", [(200_000_000, BOB.pubkey_hash), (4_799_990_000, b.key.pubkey_hash)])
    pay_alice = b.spend(
        OutPoint(pay_bob.txid, 0), [(100_000_000, ALICE.pubkey_hash), (99_990_000, BOB.pubkey_hash)], key=BOB
    )
    node.submit_block(b.block("p14", parent="m13", txs=[pay_bob]))
    node.submit_block(b.block("p15", parent="p14", txs=[pay_alice]))

    assert node.store.balance(BOB.pubkey_hash) == 99_990_000
    assert node.store.balance(ALICE.pubkey_hash) == 100_000_000
    history = node.store.history(BOB.pubkey_hash)
    assert [(row.txid, row.height, row.received, row.sent) for row in history] == [
        (pay_alice.txid, 15, 99_990_000, 200_000_000),  # newest first
        (pay_bob.txid, 14, 200_000_000, 0),
    ]
    assert node.store.utxos(BOB.pubkey_hash) == {
        OutPoint(pay_alice.txid, 1): recompute_utxos(node)[OutPoint(pay_alice.txid, 1)]
    }
    assert node.store.tx_location(pay_alice.txid) == (15, 1)
    assert node.store.history(BOB.pubkey_hash, limit=1, offset=1)[0].txid == pay_bob.txid

    for name in ("q14", "q15", "q16"):
        node.submit_block(b.block(name, parent={"q14": "m13", "q15": "q14", "q16": "q15"}[name]))

    assert node.tip.hash == b["q16"].hash
    assert node.store.balance(BOB.pubkey_hash) == 0
    assert node.store.history(ALICE.pubkey_hash) == []
    assert node.store.tx_location(pay_alice.txid) is None
    assert node.store.utxos() == recompute_utxos(node)
    assert set(node.mempool.entries) == {pay_bob.txid, pay_alice.txid}


def test_spend_inside_one_block_leaves_no_trace_in_the_utxo_set(funded):
    node, b = funded
    first = b.spend("m1")
    second = b.spend(OutPoint(first.txid, 0), [(first.outputs[0].amount - 10_000, ALICE.pubkey_hash)], key=BOB)
    node.submit_block(b.block("n14", parent="m13", txs=[first, second]))
    assert node.store.get_coin(OutPoint(first.txid, 0)) is None
    assert node.store.get_coin(OutPoint(second.txid, 0)) is not None
    assert node.store.utxos() == recompute_utxos(node)
    node.submit_block(b.block("o14", parent="m13"))
    node.submit_block(b.block("o15", parent="o14"))  # reorg: n14 is disconnected
    assert node.store.get_coin(OutPoint(first.txid, 0)) is None
    assert node.store.get_coin(b.coinbase_outpoint("m1")) is not None
    assert node.store.utxos() == recompute_utxos(node)


def test_reopening_resumes_at_the_stored_tip(tmp_path, builder):
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    for block in builder.chain(["b1", "b2", "b3"]):
        node.submit_block(block)
    utxos, work = node.store.utxos(), node.tip.chain_work
    node.close()
    reopened = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert reopened.tip.hash == builder["b3"].hash
        assert reopened.store.utxos() == utxos
        assert reopened.tip.chain_work == work == 4 * 2  # genesis and 3 blocks at the easiest target
    finally:
        reopened.close()


def test_another_networks_store_is_refused(tmp_path):
    Store(tmp_path / "chain.db", REGTEST).close()
    with pytest.raises(StoreError, match="network"):
        Store(tmp_path / "chain.db", MAIN)


def test_unusable_path_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "missing-dir" / "chain.db", REGTEST)
