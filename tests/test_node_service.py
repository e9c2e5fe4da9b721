"""The service runs each check once per block and per tx, in the order its code reads, and the mempool loader
goes through it.

Before: `check_block` and the recent-rejects lookup ran in the service and again in `Node.submit_block` (the
second `check_block` short-circuited by a memo on the block), and a tx's recent rejects were looked up twice.
"""

from __future__ import annotations

from collections import Counter

import pytest

from simplecoin.core import mempool as mempool_module
from simplecoin.core import validation as validation_module
from simplecoin.core.errors import BlockValidationError, TxValidationError
from simplecoin.node import node as node_module
from simplecoin.node import service as service_module
from simplecoin.node import verdicts as verdicts_module
from simplecoin.node.service import Event, NodeService
from tests.framework.builder import DEFAULT_FEE


@pytest.fixture
def counted(monkeypatch) -> Counter:
    """Counts calls of check_block (wherever it is called from) and of the recent-rejects lookup."""
    calls: Counter = Counter()
    real_check_block = validation_module.check_block

    def check_block(block, params):
        calls["check_block"] += 1
        return real_check_block(block, params)

    for module in (service_module, node_module):
        monkeypatch.setattr(module, "check_block", check_block)
    real_check = verdicts_module.RecentRejects.check

    def check(self, item_hash):
        calls["recent_rejects"] += 1
        return real_check(self, item_hash)

    monkeypatch.setattr(verdicts_module.RecentRejects, "check", check)
    return calls


def test_a_block_through_the_service_is_checked_once(funded, counted):
    node, b = funded
    service = NodeService(node)
    block = b.block("next", txs=[b.spend("m1")])
    assert service.submit_block(block, requested=False).status == "accepted"
    assert counted == {"check_block": 1, "recent_rejects": 1}


def test_a_block_submitted_in_process_is_checked_once_too(funded, counted):
    node, b = funded
    assert node.submit_block(b.block("next")).status == "accepted"
    assert counted == {"check_block": 1, "recent_rejects": 1}


def test_a_tx_through_the_service_looks_up_recent_rejects_once(funded, counted):
    node, b = funded
    tx = b.spend("m1")
    NodeService(node).submit_tx(tx)
    assert tx.txid in node.mempool
    assert counted["recent_rejects"] == 1


def test_a_known_bad_block_is_refused_before_check_block_in_process(funded, counted):
    """`Node.submit_block` looks at recent rejects before the context-free checks, as before."""
    node, b = funded
    block = b.block("bad")
    node.remember_rejected(block.hash, BlockValidationError("bad-txns-sig-invalid", "test"))
    with pytest.raises(BlockValidationError, match="refused before"):
        node.submit_block(block)
    assert counted == {"recent_rejects": 1}


def test_first_sighting_marks(funded):
    node, _ = funded
    service = NodeService(node)
    assert service.first_sighting(b"\x01" * 32)
    assert not service.first_sighting(b"\x01" * 32)


def test_a_restored_tx_is_accepted_but_not_relayed(funded):
    node, b = funded
    service = NodeService(node)
    events: list[Event] = []
    service.subscribe(events.append)
    restored, submitted = b.spend("m1"), b.spend("m2")
    service.restore_tx(restored)
    assert restored.txid in node.mempool
    assert events == []
    service.submit_tx(submitted)
    assert [e.hash for e in events] == [submitted.txid]
    assert {tx.txid for tx in service.pending_txs()} == {restored.txid, submitted.txid}


@pytest.fixture
def cheap_checks(monkeypatch) -> Counter:
    """Counts a tx's cheap checks (check_transaction, check_tx_inputs) wherever they are called from."""
    calls: Counter = Counter()
    for name in ("check_transaction", "check_tx_inputs"):
        real = getattr(validation_module, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        for module in (node_module, mempool_module):
            monkeypatch.setattr(module, name, counting)
    return calls


def test_a_txs_cheap_checks_run_once_when_nothing_moved_in_between(funded, cheap_checks):
    node, b = funded
    tx = b.spend("m1")
    NodeService(node).submit_tx(tx)
    assert tx.txid in node.mempool
    assert cheap_checks == {"check_transaction": 1, "check_tx_inputs": 1}


def test_a_txs_cheap_checks_run_again_when_the_pool_changed_in_between(funded, cheap_checks):
    """Between a tx's cheap checks and its acceptance another tx spent the same coin: checked again, refused."""
    node, b = funded
    tx, rival = b.spend("m1"), b.spend("m1", fee=DEFAULT_FEE + 1)
    assert node.tx_to_verify(tx) == [tx]
    node.submit_tx(rival)  # the pool changes while the lock would be free
    with pytest.raises(TxValidationError, match="txn-mempool-conflict"):
        node.accept_tx(tx, verified=[tx.txid])
    assert cheap_checks["check_transaction"] == 3  # tx twice, rival once
