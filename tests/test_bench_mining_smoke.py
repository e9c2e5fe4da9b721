"""Smoke test of the mining benchmark: it runs to the end and prints every figure.

Speed itself is shown by the script (`python bench/bench_mining.py`), never asserted by a timed test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LABELS = [
    "cores (os.cpu_count())",
    "only meaningful with the cores otherwise idle",
    "1. hash rate per worker",
    "reference loop (hashlib, midstate copy, byte comparison):",
    "simplecoin.worker.scan:",
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


@pytest.mark.slow
def test_quick_mining_benchmark_runs_and_prints_every_figure():
    # As documented: from the repository root. Python puts bench/ (not the root) on sys.path, so this also
    # checks that the script finds the package on its own.
    result = subprocess.run(
        [sys.executable, "bench/bench_mining.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for label in LABELS:
        assert label in result.stdout, f"missing {label!r} in:\n{result.stdout}"
    assert result.stdout.count("PASS") + result.stdout.count("FAIL") == 4  # a verdict per goal, and in the summary
