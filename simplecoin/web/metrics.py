"""GET /metrics: the node in Prometheus's text format, written by prometheus_client (docs/api.md lists each metric).

Each app has its own `CollectorRegistry` (tests start several apps in one process). What is a state (height, pool,
peers, sync) is read at scrape time by `NodeCollector`; what is an event is counted where it happens: blocks,
reorgs, rejects and waits for the node lock by the service (`simplecoin.node.metrics`), requests here. A scrape never
takes the node lock: it reads what the last change left (`NodeService.last_status`) and the peer table under the
table's own lock, so a node busy connecting a block still answers.

Requests are labelled by their URL rule (`/block/<block_hash>`), never by the path a client chose: the labels stay
bounded however many paths are asked for. Only the operator's machine may read the metrics (`Inbound.from_operator`,
the rule of POST /peers) unless `metrics_public: true` is configured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from simplecoin.node.p2p.inbound import Inbound
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.p2p.table import PeerFigures
from simplecoin.node.service import NodeService
from simplecoin.web.api import ApiError

UNMATCHED = "unmatched"  # the endpoint label of a request no URL rule matched (a 404, whatever its path)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})  # any other: "other"
NO_PEERS = PeerFigures(inbound=0, outbound=0, manual=0, banned=0, best_height=-1)  # a node without a peer layer
# An API answer takes a millisecond or so; a page of a big block or a sync's batch of blocks, up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeCollector(Collector):
    """The node's state at scrape time, and the service's counters; reads nothing that needs the node lock."""

    def __init__(self, service: NodeService, peers: PeerManager | None) -> None:
        self.service = service
        self.peers = peers

    def collect(self) -> Iterator[Metric]:
        status, (min_relay, rolling_min) = self.service.last_status()
        info = InfoMetricFamily("simplecoin_node", "The chain this node follows")
        info.add_metric([], {"network": status["network"], "genesis": status["genesis"]})
        yield info
        height = status["height"]
        gauges = (
            ("simplecoin_height", "Height of the active chain's tip", height),
            # Prometheus values are float64: chain work keeps its first 53 bits, enough to graph and compare.
            ("simplecoin_chain_work", "Cumulative work of the active chain", status["chain_work"]),
            ("simplecoin_mempool_transactions", "Transactions in the mempool", status["mempool"]),
            ("simplecoin_mempool_bytes", "Bytes of the mempool's transactions", status["mempool_bytes"]),
            (
                "simplecoin_mempool_min_fee_rate",
                "Fee rate a transaction must pay to enter the mempool, base units per byte (relay or rolling minimum)",
                max(min_relay, rolling_min),
            ),
            ("simplecoin_orphan_blocks", "Blocks waiting for their parent", status["orphans"]),
            ("simplecoin_hashrate", "Hashes per second of this node's mining processes", self.service.hashrate),
            ("simplecoin_write_faults", "Files the node cannot write (/status faults)", len(self.service.faults())),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value)
        yield from self._peers(height)
        yield from self.service.metrics.collect()

    def _peers(self, height: int) -> Iterator[Metric]:
        figures = self.peers.table.figures() if self.peers is not None else NO_PEERS
        peers = GaugeMetricFamily("simplecoin_peers", "Connected peers by direction", labels=["direction"])
        for direction in ("inbound", "outbound", "manual"):
            peers.add_metric([direction], getattr(figures, direction))
        yield peers
        yield GaugeMetricFamily("simplecoin_banned", "Peer identities banned now", figures.banned)
        best = figures.best_height
        yield GaugeMetricFamily(
            "simplecoin_peers_best_height", "Best height a connected peer claimed (a hint; -1: no peer)", best
        )
        # What the sync aims at is a peer's claim: progress is our height against the best claimed, 1 when ahead.
        yield GaugeMetricFamily(
            "simplecoin_sync_progress_ratio",
            "Our height over the best height a connected peer claimed (1: caught up, or no peer)",
            height / best if best > height else 1.0,
        )


class RequestMetrics:
    """HTTP requests counted, and their latency, by URL rule and answer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "simplecoin_http_requests",
            "HTTP requests answered, by URL rule, method and status",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "simplecoin_http_request_duration_seconds",
            "Time to answer an HTTP request (until its body is ready), by URL rule",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method if method in METHODS else "other", str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)


def install_metrics(app: Flask, service: NodeService, peers: PeerManager | None, public: bool) -> RequestMetrics:
    """Serve GET /metrics from `app` and time its requests; return what counts requests (for the /status fast path).

    `public`: serve anyone (config `metrics_public`); otherwise only the operator's machine, others get 403.
    """
    registry = CollectorRegistry()
    registry.register(NodeCollector(service, peers))
    ProcessCollector(registry=registry)  # CPU seconds, resident memory, open files of the server process
    counted = RequestMetrics(registry)

    @app.before_request
    def start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            counted.observe(rule, request.method, response.status_code, time.perf_counter() - started)
        return response

    def metrics() -> Response:
        if not public and not Inbound(service, peers).from_operator(request.remote_addr or ""):
            raise ApiError(403, "metrics are served to the node's machine only (config: metrics_public)", "local-only")
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    return counted
