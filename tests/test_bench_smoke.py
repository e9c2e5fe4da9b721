"""Smoke tests of the benchmark scripts: each runs to the end with --quick and prints every figure.

Speed itself is shown by the scripts (`python bench/bench_*.py`), never asserted by a timed test.
bench_node's --quick uses the Python load generator, so these need no wrk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.framework.nodes import child_pids, wait_until

ROOT = Path(__file__).resolve().parent.parent

CORE_LABELS = [
    "node verifier: our checks + libsecp256k1 (signature_problem)",
    "raw ecdsa parse+verify, ecdsa + gmpy2 (reference)",
    "node verifier on the ecdsa fallback (other backend)",
    "libsecp256k1 alone via coincurve.PublicKey.verify",
    "raw ecdsa verify only, pre-parsed keys",
    "verification speed-up = node verifier / ecdsa + gmpy2",
    "cold Node.submit_block (fresh store, no signature cache)",
    "its signature checks with the node verifier (reference part)",
    "its SQLite writes: Store.add_block + connect_block (reference part)",
    "cold time goal (150 ms per 1,000 txs",
    "overhead = cold / (signature checks + writes) - 1, by CPU time",
    "cold Node.submit_block on the ecdsa fallback (other backend)",
    "cold validation (check_block + connect_block, no signature cache)",
    "warm validation (check_block + connect_block, verified_txids = cache)",
    "warm speed-up = cold / warm",
    "Node.submit_block warm (information only",
    "address lookup at 1,000 blocks",
    "address lookup at 2,000 blocks",
    "lookup ratio = time at 2,000 / time at 1,000 blocks",
    "SUMMARY",
    "both backends, checks/s:",
]

MINING_LABELS = [
    "cores (os.cpu_count())",
    "only meaningful with the cores otherwise idle",
    "1. hash rate per worker",
    "reference loop (hashlib, midstate copy, byte comparison):",
    "simplecoin.node.worker.scan:",
    "scan / reference (median of the pairs' ratios):",
    "2. scaling",
    "1 worker process total:",
    "2 worker processes total:",
    "solutions found and checked",
    "CPU used by the rest of the machine during the 2-process windows:",
    "scaling = 2 workers / 1 worker:",
    "SUMMARY",
    "scan / reference rate per core",
    "2 workers / 1 worker total rate",
]

NODE_LABELS = [
    "cores (os.cpu_count())",
    "1. new tip -> all mining processes on new work",
    "pre-mined",
    "load average (1 min) before the tip changes:",
    "NodeService.submit_block of the new block:",
    "first process on new work:",
    "all processes on new work:",
    "new tip -> all processes on new work, max:",
    "2. GET /status",
    "load average (1 min) before the load:",
    "load generator: Python asyncio load generator",
    "understates what the server can do",
    "load generator CPU:",
    "requests answered:",
    "node server process CPU during the load:",
    "node hash rate (its /status) before / after the load:",
    "latency: p50",
    "throughput:",
    "p99 latency:",
    "3. initial sync",
    "load average (1 min) before building the chain:",
    "regtest blocks holding",
    "in-process replay (Node.submit_block, every check):",
    "load average (1 min) before node B's sync:",
    "node B: launch -> answering /status:",
    "node B sync from node A: launch -> same tip as A:",
    "node B sync rate while blocks arrived:",
    "CPU time: node B's server process",
    "load average (1 min) before the in-process sync on libsecp256k1:",
    "same sync in-process (NodeService + PeerManager from node A), libsecp256k1:",
    "load average (1 min) before the in-process sync on ecdsa:",
    "same sync in-process (NodeService + PeerManager from node A), ecdsa:",
    "share of the in-process sync spent verifying signatures (signature_problem):",
    "in-process sync speed-up = libsecp256k1 / ecdsa fallback blocks per second:",
    "4. POST /tx of signed 1-in-2-out payments, 4 client processes",
    "load average (1 min) before POST /tx on libsecp256k1:",
    "POST /tx on libsecp256k1:",
    "POST /tx on ecdsa:",
    "ceiling, the same server and clients with a WSGI app that answers a fixed JSON (no node):",
    "ceiling, the same server and clients with a Flask /tx that decodes (no node):",
    "5x the ecdsa fallback would be",
    "POST /tx speed-up = libsecp256k1 / ecdsa fallback:",
    "SUMMARY",
    "new tip -> all workers on new work (max)",
    "GET /status throughput",
    "GET /status p99 latency",
    "initial sync speed-up, libsecp256k1/ecdsa",
    "POST /tx speed-up, libsecp256k1/ecdsa",
    "initial sync:",
    "in-process sync: libsecp256k1",
]


TEMP_PREFIXES = ("bench", "simplecoin-bench")  # what the scripts name their temporary directories
VERDICTS = ("verdict: PASS (", "verdict: FAIL (", "verdict: inconclusive: the machine was busy (")


def run_quick(script: str, timeout: int, args: tuple[str, ...] = ("--quick",)) -> str:
    """stdout of `python bench/SCRIPT --quick`, run from the repository root as documented.

    Python puts bench/ (not the root) on sys.path, so this also checks that the script finds the package.
    Exit 1 (a missed goal) is accepted: quick figures are rough, and a smoke test does not judge timings; the
    last line must be the harness's verdict, and the exit code must match it. Nothing is left in the
    temporary directory.
    """
    before = _bench_temp_entries()
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith(VERDICTS), last
    assert (result.returncode == 1) == last.startswith("verdict: FAIL"), (result.returncode, last)
    assert _bench_temp_entries() <= before, "left behind"
    return result.stdout


def _bench_temp_entries() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(TEMP_PREFIXES)}


def assert_labels(stdout: str, labels: list[str]) -> None:
    for label in labels:
        assert label in stdout, f"missing {label!r} in:\n{stdout}"


def verdicts(stdout: str) -> int:
    """PASS/FAIL words before the last line: one per goal, and again in the summary."""
    body = stdout.rstrip("\n").rsplit("\n", 1)[0]
    return body.count("PASS") + body.count("FAIL")


@pytest.mark.slow
def test_core_benchmark_prints_every_figure():
    stdout = run_quick("bench_core.py", timeout=300)
    assert_labels(stdout, CORE_LABELS)
    assert verdicts(stdout) >= 10  # 5 goals, each in its section and in the summary


@pytest.mark.slow
def test_mining_benchmark_prints_every_figure():
    stdout = run_quick("bench_mining.py", timeout=120)
    assert_labels(stdout, MINING_LABELS)
    assert verdicts(stdout) == 4


@pytest.mark.slow
def test_node_benchmark_prints_every_figure():
    stdout = run_quick("bench_node.py", timeout=300)
    assert_labels(stdout, NODE_LABELS)
    assert verdicts(stdout) == 10  # 5 goals, each in its section and in the summary


@pytest.mark.slow
def test_lock_benchmark_prints_every_figure():
    stdout = run_quick("bench_lock.py", timeout=300)
    assert_labels(stdout, ["1. reference: no attack", "GET /status idle", "2. attack:", "GET /status under attack"])
    assert_labels(stdout, ["attack posts answered: 400:", "bad-txns-sig-invalid", "SUMMARY", "p99 under attack"])
    assert verdicts(stdout) == 1


@pytest.mark.slow
def test_address_benchmark_prints_every_figure():
    stdout = run_quick("bench_address.py", timeout=600)
    assert_labels(stdout, ["1. the victim's first page", "GET /address: n=20", "2. block pushes while 16 clients"])
    assert_labels(stdout, ["pushes: n=10", "reads:  n=", "SUMMARY", "first page p50", "block push p99 under 16"])
    assert verdicts(stdout) == 2


@pytest.mark.slow
def test_relay_benchmark_prints_every_figure():
    stdout = run_quick("bench_relay.py", timeout=600)
    assert_labels(stdout, ["reference, same run, no slow peers: block", "1. block N1 -> N8:", "2. tx    N1 -> N8:"])
    assert verdicts(stdout) == 2


@pytest.mark.slow
def test_wallet_benchmark_prints_every_figure():
    stdout = run_quick("bench_wallet.py", timeout=600, args=("--blocks", "1500", "--txs", "200"))
    assert_labels(stdout, ["history, newest 20, at 1,000 blocks:", "1. first history", "2. balance:"])
    assert_labels(stdout, ["history, all 200:", "3. history at 1,500 vs 1,000 blocks:"])
    assert verdicts(stdout) == 5  # one per goal; the verdict line is checked by run_quick


SCALE_LABELS = [
    "start until /status answers:",
    "server RSS:",
    "index bytes per block:",
    "locator:",
    "ancestor:",
    "next_bits:",
    "index locator by skip pointers:",
    "second node's sync rate:",
    "wallet first run (every header checked):",
    "wallet later balance:",
    "explorer dashboard:",
    "explorer block page:",
    "GET /block/<tip> p99, alone:",
    "GET /block/<tip> p99, while 4 clients fetch headers:",
    "(at 200 blocks:",
]


@pytest.mark.slow
def test_scale_benchmark_prints_every_figure(tmp_path):
    stdout = run_quick("bench_scale.py", timeout=180, args=("--blocks", "2000", "--out", str(tmp_path)))
    assert_labels(stdout, SCALE_LABELS)
    assert verdicts(stdout) == 10  # one per goal; the verdict line is checked by run_quick
    assert (tmp_path / "scale" / "2000" / "complete").exists()  # cached: a second run reuses it


def test_index_benchmark_prints_every_figure():
    stdout = run_quick("bench_index.py", timeout=300, args=("--blocks", "5000"))
    assert_labels(stdout, ["500 blocks", "5,000 blocks", "load_cpu", "bytes per block:", "locator:", "find_fork:"])
    assert verdicts(stdout) == 7  # one per goal; the verdict line is checked by run_quick


@pytest.mark.slow
def test_a_benchmark_ended_by_sigterm_stops_the_nodes_it_started(tmp_path):
    """`kill PID` (or a CI job's timeout) on a benchmark: before, SIGTERM ended it at once and its nodes ran on."""
    before = _bench_temp_entries()
    bench = subprocess.Popen(
        [sys.executable, "bench/bench_scale.py", "--blocks", "2000", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nodes: list[int] = []
    try:

        def a_node_runs() -> bool:
            nodes[:] = [pid for pid in child_pids(bench.pid) if "miner.py" in _cmdline(pid)]
            return bool(nodes)

        wait_until(a_node_runs, timeout=150, what="the benchmark's first node")
        bench.send_signal(signal.SIGTERM)
        status = bench.wait(timeout=60)
        wait_until(lambda: not any(_cmdline(pid) for pid in nodes), timeout=30, what="the nodes to stop")
        assert status == 128 + signal.SIGTERM
        assert _bench_temp_entries() <= before, "left behind"
    finally:
        for pid in [*child_pids(bench.pid), *nodes, bench.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        bench.wait(timeout=10)


def _cmdline(pid: int) -> str:
    """A live process's command line ("" once it has exited, a zombie included)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
