"""The fee estimate from what this node saw: how many blocks the transactions in its own pool waited, by fee rate.

Bitcoin: policy/fees.cpp, `CBlockPolicyEstimator` behind `estimatesmartfee`. A transaction is tracked from when
it enters our mempool (at the tip's height then) until a block confirms it (it counts as confirmed within that
many blocks) or it leaves the pool unmined (it counts as a failure for every target it had waited past).
Transactions we never saw before their block are not counted: a miner who puts a self-paying 10,000-per-byte tx
in its own block never relayed it, so it says nothing about what a payment needs (issue 21).

Glossary:
- bucket: a range of fee rates; bounds grow by `BUCKET_SPACING` from the relay minimum up to `MAX_BUCKET_PER_KB`,
  one more bucket takes everything above (Bitcoin: buckets, FEE_SPACING).
- target: a number of blocks; the estimate for a target is the lowest fee rate at which at least
  `SUCCESS_THRESHOLD` of the transactions confirmed within it (Bitcoin: HALF/SUCCESS_PCT, 85 % for the target).
- decay: every block multiplies the counts by `DECAY`, so old evidence fades (Bitcoin: the decay of
  TxConfirmStats' moving averages).

Deliberate simplifications: one time horizon (Core keeps three), no "conservative" mode, the counts of pending
transactions by entry height in a ring of `MAX_CONFIRMS` like Core's unconfTxs. Blocks at or below the height
seen last (a reorg) are not counted; the node forgets what was pending after a reorg (`restart`). Fee rates are
in base units per 1,000 bytes inside, like Bitcoin's CFeeRate; counts are decayed floats, never money.
"""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from simplecoin.core.encoding import Reader, Writer
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import sha256d

MIN_BUCKET_PER_KB = 1_000  # the relay minimum, 1 per byte (Bitcoin: MIN_BUCKET_FEERATE)
MAX_BUCKET_PER_KB = 10_000_000  # 10,000 per byte; above it one last bucket (Bitcoin: MAX_BUCKET_FEERATE)
BUCKET_SPACING = 1.1  # each bucket's bound is 10 % above the one below (Bitcoin: FEE_SPACING, 5 %)
MAX_CONFIRMS = 12  # targets 1..12 blocks are tracked (Bitcoin: the short horizon's 12 blocks)
DECAY = 0.998  # per block: evidence halves in about 350 blocks (Bitcoin: DEFAULT_DECAY before 0.15)
# The decay is lazy: the counts are kept multiplied by a scale that grows by 1/DECAY a block (so a block costs
# O(1), not a multiplication of every count: 0.2 ms a block in Python, a third of an initial sync's time per
# block), and divided by it when read. Past this scale the counts are divided once and the scale starts again.
RESCALE_AT = 1e100
# Dividing by the scale leaves a float error of ~1e-13 (5 confirmations read 4.9999999999999): comparisons with a
# threshold and roundings allow this much.
EPSILON = 1e-9
SUCCESS_THRESHOLD = 0.85  # share confirmed within the target (Bitcoin: SUCCESS_PCT)
# A range of buckets is judged only once this many (decayed) confirmed transactions are in it; fewer is "too
# little data" (Bitcoin: SUFFICIENT_FEETXS, scaled there by the decay; ours is small so regtest nodes answer).
SUFFICIENT_TXS = 5.0
DEFAULT_TARGET = 2  # blocks: what "mined soon" means for GET /fee-estimate (Bitcoin: estimatesmartfee 1 -> 2)

# The statistics on disk across a restart (Bitcoin: fee_estimates.dat), integers little-endian:
#     magic (8) | version u32 | buckets u32 | MAX_CONFIRMS u32 | the counts, float64 each | sha256d of the rest (32)
STATS_MAGIC = b"SCFEEST\x00"
STATS_VERSION = 1

BucketCounts = list[float]


def _bucket_bounds() -> tuple[float, ...]:
    bounds = []
    bound = float(MIN_BUCKET_PER_KB)
    while bound <= MAX_BUCKET_PER_KB:
        bounds.append(bound)
        bound *= BUCKET_SPACING
    bounds.append(math.inf)
    return tuple(bounds)


BUCKET_BOUNDS = _bucket_bounds()  # upper bounds, fee per 1,000 bytes; a rate goes to the first bound >= it


@dataclass(frozen=True, slots=True)
class ConfirmedEstimate:
    """What the confirmations say for a target: the fee rate (per byte, rounded up) and the evidence behind it."""

    fee_rate: int | None  # None: too little data for any range of fee rates to pass
    target: int  # blocks
    samples: int  # confirmed transactions the node watched, decayed, rounded down
    pending: int  # transactions being watched in the pool now


class FeeEstimator:
    """Per fee-rate bucket: transactions confirmed within 1..MAX_CONFIRMS blocks, failures, and those pending."""

    def __init__(self, height: int) -> None:
        n = len(BUCKET_BOUNDS)
        self.height = height  # the height of the last block counted (or where counting starts)
        self.confirmed: list[BucketCounts] = [[0.0] * n for _ in range(MAX_CONFIRMS)]  # within t+1 blocks
        self.failed: list[BucketCounts] = [[0.0] * n for _ in range(MAX_CONFIRMS)]  # left after >= t+1 blocks
        self.total: BucketCounts = [0.0] * n  # confirmed, any number of blocks (Bitcoin: txCtAvg)
        self.rate_sum: BucketCounts = [0.0] * n  # fee per 1,000 bytes of those, summed (Bitcoin: m_feerate_avg)
        # Pending by entry height modulo MAX_CONFIRMS, and those older (Bitcoin: unconfTxs, oldUnconfTxs).
        self.pending: list[list[int]] = [[0] * n for _ in range(MAX_CONFIRMS)]
        self.old_pending: list[int] = [0] * n
        # txid -> (entry height, bucket, fee per 1,000 bytes). Bound: the node's pool; what left it is dropped by
        # `forget_missing`, which the node calls after each block and whenever this outgrows the pool.
        self.tracked: dict[bytes, tuple[int, int, float]] = {}
        self._scale = 1.0  # the stat rows hold each count times this (see RESCALE_AT)

    # -- what the node tells it ---------------------------------------------------------------------------------

    def track(self, txid: bytes, fee: int, size: int, height: int) -> None:
        """A transaction entered the pool while the tip was at `height` (Bitcoin: processTransaction)."""
        if txid in self.tracked:
            return
        height = min(height, self.height)
        per_kb = fee * 1000 / size
        bucket = bisect.bisect_left(BUCKET_BOUNDS, per_kb)
        self.tracked[txid] = (height, bucket, per_kb)
        self._pending_row(height)[bucket] += 1

    def block_connected(self, height: int, txids: Iterable[bytes]) -> None:
        """A block at `height` confirmed `txids`: count those we watched (Bitcoin: processBlock)."""
        if height <= self.height:
            return  # a reorg brought us back here: counted already, or never ours to count
        for h in range(self.height + 1, height + 1):  # entries from MAX_CONFIRMS blocks ago go to the old ones
            row = self.pending[h % MAX_CONFIRMS]
            for bucket, count in enumerate(row):
                self.old_pending[bucket] += count
                row[bucket] = 0
        self.height = height
        self._scale /= DECAY  # every count so far decays: new ones weigh 1/DECAY more than the last block's
        if self._scale > RESCALE_AT:
            self._rescale()
        weight = self._scale
        for txid in txids:
            item = self._untrack(txid)
            if item is None:
                continue
            entry_height, bucket, per_kb = item
            blocks = height - entry_height
            if blocks < 1:
                continue  # entered at this very height: Bitcoin skips these too
            for t in range(blocks - 1, MAX_CONFIRMS):
                self.confirmed[t][bucket] += weight
            self.total[bucket] += weight
            self.rate_sum[bucket] += per_kb * weight

    def forget_missing(self, in_pool: Callable[[bytes], bool]) -> None:
        """Stop watching what left the pool unmined (evicted, conflicted): a failure for each target it passed."""
        for txid in [t for t in self.tracked if not in_pool(t)]:
            item = self._untrack(txid)
            assert item is not None
            entry_height, bucket, _ = item
            for t in range(min(self.height - entry_height, MAX_CONFIRMS)):
                self.failed[t][bucket] += self._scale

    def restart(self, height: int) -> None:
        """After a reorg: forget what was pending (not failures) and count blocks from `height` on."""
        self.tracked.clear()
        for row in (*self.pending, self.old_pending):
            row[:] = [0] * len(row)
        self.height = height

    def _rescale(self) -> None:
        """Divide the stat rows by the scale, which starts again at 1 (the counts they stand for are unchanged)."""
        for counts in self._stat_rows():
            counts[:] = [count / self._scale for count in counts]
        self._scale = 1.0

    def _pending_row(self, entry_height: int) -> list[int]:
        if self.height - entry_height >= MAX_CONFIRMS:
            return self.old_pending
        return self.pending[entry_height % MAX_CONFIRMS]

    def _untrack(self, txid: bytes) -> tuple[int, int, float] | None:
        item = self.tracked.pop(txid, None)
        if item is not None:
            self._pending_row(item[0])[item[1]] -= 1
        return item

    # -- on disk ---------------------------------------------------------------------------------------------------

    def serialize_stats(self) -> bytes:
        """The decayed counts (not what is pending: the saved mempool is re-admitted, and tracked again, on start)."""
        self._rescale()
        rows = self._stat_rows()
        counts = [count for row in rows for count in row]
        w = Writer().raw(STATS_MAGIC).u32(STATS_VERSION).u32(len(BUCKET_BOUNDS)).u32(MAX_CONFIRMS)
        body = w.raw(struct.pack(f"<{len(counts)}d", *counts)).getvalue()
        return body + sha256d(body)

    def restore_stats(self, data: bytes) -> None:
        """Take the counts `serialize_stats` wrote; DecodeError (nothing changed) for anything else."""
        rows = len(self._stat_rows())
        n = len(BUCKET_BOUNDS)
        expected = len(STATS_MAGIC) + 12 + 8 * rows * n + 32
        if len(data) != expected:
            raise DecodeError(f"fee statistics of {len(data)} bytes, expected {expected}")
        body, checksum = data[:-32], data[-32:]
        if sha256d(body) != checksum:
            raise DecodeError("fee statistics with a bad checksum")
        r = Reader(body)
        if r.raw(len(STATS_MAGIC)) != STATS_MAGIC:
            raise DecodeError("not fee statistics (bad magic)")
        layout = (r.u32(), r.u32(), r.u32())
        if layout != (STATS_VERSION, n, MAX_CONFIRMS):
            raise DecodeError(
                f"fee statistics of version, buckets, targets {layout}; expected {STATS_VERSION, n, MAX_CONFIRMS}"
            )
        values = struct.unpack(f"<{rows * n}d", r.raw(8 * rows * n))
        r.end()
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise DecodeError("fee statistics with a negative or infinite count")
        for i, row in enumerate(self._stat_rows()):
            row[:] = values[i * n : (i + 1) * n]
        self._scale = 1.0

    def _stat_rows(self) -> list[BucketCounts]:
        return [*self.confirmed, *self.failed, self.total, self.rate_sum]

    # -- the answer ---------------------------------------------------------------------------------------------

    def estimate(self, target: int = DEFAULT_TARGET) -> ConfirmedEstimate:
        """The lowest fee rate at which >= 85 % confirmed within `target` blocks (Bitcoin: EstimateMedianVal).

        From the highest bucket down, buckets are gathered until the range holds SUFFICIENT_TXS confirmations;
        a range that passes is kept and a new one begins, one that fails takes in the buckets below it. The
        answer is the average fee rate of the median bucket of the lowest range that passed, so one rich
        transaction at the top cannot raise it.
        """
        if not 1 <= target <= MAX_CONFIRMS:
            raise ValueError(f"target {target} is not in 1..{MAX_CONFIRMS}")
        t = target - 1
        self._rescale()  # the counts as they are, so they add up with the pending ones (O(buckets): per answer)
        conf = fails = total = waiting = 0.0
        top = len(BUCKET_BOUNDS) - 1
        passed: tuple[int, int] | None = None
        for bucket in range(top, -1, -1):
            conf += self.confirmed[t][bucket]
            fails += self.failed[t][bucket]
            total += self.total[bucket]
            waiting += self.old_pending[bucket] + sum(
                self.pending[(self.height - age) % MAX_CONFIRMS][bucket] for age in range(target, MAX_CONFIRMS)
            )
            if total < SUFFICIENT_TXS - EPSILON:
                continue
            if conf / (total + fails + waiting) >= SUCCESS_THRESHOLD - EPSILON:
                passed = (bucket, top)
                conf = fails = total = waiting = 0.0
                top = bucket - 1
        samples = int(sum(self.total) + EPSILON)
        if passed is None:
            return ConfirmedEstimate(None, target, samples, len(self.tracked))
        low, high = passed
        half = sum(self.total[low : high + 1]) / 2
        seen = 0.0
        for bucket in range(low, high + 1):
            seen += self.total[bucket]
            if seen >= half and self.total[bucket] > 0:
                per_kb = self.rate_sum[bucket] / self.total[bucket]
                rate = math.ceil(per_kb / 1000 - EPSILON)  # 2.0000000000001 per byte is 2, not 3
                return ConfirmedEstimate(rate, target, samples, len(self.tracked))
        raise AssertionError("a range that passed holds confirmations")
