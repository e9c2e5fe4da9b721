"""Part 2 of bench_node.py (`--only 2`): GET /status under 16 connections while the node mines.

`GET /status` under 16 concurrent keep-alive connections while the node mines: a real node
(`miner.py --network main`, one mining process per core, mining pause 0, so the mining processes really
hash all the time, at nice 10) is loaded from another process. `wrk` (Debian: `apt-get install wrk`) is
used when it is installed: it is C and costs the 2-core machine little. Otherwise (and always with
--quick) a Python asyncio load generator with 16 connections runs in this process; it needs a good
share of a core itself, so it understates the server, and the output says so. The node's reported
hash rate and the CPU used by its server and mining processes during the window are printed too.
Goals: >= 1,500 requests/s and p99 latency <= 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common import (
    cores_used,
    cpu_seconds,
    node_processes,
    show_load,
    verdict,
)  # first: it puts the repository on sys.path

from tests.framework.nodes import running_node, wait_until

if TYPE_CHECKING:
    from bench_node import Settings

GOAL_STATUS_RPS = 1_500.0
GOAL_STATUS_P99_MS = 50.0
CONNECTIONS = 16


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
