"""The fee estimate against a miner who pays himself (issue 21, item 2).

A miner puts one self-paying 10,000-per-byte transaction in its own block, never relayed. The node never saw it
waiting, so it says nothing about what a payment needs: the estimate must not move. The estimate comes from what
the node itself watched (`core/feeest.py`): transactions that waited in its mempool and how many blocks they took.

    m1 .. m30 (coinbases mature)  -  h1 (10 txs seen in the pool, ~2 per byte)  -  evil (1 tx, 10,000 per byte)
"""

from __future__ import annotations

from pathlib import Path

import requests

from simplecoin.core.params import REGTEST
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder
from tests.framework.nodes import serving

SPEND_SIZE = 190  # bytes of a one-input, one-output spend, about


def estimate(url: str) -> dict:
    answer = requests.get(f"{url}/fee-estimate", timeout=5)
    answer.raise_for_status()
    return answer.json()


def test_one_self_paying_block_does_not_move_the_estimate(tmp_path: Path):
    b = ChainBuilder(REGTEST)
    b.chain([f"m{i}" for i in range(1, 31)])
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    try:
        for i in range(1, 31):
            service.submit_block(b[f"m{i}"], requested=True)
        with serving(create_app(service)) as url:
            honest = [b.spend(f"m{i}", fee=2 * SPEND_SIZE) for i in range(1, 11)]
            for tx in honest:
                service.submit_tx(tx)  # seen waiting in our pool: evidence of what gets mined
            service.submit_block(b.block("h1", txs=honest), requested=False)
            before = estimate(url)
            assert before["source"] == "confirmed"
            assert before["fee_rate"] in (2, 3)  # 2 per byte of about SPEND_SIZE, rounded up

            # The fake miner: a block with one tx paying itself 10,000 per byte, never relayed to us.
            evil = b.spend("m11", fee=10_000 * SPEND_SIZE)
            service.submit_block(b.block("evil", txs=[evil]), requested=False)
            after = estimate(url)
            assert after["fee_rate"] == before["fee_rate"], (before, after)
    finally:
        service.close()
