"""How far this node's clock is from its peers' (Bitcoin: TimeOffsets, node/timeoffsets.cpp): a warning, never a
correction.

Each answer to our hello carries the peer's time. A node whose clock differs from most of its peers' by more than
the time a block may be ahead of it meets their new blocks as "from the future" and takes them late (they are
early, not invalid). It says so in its log and in /status, once each time the state changes. A peer can lie about
its time, but it moves only its own sample of the median, and nothing but the warning depends on it.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Callable

from simplecoin.bounded import BoundedDict

log = logging.getLogger(__name__)

MAX_TIME_SAMPLES = 50  # peers whose latest offset is kept (Bitcoin: TimeOffsets' N); past it the oldest goes
MAX_SANE_OFFSET = 10 * 365 * 24 * 3600  # a peer's time further off than this is garbage, not a clock


class ClockOffsets:
    """The latest offset (peer's time minus ours, seconds) per peer, and the verdict on their median."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self.limit = limit  # seconds a block may be ahead of our clock (the future-time limit at our tip)
        self.lock = threading.Lock()
        self.samples: BoundedDict[str, int] = BoundedDict(MAX_TIME_SAMPLES)
        self.warned = False

    def add(self, peer: str, their_time: object, our_time: float) -> None:
        """Record what `peer` said its time was when we asked at `our_time`; anything but a sane integer is ignored."""
        if not isinstance(their_time, int) or isinstance(their_time, bool):
            return
        offset = their_time - int(our_time)
        if abs(offset) > MAX_SANE_OFFSET:
            return
        with self.lock:
            self.samples[peer] = offset
            report = self._report()
            changed = (report["warning"] is not None) != self.warned
            self.warned = report["warning"] is not None
        if changed and report["warning"] is not None:
            log.warning("%s", report["warning"])
        elif changed:
            log.info("this node's clock agrees with its peers' again (median offset %+d s)", report["offset"])

    def report(self) -> dict:
        """{"offset": median seconds our peers are ahead of us (0 with none), "peers": samples, "warning": text or
        None}."""
        with self.lock:
            return self._report()

    def _report(self) -> dict:
        if not self.samples:
            return {"offset": 0, "peers": 0, "warning": None}
        offset = int(statistics.median_low(self.samples.values()))
        limit = self.limit()
        warning = None
        if abs(offset) > limit:
            direction = "behind" if offset > 0 else "ahead of"
            warning = (
                f"this node's clock differs from its peers' by {offset:+d} s (median of {len(self.samples)}), "
                f"more than the {limit} s a block may be ahead: it is {direction} them, so it takes their blocks "
                "late or they refuse its own; check this computer's date and time"
            )
        return {"offset": offset, "peers": len(self.samples), "warning": warning}
