"""TxRequestTracker on its own (Bitcoin: src/test/txrequest_tests.cpp): a fake clock, peers as names."""

from __future__ import annotations

import pytest

from simplecoin.node.p2p import txrequest
from simplecoin.node.p2p.txrequest import NONPREF_PEER_TX_DELAY, TX_REQUEST_TIMEOUT, TxRequestTracker

T1, T2, T3 = (bytes([i]) * 32 for i in (1, 2, 3))


def test_the_first_announcer_asked_and_silent_is_followed_by_the_next():
    """Issue 21, row 8: a stranger announced first and never sent; the honest peer's announcement was ignored."""
    tracker = TxRequestTracker[str]()
    tracker.announced("stranger", T1, preferred=True, now=0.0)
    assert tracker.requests(0.0, [T1]) == [("stranger", T1)]
    tracker.announced("honest", T1, preferred=True, now=1.0)
    assert tracker.requests(1.0) == []  # one request in flight per txid
    assert tracker.requests(TX_REQUEST_TIMEOUT - 0.1) == []
    assert tracker.requests(TX_REQUEST_TIMEOUT) == [("honest", T1)]
    assert tracker.in_flight("stranger") == 0
    assert tracker.announcements("stranger") == 0


def test_a_peer_that_says_it_cannot_deliver_is_followed_at_once():
    tracker = TxRequestTracker[str]()
    for peer in ("a", "b"):
        tracker.announced(peer, T1, preferred=True, now=0.0)
    [(first, _)] = tracker.requests(0.0)
    tracker.completed(first, T1)
    second = "b" if first == "a" else "a"
    assert tracker.requests(0.0) == [(second, T1)]
    assert len(tracker) == 1


def test_preferred_peers_first_and_strangers_only_after_a_delay():
    tracker = TxRequestTracker[str]()
    tracker.announced("stranger", T1, preferred=False, now=0.0)
    assert tracker.requests(0.0) == []  # not yet: an outbound peer announcing within the delay goes first
    tracker.announced("outbound", T1, preferred=True, now=1.0)
    assert tracker.requests(1.0) == [("outbound", T1)]
    tracker.completed("outbound", T1)
    assert tracker.requests(1.5) == []
    assert tracker.requests(NONPREF_PEER_TX_DELAY) == [("stranger", T1)]


def test_preferred_first_among_the_ready_whatever_the_order_of_announcement():
    for salt in range(20):
        tracker = TxRequestTracker[str](salt=salt)
        tracker.announced("stranger", T1, preferred=False, now=0.0)
        tracker.announced("outbound", T1, preferred=True, now=1.0)
        assert tracker.requests(10.0) == [("outbound", T1)]


def test_forgotten_once_we_have_it():
    tracker = TxRequestTracker[str]()
    for peer in ("a", "b", "c"):
        tracker.announced(peer, T1, preferred=True, now=0.0)
    tracker.announced("a", T2, preferred=True, now=0.0)
    assert len(tracker.requests(0.0)) == 2
    tracker.forget(T1)
    assert len(tracker) == 1
    assert tracker.requests(100.0) == []  # T2's request expired, no one else announced it
    assert len(tracker) == 0
    assert tracker.in_flight("a") == 0


def test_a_departed_peer_is_forgotten_and_the_next_asked():
    tracker = TxRequestTracker[str]()
    tracker.announced("a", T1, preferred=True, now=0.0)
    tracker.announced("a", T2, preferred=True, now=0.0)
    tracker.announced("b", T1, preferred=False, now=0.0)
    assert sorted(tracker.requests(0.0)) == [("a", T1), ("a", T2)]
    tracker.forget_peer("a")
    assert tracker.requests(NONPREF_PEER_TX_DELAY) == [("b", T1)]
    assert len(tracker) == 1


def test_bounds_per_peer_in_flight_and_in_total(monkeypatch):
    monkeypatch.setattr(txrequest, "MAX_PEER_TX_ANNOUNCEMENTS", 30)
    monkeypatch.setattr(txrequest, "MAX_PEER_TX_REQUEST_IN_FLIGHT", 10)
    monkeypatch.setattr(txrequest, "MAX_TX_ANNOUNCEMENTS", 50)
    tracker = TxRequestTracker[str]()
    txids = [i.to_bytes(32, "big") for i in range(100)]
    for txid in txids:  # a flood from one peer: only its first 30 are remembered
        tracker.announced("flood", txid, preferred=True, now=0.0)
    assert tracker.announcements("flood") == 30
    assert len(tracker.requests(0.0)) == 10  # at most 10 in flight to one peer
    assert tracker.requests(1.0) == []
    for txid in txids:
        tracker.announced("other", txid, preferred=True, now=0.0)
    assert len(tracker) == 50  # the total bound
    assert tracker.announcements("other") == 20
    # The flood's first ten time out; its next ten go out, and the other peer's for those ten are asked of it.
    assert len(tracker.requests(TX_REQUEST_TIMEOUT)) == 20


@pytest.mark.parametrize("salt", range(5))
def test_an_announcement_repeated_counts_once(salt):
    tracker = TxRequestTracker[str](salt=salt)
    for now in (0.0, 1.0, 2.0):
        tracker.announced("a", T3, preferred=True, now=now)
    assert tracker.announcements("a") == 1
    assert tracker.requests(0.0) == [("a", T3)]
