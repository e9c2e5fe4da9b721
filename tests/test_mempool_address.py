"""Issue 21: an address's pending activity costs that address's entries, and dust outputs are not relayed.

The attacks first: 112,001 one-unit outputs to a victim's address cost 0.031 coin of fees and made the victim's
/address answer 14.4 MB; with 12,000 pending txs every /address read looked up every input of the pool in SQLite
under the node lock.
"""

from __future__ import annotations

import pytest

from simplecoin.core.coins import Coin
from simplecoin.core.errors import TxValidationError
from simplecoin.core.hashing import hash160
from simplecoin.core.mempool import Mempool, MempoolPolicy
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, MINER_KEY

DUST = MempoolPolicy().dust_threshold


def test_dust_threshold_is_bitcoins_rule_in_our_sizes():
    # three times the cost of a 28-byte output plus the 143-byte input that spends it, at 1 unit per byte
    assert DUST == 3 * (28 + 143) == 513
    assert MempoolPolicy(dust_relay_fee_rate=0).dust_threshold == 0


def test_attack_a_flood_of_one_unit_outputs_is_refused_as_dust(funded):
    node, b = funded
    flood = b.spend("m1", [(1, ALICE.pubkey_hash)] * 1_000, fee=100_000)
    with pytest.raises(TxValidationError) as err:
        node.submit_tx(flood)
    assert err.value.reason == "dust"
    assert "output 0 pays 1 < 513" in err.value.detail
    assert len(node.mempool) == 0


@pytest.mark.parametrize(("amount", "accepted"), [(DUST - 1, False), (DUST, True)])
def test_dust_threshold_edge(funded, amount: int, accepted: bool):
    node, b = funded
    tx = b.spend("m1", [(amount, ALICE.pubkey_hash)], fee=1_000)
    if accepted:
        node.submit_tx(tx)
        assert tx.txid in node.mempool
    else:
        with pytest.raises(TxValidationError, match="dust"):
            node.submit_tx(tx)


def test_a_block_may_still_pay_dust(funded):
    """Policy, not consensus: a mined block with a one-unit output connects."""
    node, b = funded
    tx = b.spend("m1", [(1, ALICE.pubkey_hash)], fee=1_000)
    node.submit_block(b.block("d1", txs=[tx]))
    assert node.height == 14
    assert node.store.balance(ALICE.pubkey_hash) == 1


class CountingCoins:
    """A UTXO set where every outpoint is a coin of MINER_KEY's; counts the lookups."""

    def __init__(self) -> None:
        self.lookups = 0

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        self.lookups += 1
        return Coin(10_000_000, MINER_KEY.pubkey_hash, 1, False)


def _made_up(i: int) -> OutPoint:
    return OutPoint(hash160(i.to_bytes(4, "little")) + bytes(12), 0)


def test_attack_an_address_lookup_reads_only_that_address_entries(builder):
    """12,000 pending txs made every /address read 12,000+ coin lookups under the node lock."""
    pool = Mempool(REGTEST)
    coins = CountingCoins()
    others = [
        builder.spend([_made_up(i)], [(9_990_000, BOB.pubkey_hash)], key=MINER_KEY, sign=False) for i in range(200)
    ]
    to_alice = builder.spend([_made_up(999)], [(9_000_000, ALICE.pubkey_hash)], key=MINER_KEY, sign=False)
    for tx in [*others, to_alice]:
        pool.accept(tx, coins, 20, 0, now=NOW, check_signatures=False)
    coins.lookups = 0
    entries, received, sent = pool.activity(ALICE.pubkey_hash, coins, 20)
    assert ([e.tx.txid for e in entries], received, sent) == ([to_alice.txid], 9_000_000, 0)
    assert coins.lookups == 0  # Alice's entry spends none of her coins: nothing to look up
    # the spender's side: every entry spends a MINER_KEY coin, each input looked up once
    entries, received, sent = pool.activity(MINER_KEY.pubkey_hash, coins, 20)
    assert (len(entries), received, sent) == (201, 0, 201 * 10_000_000)
    assert coins.lookups == 201


def test_the_address_index_follows_adds_and_removals(funded):
    node, b = funded
    pay = b.spend("m1", [(1_000_000, ALICE.pubkey_hash), (2_000_000, BOB.pubkey_hash)], fee=10_000)
    node.submit_tx(pay)
    child = b.spend(OutPoint(pay.txid, 0), [(990_000, BOB.pubkey_hash)], key=ALICE, fee=10_000)
    node.submit_tx(child)
    pool = node.mempool
    assert pool.by_address[ALICE.pubkey_hash] == {pay.txid, child.txid}
    assert pool.by_address[BOB.pubkey_hash] == {pay.txid, child.txid}
    assert pool.by_address[MINER_KEY.pubkey_hash] == {pay.txid}
    _, received, sent = pool.activity(ALICE.pubkey_hash, node.store, node.height + 1)
    assert (received, sent) == (1_000_000, 1_000_000)  # the child spends Alice's pending coin
    pool.remove_with_descendants(pay.txid)
    assert pool.by_address == {}
    node.submit_tx(pay)
    node.submit_block(b.block("p1", txs=[pay]))  # mined: out of the pool and out of the index
    assert pool.by_address == {}
    assert len(node.mempool) == 0


def test_dust_is_refused_before_its_signatures_are_checked(funded):
    """Cheap checks first: a dust tx is not worth verifying (the node's tx_to_verify says so)."""
    node, b = funded
    flood = b.spend("m1", [(1, ALICE.pubkey_hash)] * 100, fee=100_000)
    assert node.tx_to_verify(flood) == []
    with pytest.raises(TxValidationError, match="dust"):
        node.accept_tx(flood)
