"""Benchmark: an address of 112,001 coins and a 12,000-tx pool, read by 16 clients while blocks arrive (issue 21).

Before: GET /address of the dust flood's victim answered 14.4 MB in 1.9-3.3 s under the node lock, and every
/address read looked up each input of every pool tx in SQLite under it; with 16 readers on one IP a block push
took 2.4-3.9 s (7-14 ms idle). Now a page of coins is read on a read-only connection outside the lock, and the
pool is indexed by address.

Goals: the victim's first page (GET /address, 1,000 coins) p50 <= 100 ms with the node otherwise idle; block push
p99 <= 100 ms while 16 clients read addresses (tests/framework/addrload.py).

    python bench/bench_address.py            # 12,000 pool txs, 112,001 victim coins, 30 pushes
    python bench/bench_address.py --quick    # 2,000 pool txs, 20,000 coins, 10 pushes, for the smoke test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import Run, load_average, stop_on_sigterm  # first: it puts the repository on sys.path

from tests.framework import addrload
from tests.framework.fakepeer import call
from tests.framework.nodes import running_node, wait_until

GOAL_FIRST_PAGE_SECONDS = 0.100
GOAL_PUSH_P99_SECONDS = 0.100
READERS = 16
FIRST_PAGE_SAMPLES = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller pool and address, fewer pushes")
    args = parser.parse_args(argv)
    pool, coins, pushes = (2_000, 20_000, 10) if args.quick else (12_000, 112_001, 30)
    run = Run()
    print(f"bench_address: {coins:,} coins at one address, {pool:,} pool txs, {READERS} readers, {pushes} pushes")
    print(f"   load average (1 min): {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-address-") as tmp:
        prepared = addrload.prepare(Path(tmp) / "node", pool_txs=pool, victim_coins=coins, pushes=pushes)
        victim = "/address/" + addrload.address(addrload.VICTIM)
        with running_node(prepared.data_dir) as node:
            wait_until(lambda: node.status()["mempool"] == pool, timeout=600, what="the pool loaded")
            first = []
            for _ in range(FIRST_PAGE_SAMPLES):
                started = time.perf_counter()
                status, page = call(node.address, "GET", victim)
                first.append(time.perf_counter() - started)
                assert status == 200, (status, page)
            loaded = addrload.measure(node.address, prepared, readers=READERS)
    p50_first = statistics.median(first)
    percentile = addrload.Result.percentile
    print("1. the victim's first page, node otherwise idle")
    print(
        f"   GET /address: n={len(first)}  p50 {p50_first * 1e3:.1f} ms  max {max(first) * 1e3:.1f} ms"
        f"  ({len(page['utxos']):,} of {page['utxo_count']:,} coins, {len(str(page)):,} bytes)"
    )
    print(f"2. block pushes while {READERS} clients read addresses")
    print(
        f"   pushes: n={len(loaded.pushes)}  p50 {percentile(loaded.pushes, 50) * 1e3:.1f} ms"
        f"  p99 {percentile(loaded.pushes, 99) * 1e3:.1f} ms  max {max(loaded.pushes) * 1e3:.1f} ms"
    )
    print(
        f"   reads:  n={len(loaded.reads)}  p50 {percentile(loaded.reads, 50) * 1e3:.1f} ms"
        f"  p99 {percentile(loaded.reads, 99) * 1e3:.1f} ms  largest answer {loaded.largest:,} bytes"
        f"  codes {dict(loaded.codes)}"
    )
    print("SUMMARY")
    ok_first = p50_first <= GOAL_FIRST_PAGE_SECONDS
    print(
        f"   first page p50 {p50_first * 1e3:.1f} ms  goal <= {GOAL_FIRST_PAGE_SECONDS * 1e3:.0f} ms"
        f"  {run.judge('first page p50', ok_first)}"
    )
    p99 = percentile(loaded.pushes, 99)
    ok_push = p99 <= GOAL_PUSH_P99_SECONDS
    print(
        f"   block push p99 under {READERS} readers {p99 * 1e3:.1f} ms  goal <= {GOAL_PUSH_P99_SECONDS * 1e3:.0f} ms"
        f"  {run.judge('block push p99', ok_push)}"
    )
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
