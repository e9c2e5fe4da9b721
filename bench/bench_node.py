"""SimpleCoin node benchmark: new work after a new tip, /status under load, and initial sync from a peer.

Run from the repository root:

    python bench/bench_node.py           # the full run (a few minutes)
    python bench/bench_node.py --quick   # a smoke run: short windows, a small chain, the Python load generator

What is measured, and why:

1. New tip -> every mining process on new work (`node_new_work.py`). Goal: <= 100 ms.
2. `GET /status` under 16 concurrent keep-alive connections while the node mines (`node_status.py`).
   Goals: >= 1,500 requests/s and p99 latency <= 50 ms.
3. Initial sync of a regtest chain from a peer (`node_sync.py`). Goal: libsecp256k1 >= 3x the ecdsa
   fallback's blocks per second, both from this run.
4. `POST /tx` acceptance from 4 clients (`node_post_tx.py`). Goal: libsecp256k1 >= 5x the ecdsa fallback's
   rate, both from this run, beside the same server's ceiling with an app that does nothing.

Each part's module docstring says how it is measured.
The 1-minute load average is printed before each measurement: other work on the machine slows everything.
Run one part with `--only N` (repeatable).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from common import (
    Run,
    stop_on_sigterm,
    verdict,
)  # first: it puts the repository on sys.path
from node_new_work import GOAL_NEW_WORK_MS, bench_new_work, report_new_work
from node_post_tx import GOAL_POST_TX_SPEEDUP, POST_CLIENTS, bench_post_tx
from node_status import CONNECTIONS, GOAL_STATUS_P99_MS, GOAL_STATUS_RPS, bench_status, choose_tool, report_status
from node_sync import GOAL_SYNC_SPEEDUP, bench_sync


@dataclass(frozen=True)
class Settings:
    workers: int  # mining processes in part 1
    tip_changes: int  # measured tip changes in part 1 (one more is the warm-up)
    warmup: float  # seconds of load before the measured window in part 2
    window: float  # seconds of measured load in part 2
    blocks: int  # chain length in part 3
    txs: int  # transactions in it
    payments: int  # POSTed in part 4, per backend


FULL = Settings(workers=2, tip_changes=10, warmup=2.0, window=10.0, blocks=2_000, txs=5_000, payments=2_000)
QUICK = Settings(workers=2, tip_changes=3, warmup=0.5, window=2.0, blocks=120, txs=200, payments=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, a small chain, Python load generator")
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator for /status (default: wrk if installed, Python with --quick)",
    )
    parser.add_argument(
        "--only", type=int, choices=(1, 2, 3, 4), action="append", help="run only this measurement (repeatable)"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    parts = set(args.only or (1, 2, 3, 4))
    run = Run()

    cores = os.cpu_count()
    print("SimpleCoin node benchmark" + (" (--quick: rough figures)" if args.quick else ""))
    print(f"machine: {cores} cores (os.cpu_count()); python {sys.version.split()[0]}; settings: {settings}")
    print()

    rows = []
    if 1 in parts:
        print(f"1. new tip -> all mining processes on new work (MiningPump, {settings.workers} worker.run processes)")
        new_work = bench_new_work(settings)
        new_work_ok = report_new_work(new_work)
        worst = max(new_work.latencies) * 1e3
        rows.append(
            (
                "new tip -> all workers on new work (max)",
                f"{worst:.1f} ms",
                f"<= {GOAL_NEW_WORK_MS:.0f} ms",
                new_work_ok,
            )
        )
        print()
    if 2 in parts:
        print(f"2. GET /status, {CONNECTIONS} concurrent connections, node mining on main (pause 0, {cores} processes)")
        status = bench_status(settings, choose_tool(args.load, args.quick))
        rps_ok, p99_ok = report_status(status)
        rows.append(
            ("GET /status throughput", f"{status.load.rps:,.0f} req/s", f">= {GOAL_STATUS_RPS:,.0f} req/s", rps_ok)
        )
        p99 = f"{status.load.p99 * 1e3:.1f} ms"
        rows.append(("GET /status p99 latency", p99, f"<= {GOAL_STATUS_P99_MS:.0f} ms", p99_ok))
        print()
    sync = None
    if 3 in parts:
        print(f"3. initial sync of a {settings.blocks:,}-block regtest chain with {settings.txs:,} transactions")
        sync = bench_sync(settings)
        sync_ok = sync.speedup >= GOAL_SYNC_SPEEDUP
        print(
            f"   in-process sync speed-up = libsecp256k1 / ecdsa fallback blocks per second: {sync.speedup:.1f} x  "
            f"goal >= {GOAL_SYNC_SPEEDUP:.0f} x  {verdict(sync_ok)}"
        )
        rows.append(
            (
                "initial sync speed-up, libsecp256k1/ecdsa",
                f"{sync.speedup:.1f} x",
                f">= {GOAL_SYNC_SPEEDUP:.0f} x",
                sync_ok,
            )
        )
        print()
    if 4 in parts:
        print(f"4. POST /tx of signed 1-in-2-out payments, {POST_CLIENTS} client processes, both signature backends")
        fast, slow, ceilings = bench_post_tx(settings)
        post_speedup = fast.rate / slow.rate
        needed = GOAL_POST_TX_SPEEDUP * slow.rate
        print(
            f"   {GOAL_POST_TX_SPEEDUP:.0f}x the ecdsa fallback would be {needed:,.0f} tx/s; the ceilings of this stack"
            f" in the same run: {ceilings[0].rate:,.0f} req/s (waitress alone), {ceilings[1].rate:,.0f} req/s"
            " (waitress + Flask)"
        )
        post_ok = post_speedup >= GOAL_POST_TX_SPEEDUP and fast.refused == 0 and slow.refused == 0
        print(
            f"   POST /tx speed-up = libsecp256k1 / ecdsa fallback: {post_speedup:.1f} x  "
            f"goal >= {GOAL_POST_TX_SPEEDUP:.0f} x  {verdict(post_ok)}"
        )
        rows.append(
            (
                "POST /tx speed-up, libsecp256k1/ecdsa",
                f"{post_speedup:.1f} x",
                f">= {GOAL_POST_TX_SPEEDUP:.0f} x",
                post_ok,
            )
        )
        print()

    print("SUMMARY")
    print(f"   {'goal':<42} {'measured':>13} {'target':>15}  verdict")
    for name, measured, target, ok in rows:
        print(f"   {name:<42} {measured:>13} {target:>15}  {run.judge(name, ok)}")
    if 4 in parts:
        print(
            f"   POST /tx: libsecp256k1 {fast.rate:,.0f} tx/s (load {fast.load}), "
            f"ecdsa fallback {slow.rate:,.0f} tx/s (load {slow.load})"
        )
    if sync is not None:
        print("   information, not goals:")
        print(
            f"   initial sync: {sync.blocks:,} blocks / {sync.txs:,} txs in {sync.wall_seconds:.1f} s "
            f"({sync.blocks / sync.wall_seconds:,.0f} blocks/s); signatures "
            f"{sync.inproc_signatures / sync.inproc_seconds:.0%} of an in-process sync"
        )
        print(
            f"   in-process sync: libsecp256k1 {sync.blocks / sync.inproc_seconds:,.0f} blocks/s, "
            f"ecdsa fallback {sync.blocks / sync.fallback_seconds:,.0f} blocks/s"
        )
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
