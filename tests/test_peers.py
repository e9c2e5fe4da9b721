"""Peers in one process: two nodes' APIs on loopback threads, and a peer manager between them."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, jsonify

from simplecoin.core.params import MAIN, REGTEST
from simplecoin.node import addrman
from simplecoin.node.addrman import BadAddress, PeerAddress, parse_address
from simplecoin.node.node import Node
from simplecoin.node.p2p import bans, relay
from simplecoin.node.p2p.client import Misbehaving, PeerError
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.p2p.table import MAX_INBOUND
from simplecoin.node.p2p.txrequest import TX_REQUEST_TIMEOUT
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
            assert not a.first_sighting(block.hash)  # remembered: it will not be relayed a second time
        finally:
            manager.stop()


def test_a_peer_on_another_network_is_refused_with_a_log_line(two_services, caplog):
    _, b = two_services
    fake = Flask("main-node")

    @fake.post("/p2p/hello")
    def hello():
        return jsonify(network="main", genesis=MAIN.genesis_hash_hex, height=5, tip="00" * 32, chain_work="99")

    with serving(fake) as url, caplog.at_level(logging.WARNING, logger="simplecoin.node.p2p.manager"):
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
        b, "http://127.0.0.1:1", (f"127.0.0.1:{free_port()}",), clock=lambda: clock[0], progress=False
    )
    peer = next(iter(manager.peers.values()))
    client = manager.new_client()
    for _ in range(2):
        with pytest.raises(PeerError):
            manager._visit(client, peer)
        manager.failed(peer, PeerError("down"))
    assert peer.failures == 2
    assert peer.next_try == clock[0] + 4.0  # 2^failures seconds
    assert not peer.connected
    assert b.tip().height == 0


def test_a_hello_resets_no_backoff_earned_by_failing(two_services):
    """Issue 21, row 7: a peer whose claimed work was false said hello every 0.5 s, and each hello made it due at
    once (120 header batches in 30 s instead of 8). A hello, an inv or an orphan block now call a peer back early only
    while it has no failure to its name; the backoff also outlives the peer's entry (dropped, then back)."""
    _, b = two_services
    clock = [1000.0]
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False, clock=lambda: clock[0])
    hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": 5000}
    address = PeerAddress("127.66.0.1", 5000)
    assert manager.hello_from("127.66.0.1", hello)
    peer = manager.peers[address]
    assert peer in manager.table.due()  # a new inbound peer is called back at once (that verifies its address)
    for _ in range(4):
        peer.connected = True  # it answered our hello, then its headers did not bear out its claim
        manager.failed(peer, PeerError("claimed more work than its headers show"))
    assert peer.next_try == clock[0] + 16.0
    for _ in range(60):
        manager.hello_from("127.66.0.1", hello)
    manager.table.due_now("127.66.0.1")  # it pushed a block whose parent we lack
    assert peer.next_try == clock[0] + 16.0
    assert peer not in manager.table.due()
    with manager.lock:
        manager.table.drop(peer)  # e.g. evicted: its next hello makes a new entry, with the old backoff
    manager.hello_from("127.66.0.1", hello)
    again = manager.peers[address]
    assert (again.failures, again.next_try) == (4, clock[0] + 16.0)
    clock[0] += 16.0
    assert again in manager.table.due()


def test_a_hello_calls_back_a_peer_that_was_only_unreachable(two_services):
    """A failure to answer our hello is not earned: the peer's own hello shows it is up again (a restart)."""
    _, b = two_services
    clock = [1000.0]
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False, clock=lambda: clock[0])
    hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": 5000}
    peer = manager.table.hello_from("127.5.0.1", hello)
    for _ in range(6):
        manager.failed(peer, PeerError("cannot reach 127.5.0.1:5000: ConnectionError"))
    assert peer.next_try == clock[0] + 64.0
    manager.hello_from("127.5.0.1", hello)
    assert peer in manager.table.due()
    assert peer.failures == 6  # reset only by a visit that succeeds


def test_a_tx_asked_of_one_announcer_that_does_not_send_it_is_asked_of_the_next(two_services):
    """Issue 21, row 8, with a fake clock: the first announcer is asked in the answer to its inv and never sends;
    after the timeout the next announcer's sender asks it (GET /tx/<txid>); a stranger's announcement waits 2 s."""
    _, b = two_services
    clock = [1000.0]
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False, clock=lambda: clock[0])
    first, second = (manager.peers[manager.add(f"127.{i}.0.1:5000")] for i in (5, 6))
    hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": 5000}
    stranger = manager.table.hello_from("127.66.0.1", hello)
    for peer in (first, second, stranger):
        peer.connected = True
    builder = ChainBuilder(REGTEST)
    for block in builder.chain([f"m{i}" for i in range(1, REGTEST.coinbase_maturity + 2)]):
        b.submit_block(block)
    tx = builder.spend("m1")
    txid = tx.txid
    assert manager.relay.wanted([], [txid], stranger) == {"blocks": [], "txs": []}  # not before 2 s
    assert manager.relay.wanted([], [txid], first) == {"blocks": [], "txs": [txid]}
    assert manager.relay.wanted([], [txid], second) == {"blocks": [], "txs": []}  # one request in flight
    clock[0] += TX_REQUEST_TIMEOUT - 1
    manager.relay.ask_due()
    assert not second.sender.fetches
    clock[0] += 1
    manager.relay.ask_due()
    assert list(second.sender.fetches) == [txid]  # an outbound peer before the stranger
    assert not stranger.sender.fetches
    b.submit_block(builder.block("t", txs=[tx]))  # a block brought it: no one is asked for it any more
    assert len(manager.relay.txrequests) == 0


def test_an_inbound_peer_that_brought_a_tx_before_is_asked_without_the_strangers_delay(two_services):
    """Issue 21, row 8: "outbound and previously good peers first". An inbound peer whose tx we took before is
    asked at once, like an outbound one; a stranger who never brought one waits NONPREF_PEER_TX_DELAY."""
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False, clock=lambda: 1000.0)
    hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": 5000}
    good, stranger = (manager.table.hello_from(f"127.{i}.0.1", hello) for i in (67, 68))
    builder = ChainBuilder(REGTEST)
    for block in builder.chain([f"m{i}" for i in range(1, REGTEST.coinbase_maturity + 3)]):
        b.submit_block(block)
    earlier, later = builder.spend("m1"), builder.spend("m2")
    b.submit_tx(earlier, source=manager.table.ban_key(good))  # what the peers page counts as brought by it
    assert good.txs_sent == 1
    assert manager.relay.wanted([], [later.txid], stranger) == {"blocks": [], "txs": []}  # waits 2 s
    assert manager.relay.wanted([], [later.txid], good) == {"blocks": [], "txs": [later.txid]}


def test_a_tx_asked_for_must_be_the_one_asked_for(two_services):
    _, b = two_services
    builder = ChainBuilder(REGTEST)
    for block in builder.chain([f"m{i}" for i in range(1, REGTEST.coinbase_maturity + 2)]):
        b.submit_block(block)
    tx = builder.spend("m1")
    fake = Flask("announcer")

    @fake.get("/tx/<txid>")
    def one_tx(txid):
        return jsonify(hex=tx.serialize().hex())

    with serving(fake) as url:
        manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
        peer = manager.peers[manager.add(url)]
        with pytest.raises(Misbehaving, match="other than the one asked for"):
            manager.relay.fetch_txs(manager.new_client(), peer, [bytes([9]) * 32])
        manager.relay.fetch_txs(manager.new_client(), peer, [tx.txid])
    assert tx.txid in b.node.mempool


def test_ban_score_bans_and_refuses(two_services):
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    manager.misbehaved("127.0.9.9", "sent junk", score=50)
    assert not manager.is_banned("127.0.9.9")
    manager.misbehaved("127.0.9.9", "sent junk", score=50)
    assert manager.is_banned("127.0.9.9")
    # The ban is on the IP: every spelling of an address there, and every port, is refused.
    for spelling in ("127.0.9.9:5000", "http://127.0.9.9:5000", "HTTP://127.0.9.9:5000/", "127.0.9.9:09999"):
        assert manager.is_banned(spelling), spelling
        with pytest.raises(BadAddress):
            manager.add(spelling)


def test_ipv6_bans_cover_the_whole_slash_64(two_services):
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    manager.misbehaved(manager.identity_of_request("2001:db8:1:2::7", ""), "sent junk")
    assert manager.is_banned("[2001:db8:1:2:ffff::1]:5000")
    assert not manager.is_banned("[2001:db8:1:3::7]:5000")


@pytest.mark.parametrize(
    "text",
    [
        "http://127.0.0.1:9999/x",  # a path
        "127.0.0.1:9999/p2p/hello?x=1",  # a path and a query
        "http://user@127.0.0.1:9999",  # user info
        "https://127.0.0.1:9999",
        "ftp://127.0.0.1:2",
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "http://[::1",
        "",
        "0.0.0.0:5000",
    ],
)
def test_a_peer_is_host_port_and_nothing_more(text):
    with pytest.raises(BadAddress):
        parse_address(text, allow_names=True)


def test_learned_addresses_must_be_ip_literals():
    assert parse_address("HTTP://127.0.0.1:09999/") == PeerAddress("127.0.0.1", 9999)
    assert parse_address("[::ffff:127.0.0.1]:5") == PeerAddress("127.0.0.1", 5)
    for name in ("localhost:5000", "127.1:5000", "evil.example:80"):
        with pytest.raises(BadAddress):
            parse_address(name)
    assert parse_address("node.example:5000", allow_names=True) == PeerAddress("node.example", 5000)


def test_localhost_is_the_loopback_address_so_one_node_is_one_peer(two_services):
    """`--peer localhost:5000` and the call back from 127.0.0.1:5000 are the same node: one entry, not two."""
    assert parse_address("localhost:5000", allow_names=True) == PeerAddress("127.0.0.1", 5000)
    assert parse_address("http://LocalHost:5001/", allow_names=True) == PeerAddress("127.0.0.1", 5001)
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    assert manager.add("localhost:5002") == manager.add("127.0.0.1:5002")
    assert list(manager.peers) == [PeerAddress("127.0.0.1", 5002)]


def test_one_source_flooding_addresses_fills_only_its_own_buckets():
    table = addrman.AddrMan()
    for i in range(5000):
        table.add(PeerAddress(f"10.{i // 250}.{i % 250}.1", 5000), "10.66.0.1")  # one source: 10.66/16
    flooded = len(table)
    assert flooded <= addrman.NEW_BUCKETS_PER_SOURCE_GROUP * addrman.BUCKET_SIZE
    honest = PeerAddress("198.51.100.7", 5000)
    assert table.add(honest, "198.51.100.7")
    assert table.find(honest) is not None
    assert len({network_group for network_group in table.new if table.new[network_group]}) <= (
        addrman.NEW_BUCKETS_PER_SOURCE_GROUP + 1
    )


def test_addresses_and_bans_survive_a_restart(two_services, tmp_path):
    _, b = two_services
    path = tmp_path / addrman.FILE_NAME
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False, path=path)
    manager.addrman.add(PeerAddress("127.3.0.1", 5000), "127.3.0.1")
    manager.addrman.good(PeerAddress("127.4.0.1", 5000))
    manager.misbehaved("127.9.0.1", "sent junk")
    manager.save()
    again = PeerManager(b, "http://127.0.0.1:1", progress=False, path=path)
    assert again.addrman.find(PeerAddress("127.3.0.1", 5000)) is not None
    assert again.addrman.find(PeerAddress("127.4.0.1", 5000)).tried
    assert again.is_banned("127.9.0.1")


def test_inbound_slots_evict_from_the_most_crowded_network_group(two_services):
    _, b = two_services
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex}
    assert manager.hello_from("127.5.0.1", {**hello, "port": 5000})  # honest, its own group
    for port in range(6000, 6000 + 3 * MAX_INBOUND):  # a flood from one IP
        manager.hello_from("127.66.0.1", {**hello, "port": port})
    inbound = [p for p in manager.describe() if p["inbound"]]
    assert len(inbound) == MAX_INBOUND
    assert any(p["address"] == "127.5.0.1:5000" for p in inbound)
    assert not manager.hello_from("127.66.0.1", {**hello, "port": "6000"})  # not a port number
    assert not manager.hello_from("127.66.0.1", {"network": "main", "port": 6000})


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


def test_junk_under_many_names_grows_no_table_past_its_bound(two_services, monkeypatch):
    """The issue's 500 junk blocks under distinct names made 532 peer entries; now scores are bounded, no peer."""
    _, b = two_services
    monkeypatch.setattr(bans, "MAX_SCORES", 50)
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    for i in range(500):
        manager.misbehaved(f"127.{i // 250 + 100}.{i % 250}.1", "sent junk", score=10)
    assert manager.describe() == []
    assert len(manager.scores.by_identity) == 50


def test_bounded_asks_bans_and_send_queue(two_services, monkeypatch):
    _, b = two_services
    monkeypatch.setattr(relay, "MAX_ASKED", 20)
    monkeypatch.setattr(addrman, "MAX_BANS", 20)
    manager = PeerManager(b, "http://127.0.0.1:1", progress=False)
    want = manager.inv_from([bytes([i]) * 32 for i in range(1, 60)], [])
    assert len(want["blocks"]) == 59  # all unknown, all wanted once
    assert manager.inv_from([bytes([59]) * 32], []) == {"blocks": [], "txs": []}  # asked already, within 10 s
    assert len(manager.asked) == 20
    for i in range(60):
        manager.bans.ban(f"127.{i + 1}.0.1", 3600)
    assert len(manager.bans.until) == 20
    address = manager.add("127.5.0.1:5000")
    sender = manager.peers[address].sender
    for i in range(relay.MAX_SEND_QUEUE + 10):
        sender.push("tx", i.to_bytes(32, "little"))
    assert len(sender.queue) == relay.MAX_SEND_QUEUE
    assert sender.queue[0][1] == (10).to_bytes(32, "little")  # the oldest went first
