"""SimpleCoin mining benchmark: the nonce loop's speed per core, and how the mining processes scale.

Run from the repository root:

    python bench/bench_mining.py           # the full run (about a minute and a half)
    python bench/bench_mining.py --quick   # a smoke run with short windows (a few seconds; figures are rough)

What is measured, and why:

1. Hash rate per worker. A mining process spends all its time in `simplecoin.node.worker.scan`, a pure-Python
   SHA-256d loop, so its speed is what one core mines at. The honest yardstick is the simplest loop one
   would write with hashlib, defined below as `reference_scan`: the SHA-256 state after the header's first
   64 bytes (the midstate) is copied for every nonce, the 12 remaining bytes and the nonce are hashed, the
   digest is hashed again, and the byte-reversed digest is compared with the big-endian target. Both loops
   scan the same header prefix, in this one process, for the same fixed number of nonces, with target = 1,
   which no hash meets, so both scan the whole range. The measurements are interleaved in pairs, the order
   alternating (reference, scan, scan, reference, ...), each scan a short one (about 0.1 s), 60 pairs: on a
   shared machine the rate of one loop swings by 2x within a second, and two scans next to each other see
   about the same load, while a few long scans do not (5 interleaved 2.5 s scans each once put at 0.92 a
   ratio that 60 short pairs put at 0.98). The figure is the median of the pairs' ratios (the median rates
   are printed too). Goal: scan >= 95 % of the reference's rate.

2. Scaling. Mining uses one process per core. With the real `simplecoin.node.worker.run` in
   `multiprocessing.Process`es (nice 0 here), each fed a real `Work` cut by `make_work` from a MAIN-network
   template of `Node.block_template`, the total hash rate of 1 process is compared with that of 2. The
   rate is what the processes themselves report (`HashReport`s), summed over a fixed window after a
   warm-up. A job keeps the MAIN bits, so a process finds a block about every 2^20 hashes: every
   `Solution` is checked (the solved block's header hash must meet its target) and answered with fresh work
   (a new template, a new job id), as a server would. 1 and 2 processes are measured alternately, and the
   figure is the ratio of the medians. Goal: 2 processes >= 1.9x of 1 process. Only meaningful with 2
   cores otherwise idle: anything else running on the machine takes its share from the 2-process figure.
   So the CPU time that the rest of the machine used during the windows is measured too (from /proc, on
   Linux) and printed in cores: near 0 means the figure is clean.

Timed figures use time.perf_counter; the processes time themselves with time.monotonic.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import Pipe, Process
from multiprocessing.connection import Connection, wait
from pathlib import Path

from common import (  # first: it puts the repository on sys.path
    Run,
    cpu_ticks,
    open_node,
    stop_on_sigterm,
    stop_processes,
    verdict,
)

from simplecoin.core.mining import (
    EXTRANONCE_SIZE,
    HashReport,
    Solution,
    Work,
    block_from_solution,
    make_work,
)
from simplecoin.core.params import MAIN
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import Block
from simplecoin.node.node import Node
from simplecoin.node.worker import run, scan

GOAL_SCAN_VS_REFERENCE = 0.95
GOAL_SCALING = 1.9
BUSY_MACHINE_CORES = 0.2  # CPU used by other processes during the windows above which the scaling is suspect
UNREACHABLE_TARGET = 1  # no SHA-256d hash is <= 1 in practice: a scan with it tries every nonce of its range
PAY_TO = hashlib.sha256(b"bench_mining").digest()[:20]


@dataclass(frozen=True)
class Settings:
    scan_seconds: float  # how long one timed scan should last (nonce count calibrated to it)
    scan_pairs: int  # timed (reference, scan) pairs
    warmup: float  # seconds of worker reports thrown away after the processes start
    window: float  # seconds of worker reports summed
    rounds: int  # measurements of 1 and of 2 processes each, alternately


FULL = Settings(scan_seconds=0.1, scan_pairs=60, warmup=1.0, window=5.0, rounds=3)
QUICK = Settings(scan_seconds=0.05, scan_pairs=6, warmup=0.5, window=2.2, rounds=1)


# -- 1. hash rate per worker ------------------------------------------------------------------------------------


def reference_scan(prefix: bytes, target: int, start: int, count: int) -> int | None:
    """The simplest honest nonce loop: hashlib, a midstate copy per nonce, a byte comparison."""
    mid = hashlib.sha256(prefix[:64])
    tail = prefix[64:76]
    target_be = target.to_bytes(32, "big")
    pack = struct.Struct("<I").pack
    sha256 = hashlib.sha256
    for nonce in range(start, start + count):
        h = mid.copy()
        h.update(tail + pack(nonce))
        d = sha256(h.digest()).digest()
        if d[::-1] <= target_be:
            return nonce
    return None


def timed_rate(loop, prefix: bytes, count: int) -> float:
    """Hashes per second of one scan of `count` nonces that finds nothing."""
    started = time.perf_counter()
    found = loop(prefix, UNREACHABLE_TARGET, 0, count)
    elapsed = time.perf_counter() - started
    if found is not None:
        raise RuntimeError(f"{loop.__name__} met target {UNREACHABLE_TARGET} at nonce {found}")
    return count / elapsed


def bench_scan(prefix: bytes, settings: Settings) -> tuple[float, float, float, int]:
    """(median reference rate, median scan rate, median of the pairs' scan / reference, nonces per scan)."""
    probe = 20_000
    calibration = max(timed_rate(reference_scan, prefix, probe), timed_rate(scan, prefix, probe))
    count = max(probe, int(calibration * settings.scan_seconds))
    reference_rates, scan_rates = [], []
    for pair in range(settings.scan_pairs):
        if pair % 2 == 0:
            reference_rates.append(timed_rate(reference_scan, prefix, count))
            scan_rates.append(timed_rate(scan, prefix, count))
        else:
            scan_rates.append(timed_rate(scan, prefix, count))
            reference_rates.append(timed_rate(reference_scan, prefix, count))
    ratio = statistics.median(o / r for o, r in zip(scan_rates, reference_rates, strict=True))
    return statistics.median(reference_rates), statistics.median(scan_rates), ratio, count


# -- 2. scaling over processes ------------------------------------------------------------------------------------


class Jobs:
    """Mining jobs cut from MAIN templates, as a server would hand them out; every job a new template."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.templates: dict[int, Block] = {}
        self.solutions = 0

    def new(self, worker: int) -> Work:
        job_id = len(self.templates) + 1
        self.node.clock = lambda: MAIN.genesis_time + 60 + job_id  # a new time: a new header for every job
        template = self.node.block_template(PAY_TO, bytes(EXTRANONCE_SIZE))
        self.templates[job_id] = template
        return make_work(template, job_id, worker)

    def check(self, solution: Solution) -> None:
        """The solved block must really meet its target (a wrong solution would be a wasted block)."""
        block = block_from_solution(self.templates[solution.job_id], solution)
        if int.from_bytes(block.header.hash(), "little") > bits_to_target(block.header.bits):
            raise RuntimeError(f"a worker sent a solution that does not meet the target: {solution}")
        self.solutions += 1


def stop_workers(workers: list[tuple[Process, Connection]]) -> None:
    """Ask every process to stop, wait for it, and terminate (then kill) any that does not: none is left."""
    for _, conn in workers:
        try:
            conn.send(None)
        except (BrokenPipeError, EOFError, OSError):
            pass
    stop_processes([process for process, _ in workers])
    for _, conn in workers:
        conn.close()


def measure_workers(jobs: Jobs, n: int, warmup: float, window: float) -> tuple[float, float | None]:
    """Total hashes per second of `n` mining processes, from their own reports over `window` after `warmup`,
    and how many cores the rest of the machine kept busy meanwhile (None if that cannot be measured)."""
    workers: list[tuple[Process, Connection]] = []
    try:
        for worker in range(n):
            parent_conn, child_conn = Pipe()
            process = Process(target=run, args=(child_conn, 0), daemon=True)
            process.start()
            child_conn.close()  # the parent keeps only its end, so a dead process shows up as EOF
            workers.append((process, parent_conn))
            parent_conn.send(jobs.new(worker))
        worker_of = {conn: worker for worker, (_, conn) in enumerate(workers)}
        hashes = [0] * n
        seconds = [0.0] * n
        ours = [os.getpid()] + [process.pid for process, _ in workers]
        started = time.perf_counter()
        window_start, window_end = started + warmup, started + warmup + window
        ticks_start: tuple[int, int] | None = None
        while (now := time.perf_counter()) < window_end:
            if now >= window_start and ticks_start is None:
                ticks_start, measured_from = cpu_ticks(ours), now
            deadline = window_start if ticks_start is None else window_end
            for conn in wait(list(worker_of), timeout=max(0.0, deadline - now)):
                worker = worker_of[conn]
                message = conn.recv()  # EOFError if a process died: the benchmark fails loudly
                if isinstance(message, Solution):
                    jobs.check(message)
                    conn.send(jobs.new(worker))
                elif isinstance(message, HashReport) and time.perf_counter() >= window_start:
                    hashes[worker] += message.hashes
                    seconds[worker] += message.seconds
        ticks_end, measured_to = cpu_ticks(ours), time.perf_counter()
        if not all(seconds):
            raise RuntimeError(f"a mining process sent no report within the {window} s window")
        rate = sum(h / s for h, s in zip(hashes, seconds, strict=True))
        if ticks_start is None or ticks_end is None:
            return rate, None
        others = (ticks_end[0] - ticks_start[0]) - (ticks_end[1] - ticks_start[1])
        return rate, max(0.0, others / os.sysconf("SC_CLK_TCK") / (measured_to - measured_from))
    finally:
        stop_workers(workers)


@dataclass(frozen=True)
class Scaling:
    one: float  # median total hashes per second with 1 process
    two: float  # and with 2
    others: float | None  # median cores the rest of the machine kept busy during the 2-process windows
    solutions: int  # found and checked


def bench_scaling(settings: Settings) -> Scaling:
    with tempfile.TemporaryDirectory(prefix="bench_mining_") as tmp:
        node = open_node(Path(tmp) / "chain.db", MAIN)
        try:
            jobs = Jobs(node)
            one, two, others = [], [], []
            for _ in range(settings.rounds):
                one.append(measure_workers(jobs, 1, settings.warmup, settings.window)[0])
                rate, busy = measure_workers(jobs, 2, settings.warmup, settings.window)
                two.append(rate)
                if busy is not None:
                    others.append(busy)
            busy_median = statistics.median(others) if others else None
            return Scaling(statistics.median(one), statistics.median(two), busy_median, jobs.solutions)
        finally:
            node.close()


# -- report ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows: a smoke run, rough figures")
    settings = QUICK if parser.parse_args(argv).quick else FULL
    run = Run()

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(f"machine: {cores} cores (os.cpu_count()), {usable} usable by this process")
    if hasattr(os, "getloadavg"):
        print(f"load average before the run: {os.getloadavg()[0]:.2f} (1 min)")
    print("note: the scaling figure is only meaningful with the cores otherwise idle")
    print(f"python {sys.version.split()[0]}, settings: {settings}")
    print()

    # A real MAIN header prefix: the genesis block's 76 bytes before the nonce.
    prefix = MAIN.genesis_block.header.serialize()[:76]
    print(
        f"1. hash rate per worker (one process, target = {UNREACHABLE_TARGET}, "
        f"{settings.scan_pairs} interleaved pairs of scans, medians)"
    )
    reference_rate, scan_rate, scan_ratio, count = bench_scan(prefix, settings)
    print(f"   nonces per timed scan: {count:,}")
    print(f"   reference loop (hashlib, midstate copy, byte comparison): {reference_rate:>12,.0f} H/s")
    print(f"   simplecoin.node.worker.scan:                                   {scan_rate:>12,.0f} H/s")
    scan_ok = scan_ratio >= GOAL_SCAN_VS_REFERENCE
    goal = f"goal >= {GOAL_SCAN_VS_REFERENCE:.2f}"
    print(f"   scan / reference (median of the pairs' ratios): {scan_ratio:.3f}  {goal}  {verdict(scan_ok)}")
    print()

    print(
        f"2. scaling (worker.run processes, MAIN work, {settings.warmup:g} s warm-up, {settings.window:g} s window, "
        f"median of {settings.rounds})"
    )
    result = bench_scaling(settings)
    scaling = result.two / result.one
    print(f"   1 worker process total:   {result.one:>12,.0f} H/s")
    print(f"   2 worker processes total: {result.two:>12,.0f} H/s")
    print(f"   solutions found and checked (answered with fresh work): {result.solutions}")
    others = "not measurable here" if result.others is None else f"{result.others:.2f} cores"
    print(f"   CPU used by the rest of the machine during the 2-process windows: {others} (0 = clean figure)")
    if result.others is not None and result.others > BUSY_MACHINE_CORES:
        print("   WARNING: the machine was not idle: the 2-process figure, and so the scaling, is understated")
        run.busy(f"the rest of the machine used {result.others:.2f} cores during the 2-process windows")
    scaling_ok = scaling >= GOAL_SCALING
    print(f"   scaling = 2 workers / 1 worker: {scaling:.2f}x  goal >= {GOAL_SCALING:.1f}x  {verdict(scaling_ok)}")
    print()

    rows = [
        ("scan / reference rate per core", f"{scan_ratio:.3f}", f">= {GOAL_SCAN_VS_REFERENCE:.2f}", scan_ok),
        ("2 workers / 1 worker total rate", f"{scaling:.2f}x", f">= {GOAL_SCALING:.1f}x", scaling_ok),
    ]
    print("SUMMARY")
    print(f"   {'goal':<34} {'measured':>9} {'target':>9}  verdict")
    for name, measured, target, ok in rows:
        print(f"   {name:<34} {measured:>9} {target:>9}  {run.judge(name, ok)}")
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
