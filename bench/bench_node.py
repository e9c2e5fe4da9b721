"""SimpleCoin node benchmark: new work after a new tip, /status under load, and initial sync from a peer.

Run from the repository root:

    python bench/bench_node.py           # the full run (a few minutes)
    python bench/bench_node.py --quick   # a smoke run: short windows, a small chain, the Python load generator

What is measured, and why:

1. New tip -> every mining process on new work. Hashing on a stale tip is wasted work, so a node must hand
   its mining processes a job on the new tip quickly. Measured end to end in one process tree: a
   `NodeService` on a temporary MAIN store, the real `simplecoin.server.MiningPump` thread, and real
   `simplecoin.node.worker.run` processes (2 by default, nice 10 as in a node, started with the spawn context)
   hashing MAIN work. Each process runs `worker.run` on a proxy of its Pipe end whose `recv()` notes
   time.monotonic() whenever a `Work` arrives and reports it over a separate multiprocessing Queue
   (CLOCK_MONOTONIC is one clock for all processes on Linux). The proxy also raises the job's difficulty
   (bits 0x1c00ffff): the loop costs the same per hash (a MAIN target and this one both have a zero top
   byte, so the same hashes take the slow path), but no process ever solves a block, so the tip changes only
   when the benchmark says so. Tip changes are real MAIN blocks, pre-mined on the genesis with
   `worker.scan` (about 2^20 hashes each) before the processes start, submitted with
   `NodeService.submit_block` while the processes hash. Latency = max over the processes of (when it received
   its first Work on the new tip) - (just before submit_block). The first block is a warm-up.
   Goal: <= 100 ms (median and max are printed; the verdict is on the max).

2. `GET /status` under 16 concurrent keep-alive connections while the node mines: a real node
   (`miner.py --network main`, one mining process per core, mining pause 0, so the mining processes really
   hash all the time, at nice 10) is loaded from another process. `wrk` (Debian: `apt-get install wrk`) is
   used when it is installed: it is C and costs the 2-core machine little. Otherwise (and always with
   --quick) a Python asyncio load generator with 16 connections runs in this process; it needs a good
   share of a core itself, so it understates the server, and the output says so. The node's reported
   hash rate and the CPU used by its server and mining processes during the window are printed too.
   Goals: >= 1,500 requests/s and p99 latency <= 50 ms.

3. Initial sync. A regtest chain (2,000 blocks holding 5,000 signed transactions spending mature coinbases
   and the outputs of earlier transactions) is built with tests.framework.builder.ChainBuilder and stored into node
   A's data directory with `Node.submit_block` (an in-process replay with every check, timed, with the time
   inside `signature_problem` summed by a thin wrapper). Then real non-mining nodes run: A on that data,
   B empty with `--peer A`; the time until B's tip is A's is measured, and B's server CPU time. To see
   what share of a sync is signature checking, the same sync is run a second time in this process (a
   `NodeService` and `PeerManager` on a fresh store, syncing from A over HTTP) with the time inside
   `simplecoin.core.validation.signature_problem` summed the same way. That in-process sync is run once on
   each signature backend (`keys.use_verifier`: libsecp256k1, then the ecdsa fallback, a fresh store each).
   Goal: libsecp256k1 >= 3x the ecdsa fallback's blocks per second, both from this run.

4. `POST /tx` acceptance. A regtest store where MINER_KEY owns N confirmed outputs (fan-out transactions of
   500 outputs, mined and buried), and N signed 1-input 2-output payments spending them, made in advance.
   For each signature backend, a fresh copy of that store is served by a server process like a node's
   (`NodeService` + `create_app` + the guarded waitress server with the node's settings, spawned, with
   `keys.use_verifier(backend)`; no peers, no mining), and 4 client processes POST the payments (each its
   own quarter, one keep-alive connection each) as fast as the answers come. Rate = payments accepted /
   (start signal -> last answer); the server process' CPU per payment is printed too.
   The clients use `http.client`, not `requests`: on 2 cores they share the machine with the server, and
   `requests` cost them ~2 ms of CPU per POST, which capped even a server that does nothing at ~770/s.
   The same-run ceiling: the same waitress server and clients with an app that reads the body and answers
   a fixed JSON (no Flask, no node), and the same with a Flask app whose `/tx` only decodes the JSON and
   the hex: what any `POST /tx` costs on this stack before the node does anything.
   Goal: libsecp256k1 >= 5x the ecdsa fallback's rate, both from this run.

The 1-minute load average is printed before each measurement: other work on the machine slows everything.
Run one part with `--only N` (repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import http.client
import json
import logging
import multiprocessing
import os
import queue
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import requests
from common import (
    Run,
    cpu_seconds,
    load_average,
    nice_of,
    show_load,
    stop_processes,
    verdict,
)  # first: it puts the repository on sys.path

import simplecoin.core.validation
from simplecoin.core import keys
from simplecoin.core.mining import (
    COUNTER_NONCE_SIZE,
    EXTRANONCE_SIZE,
    Solution,
    Work,
    block_from_solution,
    make_work,
    work_header_prefix,
)
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import Block, OutPoint, Transaction
from simplecoin.node.node import Node
from simplecoin.node.peers import PeerManager
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.node.worker import NONCE_SPACE, run, scan
from simplecoin.server import (
    CLEANUP_SECONDS,
    IDLE_SECONDS,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_HEADER_BYTES,
    REQUEST_SECONDS,
    SERVER_THREADS,
    SWITCH_INTERVAL_SECONDS,
    MiningPump,
)
from simplecoin.web.app import MAX_BODY_BYTES, create_app
from simplecoin.web.limits import ConnectionRules, create_guarded_server
from tests.framework.builder import MINER_KEY, ChainBuilder
from tests.framework.nodes import NodeProcess, child_pids, free_port, running_node, wait_until

GOAL_NEW_WORK_MS = 100.0
GOAL_SYNC_SPEEDUP = 3.0  # in-process sync, libsecp256k1 vs the ecdsa fallback, blocks per second
GOAL_POST_TX_SPEEDUP = 5.0  # POST /tx acceptance, libsecp256k1 vs the ecdsa fallback
POST_CLIENTS = 4
FANOUT = 500  # outputs per fan-out transaction in part 4
GOAL_STATUS_RPS = 1_500.0
GOAL_STATUS_P99_MS = 50.0
CONNECTIONS = 16
WORKER_NICE = 10  # as in a node (worker.run's default)
UNREACHABLE_BITS = 0x1C00FFFF  # a 2^-40 target: never met, and as cheap to test per hash as MAIN's
PUMP_PAY_TO = hashlib.sha256(b"bench_node pump").digest()[:20]
PREMINE_PAY_TO = hashlib.sha256(b"bench_node premine").digest()[:20]
SYNC_FEE = 1_000


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


# -- small helpers ------------------------------------------------------------------------------------------------


# -- 1. new tip -> new work ---------------------------------------------------------------------------------------


class RecordingConnection:
    """A mining process' Pipe end as `worker.run` sees it: notes when each Work arrives, makes it unsolvable."""

    def __init__(self, conn: Connection, worker: int, records: multiprocessing.queues.Queue) -> None:
        self.conn = conn
        self.worker = worker
        self.records = records

    def poll(self, timeout: float = 0.0) -> bool:
        return self.conn.poll(timeout)

    def recv(self) -> object:
        message = self.conn.recv()
        if isinstance(message, Work):
            received = time.monotonic()
            self.records.put((self.worker, message.job_id, message.prev_hash, received))
            message = dataclasses.replace(message, bits=UNREACHABLE_BITS)
        return message

    def send(self, message: object) -> None:
        self.conn.send(message)


def recording_worker(conn: Connection, worker: int, records: multiprocessing.queues.Queue, nice: int) -> None:
    """A mining process' target: the real worker loop on a recording proxy of its Pipe end."""
    records.cancel_join_thread()  # never hang at exit on records nobody reads any more
    run(RecordingConnection(conn, worker, records), nice)  # type: ignore[arg-type]


def premine(path: Path, count: int) -> tuple[list[Block], float, int]:
    """`count` real MAIN blocks on the genesis, mined with worker.scan: (blocks, seconds, hashes)."""
    node = Node(Store(path, MAIN), MAIN)
    blocks, hashes = [], 0
    started = time.perf_counter()
    try:
        for job in range(1, count + 1):
            template = node.block_template(PREMINE_PAY_TO, bytes(EXTRANONCE_SIZE))
            work = make_work(template, job, 0)
            target = bits_to_target(work.bits)
            counter = 0
            while True:
                extranonce = work.worker_nonce + counter.to_bytes(COUNTER_NONCE_SIZE, "little")
                nonce = scan(work_header_prefix(work, extranonce), target, 0, NONCE_SPACE)
                if nonce is not None:
                    hashes += nonce + 1
                    break
                hashes += NONCE_SPACE
                counter += 1
            block = block_from_solution(template, Solution(job, extranonce, nonce))
            outcome = node.submit_block(block)
            if outcome.status != "accepted" or node.tip.hash != block.hash:
                raise RuntimeError(f"pre-mined block {job} was not accepted as the tip: {outcome}")
            blocks.append(block)
    finally:
        node.close()
    return blocks, time.perf_counter() - started, hashes


@dataclass(frozen=True)
class NewWorkResult:
    latencies: list[float]  # seconds, per measured tip change: the last process' first Work on the new tip
    first: list[float]  # the first process'
    submits: list[float]  # seconds inside NodeService.submit_block
    premine_seconds: float
    premine_hashes: int
    workers: int


def wait_for_work(records, seen: dict, tip: bytes, workers: int, timeout: float = 10.0) -> dict[int, float]:
    """Read Work records until every process has received one on `tip`; {worker: first receipt on tip}."""
    deadline = time.monotonic() + timeout
    while len(seen.get(tip, {})) < workers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"only {len(seen.get(tip, {}))} of {workers} mining processes got work on the tip")
        try:
            worker, _job, prev_hash, received = records.get(timeout=remaining)
        except queue.Empty as e:
            raise RuntimeError("no work reached the mining processes") from e
        seen.setdefault(prev_hash, {}).setdefault(worker, received)
    return seen[tip]


def bench_new_work(settings: Settings) -> NewWorkResult:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_node_pump_") as tmp:
        blocks, premine_seconds, premine_hashes = premine(Path(tmp) / "premine.db", settings.tip_changes + 1)
        print(
            f"   pre-mined {len(blocks)} MAIN blocks with worker.scan in {premine_seconds:.1f} s "
            f"({premine_hashes:,} hashes)"
        )
        node = Node(Store(Path(tmp) / "pump.db", MAIN), MAIN)
        service = NodeService(node)
        records = ctx.Queue()
        pipes = [ctx.Pipe() for _ in range(settings.workers)]
        processes = [
            ctx.Process(target=recording_worker, args=(theirs, i, records, WORKER_NICE), name=f"bench-miner-{i}")
            for i, (_, theirs) in enumerate(pipes)
        ]
        pump = MiningPump(service, [ours for ours, _ in pipes], PUMP_PAY_TO, pause=0.0)
        latencies, first, submits = [], [], []
        try:
            for process in processes:
                process.start()
            for _, theirs in pipes:
                theirs.close()
            pump.start()
            seen: dict[bytes, dict[int, float]] = {}
            wait_for_work(records, seen, MAIN.genesis_hash, settings.workers, timeout=60)
            time.sleep(1.0)  # the processes settle into their chunk sizes
            show_load("the tip changes")
            for i, block in enumerate(blocks):
                time.sleep(random.uniform(0.2, 0.5))  # a block arrives at any moment of a chunk
                t0 = time.monotonic()
                outcome = service.submit_block(block, source="bench")
                submitted = time.monotonic()
                if outcome.status != "accepted" or service.tip().hash != block.hash:
                    raise RuntimeError(f"block {i + 1} did not become the tip: {outcome}")
                got = wait_for_work(records, seen, block.hash, settings.workers)
                if i == 0:
                    continue  # warm-up
                latencies.append(max(got.values()) - t0)
                first.append(min(got.values()) - t0)
                submits.append(submitted - t0)
        finally:
            pump.stopping.set()  # the pump sends every process None (stop) as it ends
            pump.join(timeout=5)
            for ours, _ in pipes:
                with contextlib.suppress(OSError):
                    ours.send(None)
            stop_processes(processes)
            for ours, _ in pipes:
                ours.close()
            service.close()
    return NewWorkResult(latencies, first, submits, premine_seconds, premine_hashes, settings.workers)


def report_new_work(r: NewWorkResult) -> bool:
    ms = [x * 1e3 for x in r.latencies]
    print(f"   tip changes measured: {len(ms)} (after 1 warm-up), {r.workers} mining processes at nice {WORKER_NICE}")
    print(f"   NodeService.submit_block of the new block: median {statistics.median(r.submits) * 1e3:.1f} ms")
    print(f"   first process on new work: median {statistics.median(r.first) * 1e3:.1f} ms")
    print(
        f"   all processes on new work: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms"
        f"  (all: {', '.join(f'{x:.0f}' for x in ms)} ms)"
    )
    ok = max(ms) <= GOAL_NEW_WORK_MS
    print(
        f"   new tip -> all processes on new work, max: {max(ms):.1f} ms  goal <= {GOAL_NEW_WORK_MS:.0f} ms  "
        f"{verdict(ok)}"
    )
    return ok


# -- 2. GET /status under load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    errors: int  # non-200 answers, socket errors, timeouts
    load_cpu: float | None  # cores the load generator used during the window

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk_seconds(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"cannot read wrk's duration {text!r}")
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]


def wrk_load(url: str, warmup: float, window: float) -> LoadResult:
    threads = min(2, os.cpu_count() or 1)
    base = ["wrk", f"-t{threads}", f"-c{CONNECTIONS}", "--timeout", "5s", "--latency"]
    subprocess.run([*base, f"-d{max(1, round(warmup))}s", url], capture_output=True, check=True, timeout=60)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [*base, f"-d{max(1, round(window))}s", url], capture_output=True, text=True, check=True, timeout=window + 60
    ).stdout
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"(\d+) requests in ([0-9.]+\w+),", out)
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    if not (m and p50 and p99):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return LoadResult(
        f"wrk ({threads} threads, {CONNECTIONS} connections)",
        int(m.group(1)),
        wrk_seconds(m.group(2)),
        wrk_seconds(p50.group(1)),
        wrk_seconds(p99.group(1)),
        errors,
        cpu / elapsed,
    )


async def _status_client(host: str, port: int, measure_from: float, end: float, latencies: list, errors: list) -> None:
    request = f"GET /status HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (started := time.perf_counter()) < end:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            if m is None:
                raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
            await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout=5)
            done = time.perf_counter()
            if started >= measure_from:
                latencies.append(done - started)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors.append(head.split(b"\r\n", 1)[0])
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


def python_load(host: str, port: int, warmup: float, window: float) -> LoadResult:
    """16 keep-alive connections from one asyncio loop in this process; each sends its next request on an answer."""
    latencies: list[float] = []
    errors: list[bytes] = []

    async def main() -> None:
        start = time.perf_counter()
        measure_from, end = start + warmup, start + warmup + window
        clients = [_status_client(host, port, measure_from, end, latencies, errors) for _ in range(CONNECTIONS)]
        await asyncio.gather(*clients)

    cpu_before, wall_before = time.process_time(), time.perf_counter()
    asyncio.run(main())
    cpu = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
    latencies.sort()
    return LoadResult(
        f"Python asyncio load generator ({CONNECTIONS} connections, in the benchmark process)",
        len(latencies),
        window,
        latencies[len(latencies) // 2],
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        len(errors),
        cpu,
    )


@dataclass(frozen=True)
class StatusResult:
    load: LoadResult
    server_cpu: float | None  # cores
    miners_cpu: float | None  # cores, all mining processes together
    miners: int
    hashrate_before: float
    hashrate_after: float
    height_before: int
    height_after: int


def node_processes(node: NodeProcess) -> tuple[list[int], list[int]]:
    """(server pids, mining pids) of a running node: the mining processes are the children at nice 10."""
    assert node.process is not None
    children = child_pids(node.process.pid)
    miners = [pid for pid in children if nice_of(pid) == WORKER_NICE]
    return [pid for pid in children if pid not in miners], miners


def cores_used(pids: list[int], before: dict[int, float | None], seconds: float) -> float | None:
    total = 0.0
    for pid in pids:
        start, end = before.get(pid), cpu_seconds(pid)
        if start is None or end is None:
            return None
        total += end - start
    return total / seconds


def bench_status(settings: Settings, tool: str) -> StatusResult:
    workers = os.cpu_count() or 1
    with (
        tempfile.TemporaryDirectory(prefix="bench_node_status_") as tmp,
        running_node(Path(tmp) / "node", mine=True, workers=workers, pause=0.0, extra=("--network", "main")) as node,
    ):
        wait_until(lambda: node.status()["hashrate"] > 0, timeout=60, what="the node's mining processes to report")
        before = node.status()
        servers, miners = node_processes(node)
        show_load("the load")
        cpu_before = {pid: cpu_seconds(pid) for pid in servers + miners}
        started = time.perf_counter()
        if tool == "wrk":
            load = wrk_load(node.url + "/status", settings.warmup, settings.window)
        else:
            load = python_load("127.0.0.1", node.port, settings.warmup, settings.window)
        elapsed = time.perf_counter() - started
        after = node.status()
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"the node stopped during the load:\n{node.log()[-3000:]}")
        return StatusResult(
            load,
            cores_used(servers, cpu_before, elapsed),
            cores_used(miners, cpu_before, elapsed),
            len(miners),
            before["hashrate"],
            after["hashrate"],
            before["height"],
            after["height"],
        )


def report_status(r: StatusResult) -> tuple[bool, bool]:
    load = r.load
    print(f"   load generator: {load.tool}")
    if load.tool.startswith("Python"):
        print(
            "   note: the Python load generator shares this 2-core machine with the node and needs CPU of its own,"
            " so it understates what the server can do; install wrk for the real figure"
        )
    cpu = "not measurable" if load.load_cpu is None else f"{load.load_cpu:.2f} cores"
    print(f"   load generator CPU: {cpu}")
    print(f"   requests answered: {load.requests:,} in {load.seconds:.1f} s, errors: {load.errors}")
    server = "not measurable" if r.server_cpu is None else f"{r.server_cpu:.2f} cores"
    miners = "not measurable" if r.miners_cpu is None else f"{r.miners_cpu:.2f} cores"
    print(f"   node server process CPU during the load: {server}; {r.miners} mining processes: {miners}")
    print(
        f"   node hash rate (its /status) before / after the load: {r.hashrate_before:,.0f} / {r.hashrate_after:,.0f}"
        f" H/s; height {r.height_before} -> {r.height_after}"
    )
    print(f"   latency: p50 {load.p50 * 1e3:.1f} ms, p99 {load.p99 * 1e3:.1f} ms")
    rps_ok = load.rps >= GOAL_STATUS_RPS and load.errors == 0
    p99_ok = load.p99 * 1e3 <= GOAL_STATUS_P99_MS
    print(f"   throughput: {load.rps:,.0f} req/s  goal >= {GOAL_STATUS_RPS:,.0f} req/s  {verdict(rps_ok)}")
    print(f"   p99 latency: {load.p99 * 1e3:.1f} ms  goal <= {GOAL_STATUS_P99_MS:.0f} ms  {verdict(p99_ok)}")
    return rps_ok, p99_ok


# -- 3. initial sync ----------------------------------------------------------------------------------------------


class FastBuilder(ChainBuilder):
    """ChainBuilder with its transactions in a dict: it looks spent outputs up by scanning every block."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.txs: dict[bytes, Transaction] = {}

    def block(self, name: str, *args, **kwargs) -> Block:
        block = super().block(name, *args, **kwargs)
        for tx in block.txs:
            self.txs[tx.txid] = tx
        return block

    def _find_tx(self, txid: bytes) -> Transaction | None:
        return self.txs.get(txid) or self.loose.get(txid)


def build_chain(blocks: int, txs: int) -> tuple[list[Block], int]:
    """A regtest chain of `blocks` blocks after genesis holding `txs` signed transactions (all by MINER_KEY).

    From the first block with a mature coinbase on, every block spends the coinbase that just matured
    (into two outputs) and, oldest first, outputs of earlier transactions, so that the transactions are
    spread evenly over the blocks. Returns (blocks, transactions in them).
    """
    b = FastBuilder(REGTEST)
    maturity = REGTEST.coinbase_maturity
    pkh = MINER_KEY.pubkey_hash
    spendable: list[tuple[OutPoint, int]] = []  # confirmed outputs of earlier transactions, oldest first
    first_spending = maturity + 1
    spending_blocks = blocks - first_spending + 1
    made = 0
    chain: list[Block] = []
    for height in range(1, blocks + 1):
        block_txs: list[Transaction] = []
        if height >= first_spending:
            i = height - first_spending
            quota = (i + 1) * txs // spending_blocks - made  # catches up on what an earlier block could not
            sources: list[tuple[OutPoint, int]] = []
            if quota:
                coinbase = chain[height - maturity - 1].txs[0]
                sources.append((OutPoint(coinbase.txid, 0), coinbase.outputs[0].amount))
            while len(sources) < quota and spendable:
                sources.append(spendable.pop(0))
            new_outputs = []
            for prevout, amount in sources:
                value = amount - SYNC_FEE
                outputs = [(value // 2, pkh), (value - value // 2, pkh)] if value >= 4 * SYNC_FEE else [(value, pkh)]
                tx = b.spend(prevout, outputs)
                block_txs.append(tx)
                new_outputs += [(OutPoint(tx.txid, n), amount) for n, (amount, _) in enumerate(outputs)]
            spendable += [o for o in new_outputs if o[1] > SYNC_FEE]
            made += len(block_txs)
        chain.append(b.block(f"s{height}", txs=block_txs))
    return chain, made


class SignatureTimer:
    """Sums the time spent in simplecoin.core.validation.signature_problem (the python-ecdsa checks) while active."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        original = simplecoin.core.validation.signature_problem

        def timed(*args):
            started = time.perf_counter()
            try:
                return original(*args)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        simplecoin.core.validation.signature_problem = timed
        try:
            yield
        finally:
            simplecoin.core.validation.signature_problem = original


@dataclass(frozen=True)
class SyncResult:
    blocks: int
    txs: int
    build_seconds: float
    replay_seconds: float  # in-process Node.submit_block of the whole chain
    replay_signatures: float  # of which inside signature_problem
    signature_checks: int
    wall_seconds: float  # launching B -> B's tip is A's
    up_seconds: float  # launching B -> B answers /status
    progress_seconds: float  # first block seen on B -> done
    progress_blocks: int
    b_cpu: float | None  # B's server process, CPU seconds over the whole run
    a_cpu: float | None  # A's server process, CPU seconds during B's sync
    inproc_seconds: float  # the same sync in this process, libsecp256k1
    inproc_signatures: float
    fallback_seconds: float  # and on the ecdsa fallback
    fallback_signatures: float

    @property
    def speedup(self) -> float:
        return self.fallback_seconds / self.inproc_seconds


def inprocess_sync(a_url: str, tip: bytes, path: Path, backend: str) -> tuple[float, float]:
    """Sync a fresh store from node A in this process on signature backend `backend`: (seconds, in signatures)."""
    timer = SignatureTimer()
    keys.use_verifier(backend)
    service = NodeService(Node(Store(path, REGTEST), REGTEST))
    peers = PeerManager(service, f"http://127.0.0.1:{free_port()}", (a_url,), progress=False)
    try:
        started = time.perf_counter()
        with timer.active():
            peers.start()
            wait_until(
                lambda: service.tip().hash == tip, timeout=1_800, interval=0.01, what=f"the in-process sync ({backend})"
            )
        seconds = time.perf_counter() - started
    finally:
        peers.stop()
        service.close()
        keys.use_verifier(None)
    return seconds, timer.seconds


def bench_sync(settings: Settings) -> SyncResult:
    with tempfile.TemporaryDirectory(prefix="bench_node_sync_") as tmp:
        workdir = Path(tmp)
        show_load("building the chain")
        started = time.perf_counter()
        chain, txs = build_chain(settings.blocks, settings.txs)
        build_seconds = time.perf_counter() - started
        print(f"   built {len(chain):,} regtest blocks holding {txs:,} signed transactions in {build_seconds:.1f} s")

        show_load("the in-process replay")
        (workdir / "a").mkdir()
        timer = SignatureTimer()
        node = Node(Store(workdir / "a" / "chain.db", REGTEST), REGTEST)
        try:
            started = time.perf_counter()
            with timer.active():
                for block in chain:
                    outcome = node.submit_block(block)
                    if outcome.status != "accepted":
                        raise RuntimeError(f"block {block.header.hash_hex()} was not accepted: {outcome}")
            replay_seconds = time.perf_counter() - started
            if node.tip.hash != chain[-1].hash:
                raise RuntimeError("the replayed chain is not the tip")
        finally:
            node.close()
        replay_signatures, checks = timer.seconds, timer.calls
        print(
            f"   in-process replay (Node.submit_block, every check): {replay_seconds:.1f} s, "
            f"{len(chain) / replay_seconds:,.0f} blocks/s; {checks:,} signature checks took "
            f"{replay_signatures:.1f} s = {replay_signatures / replay_seconds:.0%} of it"
        )

        with running_node(workdir / "a") as a:
            a_status = a.status()
            if a_status["tip"] != chain[-1].header.hash_hex():
                raise RuntimeError("node A does not have the chain")
            a_servers, _ = node_processes(a)
            show_load("node B's sync")
            b = NodeProcess(workdir / "b", free_port(), [], workdir / "b.log")
            b.args = [
                "--network", "regtest", "--data-dir", str(b.data_dir), "--host", "127.0.0.1", "--port",
                str(b.port), "--log-level", "info", "--no-mine", "--peer", a.url,
            ]  # fmt: skip
            b.data_dir.mkdir()
            a_cpu_before = {pid: cpu_seconds(pid) for pid in a_servers}
            launched = time.perf_counter()
            try:
                b.start()  # returns once B answers /status
                up = time.perf_counter() - launched
                b_servers, _ = node_processes(b)
                first_seen: tuple[float, int] | None = None
                deadline = time.perf_counter() + 1_800
                while True:
                    status = b.status()
                    now = time.perf_counter()
                    if first_seen is None and status["height"] > 0:
                        first_seen = (now, status["height"])
                    if status["tip"] == a_status["tip"]:
                        break
                    if now > deadline:
                        raise RuntimeError(f"B did not sync within 30 minutes:\n{b.log()[-3000:]}")
                    time.sleep(0.02)
                wall = now - launched
                a_cpu = cores_used(a_servers, a_cpu_before, 1.0)  # CPU seconds (cores x 1 s)
                b_cpu = sum(c for pid in b_servers if (c := cpu_seconds(pid)) is not None) if b_servers else None
            finally:
                b.stop()
            assert first_seen is not None
            progress_seconds = now - first_seen[0]
            progress_blocks = len(chain) - first_seen[1]
            print(f"   node B: launch -> answering /status: {up:.1f} s")
            print(
                f"   node B sync from node A: launch -> same tip as A: {wall:.1f} s, "
                f"{len(chain) / wall:,.0f} blocks/s, {txs / wall:,.0f} tx/s"
            )
            print(
                f"   node B sync rate while blocks arrived: {progress_blocks:,} blocks in {progress_seconds:.1f} s, "
                f"{progress_blocks / max(progress_seconds, 1e-9):,.0f} blocks/s"
            )
            b_text = "not measurable" if b_cpu is None else f"{b_cpu:.1f} s"
            a_text = "not measurable" if a_cpu is None else f"{a_cpu:.1f} s"
            print(
                f"   CPU time: node B's server process (start-up included): {b_text}; node A's server process: {a_text}"
            )

            inproc: dict[str, tuple[float, float]] = {}
            for backend in ("libsecp256k1", "ecdsa"):
                show_load(f"the in-process sync on {backend}")
                inproc[backend] = inprocess_sync(a.url, chain[-1].hash, workdir / f"c-{backend}.db", backend)
                seconds, signatures = inproc[backend]
                print(
                    f"   same sync in-process (NodeService + PeerManager from node A), {backend}: {seconds:.1f} s, "
                    f"{len(chain) / seconds:,.0f} blocks/s; signature checks {signatures:.1f} s = "
                    f"{signatures / seconds:.0%}"
                )
            inproc_seconds, inproc_signatures = inproc["libsecp256k1"]
            fallback_seconds, fallback_signatures = inproc["ecdsa"]
            print(
                f"   share of the in-process sync spent verifying signatures (signature_problem): "
                f"{inproc_signatures:.1f} s = {inproc_signatures / inproc_seconds:.0%} on libsecp256k1, "
                f"{fallback_signatures / fallback_seconds:.0%} on the ecdsa fallback"
            )
    return SyncResult(
        len(chain), txs, build_seconds, replay_seconds, replay_signatures, checks, wall, up, progress_seconds,
        progress_blocks, b_cpu, a_cpu, inproc_seconds, inproc_signatures, fallback_seconds, fallback_signatures,
    )  # fmt: skip


# -- 4. POST /tx -------------------------------------------------------------------------------------------------


def prepare_payments(path: Path, count: int) -> list[bytes]:
    """A regtest store at `path` where MINER_KEY owns `count` confirmed outputs; `count` signed 1-in-2-out
    payments spending them, serialized."""
    b = FastBuilder(REGTEST)
    pkh = MINER_KEY.pubkey_hash
    fanouts_needed = -(-count // FANOUT)
    blocks = [b.block(f"p{h}") for h in range(1, fanouts_needed + REGTEST.coinbase_maturity + 1)]
    fanouts = []
    for k in range(fanouts_needed):
        coinbase = blocks[k].txs[0]
        outputs = min(FANOUT, count - k * FANOUT)
        each = (coinbase.outputs[0].amount - SYNC_FEE) // outputs
        fanouts.append(b.spend(OutPoint(coinbase.txid, 0), [(each, pkh)] * outputs))
    blocks.append(b.block("fan-out", txs=fanouts))
    blocks += [b.block(f"q{h}") for h in range(3)]  # buried a little, as a wallet's coins usually are
    payments = []
    for fanout in fanouts:
        for i, out in enumerate(fanout.outputs):
            half = out.amount // 2
            payments.append(b.spend(OutPoint(fanout.txid, i), [(half, pkh), (out.amount - half - SYNC_FEE, pkh)]))
    node = Node(Store(path, REGTEST), REGTEST)
    try:
        for block in blocks:
            outcome = node.submit_block(block)
            if outcome.status != "accepted":
                raise RuntimeError(f"block {block.header.hash_hex()} was not accepted: {outcome}")
    finally:
        node.close()
    return [tx.serialize() for tx in payments]


def serve_like_a_node(app, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port` as a node's server process does (the guarded waitress server with the
    node's settings, the 1 ms switch interval) until SIGTERM."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    server = create_guarded_server(
        app,
        rules=ConnectionRules(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, REQUEST_SECONDS),
        host="127.0.0.1",
        port=port,
        threads=SERVER_THREADS,
        channel_timeout=IDLE_SECONDS,
        cleanup_interval=CLEANUP_SECONDS,
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=MAX_BODY_BYTES + 1,
    )

    def stop(signum, frame):
        raise SystemExit(0)  # waitress' run() catches it and shuts its threads down

    signal.signal(signal.SIGTERM, stop)
    server.run()


def tx_server(path: str, port: int, backend: str) -> None:
    """A server process like a node's (NodeService, the API, the guarded waitress server) on backend `backend`."""
    keys.use_verifier(backend)
    service = NodeService(Node(Store(path, REGTEST), REGTEST))
    try:
        serve_like_a_node(create_app(service), port)
    finally:
        service.close()


def null_app(environ, start_response):
    """The ceiling's app: reads the body (as any would) and answers a fixed JSON, with no Flask and no node."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    body = b'{"fee":1000,"txid":"00"}\n'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def flask_floor_app():
    """The ceiling with Flask: `/tx` decodes the JSON body and the hex, and answers; no node."""
    from flask import Flask, jsonify, request

    app = Flask("bench-floor")

    @app.post("/tx")
    def tx():
        bytes.fromhex(request.get_json()["hex"])
        return jsonify(txid="00", fee=1000)

    @app.get("/status")
    def status():
        return jsonify(ok=True)

    return app


def floor_server(port: int, kind: str) -> None:
    """The ceiling's server: `kind` "wsgi" (null_app) or "flask" (flask_floor_app), served like a node's API."""
    serve_like_a_node(null_app if kind == "wsgi" else flask_floor_app(), port)


def post_client(url: str, bodies: list[str], go, results) -> None:
    """POST each body to /tx on one keep-alive connection; report (accepted, refused, first refusal, end)."""
    accepted, refused, first = 0, 0, ""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", "/status")  # connected before the start signal
        conn.getresponse().read()
        go.wait()
        headers = {"Content-Type": "application/json"}
        for body in bodies:
            conn.request("POST", "/tx", body=body, headers=headers)
            answer = conn.getresponse()
            text = answer.read()
            if answer.status == 200:
                accepted += 1
            else:
                refused += 1
                first = first or text[:200].decode(errors="replace")
    finally:
        conn.close()
    results.put((accepted, refused, first, time.monotonic()))


@dataclass(frozen=True)
class PostResult:
    backend: str
    accepted: int
    refused: int
    first_refusal: str
    seconds: float
    server_cpu: float | None  # seconds, the server process during the window
    load: str

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


def post_on(backend: str, base: Path | None, workdir: Path, payments: list[bytes]) -> PostResult:
    """Serve a fresh copy of `base` on `backend` and POST every payment from POST_CLIENTS processes.

    `backend` "wsgi" or "flask" (and no `base`): the ceiling's server instead of a node's.
    """
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if base is None:
        server = ctx.Process(target=floor_server, args=(port, backend), name=f"bench-floor-server-{backend}")
    else:
        path = workdir / f"post-{backend}.db"
        shutil.copyfile(base, path)
        server = ctx.Process(target=tx_server, args=(str(path), port, backend), name=f"bench-tx-server-{backend}")
    server.start()
    clients = []
    try:
        wait_until(lambda: requests.get(f"{url}/status", timeout=1).ok, timeout=60, what="the tx server")
        bodies = [json.dumps({"hex": raw.hex()}) for raw in payments]
        go, results = ctx.Event(), ctx.Queue()
        clients = [
            ctx.Process(target=post_client, args=(url, bodies[i::POST_CLIENTS], go, results), name=f"bench-post-{i}")
            for i in range(POST_CLIENTS)
        ]
        for client in clients:
            client.start()
        time.sleep(2.0)  # the clients import requests and connect before the start signal
        load = load_average()
        cpu_before = cpu_seconds(server.pid)
        started = time.monotonic()
        go.set()
        reports = [results.get(timeout=600) for _ in clients]
        cpu_after = cpu_seconds(server.pid)
    finally:
        stop_processes(clients)
        server.terminate()
        server.join(timeout=10)
        if server.is_alive():
            server.kill()
            server.join()
    seconds = max(end for *_, end in reports) - started
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    first = next((f for _, _, f, _ in reports if f), "")
    return PostResult(backend, sum(r[0] for r in reports), sum(r[1] for r in reports), first, seconds, server_cpu, load)


def bench_post_tx(settings: Settings) -> tuple[PostResult, PostResult, list[PostResult]]:
    with tempfile.TemporaryDirectory(prefix="bench_node_post_") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        payments = prepare_payments(workdir / "base.db", settings.payments)
        print(
            f"   prepared {len(payments):,} signed 1-in-2-out payments and a store with their inputs in "
            f"{time.perf_counter() - started:.1f} s"
        )
        results = []
        for backend in ("libsecp256k1", "ecdsa"):
            show_load(f"POST /tx on {backend}")
            r = post_on(backend, workdir / "base.db", workdir, payments)
            cpu = "not measurable" if r.server_cpu is None else f"{r.server_cpu / max(r.accepted, 1) * 1e3:.2f} ms"
            print(
                f"   POST /tx on {backend}: {r.accepted:,} accepted, {r.refused} refused in {r.seconds:.2f} s = "
                f"{r.rate:,.0f} tx/s; server CPU per accepted tx {cpu} (load {r.load})"
            )
            if r.refused:
                print(f"   first refusal: {r.first_refusal}")
            results.append(r)
        ceilings = []
        for kind, what in (("wsgi", "a WSGI app that answers a fixed JSON"), ("flask", "a Flask /tx that decodes")):
            show_load(f"the ceiling: {what}")
            r = post_on(kind, None, workdir, payments)
            cpu = "not measurable" if r.server_cpu is None else f"{r.server_cpu / max(r.accepted, 1) * 1e3:.2f} ms"
            print(
                f"   ceiling, the same server and clients with {what} (no node): {r.accepted:,} answered in"
                f" {r.seconds:.2f} s = {r.rate:,.0f} req/s; server CPU per request {cpu} (load {r.load})"
            )
            ceilings.append(r)
    return results[0], results[1], ceilings


# -- main ---------------------------------------------------------------------------------------------------------


def choose_tool(requested: str, quick: bool) -> str:
    if requested == "auto":
        requested = "python" if quick else "wrk"
    if requested == "wrk" and shutil.which("wrk") is None:
        print(
            "   wrk is not installed (Debian: apt-get install -y wrk): falling back to the Python load generator,"
            " which understates the server"
        )
        return "python"
    return requested


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
    sys.exit(main())
