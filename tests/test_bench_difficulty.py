"""Smoke test of bench/bench_difficulty.py: it runs to the end with --quick and prints every figure, for the
new rule and the old one. The figures themselves are the script's to show (a few runs prove nothing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LABELS = [
    "new rule: aserti3-2d from height 3, half-life 600 s, future limit 180 s",
    "old rule: retarget every 120 blocks, future limit 7200 s",
    "drop100: hours until the 10-block mean <= 2x spacing",
    "rise100: blocks in the first hour beyond 120",
    "steady: mean interval / spacing (3,000 blocks)",
    "steady: p99 of the 10-block mean / spacing",
    "leverage: worst next-block easing, 240 heights",
    "start: blocks in a new chain's first hour (info)",
    "SUMMARY: every goal of the new rule",
]


def test_bench_difficulty_prints_every_figure_for_both_rules():
    done = subprocess.run(
        [sys.executable, "bench/bench_difficulty.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a goal missed, which a 3-run smoke cannot judge
    last = done.stdout.splitlines()[-1]
    assert last.startswith("verdict: "), last  # the harness's verdict line (bench/common.py), its exit code
    assert last.startswith("verdict: PASS") == (done.returncode == 0), last
    missing = [label for label in LABELS if label not in done.stdout]
    assert not missing, f"missing from the output: {missing}\n{done.stdout}"
    figures = {"drop100", "rise100", "steady", "leverage"}
    rows = [line for line in done.stdout.splitlines() if line.split(":")[0] in figures]
    assert len(rows) == 5
    for row in rows:  # label (54 wide), goal (10), the new rule's figure, the old rule's, the new rule's verdict
        assert row.split()[-1] in {"PASS", "FAIL"}, row
        assert len(re.findall(r"\d+(?:\.\d+)?", row[66:])) == 2, row
