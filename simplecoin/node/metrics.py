"""What the node counts as it works, for GET /metrics: blocks connected, reorgs and their depth, rejects by reason,
and how long threads wait for the node lock.

`NodeService` counts at the events themselves; what is a state rather than an event (height, pool, peers) is read at
scrape time by `simplecoin.web.metrics`. Each metric here is a prometheus_client object outside any registry: every
web app's own registry collects them through `collect()`, so several apps in one process (tests) never clash over
the global registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from simplecoin.core.chain import ReorgResult

# Blocks a reorg took off the active chain. Bitcoin: a reorg deeper than a few blocks is an incident.
REORG_DEPTH_BUCKETS = (1, 2, 3, 6, 10, 20, 50, 100)
# A wait for the node lock: microseconds when a reader meets a reader, up to a block's connection under load.
LOCK_WAIT_BUCKETS = (0.000_1, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class TimedLock:
    """The node lock (re-entrant) that counts its acquisitions and times every wait for it.

    Uncontended, it costs one extra non-blocking try (no clock read): the count is kept while the lock is held, so
    it needs no lock of its own. Only a wait is timed and observed, in `waits`.
    """

    def __init__(self, waits: Histogram) -> None:
        self._lock = threading.RLock()
        self._waits = waits
        self.acquisitions = 0  # changed only by the thread holding the lock; read by anyone (an int: atomic)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._lock.acquire(blocking=False) and not (blocking and self._wait(timeout)):
            return False
        self.acquisitions += 1
        return True

    def _wait(self, timeout: float) -> bool:
        start = time.perf_counter()
        if not self._lock.acquire(timeout=timeout):
            return False
        self._waits.observe(time.perf_counter() - start)
        return True

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        # `acquire` inlined: this is what every `with service.lock:` costs
        if not self._lock.acquire(blocking=False):
            self._wait(-1)
        self.acquisitions += 1
        return True

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class NodeMetrics:
    """The node's counters; `collect()` yields them for a registry (`simplecoin.web.metrics`)."""

    def __init__(self) -> None:
        self.blocks_connected = Counter(
            "simplecoin_blocks_connected", "Blocks connected to the active chain (reorgs included)", registry=None
        )
        self.reorgs = Counter("simplecoin_reorgs", "Reorganisations: blocks taken off the active chain", registry=None)
        self.reorg_depth = Histogram(
            "simplecoin_reorg_depth_blocks",
            "Blocks each reorganisation took off the active chain",
            buckets=REORG_DEPTH_BUCKETS,
            registry=None,
        )
        # Reasons are the code's stable reject reasons (tests/test_rules.py lists them), so the labels are bounded.
        self.rejects = Counter(
            "simplecoin_rejects",
            "Blocks and transactions refused, by kind and reject reason",
            ["kind", "reason"],
            registry=None,
        )
        self.lock_waits = Histogram(
            "simplecoin_node_lock_wait_seconds",
            "Time a thread waited for the node lock, per wait (an acquisition that did not wait is not observed)",
            buckets=LOCK_WAIT_BUCKETS,
            registry=None,
        )
        self.lock = TimedLock(self.lock_waits)

    def chain_moved(self, reorg: ReorgResult) -> None:
        """Count what a change of the active chain did, and the blocks it found invalid on the way (rejects: not the
        one submitted, whose error was raised and counted by the service)."""
        for _, error in reorg.invalid:
            self.rejected("block", error.reason)
        if reorg.connected:
            self.blocks_connected.inc(len(reorg.connected))
        if reorg.disconnected:
            self.reorgs.inc()
            self.reorg_depth.observe(len(reorg.disconnected))

    def rejected(self, kind: str, reason: str) -> None:
        """Count a refused block or tx ("block" / "tx") by its reject reason."""
        self.rejects.labels(kind, reason).inc()

    def collect(self) -> Iterator[Metric]:
        for metric in (self.blocks_connected, self.reorgs, self.reorg_depth, self.rejects, self.lock_waits):
            yield from metric.collect()
        acquisitions = CounterMetricFamily(
            "simplecoin_node_lock_acquisitions", "Times a thread took the node lock (waiting or not)"
        )
        acquisitions.add_metric([], self.lock.acquisitions)
        yield acquisitions
