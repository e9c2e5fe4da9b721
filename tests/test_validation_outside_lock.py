"""Signature checks never hold the node lock, and what failed them is remembered (Bitcoin: m_recent_rejects).

The attacker: a transaction of many inputs whose last signature is bad costs every signature check before
it is refused. Under the lock, three clients sending it kept GET /status at a 2.1 s median. Each test
watches the lock from another thread while the node verifies signatures.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from simplecoin.core import mempool as mempool_module
from simplecoin.core import validation as validation_module
from simplecoin.core.errors import BlockValidationError, TxValidationError
from simplecoin.core.primitives import OutPoint, Transaction
from simplecoin.node import service as service_module
from simplecoin.node.service import NodeService
from tests.framework.builder import MINER_KEY, ChainBuilder

INPUTS = 40
COIN_AMOUNT = 100_000


def many_coins(node, b: ChainBuilder, count: int = INPUTS) -> list[OutPoint]:
    """Split m1's coinbase into `count` coins of the miner's key, confirmed in block s1."""
    split = b.spend("m1", [(COIN_AMOUNT, MINER_KEY.pubkey_hash)] * count)
    node.submit_block(b.block("s1", txs=[split]))
    assert node.tip.hash == b["s1"].hash
    return [OutPoint(split.txid, i) for i in range(count)]


def with_bad_last_signature(tx: Transaction, donor: int = 0) -> Transaction:
    """`tx` with its last input carrying the signature of input `donor`: strict DER, low S, wrong digest."""
    inputs = list(tx.inputs)
    inputs[-1] = dataclasses.replace(inputs[-1], signature=inputs[donor].signature)
    return dataclasses.replace(tx, inputs=tuple(inputs))


class LockWatch:
    """Wraps every check_tx_signatures the node can reach: on each call another thread tries to take the
    lock, as a reader would. `checks` lists (module, whether the lock was free) per call."""

    def __init__(self, service: NodeService, monkeypatch) -> None:
        self.service = service
        self.checks: list[tuple[str, bool]] = []
        original = validation_module.check_tx_signatures
        for name, module in (
            ("service", service_module),
            ("mempool", mempool_module),
            ("validation", validation_module),
        ):

            def watched(tx, genesis_hash, name=name):
                got = []
                reader = threading.Thread(target=lambda: got.append(self._try_lock()))
                reader.start()
                reader.join()
                self.checks.append((name, got == [True]))
                return original(tx, genesis_hash)

            monkeypatch.setattr(module, "check_tx_signatures", watched, raising=False)

    def reset(self) -> None:
        """Forget the checks made while the test set up its chain."""
        self.checks = []

    def _try_lock(self) -> bool:
        if self.service.lock.acquire(timeout=0.5):
            self.service.lock.release()
            return True
        return False


@pytest.fixture
def watched(funded, monkeypatch):
    node, b = funded
    service = NodeService(node)
    return service, b, LockWatch(service, monkeypatch)


def test_a_transaction_s_signatures_are_checked_without_the_lock(watched):
    service, b, watch = watched
    coins = many_coins(service.node, b)
    watch.reset()
    good = b.spend(coins, [(INPUTS * COIN_AMOUNT - 50_000, MINER_KEY.pubkey_hash)])
    service.submit_tx(good)
    assert watch.checks == [("service", True)]
    assert good.txid in service.node.mempool


def test_a_bad_signature_is_refused_outside_the_lock_and_remembered(watched):
    service, b, watch = watched
    coins = many_coins(service.node, b)
    watch.reset()
    bad = with_bad_last_signature(b.spend(coins, [(INPUTS * COIN_AMOUNT - 50_000, MINER_KEY.pubkey_hash)]))
    with pytest.raises(TxValidationError) as first:
        service.submit_tx(bad)
    assert first.value.reason == "bad-txns-sig-invalid"
    assert watch.checks == [("service", True)]
    # The same bytes again cost nothing: refused from memory, with the same reason.
    with pytest.raises(TxValidationError) as again:
        service.submit_tx(bad)
    assert again.value.reason == "bad-txns-sig-invalid"
    assert watch.checks == [("service", True)]
    assert bad.txid not in service.node.mempool


def test_cheap_checks_come_before_signatures(watched):
    """A tx spending coins that do not exist is refused without checking a single signature."""
    service, b, watch = watched
    fake = b.spend([OutPoint(bytes(range(32)), i) for i in range(INPUTS)], [(1_000, MINER_KEY.pubkey_hash)])
    with pytest.raises(TxValidationError) as err:
        service.submit_tx(fake)
    assert err.value.reason == "bad-txns-inputs-missingorspent"
    assert watch.checks == []


def test_a_block_s_signatures_are_checked_without_the_lock_and_a_bad_one_remembered(watched):
    service, b, watch = watched
    coins = many_coins(service.node, b)
    watch.reset()
    bad = with_bad_last_signature(b.spend(coins, [(INPUTS * COIN_AMOUNT - 50_000, MINER_KEY.pubkey_hash)]))
    block = b.block("bad-sig", txs=[bad])
    tip = service.node.tip.hash
    with pytest.raises(BlockValidationError) as first:
        service.submit_block(block, requested=False)
    assert first.value.reason == "bad-txns-sig-invalid"
    assert watch.checks == [("service", True)]
    with pytest.raises(BlockValidationError) as again:
        service.submit_block(block, requested=False)
    assert again.value.reason == "bad-txns-sig-invalid"
    assert watch.checks == [("service", True)]
    assert service.node.tip.hash == tip
    assert block.hash not in service.node.index  # never stored


def test_a_good_block_connects_without_checking_its_signatures_under_the_lock(watched):
    service, b, watch = watched
    coins = many_coins(service.node, b)
    watch.reset()
    pay = b.spend(coins, [(INPUTS * COIN_AMOUNT - 50_000, MINER_KEY.pubkey_hash)])
    block = b.block("good", txs=[pay])
    outcome = service.submit_block(block, requested=False)
    assert outcome.status == "accepted"
    assert service.node.tip.hash == block.hash
    # One check of the one tx, outside the lock; connecting the block found it in the signature cache.
    assert watch.checks == [("service", True)]


def test_status_never_waits_for_the_lock(funded):
    node, b = funded
    service = NodeService(node)
    fresh = service.status()
    assert fresh["height"] == node.height
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with service.lock:
            held.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=10)
        answers = []
        reader = threading.Thread(target=lambda: answers.append(service.status()))
        reader.start()
        reader.join(timeout=2)
        assert answers == [fresh]  # the last state taken, at once, while the lock is busy
    finally:
        release.set()
        holder.join()
    service.submit_block(b.block("next"), requested=False)
    assert service.status()["height"] == fresh["height"] + 1  # every change refreshes it
