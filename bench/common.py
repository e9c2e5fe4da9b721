"""What the benchmark scripts share: the import path, the verdict, load figures, /proc readers, stopping processes.

Importing it puts the repository on sys.path, so a script run as `python bench/bench_x.py` imports `simplecoin`
and `tests.framework` from this checkout.

The verdict. A script makes one `Run()` when it starts, passes each goal through `run.judge(name, ok)` (which
prints as PASS or FAIL beside the figure) and ends with `return run.finish()`, which prints the last line:

    verdict: PASS (all N goals met)                                  exit code 0
    verdict: FAIL (missed: ...)                                      exit code 1
    verdict: inconclusive: the machine was busy (...why...); ...      exit code 0

"Busy" is decided by a measurement, never by the missed figure itself: the 1-minute load average sampled when
the `Run` is made (before the script puts any load of its own) above BUSY_LOAD_PER_CORE per core, or a reason a
script measured itself and handed to `run.busy(...)` (bench_mining: CPU the rest of the machine used during its
windows). A run where every goal was met is a PASS however busy the machine was. Ctrl-C ends a script with
exit code 130 (Python's own), after its `with` blocks removed its temporary directories and stopped its nodes;
SIGTERM (`kill PID`, a CI job's timeout) does the same with exit code 143, once the script's `__main__` block
called `stop_on_sigterm()`.
"""

from __future__ import annotations

import gc
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from simplecoin.core.params import NetworkParams
    from simplecoin.node.node import Node
    from simplecoin.node.service import NodeService
    from tests.framework.nodes import NodeProcess

WORKER_NICE = 10  # a node's mining processes run at this nice (worker.run's default)
STOP_SECONDS = 3.0  # how long a process gets at each step of the stop ladder
BUSY_LOAD_PER_CORE = 0.5  # a 1-minute load average above this per core at the start: the figures are not clean

PASS, FAIL = 0, 1  # exit codes; "inconclusive" exits 0 and says so on the last line


def stop_on_sigterm() -> None:
    """SIGTERM ends the script as Ctrl-C does: it unwinds, so the nodes it started are stopped and its temporary
    directories removed, not left running (the default action ended the process at once). Called from a
    script's `__main__` block only: importing this module (as the tests do) changes no signal handler."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


@dataclass
class Samples:
    """Repeated timings of one thing: wall time (time.perf_counter, the figure used) and this process' CPU time."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    last: object = None  # the last call's result

    @classmethod
    def of(cls, fn: Callable[[], object], reps: int) -> Samples:
        samples = cls()
        for _ in range(reps):
            samples.add(fn)
        return samples

    def add(self, fn: Callable[[], object]) -> None:
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        self.last = fn()
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def spread(self) -> str:
        return f"median of {len(self.wall)}, range {min(self.wall) * 1e3:.1f}-{max(self.wall) * 1e3:.1f} ms"

    def rate(self, n: int) -> float:
        return n / self.median


def load_figure() -> float | None:
    """The 1-minute load average; None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def load_average() -> str:
    load = load_figure()
    return "unknown" if load is None else f"{load:.2f}"


def busy_by_load(load: float | None, cores: int) -> str | None:
    """Why a load average says the machine was busy, or None if it does not (or is unknown)."""
    limit = BUSY_LOAD_PER_CORE * cores
    if load is None or load <= limit:
        return None
    return f"load average {load:.2f} on {cores} cores when the run started, above {limit:.2f}"


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal's outcome; a missed goal that is not a timing (timed=False) is a FAIL however busy the machine."""

    name: str
    met: bool
    timed: bool = True


def decide(goals: Sequence[Goal], busy: Sequence[str]) -> tuple[str, int]:
    """The last line and the exit code for the goals and the measured reasons the machine was busy."""
    missed = [g.name for g in goals if not g.met]
    if not missed:
        return f"verdict: PASS (all {len(goals)} goals met)", PASS
    if busy and all(g.timed for g in goals if not g.met):
        why = "; ".join(busy)
        return f"verdict: inconclusive: the machine was busy ({why}); missed: {'; '.join(missed)}", PASS
    return f"verdict: FAIL (missed: {'; '.join(missed)})", FAIL


@dataclass
class Run:
    """One benchmark run: the load when it started, each goal's outcome, and the verdict at the end."""

    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    load_at_start: float | None = field(default_factory=load_figure)
    goals: list[Goal] = field(default_factory=list)
    busy_reasons: list[str] = field(default_factory=list)

    def judge(self, name: str, ok: bool, timed: bool = True) -> str:
        """Record one goal; PASS or FAIL, to print beside its figure."""
        self.goals.append(Goal(name, ok, timed))
        return verdict(ok)

    def busy(self, reason: str) -> None:
        """A measured sign that the machine was busy during the run (say what was measured)."""
        self.busy_reasons.append(reason)

    def finish(self) -> int:
        """Print the verdict as the last line and return the exit code."""
        by_load = busy_by_load(self.load_at_start, self.cores)
        line, code = decide(self.goals, [*([by_load] if by_load else []), *self.busy_reasons])
        print(line, flush=True)
        return code


def show_load(what: str) -> None:
    print(f"   load average (1 min) before {what}: {load_average()}")


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/PID/stat (after the command name, which may hold spaces and parentheses)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process, from /proc (Linux); None if it cannot be read."""
    try:
        fields = _stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15
    except (OSError, ValueError, IndexError):
        return None


def nice_of(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[16])  # field 19
    except (OSError, ValueError, IndexError):
        return None


def cpu_ticks(pids: Iterable[int]) -> tuple[int, int] | None:
    """(CPU ticks the whole machine spent busy, ticks the processes `pids` spent) from /proc; None off Linux."""
    try:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
        own = 0
        for pid in pids:
            utime, stime = _stat_fields(pid)[11:13]  # fields 14 and 15 of proc(5)
            own += int(utime) + int(stime)
    except (OSError, ValueError, IndexError):
        return None
    return user + nice + system + irq + softirq + steal, own


def stop_processes(processes: Sequence[BaseProcess]) -> None:
    """Wait for each process to end; terminate, then kill (by PID), any that does not: none is left."""
    for process in processes:
        if process.pid is None:
            continue
        process.join(timeout=STOP_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join(timeout=STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


def node_processes(node: NodeProcess) -> tuple[list[int], list[int]]:
    """(server pids, mining pids) of a running node: the mining processes are the children at nice 10."""
    assert node.process is not None
    from tests.framework.nodes import child_pids  # here: importing common must not import the framework

    children = child_pids(node.process.pid)
    miners = [pid for pid in children if nice_of(pid) == WORKER_NICE]
    return [pid for pid in children if pid not in miners], miners


def cores_used(pids: list[int], before: dict[int, float | None], seconds: float) -> float | None:
    """Cores the processes `pids` used on average over `seconds`, from their CPU time `before`; None if unknown."""
    total = 0.0
    for pid in pids:
        start, end = before.get(pid), cpu_seconds(pid)
        if start is None or end is None:
            return None
        total += end - start
    return total / seconds


# Opening a store in-process: the one place bench/ names the node's internal classes (imported when called).


def open_node(path: Path, params: NetworkParams, clock: Callable[[], float] | None = None) -> Node:
    """A `Node` on the SQLite store at `path` (made if missing); `clock` replaces the wall clock."""
    from simplecoin.node.node import Node
    from simplecoin.node.store import Store

    return Node(Store(path, params), params) if clock is None else Node(Store(path, params), params, clock=clock)


def open_service(path: Path, params: NetworkParams, clock: Callable[[], float] | None = None) -> NodeService:
    """A `NodeService` (what the server process runs) over `open_node(path, params, clock)`."""
    from simplecoin.node.service import NodeService

    return NodeService(open_node(path, params, clock))
