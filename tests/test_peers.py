"""Peers in one process: two nodes' APIs on loopback threads, and a peer manager between them."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, jsonify

from simplecoin.core.params import MAIN, REGTEST
from simplecoin.node.node import Node
from simplecoin.node.peers import MAX_PEERS, PeerManager
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder
from tests.framework.nodes import free_port, serving, wait_until


def make_service(tmp_path, name: str) -> NodeService:
    return NodeService(Node(Store(tmp_path / f"{name}.db", REGTEST), REGTEST, clock=lambda: NOW))


@pytest.fixture
def two_services(tmp_path):
    a, b = make_service(tmp_path, "a"), make_service(tmp_path, "b")
    yield a, b
    a.close()
    b.close()


def test_sync_from_a_peer_with_more_work(two_services):
    a, b = two_services
    builder = ChainBuilder(REGTEST)
    for block in builder.chain([f"b{i}" for i in range(1, 61)]):
        a.submit_block(block)
    with serving(create_app(a)) as url:
        manager = PeerManager(b, "http://127.0.0.1:1", (url,), progress=False)
        manager.start()
        try:
            wait_until(lambda: b.tip().hash == a.tip().hash, timeout=30, what="b to sync")
            assert manager.count() == 1
            assert manager.describe()[0]["height"] == 60
        finally:
            manager.stop()


def test_new_blocks_are_relayed_once(two_services):
    a, b = two_services
    builder = ChainBuilder(REGTEST)
    with serving(create_app(b)) as url_b:
        manager = PeerManager(a, "http://127.0.0.1:1", (url_b,), progress=False)
        manager.start()
        try:
            wait_until(lambda: manager.count() == 1, what="handshake")
            block = builder.block("b1")
            a.submit_block(block)
            wait_until(lambda: b.tip().hash == block.hash, what="relay of b1")
            assert a.seen(block.hash)  # remembered: it will not be relayed a second time
        finally:
            manager.stop()


def test_a_peer_on_another_network_is_refused_with_a_log_line(two_services, caplog):
    _, b = two_services
    fake = Flask("main-node")

    @fake.post("/p2p/hello")
    def hello():
        return jsonify(network="main", genesis=MAIN.genesis_hash_hex, height=5, tip="00" * 32, chain_work="99")

    with serving(fake) as url, caplog.at_level(logging.WARNING, logger="simplecoin.node.peers"):
        manager = PeerManager(b, "http://127.0.0.1:1", (url,), progress=False)
        manager.start()
        try:
            wait_until(lambda: manager.describe()[0]["refused"], what="the refusal")
        finally:
            manager.stop()
    assert manager.count() == 0
    assert any("refusing peer" in r.message and "main" in r.message for r in caplog.records)


def test_unreachable_peer_backs_off_and_the_node_carries_on(two_services):
    _, b = two_services
    clock = [1000.0]
    manager = PeerManager(
        b, "http://127.0.0.1:1", (f"http://127.0.0.1:{free_port()}",), clock=lambda: clock[0], progress=False
    )
    url = next(iter(manager.peers))
    manager._visit(url)
    manager._visit(url)
    peer = manager.peers[url]
    assert peer.failures == 2
    assert peer.next_try == clock[0] + 4.0  # 2^failures seconds
    assert not peer.connected
    assert b.tip().height == 0


def test_ban_score_bans_and_refuses(two_services):
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    manager.misbehaved("http://127.0.9.9:5000", "sent junk", score=50)
    assert not manager.is_banned("http://127.0.9.9:5000")
    manager.misbehaved("http://127.0.9.9:5000", "sent junk", score=50)
    assert manager.is_banned("http://127.0.9.9:5000")
    assert manager.add("http://127.0.9.9:5000") is False


def test_peer_list_is_bounded_and_rejects_nonsense(two_services):
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    assert manager.add("ftp://example") is False
    assert manager.add("http://127.0.0.1:1") is False  # ourselves
    for i in range(MAX_PEERS + 5):
        manager.add(f"http://127.0.1.{i}:5000")
    assert len(manager.peers) == MAX_PEERS


def test_transactions_back_from_a_reorg_are_relayed_again(two_services):
    """
    genesis - m1 ... m11 - t12              t12 mines p
                        \\
                         u12 - u13*          after the reorg p is pending again and announced anew
    """
    a, _ = two_services
    b = ChainBuilder(REGTEST)
    for block in b.chain([f"m{i}" for i in range(1, 12)]):
        a.submit_block(block)
    p = b.spend("m1")
    a.submit_tx(p)
    a.submit_block(b.block("t12", parent="m11", txs=[p]))
    events = []
    a.subscribe(events.append)
    a.submit_block(b.block("u12", parent="m11"))
    a.submit_block(b.block("u13", parent="u12"))
    assert [(e.kind, e.hash) for e in events if e.kind == "tx"] == [("tx", p.txid)]
    assert p.txid in a.node.mempool
