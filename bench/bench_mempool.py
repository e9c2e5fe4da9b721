"""SimpleCoin mempool benchmark: block template selection from a full pool of unconfirmed chains.

Run from the repository root:

    python bench/bench_mempool.py           # the full run: a pool at its default cap (50 MB of memory)
    python bench/bench_mempool.py --quick   # a smoke run: a pool capped at 5 MB of memory

What is measured, and why:

1. Template selection. A mining node builds a template every few seconds and `GET /status`-style reads
   share its lock, so selection must not grow faster than the pool. The pool is filled to its cap with
   1-in-1-out chains of 1 to 25 transactions whose fee rate rises from parent to child (the shape that made
   the old selection quadratic in the chain length), through `Mempool.accept` (signatures skipped: they
   are not what is measured). `Mempool.select` (ancestor-score selection) is timed for a 1 MB block.
   Goal: <= 200 ms on the full pool at its default cap.
   The old algorithm (passes over the "waiting" list by own fee rate until no parent is missing) is timed
   on the very same pool in the same run as the reference, with the fees each template collects.
2. The attack: a rising-fee chain longer than 25 is refused at the 26th (`too-long-mempool-chain`);
   before the limits an 8,000-long chain made one template take 25 s.
3. For scale: one long chain in a pool with the limits lifted, both selections timed once.

Every timed figure is the median of several repetitions, timed with time.perf_counter.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Sequence

from common import Run, Samples, stop_on_sigterm, verdict  # first: it puts the repository on sys.path

from simplecoin.core.coins import Coin
from simplecoin.core.errors import TxValidationError
from simplecoin.core.mempool import DEFAULT_MAX_MEMPOOL_USAGE, Mempool, MempoolEntry, MempoolPolicy
from simplecoin.core.mining import COINBASE_RESERVE
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint, Transaction, TxIn, TxOut
from tests.framework.builder import BOB

GOAL_MS = 200.0
NOW = REGTEST.genesis_time + 86_400
COIN_VALUE = 100_000_000
SIGNATURE = bytes(range(71))  # a typical DER signature's length; never checked here


class AnyCoin:
    """Every outpoint outside the pool is an unspent coin of Bob's: the pool alone is under test."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return Coin(COIN_VALUE, BOB.pubkey_hash, 1, False)


def payment(prevout: OutPoint, value: int) -> Transaction:
    return Transaction(1, (TxIn(prevout, BOB.pubkey, SIGNATURE),), (TxOut(value, BOB.pubkey_hash),))


def fill(pool: Mempool, rng: random.Random) -> tuple[int, int]:
    """Fill `pool` past its cap with rising-fee chains; return (transactions offered, refused)."""
    offered = refused = 0
    chain_no = 0
    while True:
        chain_no += 1
        length = rng.randint(1, 25)
        rate = rng.randint(1, 40)
        prevout, value = OutPoint(chain_no.to_bytes(32, "little"), 0), COIN_VALUE
        for _ in range(length):
            fee = rate * 180
            tx = payment(prevout, value - fee)
            offered += 1
            try:
                pool.accept(tx, AnyCoin(), 20, 0, now=NOW, check_signatures=False)
            except TxValidationError:
                refused += 1
                break
            prevout, value = OutPoint(tx.txid, 0), value - fee
            rate += rng.randint(1, 20)  # the child pays more per byte than its parent
        if refused > 200:  # the pool has been at its cap for a while: evictions and refusals both happened
            return offered, refused


def old_select(pool: Mempool, max_bytes: int) -> list[MempoolEntry]:
    """The selection before this change (own fee rate, passes until no parent is missing), for reference."""
    chosen: list[MempoolEntry] = []
    included: set[bytes] = set()
    waiting = sorted(pool.entries.values(), key=lambda e: e.fee_rate, reverse=True)
    size = 0
    progress = True
    while waiting and progress:
        progress = False
        later = []
        for entry in waiting:
            parents = {txin.prevout.txid for txin in entry.tx.inputs} & pool.entries.keys()
            if not parents <= included:
                later.append(entry)
                continue
            if size + entry.tx.size <= max_bytes:
                chosen.append(entry)
                included.add(entry.tx.txid)
                size += entry.tx.size
                progress = True
        waiting = later
    return chosen


def timed(fn: Callable[[], object], reps: int) -> tuple[float, float, object]:
    """Median wall-clock and median CPU seconds (this process) of `reps` calls, and the last result."""
    samples = Samples.of(fn, reps)
    return samples.median, samples.cpu_median, samples.last


def check_order(pool: Mempool, chosen: list[MempoolEntry]) -> None:
    seen: set[bytes] = set()
    for entry in chosen:
        missing = ({txin.prevout.txid for txin in entry.tx.inputs} & pool.entries.keys()) - seen
        assert not missing, "a child before its parent"
        seen.add(entry.tx.txid)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a pool capped at 5 MB of memory")
    args = parser.parse_args(argv)
    run = Run()
    max_usage = 5_000_000 if args.quick else DEFAULT_MAX_MEMPOOL_USAGE
    reps, old_reps = (3, 1) if args.quick else (7, 3)
    max_block = REGTEST.max_block_size - COINBASE_RESERVE

    print("1. template selection from a full pool of rising-fee 1-in-1-out chains (length 1..25)")
    pool = Mempool(REGTEST, MempoolPolicy(max_usage=max_usage))
    start = time.perf_counter()
    offered, refused = fill(pool, random.Random(1))
    fill_s = time.perf_counter() - start
    print(f"   pool cap (memory, entry_usage):        {max_usage:,} bytes")
    print(f"   pool: {len(pool):,} transactions, {pool.total_bytes:,} bytes serialized, usage {pool.usage:,} bytes")
    print(f"   filled in {fill_s:.1f} s ({offered:,} offered, {refused:,} refused at the cap)")
    print(f"   rolling minimum fee after filling:     {pool.min_fee_per_kb(NOW):,} per 1,000 bytes")
    load_before = os.getloadavg()[0]
    new_s, new_cpu, new = timed(lambda: pool.select(max_block), reps)
    old_s, old_cpu, old = timed(lambda: old_select(pool, max_block), old_reps)
    assert isinstance(new, list)
    assert isinstance(old, list)
    check_order(pool, new)
    check_order(pool, old)
    new_fees, old_fees = sum(e.fee for e in new), sum(e.fee for e in old)
    print(f"   load average (1 min) before timing:    {load_before:.2f} on {os.cpu_count()} cores")
    print(
        f"   Mempool.select (ancestor score):       {new_s * 1000:8.1f} ms wall, {new_cpu * 1000:6.1f} ms CPU"
        f"  {len(new):,} txs, fees {new_fees:,}"
    )
    print(
        f"   reference: the old selection:          {old_s * 1000:8.1f} ms wall, {old_cpu * 1000:6.1f} ms CPU"
        f"  {len(old):,} txs, fees {old_fees:,}"
    )
    print(f"   old / new time:                        {old_s / new_s:8.1f}x")
    # Judged on wall time when the machine has a core to spare, else on this process' CPU time (waiting for a
    # core shared with other jobs is not the algorithm's cost); both are printed either way.
    judged, basis = (new_s, "wall") if load_before < (os.cpu_count() or 1) - 0.5 else (new_cpu, "CPU, machine busy")
    ok_select = judged * 1000 <= GOAL_MS
    scope = "" if not args.quick else " (quick: a smaller pool; the goal is for the full run)"
    print(f"   goal <= {GOAL_MS:.0f} ms ({basis} time): {verdict(ok_select)}{scope}")

    print("2. the attack: one rising-fee chain, as long as it will go")
    attack = Mempool(REGTEST)
    prevout, value, accepted = OutPoint(bytes(32), 0), COIN_VALUE, 0
    reason = ""
    for i in range(100):
        tx = payment(prevout, value - 200 * (i + 1))
        try:
            attack.accept(tx, AnyCoin(), 20, 0, now=NOW, check_signatures=False)
        except TxValidationError as e:
            reason = f"{e.reason}: {e.detail}"
            break
        accepted += 1
        prevout, value = OutPoint(tx.txid, 0), value - 200 * (i + 1)
    print(f"   accepted {accepted}; the next was refused with {reason}")
    ok_attack = accepted == 25
    print(f"   goal: refused at the 26th: {verdict(ok_attack)}")

    chain_len = 300 if args.quick else 2_000
    print(f"3. for scale: one {chain_len:,}-long rising-fee chain in a pool with the package limits lifted")
    lifted = MempoolPolicy(
        ancestor_limit=10**6, descendant_limit=10**6, ancestor_size_limit=10**9, descendant_size_limit=10**9
    )
    long_pool = Mempool(REGTEST, lifted)
    prevout, value = OutPoint(bytes(32), 1), COIN_VALUE
    for i in range(chain_len):
        tx = payment(prevout, value - 200 - i)
        long_pool.accept(tx, AnyCoin(), 20, 0, now=NOW, check_signatures=False)
        prevout, value = OutPoint(tx.txid, 0), value - 200 - i
    long_new_s, _, _ = timed(lambda: long_pool.select(max_block), 1)
    long_old_s, _, _ = timed(lambda: old_select(long_pool, max_block), 1)
    print(f"   Mempool.select:                        {long_new_s * 1000:8.1f} ms")
    print(f"   reference: the old selection:          {long_old_s * 1000:8.1f} ms")
    print("   both are quadratic in a chain's length (each chosen tx updates all its descendants; the old loop")
    print("   made one pass per generation): the 25-transaction package limits are what bound them")

    print("SUMMARY")
    print(
        f"   template selection {new_s * 1000:.1f} ms wall / {new_cpu * 1000:.1f} ms CPU"
        f" (old {old_s * 1000:.1f} / {old_cpu * 1000:.1f} ms): {run.judge('template selection', ok_select)}"
    )
    print(f"   long chain refused at the 26th: {run.judge('long chain refused', ok_attack, timed=False)}")
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
