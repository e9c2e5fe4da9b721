"""The mempool over time, for the explorer's chart: a small bounded ring of (time, count, bytes) samples.

Taken by `NodeService` whenever its status is refreshed (each pool change and each block, under the node lock),
read without any lock: the ring is a tuple, replaced whole, so a reader gets one consistent copy.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SAMPLES = 240  # the ring's bound: past it the oldest sample goes


@dataclass(frozen=True, slots=True)
class PoolSample:
    """The pool at one moment (a whole second of the node's clock)."""

    time: int
    count: int
    bytes: int


class PoolHistory:
    """At most `limit` samples, oldest first; at most one per second (a busy second keeps its last figures)."""

    def __init__(self, limit: int = MAX_SAMPLES) -> None:
        self.limit = limit
        self._samples: tuple[PoolSample, ...] = ()

    def note(self, time: int, count: int, size: int) -> None:
        """Record the pool's figures at `time` if they changed (called under the node lock: one writer)."""
        samples = self._samples
        if samples and (samples[-1].count, samples[-1].bytes) == (count, size):
            return
        if samples and samples[-1].time >= time:  # the same second (or a clock that went back): replace it
            samples = samples[:-1]
        self._samples = (*samples[-(self.limit - 1) :], PoolSample(time, count, size))

    def samples(self) -> tuple[PoolSample, ...]:
        """The samples, oldest first; never waits for a lock."""
        return self._samples
