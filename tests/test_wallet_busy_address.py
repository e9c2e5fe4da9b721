"""Issue 21, item 1: a wallet whose address holds 200,000 coins (the dust flood's victim, and a busy miner).

On the old node and wallet, GET /address answered every coin at once (14.4 MB for 112,001), over the 10 MB the
wallet reads of one answer: `balance` and `send` both failed with "untrustworthy node" and blamed the honest
node. The node now pages coins (largest first) and sums them itself; the wallet reads one page for a balance and
only as many pages as a payment needs.

    genesis - m1 ... m13 - f14 ... f19     f14..f19: 58 txs of 3,448 outputs each pay the wallet's key 200,000 coins
                                           of 1,000 units (mined: dust is policy, not consensus), and three of 1 coin
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simplecoin.core.amounts import COIN
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.wallet.client import LightWallet, NodeClient, WalletError
from simplecoin.wallet.keyfile import WalletFile
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import BOB, ChainBuilder
from tests.framework.nodes import serving

COINS = 200_000
SMALL = 1_000
PER_TX = 3_448  # 28-byte outputs: just under the 100 kB a transaction may be
BIG = 3  # coins of 1 COIN each
BOB_ADDRESS = address_from_pubkey_hash(BOB.pubkey_hash, REGTEST.address_version)


@dataclass
class Busy:
    wallet: WalletFile
    service: NodeService
    url: str
    big: set[OutPoint]

    def light(self, tmp_path: Path) -> tuple[LightWallet, list[str]]:
        """A light wallet over real HTTP (the 10 MB answer cap applies), and the paths it asks for."""
        client = NodeClient([self.url])
        asked: list[str] = []
        get = client.get

        def counting(path: str, params: dict | None = None) -> dict:
            asked.append(path)
            return get(path, params)

        client.get = counting  # type: ignore[method-assign]
        return LightWallet(self.wallet.path, REGTEST, client, clock=lambda: NOW), asked


@pytest.fixture(scope="module")
def busy(tmp_path_factory) -> Iterator[Busy]:
    tmp = tmp_path_factory.mktemp("busy")
    wallet = WalletFile.create(tmp / "wallet.json", REGTEST)
    pkh = wallet.keys[0].key.pubkey_hash
    node = Node(Store(tmp / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    service = NodeService(node)
    b = ChainBuilder(REGTEST)
    for block in b.chain([f"m{i}" for i in range(1, 14)]):
        node.submit_block(block)
    txs = []
    source, left = b.coinbase_outpoint("m1"), REGTEST.subsidy(1)
    paid = 0
    while paid < COINS:
        count = min(PER_TX, COINS - paid)
        outputs = [(SMALL, pkh)] * count + ([(COIN, pkh)] * BIG if not txs else [])
        left -= sum(a for a, _ in outputs) + 200_000
        tx = b.spend(source, [(left, b.key.pubkey_hash), *outputs], fee=200_000)
        txs.append(tx)
        source, paid = OutPoint(tx.txid, 0), paid + count
    per_block = 10
    for i in range(0, len(txs), per_block):
        assert node.submit_block(b.block(f"f{14 + i // per_block}", txs=txs[i : i + per_block])).status == "accepted"
    assert node.store.balance(pkh) == COINS * SMALL + BIG * COIN
    big = {OutPoint(txs[0].txid, 1 + PER_TX + i) for i in range(BIG)}
    with serving(create_app(service)) as url:
        yield Busy(wallet, service, url, big)
    node.close()


def test_attack_balance_of_an_address_with_200000_coins(busy: Busy, tmp_path):
    light, asked = busy.light(tmp_path)
    started = time.monotonic()
    [row] = light.balances()
    assert (row.spendable, row.immature, row.pending) == (COINS * SMALL + BIG * COIN, 0, 0)
    assert asked == [f"/address/{row.address}"]  # one page, whatever the address holds
    assert time.monotonic() - started < 10


def test_attack_send_from_an_address_with_200000_coins(busy: Busy, tmp_path):
    light, asked = busy.light(tmp_path)
    payment = light.make_payment(busy.wallet, BOB_ADDRESS, 2 * COIN, fee_rate=2)
    assert {txin.prevout for txin in payment.tx.inputs} <= busy.big  # the largest coins, and only enough of them
    assert len(payment.tx.inputs) == 3
    assert asked.count(f"/address/{busy.wallet.keys[0].address}") == 1  # the first page held them
    assert payment.balance_after == COINS * SMALL + BIG * COIN - 2 * COIN - payment.fee
    assert busy.service.submit_tx(payment.tx).fee == payment.fee
    busy.service.node.mempool.remove_with_descendants(payment.tx.txid)


def test_a_payment_needing_more_coins_than_a_transaction_holds_says_so(busy: Busy, tmp_path):
    light, _ = busy.light(tmp_path)
    with pytest.raises(WalletError, match=r"needs more than 698 coins, the most one transaction of 100000 bytes"):
        light.make_payment(busy.wallet, BOB_ADDRESS, 4 * COIN, fee_rate=1)
    with pytest.raises(WalletError, match=r"not enough spendable coins: 5\.00000000 spendable"):
        light.make_payment(busy.wallet, BOB_ADDRESS, 6 * COIN, fee_rate=1)
