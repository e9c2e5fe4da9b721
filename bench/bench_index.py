"""The block index at scale: memory per block, load time from the store, and the cost of its walks.

Run from the repository root:

    python bench/bench_index.py                  # 1,000,000 blocks and 100,000
    python bench/bench_index.py --blocks 20000   # a quick run (20,000 and 2,000)

For each size, a synthetic regtest chain of `--blocks` headers on the genesis (plus a 100-block side branch
forking at half the height) is written straight into a store's block_index and active_chain tables, then:

- load: `node.load_index` (`BlockIndex.load` of the store's rows), as `Node.__init__` does. Goal <= 5 s at
  the larger size (the node's start goal: /status answering within 5 s at 1,000,000 blocks).
- bytes per block: what the loaded index and the active chain hold (tracemalloc, a second load). Goal <= 200
  (a ~300 MB server at 1,000,000 blocks, with Python and Flask's ~60 MB).
- locator, ancestor(tip, 1), next_bits (on aserti3-2d parameters: the anchor is found from the tip),
  median_time_past and find_fork (tip against the side branch's tip, forking half the chain below): each
  <= 1 ms, and at the larger size within 1.5x of the smaller (they must not grow with the chain).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sqlite3
import struct
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import common  # first: it puts the repository on sys.path

from simplecoin.core.chain import BlockIndex, BlockStatus
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.node.node import load_index
from simplecoin.node.store import Store

SIDE_BRANCH = 100
OP_GOAL = 1e-3  # seconds
GROWTH_GOAL = 1.5  # larger size / smaller size
LOAD_GOAL = 5.0
BYTES_GOAL = 200
# aserti3-2d on regtest's easy target: next_bits then finds the anchor from the tip, as on MAIN.
ASERT = REGTEST.replace(
    no_retargeting=False,
    asert_activation_height=MAIN.asert_activation_height,
    asert_half_life=MAIN.asert_half_life,
)


def header(prev: bytes, height: int, branch: int) -> bytes:
    genesis = REGTEST.genesis_block.header
    merkle = hashlib.sha256(b"%d/%d" % (branch, height)).digest()
    return struct.pack("<I32s32sIII", 1, prev, merkle, genesis.time + 600 * height, genesis.bits, branch)


def write_store(path: Path, blocks: int) -> None:
    """A store holding a synthetic chain of `blocks` on the genesis and a side branch at half its height."""
    Store(path, REGTEST).close()  # the schema, the meta rows and the genesis
    genesis = REGTEST.genesis_block
    rows, active = [], [(0, genesis.hash)]
    prev, seq, fork_hash = genesis.hash, 1, b""
    for height in range(1, blocks + 1):
        raw = header(prev, height, 0)
        prev = hashlib.sha256(hashlib.sha256(raw).digest()).digest()
        rows.append((prev, raw, height, int(BlockStatus.VALID), seq))
        active.append((height, prev))
        seq += 1
        if height == blocks // 2:
            fork_hash = prev
    prev = fork_hash
    for height in range(blocks // 2 + 1, blocks // 2 + 1 + SIDE_BRANCH):
        raw = header(prev, height, 1)
        prev = hashlib.sha256(hashlib.sha256(raw).digest()).digest()
        rows.append((prev, raw, height, int(BlockStatus.STORED), seq))
        seq += 1
    db = sqlite3.connect(path)  # straight into the tables: building a million blocks through Node takes hours
    with db:
        db.executemany("INSERT INTO block_index VALUES (?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO active_chain VALUES (?, ?)", active[1:])
    db.close()


def load(path: Path) -> tuple[BlockIndex, list[bytes]]:
    store = Store(path, REGTEST)
    try:
        index = BlockIndex(REGTEST, read_header=store.header)  # as the node's: whole headers stay in the store
        return index, load_index(index, store)
    finally:
        store.close()


def op_time(fn: Callable[[], object], reps: int = 200) -> float:
    gc.collect()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def measure(blocks: int, workdir: Path) -> dict[str, float]:
    path = workdir / f"index-{blocks}.db"
    started = time.perf_counter()
    write_store(path, blocks)
    print(
        f"\n{blocks:,} blocks (+{SIDE_BRANCH} on a side branch): store written in {time.perf_counter() - started:.1f} s"
    )
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    index, active = load(path)
    figures = {"load": time.perf_counter() - started, "load_cpu": time.process_time() - cpu}
    del index, active
    gc.collect()
    tracemalloc.start()
    index, active = load(path)
    gc.collect()
    figures["bytes"] = tracemalloc.get_traced_memory()[0] / (blocks + SIDE_BRANCH)
    tracemalloc.stop()
    tip = index[active[-1]]
    side_tip = index.best_candidate() if index.best_candidate().hash != tip.hash else None
    side = side_tip or next(index[h] for h in index.entries if index[h].status == BlockStatus.STORED)
    while index.children(side.hash):
        side = index[index.children(side.hash)[0]]
    figures["locator"] = op_time(lambda: index.locator(tip))
    figures["ancestor"] = op_time(lambda: index.ancestor(tip, 1))
    figures["median_time_past"] = op_time(lambda: index.median_time_past(tip))
    figures["find_fork"] = op_time(lambda: index.find_fork(tip, side))
    assert index.find_fork(tip, side).height == blocks // 2
    index.params = ASERT  # bench only: the rules' parameters swapped after the load (no block is checked again)
    figures["next_bits"] = op_time(lambda: index.next_bits(tip))
    for name, value in figures.items():
        shown = f"{value:.2f} s" if name.startswith("load") else f"{value:.0f}" if name == "bytes" else common.ms(value)
        print(f"   {name:18} {shown}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    args = parser.parse_args()
    run = common.Run()
    common.show_load("the run")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        small = measure(args.blocks // 10, Path(tmp))
        large = measure(args.blocks, Path(tmp))
    print()
    ok = large["load"] <= LOAD_GOAL
    print(
        f"load at {args.blocks:,}: {large['load']:.2f} s, {large['load_cpu']:.2f} s of CPU (goal <= {LOAD_GOAL} s)"
        f"  {run.judge('load', ok)}"
    )
    if large["load"] > 1.5 * large["load_cpu"]:
        run.busy(f"the load took {large['load']:.1f} s for {large['load_cpu']:.1f} s of CPU: other processes ran")
    ok = large["bytes"] <= BYTES_GOAL
    print(f"bytes per block: {large['bytes']:.0f} (goal <= {BYTES_GOAL})  {run.judge('bytes', ok, timed=False)}")
    for name in ("locator", "ancestor", "next_bits", "median_time_past", "find_fork"):
        ratio = large[name] / small[name]
        ok = large[name] <= OP_GOAL and ratio <= GROWTH_GOAL
        print(f"{name}: {common.ms(large[name])}, {ratio:.2f}x the smaller size's  {run.judge(name, ok)}")
    return run.finish()


if __name__ == "__main__":
    common.stop_on_sigterm()
    raise SystemExit(main())
