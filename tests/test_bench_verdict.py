"""The benchmark harness's verdict (bench/common.py): synthetic figures in, the last line and exit code out.

No timing here: the goals and the "busy" measurements are given, as a benchmark would have measured them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_common():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_common"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


common = _load_common()
Goal, Run, decide, busy_by_load = common.Goal, common.Run, common.decide, common.busy_by_load


def test_every_goal_met_is_a_pass_with_exit_0_even_on_a_busy_machine():
    line, code = decide([Goal("a", True), Goal("b", True)], busy=["load average 9.00 on 2 cores"])
    assert (line, code) == ("verdict: PASS (all 2 goals met)", 0)


def test_a_missed_goal_on_a_quiet_machine_is_a_fail_with_exit_1():
    line, code = decide([Goal("throughput", False), Goal("p99", True)], busy=[])
    assert (line, code) == ("verdict: FAIL (missed: throughput)", 1)


def test_a_missed_timing_on_a_busy_machine_is_inconclusive_says_why_and_exits_0():
    line, code = decide([Goal("throughput", False)], busy=["load average 3.10 on 2 cores"])
    assert line.startswith("verdict: inconclusive: the machine was busy (load average 3.10 on 2 cores)")
    assert "missed: throughput" in line
    assert code == 0


def test_a_missed_correctness_goal_is_a_fail_however_busy_the_machine():
    goals = [Goal("p99", False), Goal("long chain refused at the 26th", False, timed=False)]
    line, code = decide(goals, busy=["load average 3.10 on 2 cores"])
    assert line.startswith("verdict: FAIL")
    assert code == 1


@pytest.mark.parametrize(
    ("load", "cores", "busy"),
    [(None, 2, False), (0.4, 2, False), (1.0, 2, False), (1.01, 2, True), (3.5, 8, False), (4.5, 8, True)],
)
def test_busy_is_a_load_average_above_half_a_core_per_core(load, cores, busy):
    reason = busy_by_load(load, cores)
    assert (reason is not None) == busy
    if busy:
        assert f"load average {load:.2f} on {cores} cores" in reason


def test_run_prints_the_verdict_as_its_last_line(capsys):
    run = Run(cores=2, load_at_start=3.0)  # measured busy when it started
    assert run.judge("throughput", False) == "FAIL"
    assert run.judge("p99", True) == "PASS"
    assert run.finish() == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("verdict: inconclusive: the machine was busy")

    run = Run(cores=2, load_at_start=0.1)
    run.busy("the rest of the machine used 1.20 cores during the 2-process windows")
    run.judge("scaling", False)
    assert run.finish() == 0
    assert "the rest of the machine used 1.20 cores" in capsys.readouterr().out

    run = Run(cores=2, load_at_start=0.1)
    run.judge("scaling", False)
    assert run.finish() == 1
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: FAIL (missed: scaling)"
