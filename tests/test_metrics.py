"""GET /metrics: Prometheus's text format, read back with prometheus_client's own parser.

The chain: 13 mined blocks (the `funded` fixture), then the fork below, which the tests submit through the service:

    genesis - m1 - ... - m12 - m13
                             \\
                              f13 - f14     (more work: m13 goes off, a reorg of depth 1)
"""

from __future__ import annotations

import random
import threading

import pytest

from simplecoin.core.errors import ValidationError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node.config import ConfigError, build_config, read_config_file
from simplecoin.node.metrics import NodeMetrics
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.service import NodeService
from simplecoin.web.app import create_app
from tests.framework.builder import BOB
from tests.framework.client import metric_samples, metrics
from tests.framework.fakepeer import call
from tests.framework.lockload import lock_held_by_another_thread, waiting_for_the_lock
from tests.framework.nodes import REPO, running_node, wait_until

OWN_URL = "http://127.0.0.1:1"


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    """GET /metrics parsed: (sample name, sorted labels) -> value."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return metric_samples(response.get_data(as_text=True))


@pytest.fixture
def app_of(funded):
    node, builder = funded
    service = NodeService(node)
    peers = PeerManager(service, OWN_URL, progress=False)
    app = create_app(service, peers)
    return service, builder, app, app.test_client()


def test_the_figures_are_those_of_status(app_of):
    service, builder, _, client = app_of
    paid = builder.spend("m1")
    service.submit_tx(paid)
    got = scrape(client)
    status = client.get("/status").get_json()
    assert got[("simplecoin_height", ())] == status["height"] == 13
    assert got[("simplecoin_chain_work", ())] == float(int(status["chain_work"]))
    assert got[("simplecoin_mempool_transactions", ())] == status["mempool"] == 1
    assert got[("simplecoin_mempool_bytes", ())] == status["mempool_bytes"] == paid.size
    assert got[("simplecoin_mempool_min_fee_rate", ())] == service.fee_estimate().min_relay
    assert got[("simplecoin_peers", (("direction", "inbound"),))] == 0
    assert got[("simplecoin_peers", (("direction", "outbound"),))] == 0
    assert got[("simplecoin_banned", ())] == 0
    assert got[("simplecoin_sync_progress_ratio", ())] == 1.0
    assert got[("simplecoin_node_info", (("genesis", status["genesis"]), ("network", "regtest")))] == 1


def test_peers_by_direction_bans_and_sync_progress(app_of):
    """One peer added by hand and one that said hello, both connected; their hellos claimed heights 20 and 26."""
    _, _, app, client = app_of
    peers = app.extensions["simplecoin"].peers
    peers.add("127.66.0.1:5000")
    hello = {"network": REGTEST.name, "genesis": REGTEST.genesis_hash_hex, "port": 5000}
    assert peers.hello_from("127.66.0.2", hello)
    peers.hello_from("127.66.0.3", hello)  # never connected: not counted
    with peers.lock:  # what a successful handshake sets (manager._handshake)
        for peer, height in zip(list(peers.peers.values())[:2], (20, 26), strict=True):
            peer.connected, peer.height = True, height
    peers.misbehaved("127.66.0.9", "a test")
    got = scrape(client)
    assert got[("simplecoin_peers", (("direction", "manual"),))] == 1
    assert got[("simplecoin_peers", (("direction", "inbound"),))] == 1
    assert got[("simplecoin_peers", (("direction", "outbound"),))] == 0
    assert got[("simplecoin_banned", ())] == 1
    assert got[("simplecoin_peers_best_height", ())] == 26
    assert got[("simplecoin_sync_progress_ratio", ())] == pytest.approx(13 / 26)


def test_a_reorg_moves_the_reorg_counter_and_its_depth(app_of):
    service, builder, _, client = app_of
    before = scrape(client)
    assert before[("simplecoin_reorgs_total", ())] == 0
    for block in builder.chain(["f13", "f14"], parent="m12"):
        service.submit_block(block, requested=True)
    assert service.tip().hash == builder["f14"].hash
    after = scrape(client)
    assert after[("simplecoin_reorgs_total", ())] == 1
    assert after[("simplecoin_reorg_depth_blocks_count", ())] == 1
    assert after[("simplecoin_reorg_depth_blocks_sum", ())] == 1  # m13 went off
    assert after[("simplecoin_reorg_depth_blocks_bucket", (("le", "1.0"),))] == 1
    # f13 alone had the work of m13 (no reorg); f14 put both on
    connected = after[("simplecoin_blocks_connected_total", ())] - before[("simplecoin_blocks_connected_total", ())]
    assert connected == 2
    assert after[("simplecoin_height", ())] == 14


def test_rejects_are_counted_by_kind_and_reason(app_of):
    service, builder, _, client = app_of
    bad = builder.block("bad", parent="m13", coinbase_extra=1)
    with pytest.raises(ValidationError):
        service.submit_block(bad, requested=True)
    with pytest.raises(ValidationError):
        service.submit_block(bad, requested=True)  # known invalid now: another reason
    unsigned = builder.spend("m1", sign=False)
    with pytest.raises(ValidationError) as refused:
        service.submit_tx(unsigned)
    got = scrape(client)
    assert got[("simplecoin_rejects_total", (("kind", "block"), ("reason", "bad-cb-amount")))] == 1
    assert got[("simplecoin_rejects_total", (("kind", "block"), ("reason", "duplicate-invalid")))] == 1
    assert got[("simplecoin_rejects_total", (("kind", "tx"), ("reason", refused.value.reason)))] == 1


def test_a_block_found_invalid_while_reorganising_is_a_reject(app_of):
    """f13 spends a coin that does not exist; stored (it ties m13), it is checked only when f14 makes it the best.

    genesis - ... - m12 - m13
                       \
                        f13 (invalid) - f14
    """
    service, builder, _, client = app_of
    missing = builder.spend([OutPoint(b"\x01" * 32, 0)], [(1_000, BOB.pubkey_hash)])
    service.submit_block(builder.block("f13", parent="m12", txs=[missing]), requested=True)
    service.submit_block(builder.block("f14"), requested=True)
    assert service.tip().hash == builder["m13"].hash
    got = scrape(client)
    assert got[("simplecoin_rejects_total", (("kind", "block"), ("reason", "bad-txns-inputs-missingorspent")))] == 1
    assert got[("simplecoin_reorgs_total", ())] == 0


def test_other_machines_get_403_unless_configured(funded):
    node, _ = funded
    service = NodeService(node)
    private = create_app(service).test_client()
    stranger = {"REMOTE_ADDR": "192.0.2.7"}
    response = private.get("/metrics", environ_base=stranger)
    assert response.status_code == 403
    assert response.get_json()["reason"] == "local-only"
    for local in ("127.0.0.1", "::1"):
        assert private.get("/metrics", environ_base={"REMOTE_ADDR": local}).status_code == 200
    assert private.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.9"}).status_code == 403  # another node
    public = create_app(service, metrics_public=True).test_client()
    assert ("simplecoin_height", ()) in scrape(public, environ_base=stranger)


def test_requests_are_labelled_by_rule_so_random_paths_add_no_labels(app_of):
    _, builder, _, client = app_of
    rng = random.Random(20)
    for _ in range(1_000):
        client.get("/no/such/" + "".join(rng.choices("abcdefghij/", k=12)))
    for name in ("m1", "m2", "m3"):
        assert client.get(f"/block/{hash_hex(builder[name].hash)}").status_code == 200
    client.get("/block/" + "00" * 32)  # unknown block: 404, same rule
    client.get("/status")  # answered by the fast path, counted all the same
    got = scrape(client)
    endpoints = {dict(labels)["endpoint"] for (name, labels) in got if name == "simplecoin_http_requests_total"}
    assert endpoints == {"unmatched", "/block/<ref>", "/status"}
    requests = {labels: value for (name, labels), value in got.items() if name == "simplecoin_http_requests_total"}
    assert requests[(("endpoint", "unmatched"), ("method", "GET"), ("status", "404"))] == 1_000
    rule = (("endpoint", "/block/<ref>"), ("method", "GET"))
    assert requests[(*rule, ("status", "200"))] == 3
    assert requests[(*rule, ("status", "404"))] == 1
    assert got[("simplecoin_http_request_duration_seconds_count", (("endpoint", "/block/<ref>"),))] == 4
    assert got[("simplecoin_http_requests_total", (("endpoint", "/status"), ("method", "GET"), ("status", "200")))] == 1


def test_scraping_never_waits_for_the_node_lock(app_of):
    """While another thread holds the node lock, the scrape is answered all the same."""
    service, _, _, client = app_of
    with lock_held_by_another_thread(service):
        answers: list[dict] = []
        scraper = threading.Thread(target=lambda: answers.append(scrape(client)), daemon=True)
        scraper.start()
        scraper.join(timeout=10)
        assert not scraper.is_alive(), "GET /metrics waited for the node lock"
        assert answers[0][("simplecoin_height", ())] == 13


def test_waits_for_the_node_lock_are_timed(app_of):
    service, _, _, client = app_of
    with lock_held_by_another_thread(service) as release:
        before = scrape(client)
        waiter = threading.Thread(target=service.tip, daemon=True)  # takes the lock: waits for the holder
        waiter.start()
        wait_until(lambda: waiting_for_the_lock(waiter), timeout=10, what="the waiter to wait for the lock")
        release.set()
        waiter.join(timeout=10)
    after = scrape(client)
    waits = ("simplecoin_node_lock_wait_seconds_count", ())
    assert after[waits] == before[waits] + 1
    assert after[("simplecoin_node_lock_wait_seconds_sum", ())] > before[("simplecoin_node_lock_wait_seconds_sum", ())]
    acquisitions = ("simplecoin_node_lock_acquisitions_total", ())
    assert after[acquisitions] >= before[acquisitions] + 1  # the waiter's (the holder's was before)


def test_the_timed_lock_is_still_a_reentrant_lock():
    lock = NodeMetrics().lock
    with lock, lock:  # re-entrant: the service's methods call each other under it
        assert lock.acquisitions == 2
        outside: list[bool] = []

        def try_both_ways() -> None:
            outside.append(lock.acquire(blocking=False) or lock.acquire(timeout=0.01))

        other = threading.Thread(target=try_both_ways)
        other.start()
        other.join(timeout=10)
        assert outside == [False]  # neither a try nor a timed wait gets it from another thread
    assert lock.acquire(blocking=False)
    lock.release()
    assert lock.acquisitions == 3


def test_metrics_public_is_a_config_key_false_by_default():
    assert build_config({}, {}).metrics_public is False
    assert build_config(read_config_file(REPO / "config.yaml"), {}).metrics_public is False
    assert build_config({"metrics_public": True}, {}).metrics_public is True
    with pytest.raises(ConfigError, match="metrics_public must be true or false"):
        build_config({"metrics_public": "yes"}, {})


def test_a_running_node_serves_metrics_whose_height_is_that_of_status(tmp_path):
    """A real node whose config opens its metrics to other machines: a request from another address is served."""
    config = tmp_path / "node.yaml"
    config.write_text("metrics_public: true\n")
    with running_node(tmp_path / "a", mine=True, extra=("--config", str(config))) as node:
        wait_until(lambda: node.status()["height"] >= 2, timeout=60, what="two blocks mined")
        got = metrics(node)
        status = node.status()
        # Mining goes on between the two reads: the height of /metrics is never ahead of a later /status.
        assert 2 <= got[("simplecoin_height", ())] <= status["height"]
        assert got[("simplecoin_blocks_connected_total", ())] >= 2
        assert ("process_resident_memory_bytes", ()) in got
        assert call(node.address, "GET", "/metrics", source="127.0.0.9")[0] == 200  # another machine, as it were
