"""Long-lived threads under a supervisor: none dies silently, and the node can say which are healthy.

A supervised thread that raises is logged with its traceback and run again after a backoff (1 s, doubling to
MAX_BACKOFF, so a thread that fails every time does not spin). An error for which a restart cannot be right
(`fatal`, e.g. the chain database failing under us) stops the node instead: `on_fatal` is called and the
server process exits non-zero, which makes the supervisor process (miner.py) stop everything.

Bitcoin Core runs its threads through `TraceThread`, which logs and aborts on an uncaught exception; this
restarts instead because every SimpleCoin thread keeps its state outside its loop (the pump its pipes and
templates, the peer layer its peer table and relay queue).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0  # seconds before the first restart
MAX_BACKOFF = 60.0
HEALTHY_SECONDS = 300.0  # a thread that ran this long since its last failure starts its backoff afresh
MAX_ERROR_CHARS = 200  # of an error's text kept for /status


class Supervised:
    """One supervised thread and its health (mutated only under the supervisor's lock)."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.name = name
        self.target = target
        self.thread: threading.Thread | None = None
        self.failures = 0
        self.last_error = ""
        self.state = "starting"


class Supervisor:
    """Starts named threads, restarts those that raise, and reports each one's health."""

    def __init__(
        self,
        on_fatal: Callable[[str, BaseException], None],
        fatal: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_fatal = on_fatal
        self.fatal = fatal
        self.clock = clock
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        # One entry per start() call; the node starts a fixed handful of threads, so no eviction is needed.
        self.threads: dict[str, Supervised] = {}

    def start(self, name: str, target: Callable[[], None]) -> None:
        """Run `target` in a daemon thread named `name`; it should return once `stop` has been asked for."""
        entry = Supervised(name, target)
        with self.lock:
            if name in self.threads:
                raise ValueError(f"a thread named {name} is already supervised")
            self.threads[name] = entry
        entry.thread = threading.Thread(target=self._run, args=(entry,), name=name, daemon=True)
        entry.thread.start()

    def stop(self) -> None:
        """Stop restarting; threads end through their own stop signals."""
        self.stopping.set()

    def join(self, timeout: float) -> None:
        deadline = self.clock() + timeout
        for entry in list(self.threads.values()):
            if entry.thread is not None:
                entry.thread.join(timeout=max(0.0, deadline - self.clock()))

    def health(self) -> dict[str, str]:
        """Each thread's state: ok, ok (restarted 2x; last: ...), restarting (3x): ..., stopped, failed: ...."""
        with self.lock:
            return {name: entry.state for name, entry in self.threads.items()}

    def _set(self, entry: Supervised, state: str) -> None:
        with self.lock:
            entry.state = state

    def _run(self, entry: Supervised) -> None:
        while True:
            started = self.clock()
            restarted = f" (restarted {entry.failures}x; last: {entry.last_error})" if entry.failures else ""
            self._set(entry, "ok" + restarted)
            try:
                entry.target()
            except self.fatal as e:
                log.critical("thread %s failed and cannot be restarted; stopping the node", entry.name, exc_info=True)
                self._set(entry, f"failed: {_describe(e)}")
                self.on_fatal(entry.name, e)
                return
            # Deliberately broad: this is the last line before a thread disappears unseen. The error is logged
            # with its traceback and shown in /status, not swallowed.
            except Exception as e:
                if self.clock() - started >= HEALTHY_SECONDS:
                    entry.failures = 0
                entry.failures += 1
                entry.last_error = _describe(e)
                delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (entry.failures - 1))
                log.error(
                    "thread %s failed (%d time(s)); restarting it in %.0f s",
                    entry.name,
                    entry.failures,
                    delay,
                    exc_info=True,
                )
                self._set(entry, f"restarting ({entry.failures}x): {entry.last_error}")
                if self.stopping.wait(delay):
                    self._set(entry, "stopped")
                    return
                continue
            if self.stopping.is_set():
                self._set(entry, "stopped")
            else:
                # A loop that returns on its own while the node runs is as dead as one that raised.
                log.critical("thread %s ended while the node runs; stopping the node", entry.name)
                self._set(entry, "failed: ended")
                self.on_fatal(entry.name, RuntimeError("ended"))
            return


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
