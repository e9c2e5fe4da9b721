"""What the benchmark scripts share: the import path, verdicts, load figures, /proc readers, stopping processes.

Importing it puts the repository on sys.path, so a script run as `python bench/bench_x.py` imports `simplecoin`
and `tests.framework` from this checkout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STOP_SECONDS = 3.0  # how long a process gets at each step of the stop ladder


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


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
