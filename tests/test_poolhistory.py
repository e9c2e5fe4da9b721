"""The mempool's history ring (node/poolhistory.py): bounded, one sample per second, only on change."""

from __future__ import annotations

from simplecoin.node.poolhistory import PoolHistory, PoolSample


def test_a_sample_per_change_at_most_one_per_second():
    history = PoolHistory(limit=5)
    history.note(100, 0, 0)
    history.note(100, 1, 250)  # the same second: replaces the first
    history.note(101, 1, 250)  # unchanged: nothing new
    history.note(102, 2, 500)
    assert history.samples() == (PoolSample(100, 1, 250), PoolSample(102, 2, 500))


def test_filled_past_its_bound_the_oldest_go():
    history = PoolHistory(limit=5)
    for second in range(12):
        history.note(second, second, second * 100)
    assert [s.time for s in history.samples()] == [7, 8, 9, 10, 11]


def test_a_reader_keeps_the_copy_it_got():
    history = PoolHistory(limit=3)
    history.note(1, 1, 100)
    copy = history.samples()
    history.note(2, 2, 200)
    assert copy == (PoolSample(1, 1, 100),)
