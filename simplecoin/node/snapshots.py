"""What GET /fee-estimate and the explorer's mempool page read: a snapshot of the pool, taken once per change.

Issue 21: both used to walk the whole pool under the node lock on every request (643 ms and 4.7 MB for the page
with 12,000 pending txs). Now the node lock is held only to copy the list of entries and read the estimator
(`Lookups.pool_figures`); sorting, totals and the next block's cut-off are computed here without it, once per
(tip, pool change), and every read until the next change is served from the same snapshot. Its size is bounded:
the page shows the `MAX_SHOWN` highest fee rates and the totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simplecoin.core.feeest import ConfirmedEstimate
from simplecoin.core.mempool import MempoolEntry

MAX_SHOWN = 500  # pending txs the explorer lists (highest fee rate first); the totals count them all

# (tip hash, the pool object's id, its `changes`): the pool is a new object after a reorg, its count starts again
SnapshotKey = tuple[bytes, int, int]


@dataclass(frozen=True)
class PoolFigures:
    """What is read under the node lock: O(1) but for a copy of the list of entries."""

    key: SnapshotKey
    entries: list[MempoolEntry]
    confirmed: ConfirmedEstimate  # what the node's own fee estimator says now
    blocks_rate: int  # median fee rate of the recent blocks (information only; a miner sets it)


@dataclass(frozen=True)
class MempoolSnapshot:
    """The pool at one (tip, change): totals, the top of it by fee rate, and what the fee estimate needs."""

    key: SnapshotKey
    count: int
    total_bytes: int
    total_fees: int
    top: tuple[MempoolEntry, ...]  # highest fee rate first, at most MAX_SHOWN
    next_block_rate: int  # per byte, one above the lowest the next block takes; 0 when the pool fits in a block
    confirmed: ConfirmedEstimate
    blocks_rate: int


@dataclass(frozen=True)
class FeeEstimate:
    """A fee rate (base units per byte) likely to be mined soon, and the figures it was taken from."""

    fee_rate: int
    min_relay: int  # the node's policy minimum
    mempool_min: int  # the rolling minimum after evictions, per byte rounded up (0: none)
    mempool: int  # the next block's cut-off when the pool holds more than a block (0: everything fits)
    blocks: int  # median fee rate of the recent blocks that had txs besides the coinbase; not used (a miner sets it)
    pending_bytes: int
    source: str  # "confirmed": the node's own confirmation statistics answered; "fallback": too little data
    target: int  # blocks the confirmed estimate is for
    samples: int  # confirmed transactions the node watched (decayed count)
    watching: int  # pending transactions the node is watching for their confirmation


def take(figures: PoolFigures, block_bytes: int) -> MempoolSnapshot:
    """The snapshot of `figures` (call without the node lock: this is O(n log n) in the pool's size)."""
    entries = sorted(figures.entries, key=lambda e: (-e.fee / e.tx.size, e.tx.txid))
    total_bytes = sum(e.tx.size for e in entries)
    next_block_rate = 0
    if total_bytes > block_bytes:
        # The next block's worth by fee rate alone (`Mempool.select` also weighs packages; under the lock and
        # O(n log n) in Python, it is too dear to run per change of the pool for an estimate).
        size = 0
        for entry in entries:
            if size + entry.tx.size > block_bytes:
                break
            size += entry.tx.size
            next_block_rate = math.ceil(entry.fee / entry.tx.size) + 1  # beat the cut-off
    return MempoolSnapshot(
        key=figures.key,
        count=len(entries),
        total_bytes=total_bytes,
        total_fees=sum(e.fee for e in entries),
        top=tuple(entries[:MAX_SHOWN]),
        next_block_rate=next_block_rate,
        confirmed=figures.confirmed,
        blocks_rate=figures.blocks_rate,
    )


def fee_estimate(snapshot: MempoolSnapshot, min_relay: int, rolling_min: int) -> FeeEstimate:
    """The estimate: the largest of the relay minimum, the rolling minimum, the next block's cut-off and, given
    enough data, the fee rate that confirmed within the target in what this node watched (docs/api.md)."""
    confirmed = snapshot.confirmed
    rate = max(min_relay, rolling_min, snapshot.next_block_rate, confirmed.fee_rate or 0)
    return FeeEstimate(
        fee_rate=rate,
        min_relay=min_relay,
        mempool_min=rolling_min,
        mempool=snapshot.next_block_rate,
        blocks=snapshot.blocks_rate,
        pending_bytes=snapshot.total_bytes,
        source="fallback" if confirmed.fee_rate is None else "confirmed",
        target=confirmed.target,
        samples=confirmed.samples,
        watching=confirmed.pending,
    )
