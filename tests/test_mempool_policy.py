"""Mempool policy like Bitcoin Core's: package limits, ancestor-score templates, eviction by descendant score,
the rolling minimum fee, and a size cap that counts the memory the pool really uses.

The attacks come first; each is a client of a few lines that only needs the node's public submit_tx.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from simplecoin.core.coins import Coin
from simplecoin.core.errors import TxValidationError
from simplecoin.core.hashing import hash160
from simplecoin.core.mempool import (
    DEFAULT_ANCESTOR_LIMIT,
    DEFAULT_ANCESTOR_SIZE_LIMIT,
    DEFAULT_DESCENDANT_LIMIT,
    INCREMENTAL_RELAY_FEE_PER_KB,
    ROLLING_FEE_HALFLIFE,
    Mempool,
    MempoolPolicy,
    entry_usage,
)
from simplecoin.core.mining import make_block
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, snapshot


def chain_from(b, source: str, length: int, fee_of=lambda i: 1_000 + 1_000 * i) -> list[Transaction]:
    """A chain of 1-in-1-out spends starting at block `source`'s coinbase; by default each pays more than its
    parent (the shape that made the old template selection quadratic)."""
    txs = [b.spend(source, fee=fee_of(0))]
    for i in range(1, length):
        prev = txs[-1]
        out = OutPoint(prev.txid, 0)
        txs.append(b.spend(out, [(prev.outputs[0].amount - fee_of(i), BOB.pubkey_hash)], key=BOB))
    return txs


def pool_fees(node: Node) -> int:
    return sum(e.fee for e in node.mempool.entries.values())


def node_with_pool_for(tmp_path, b, spends: int) -> Node:
    """A funded node whose pool holds about `spends` one-input, one-output payments."""
    one = b.spend("m1")
    policy = MempoolPolicy(max_usage=spends * entry_usage(one) + entry_usage(one) // 2)
    node = Node(Store(tmp_path / "small.db", REGTEST), REGTEST, clock=lambda: NOW, policy=policy)
    for i in range(1, 14):
        node.submit_block(b[f"m{i}"])
    return node


# -- attacks ------------------------------------------------------------------------------------------------------
# Before this change: a 30-long rising-fee chain was accepted whole (and selection went quadratic in its length);
# the eviction case below dropped the parent and its rich child for the newcomer (pool fees 80,500 -> 20,000).


def test_attack_long_rising_fee_chain_is_refused_at_the_26th(funded):
    node, b = funded
    txs = chain_from(b, "m1", DEFAULT_ANCESTOR_LIMIT + 5)
    for tx in txs[:DEFAULT_ANCESTOR_LIMIT]:
        node.submit_tx(tx)
    before = snapshot(node)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(txs[DEFAULT_ANCESTOR_LIMIT])
    assert err.value.reason == "too-long-mempool-chain"
    assert "too many unconfirmed ancestors [limit: 25]" in err.value.detail
    assert snapshot(node) == before
    # The 25 that got in still make a valid template, parents first.
    template = node.block_template(ALICE.pubkey_hash)
    assert [tx.txid for tx in template.txs[1:]] == [tx.txid for tx in txs[:DEFAULT_ANCESTOR_LIMIT]]


def test_attack_eviction_keeps_the_cheap_parent_with_its_rich_child(funded, tmp_path):
    _, b = funded
    node = node_with_pool_for(tmp_path, b, 2)
    try:
        parent = b.spend("m1", fee=500)
        child = b.spend(OutPoint(parent.txid, 0), [(parent.outputs[0].amount - 80_000, ALICE.pubkey_hash)], key=BOB)
        node.submit_tx(parent)
        node.submit_tx(child)
        assert pool_fees(node) == 80_500
        # Pays far more than the parent alone, but less per byte than parent + child together.
        small = b.spend("m2", fee=20_000)
        assert parent.size == small.size or abs(parent.size - small.size) <= 2
        before = snapshot(node)
        with pytest.raises(TxValidationError) as err:
            node.submit_tx(small)
        assert err.value.reason == "mempool-full"
        assert snapshot(node) == before
        assert pool_fees(node) == 80_500
    finally:
        node.close()


def test_attack_rich_child_pulls_its_cheap_parent_into_the_template(funded):
    node, b = funded
    parent = b.spend("m1", fee=200)
    child = b.spend(OutPoint(parent.txid, 0), [(parent.outputs[0].amount - 90_000, ALICE.pubkey_hash)], key=BOB)
    mid_a, mid_b = b.spend("m2", fee=30_000), b.spend("m3", fee=30_000)
    for tx in (parent, child, mid_a, mid_b):
        node.submit_tx(tx)
    # Room for two payments: the package pays 90,200 for them, the two middling ones 60,000.
    chosen = node.mempool.select(parent.size + child.size + 1)
    assert [e.tx.txid for e in chosen] == [parent.txid, child.txid]


# -- package limits ---------------------------------------------------------------------------------------------


def test_descendant_limit_counts_the_parent_itself(funded):
    node, b = funded
    fan = b.spend("m1", [(1_000_000, BOB.pubkey_hash)] * DEFAULT_DESCENDANT_LIMIT)
    node.submit_tx(fan)
    children = [
        b.spend(OutPoint(fan.txid, i), [(1_000_000 - 5_000, ALICE.pubkey_hash)], key=BOB)
        for i in range(DEFAULT_DESCENDANT_LIMIT)
    ]
    for child in children[:-1]:  # the parent and 24 children: 25 in the package
        node.submit_tx(child)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(children[-1])
    assert err.value.reason == "too-long-mempool-chain"
    assert f"too many descendants for tx {fan.txid[::-1].hex()} [limit: 25]" in err.value.detail


def test_ancestor_size_limit(funded):
    node, b = funded
    small = MempoolPolicy().dust_threshold  # the smallest output that is not dust
    many = [(small, BOB.pubkey_hash)] * 699  # about 19.7 kB a transaction: the sixth passes 101 kB of ancestors
    fee = 25_000
    big = [b.spend("m1", [(b["m1"].txs[0].outputs[0].amount - 699 * small - fee, BOB.pubkey_hash), *many], fee=fee)]
    while sum(tx.size for tx in big) <= DEFAULT_ANCESTOR_SIZE_LIMIT:
        prev = big[-1]
        out = [(prev.outputs[0].amount - 699 * small - fee, BOB.pubkey_hash), *many]
        big.append(b.spend(OutPoint(prev.txid, 0), out, key=BOB))
    for tx in big[:-1]:
        node.submit_tx(tx)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(big[-1])
    assert err.value.reason == "too-long-mempool-chain"
    assert "exceeds ancestor size limit" in err.value.detail


# -- a pool on its own: eviction, the rolling minimum fee, templates, memory --------------------------------------


class AnyCoin:
    """A UTXO set where every outpoint is an unspent 0.1-coin output of Bob's (the pool alone is under test)."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return Coin(10_000_000, BOB.pubkey_hash, 1, False)


def payment(
    b, fee: int, outputs: int = 1, inputs: int = 1, parent: Transaction | None = None, sign: bool = False
) -> Transaction:
    """A payment (unsigned unless `sign`) from made-up outpoints (or from `parent`'s first outputs) paying `fee`."""
    if parent is None:
        prevouts = [
            OutPoint(hash160(fee.to_bytes(8, "little") + bytes([i, outputs])) + bytes(12), i) for i in range(inputs)
        ]
        value = 10_000_000 * inputs
    else:
        prevouts = [OutPoint(parent.txid, i) for i in range(inputs)]
        value = sum(parent.outputs[i].amount for i in range(inputs))
    each = (value - fee) // outputs
    outs = [(each, BOB.pubkey_hash)] * (outputs - 1) + [(value - fee - each * (outputs - 1), BOB.pubkey_hash)]
    return b.spend(prevouts, outs, key=BOB, sign=sign)


def pool_for(count: int, example: Transaction) -> Mempool:
    return Mempool(REGTEST, MempoolPolicy(max_usage=count * entry_usage(example)))


def accept(pool: Mempool, tx: Transaction, now: int = NOW, check_signatures: bool = False):
    return pool.accept(tx, AnyCoin(), 20, 0, now=now, check_signatures=check_signatures)


def empty_block() -> Block:
    return make_block(bytes(32), 20, REGTEST.genesis_block.header.bits, NOW, BOB.pubkey_hash, REGTEST)


def test_full_pool_evicts_the_lowest_descendant_score_and_stays_under_its_cap(builder):
    txs = [payment(builder, fee=1_000 + 997 * i) for i in range(60)]
    pool = pool_for(20, txs[0])
    for tx in txs:  # rising fees: each newcomer pushes out the cheapest
        accept(pool, tx)
        assert pool.usage <= pool.policy.max_usage
    assert len(pool) == 20
    assert set(pool.entries) == {tx.txid for tx in txs[-20:]}


def test_rolling_minimum_fee_rises_on_eviction_and_decays_after_a_block(builder):
    cheap = payment(builder, fee=500)
    rich_child = payment(builder, fee=80_000, parent=cheap)
    pool = pool_for(2, cheap)
    accept(pool, cheap)
    accept(pool, rich_child)
    assert pool.min_fee_per_kb(NOW) == 0
    newcomer = payment(builder, fee=20_000)
    with pytest.raises(TxValidationError) as err:
        accept(pool, newcomer)
    assert err.value.reason == "mempool-full"
    bumped = 20_000 * 1000 // newcomer.size + INCREMENTAL_RELAY_FEE_PER_KB
    assert pool.min_fee_per_kb(NOW) == bumped
    # Below the rolling minimum (though above the relay minimum): refused before any eviction is tried.
    below = payment(builder, fee=newcomer.size * bumped // 1000 - 10)
    with pytest.raises(TxValidationError) as err:
        accept(pool, below)
    assert err.value.reason == "mempool-min-fee-not-met"
    # No decay without a block (Bitcoin: blockSinceLastRollingFeeBump), however long it waits.
    assert pool.min_fee_per_kb(NOW + 10 * ROLLING_FEE_HALFLIFE) == bumped
    pool.remove_for_block(empty_block(), NOW + 100)
    assert pool.min_fee_per_kb(NOW + 100 + ROLLING_FEE_HALFLIFE) == bumped // 2  # the pool is full: 12-hour half-life
    assert pool.min_fee_per_kb(NOW + 100 + 20 * ROLLING_FEE_HALFLIFE) == 0
    pool.remove_with_descendants(cheap.txid)  # as if mined: room again
    assert accept(pool, payment(builder, fee=cheap.size)).fee == cheap.size  # back to the relay minimum only


def test_template_is_valid_and_ordered_for_a_random_pool_graph(builder):
    import random

    rng = random.Random(7)
    pool = Mempool(REGTEST)
    txs: list[Transaction] = []
    refused: set[str] = set()
    for i in range(300):
        fee = rng.randrange(200, 50_000)
        parents = [t for t in txs[-30:] if t.txid in pool.entries and rng.random() < 0.1][:2]
        tx = payment(builder, fee=fee + i) if not parents else _spend_first_outputs(builder, parents, fee + i)
        try:
            accept(pool, tx)
            txs.append(tx)
        except TxValidationError as e:
            refused.add(e.reason)
    assert refused <= {"too-long-mempool-chain", "txn-mempool-conflict"}
    for limit in (2_000, 20_000, 1_000_000):
        chosen = pool.select(limit)
        seen: set[bytes] = set()
        for entry in chosen:
            assert pool.links[entry.tx.txid].parents <= seen, "a child before its parent"
            seen.add(entry.tx.txid)
        assert sum(e.tx.size for e in chosen) <= limit
    assert len(pool.select(1_000_000)) == len(pool)
    # Package state matches a recomputation from scratch after all the adds.
    for txid, links in pool.links.items():
        anc = pool.ancestors(txid)
        assert links.anc_count == len(anc) + 1
        assert links.anc_fee == sum(pool.entries[t].fee for t in anc | {txid})
        desc = pool.descendants(txid)
        assert (links.desc_count, links.desc_size) == (len(desc), sum(pool.entries[t].tx.size for t in desc))


def _spend_first_outputs(b, parents: list[Transaction], fee: int) -> Transaction:
    prevouts = [OutPoint(p.txid, len(p.outputs) - 1) for p in parents]
    value = sum(p.outputs[-1].amount for p in parents)
    half = (value - fee) // 2
    return b.spend(prevouts, [(half, BOB.pubkey_hash), (value - fee - half, BOB.pubkey_hash)], key=BOB, sign=False)


@pytest.mark.parametrize(("inputs", "outputs"), [(1, 1), (1, 2), (2, 2), (1, 50), (20, 1), (5, 5)])
def test_the_cap_counts_the_memory_the_pool_really_uses(builder, inputs, outputs):
    """entry_usage stays within 0.9x..1.3x of what tracemalloc sees the pool retain per transaction."""
    count = 100
    raws = [payment(builder, 5_000 + i, outputs, inputs, sign=True).serialize() for i in range(count)]
    pool = Mempool(REGTEST)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for raw in raws:  # as from the network: bytes in, objects retained by the pool only
            accept(pool, Transaction.deserialize(raw), check_signatures=True)  # which caches the unsigned bytes
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(pool) == count
    assert 0.9 * real <= pool.usage <= 1.3 * real, (real // count, pool.usage // count)
    assert pool.usage >= 3 * pool.total_bytes  # what the old byte cap missed (3.7x for 20-in-1-out, the least)


@pytest.mark.slow
def test_mempool_benchmark_runs_quick():
    """bench/bench_mempool.py --quick runs to the end and prints every figure (speed is never asserted here)."""
    result = subprocess.run(
        [sys.executable, "bench/bench_mempool.py", "--quick"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for label in ("Mempool.select (ancestor score):", "reference: the old selection:", "accepted 25;", "SUMMARY"):
        assert label in result.stdout, result.stdout
