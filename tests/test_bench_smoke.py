"""Smoke test of the benchmark script: it runs to the end and prints every figure.

Speed itself is shown by the script (`python bench/bench_core.py`), never asserted by a timed test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LABELS = [
    "cold validation (check_block + connect_block, no signature cache)",
    "raw ecdsa parse+verify",
    "raw ecdsa verify only, pre-parsed keys",
    "overhead = cold / raw checks - 1",
    "warm validation (check_block + connect_block, verified_txids = cache)",
    "warm speed-up = cold / warm",
    "Node.submit_block cold (information only",
    "Node.submit_block warm (information only",
    "address lookup at 1,000 blocks",
    "address lookup at 2,000 blocks",
    "lookup ratio = time at 2,000 / time at 1,000 blocks",
    "SUMMARY",
]


@pytest.mark.slow
def test_quick_benchmark_runs_and_prints_every_figure():
    # As documented: from the repository root. Python puts bench/ (not the root) on sys.path, so this also
    # checks that the script finds the package on its own.
    result = subprocess.run(
        [sys.executable, "bench/bench_core.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for label in LABELS:
        assert label in result.stdout, f"missing {label!r} in:\n{result.stdout}"
    assert result.stdout.count("PASS") + result.stdout.count("FAIL") >= 6  # a verdict per goal, and in the summary
