"""SimpleCoin fee-estimate and mempool-page benchmark: how long a read holds the node lock with a big pool.

Run from the repository root:

    python bench/bench_fee_snapshot.py           # 12,000 pending txs (issue 21's figure)
    python bench/bench_fee_snapshot.py --quick   # 2,000

What is measured, and why: issue 21 measured GET /explorer/mempool at 643 ms and 4.7 MB with 12,000 txs in the
pool, the node lock held for sorting them, and GET /fee-estimate walking the pool under it too. Both now read a
snapshot taken once per (tip, pool change): under the lock only a copy of the list of entries and the fee
estimator's answer (`Lookups.pool_figures`), the sorting and summing outside it (`snapshots.take`).

1. Under the lock, per change of the pool: `Lookups.pool_figures`. Goal: <= 5 ms at 12,000 txs.
   For reference, what the old reads did on every request: the page sorted the whole pool by exact fee rate
   (Fraction keys, outside the lock) and rendered every row; the estimate selected the next block's worth
   (`Mempool.select`, under the lock, once the pool held more than a block).
2. Outside the lock, once per change: `snapshots.take`.
3. The page: GET /explorer/mempool with a fresh snapshot and with a reused one, and its size. Goal: <= 500 KB.

The pool is filled through `Mempool.accept` with signatures skipped (not what is measured). Every timed figure is
the median of several repetitions (time.perf_counter).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from bench_mempool import NOW, AnyCoin, payment  # it imports common first, which puts the repository on sys.path
from common import Run, Samples, ms, stop_on_sigterm

from simplecoin.core.mining import COINBASE_RESERVE
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node import snapshots
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.web.app import create_app

LOCK_GOAL_MS = 5.0
PAGE_GOAL_BYTES = 500_000


def fill(node: Node, count: int, rng: random.Random) -> None:
    """`count` independent one-input payments paying 1 to 50 per byte, straight into the node's pool."""
    for i in range(count):
        tx = payment(OutPoint(i.to_bytes(32, "little"), 0), 100_000_000 - rng.randint(1, 50) * 180)
        entry = node.mempool.accept(tx, AnyCoin(), node.height + 1, 0, now=NOW, check_signatures=False)
        node.fee_estimator.track(tx.txid, entry.fee, tx.size, node.height)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 pending txs")
    args = parser.parse_args(argv)
    count, reps = (2_000, 3) if args.quick else (12_000, 7)
    run = Run()
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(Store(Path(tmp) / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
        service = NodeService(node)
        fill(node, count, random.Random(1))
        lookups = service.lookups
        max_block = REGTEST.max_block_size - COINBASE_RESERVE
        print(f"pool: {len(node.mempool):,} transactions, {node.mempool.total_bytes:,} bytes")

        print("1. under the node lock, per change of the pool (before: per request)")
        figures_s = Samples.of(lookups.pool_figures, reps).median
        print(f"   Lookups.pool_figures (now):                 {ms(figures_s)}")
        entries = list(node.mempool.entries.values())
        old_sort = Samples.of(lambda: sorted(entries, key=lambda e: (-Fraction(e.fee, e.tx.size), e.tx.txid)), reps)
        old_select = Samples.of(lambda: node.mempool.select(max_block), reps)
        print(f"   before: sort by Fraction (the page):        {ms(old_sort.median)}")
        print(f"   before: Mempool.select (under the lock):    {ms(old_select.median)}")

        print("2. outside the lock, once per change")
        figures = lookups.pool_figures()
        take_s = Samples.of(lambda: snapshots.take(figures, max_block), reps).median
        print(f"   snapshots.take:                             {ms(take_s)}")

        print("3. GET /explorer/mempool")
        client = create_app(service).test_client()
        page = client.get("/explorer/mempool").get_data()
        warm = Samples.of(lambda: client.get("/explorer/mempool"), reps).median

        def cold() -> None:
            service._snapshot = None  # as after a change of the pool
            client.get("/explorer/mempool")

        cold_s = Samples.of(cold, reps).median
        print(f"   with a new snapshot:                        {ms(cold_s)}")
        print(f"   from the same snapshot:                     {ms(warm)}")
        print(f"   page size:                                  {len(page):,} bytes ({snapshots.MAX_SHOWN} rows)")
        service.close()

    print("SUMMARY")
    lock = run.judge("node lock per change", figures_s * 1000 <= LOCK_GOAL_MS)
    print(f"   node lock per change <= {LOCK_GOAL_MS} ms: {ms(figures_s)}  {lock}")
    size = run.judge("page size", len(page) <= PAGE_GOAL_BYTES, timed=False)
    print(f"   page <= {PAGE_GOAL_BYTES:,} bytes: {len(page):,}  {size}")
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    raise SystemExit(main())
