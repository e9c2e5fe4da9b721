"""The fee estimate against a miner who pays himself (issue 21, item 2); snapshots of the pool (item 3).

A miner puts one self-paying 10,000-per-byte transaction in its own block, never relayed. The node never saw it
waiting, so it says nothing about what a payment needs: the estimate must not move. The estimate comes from what
the node itself watched (`core/feeest.py`): transactions that waited in its mempool and how many blocks they took.

    m1 .. m30 (coinbases mature)  -  h1 (10 txs seen in the pool, ~2 per byte)  -  evil (1 tx, 10,000 per byte)
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
import requests

from simplecoin.core.amounts import format_coins
from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import REGTEST
from simplecoin.node import mempool_file, snapshots
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder
from tests.framework.nodes import serving, wait_until

SPEND_SIZE = 190  # bytes of a one-input, one-output spend, about


def estimate(url: str) -> dict:
    answer = requests.get(f"{url}/fee-estimate", timeout=5)
    answer.raise_for_status()
    return answer.json()


def node_at(directory: Path, b: ChainBuilder, blocks: int) -> NodeService:
    """An in-process node in `directory` with blocks m1 .. m<blocks> of `b`."""
    b.chain([f"m{i}" for i in range(1, blocks + 1)], parent="genesis")
    service = NodeService(Node(Store(directory / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    for i in range(1, blocks + 1):
        service.submit_block(b[f"m{i}"], requested=True)
    return service


def test_one_self_paying_block_does_not_move_the_estimate(tmp_path: Path):
    b = ChainBuilder(REGTEST)
    service = node_at(tmp_path, b, 30)
    try:
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


# -- snapshots: read without the node lock for the pool's size ---------------------------------------------------


@pytest.fixture
def pooled(tmp_path: Path):
    """A node at m15 with three pending spends of m1, m2, m3 paying 2, 3 and 4 per byte (about)."""
    b = ChainBuilder(REGTEST)
    service = node_at(tmp_path, b, 15)
    for i in (1, 2, 3):
        service.submit_tx(b.spend(f"m{i}", fee=(i + 1) * SPEND_SIZE))
    yield service, b
    service.close()


def test_a_snapshot_serves_every_read_until_the_tip_or_the_pool_changes(pooled):
    service, b = pooled
    first = service.mempool_snapshot()
    assert service.mempool_snapshot() is first
    assert service.fee_estimate().pending_bytes == first.total_bytes
    service.submit_tx(b.spend("m4", fee=SPEND_SIZE))
    second = service.mempool_snapshot()
    assert second is not first
    assert (second.count, first.count) == (4, 3)
    service.submit_block(b.block("m16"), requested=True)
    assert service.mempool_snapshot() is not second


def test_a_snapshot_is_sorted_and_summed_without_the_node_lock(pooled, monkeypatch):
    service, _ = pooled
    held_while_taking = []

    def take(figures, block_bytes):
        free = threading.Event()
        other = threading.Thread(
            target=lambda: service.lock.acquire(timeout=5) and (free.set(), service.lock.release())
        )
        other.start()
        other.join()
        held_while_taking.append(not free.is_set())
        return real_take(figures, block_bytes)

    real_take = snapshots.take
    monkeypatch.setattr(snapshots, "take", take)
    service.fee_estimate()
    assert held_while_taking == [False]


def test_the_page_lists_the_highest_fee_rates_and_totals_them_all(pooled, monkeypatch):
    service, _ = pooled
    monkeypatch.setattr(snapshots, "MAX_SHOWN", 2)
    entries = sorted(service.node.mempool.entries.values(), key=lambda e: -e.fee)
    html = create_app(service).test_client().get("/explorer/mempool").get_data(as_text=True)
    assert '<span id="mempool-count">3</span> pending transactions' in html
    assert '(the first <span id="mempool-shown">2</span> shown)' in html
    assert [hash_hex(e.tx.txid) in html for e in entries] == [True, True, False]  # the lowest rate is left out
    assert format_coins(sum(e.fee for e in entries)) in html


def test_the_next_blocks_cut_off_counts_only_when_the_pool_holds_more_than_a_block(pooled):
    service, _ = pooled
    figures = service.lookups.pool_figures()
    rates = sorted((e.fee / e.tx.size for e in figures.entries), reverse=True)
    fits = snapshots.take(figures, block_bytes=10_000)
    assert fits.next_block_rate == 0
    two = snapshots.take(figures, block_bytes=2 * max(e.tx.size for e in figures.entries))
    assert two.next_block_rate == math.ceil(rates[1]) + 1  # beats the second, the last that fits
    assert snapshots.fee_estimate(two, 1, 0).fee_rate == two.next_block_rate


# -- across a restart -------------------------------------------------------------------------------------------


def test_the_statistics_are_saved_next_to_the_mempool_and_read_back_on_start(tmp_path: Path):
    def service_in(directory: Path) -> NodeService:
        directory.mkdir()
        return node_at(directory, ChainBuilder(REGTEST), 0)

    def run_loader(service: NodeService, path: Path) -> mempool_file.MempoolLoader:
        loader = mempool_file.MempoolLoader(path, REGTEST, service)
        loader.start()
        wait_until(loader.finished.is_set, timeout=30)
        return loader

    path = tmp_path / mempool_file.FILE_NAME
    first = service_in(tmp_path / "first")
    try:
        loader = run_loader(first, path)
        estimator = first.node.fee_estimator
        seen = [bytes([i]) * 32 for i in range(10)]
        for txid in seen:
            estimator.track(txid, 3 * SPEND_SIZE, SPEND_SIZE, 0)
        estimator.block_connected(1, seen)
        assert first.node.fee_estimator.estimate().fee_rate == 3
        loader.stop_and_save()
    finally:
        first.close()
    assert (tmp_path / mempool_file.FEE_FILE_NAME).exists()
    second = service_in(tmp_path / "second")
    try:
        run_loader(second, path)
        assert second.node.fee_estimator.estimate().fee_rate == 3
    finally:
        second.close()


# -- the node feeds the estimator ---------------------------------------------------------------------------------


def test_a_reorg_restarts_what_is_watched_from_the_new_tip(tmp_path: Path):
    """
    m1 .. m15 - f16 (5 txs seen in the pool, mined)
             \\
              r16 - r17 (more work: f16's txs come back to the pool)
    """
    b = ChainBuilder(REGTEST)
    service = node_at(tmp_path, b, 15)
    try:
        paying = [b.spend(f"m{i}", fee=2 * SPEND_SIZE) for i in range(1, 6)]
        for tx in paying:
            service.submit_tx(tx)
        estimator = service.node.fee_estimator
        assert set(estimator.tracked) == {tx.txid for tx in paying}
        service.submit_block(b.block("f16", txs=paying), requested=True)
        assert (estimator.estimate().samples, estimator.tracked) == (5, {})
        b.block("r16", parent="m15")
        b.block("r17")
        service.submit_block(b["r16"], requested=True)
        service.submit_block(b["r17"], requested=True)
        assert service.node.tip.hash == b["r17"].hash
        assert estimator.estimate().samples == 5  # the reorg's blocks are not counted
        assert set(estimator.tracked) == set(service.node.mempool.entries) == {tx.txid for tx in paying}
        assert {height for height, _, _ in estimator.tracked.values()} == {17}
    finally:
        service.close()


def test_what_the_pool_evicts_is_no_longer_watched(tmp_path: Path):
    b = ChainBuilder(REGTEST)
    service = node_at(tmp_path, b, 15)
    try:
        service.submit_tx(b.spend("m1", fee=2 * SPEND_SIZE))
        first = b.spend("m2", fee=2 * SPEND_SIZE)
        service.submit_tx(first)
        service.node.mempool.remove_with_descendants(first.txid)  # as an eviction does, without telling the node
        service.submit_block(b.block("m16"), requested=True)
        assert len(service.node.fee_estimator.tracked) == len(service.node.mempool) == 1
    finally:
        service.close()
