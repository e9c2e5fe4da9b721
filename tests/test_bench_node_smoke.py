"""Smoke test of the node benchmark: it runs to the end and prints every figure.

Speed itself is shown by the script (`python bench/bench_node.py`), never asserted by a timed test. --quick
uses the Python load generator, so this needs no wrk.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LABELS = [
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
    "load average (1 min) before the in-process sync:",
    "same sync in-process (NodeService + PeerManager from node A):",
    "share of the in-process sync spent verifying signatures (signature_problem):",
    "SUMMARY",
    "new tip -> all workers on new work (max)",
    "GET /status throughput",
    "GET /status p99 latency",
    "initial sync:",
]


@pytest.mark.slow
def test_quick_node_benchmark_runs_and_prints_every_figure():
    # As documented: from the repository root. Python puts bench/ (not the root) on sys.path, so this also
    # checks that the script finds the package on its own.
    result = subprocess.run(
        [sys.executable, "bench/bench_node.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for label in LABELS:
        assert label in result.stdout, f"missing {label!r} in:\n{result.stdout}"
    assert result.stdout.count("PASS") + result.stdout.count("FAIL") == 6  # a verdict per goal, and in the summary
