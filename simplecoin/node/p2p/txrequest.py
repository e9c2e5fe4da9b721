"""Which peer to ask for an announced transaction, and when (Bitcoin: TxRequestTracker, src/txrequest.h).

Every peer that announced a txid we lack is remembered as a candidate. At most one request per txid is in flight;
if the peer asked does not deliver within TX_REQUEST_TIMEOUT (or says it cannot), the next candidate is asked. A
stranger that announces first and never sends therefore delays a tx by one timeout, instead of keeping it from us
(issue 21, row 8: the first announcer was asked, and everyone else ignored for 10 s and never asked again).

Preferred peers (ours: added by hand or chosen by us, outbound) are asked first; another peer's announcement becomes
requestable only NONPREF_PEER_TX_DELAY after it arrived, so an inbound stranger has to be early by that much to be
asked before an honest outbound peer. Among the candidates ready at once, preferred first, then an order salted per
node, so a stranger cannot arrange to be first by its address.

Pure: no clock (`now` is passed in), no lock (the relay calls it under the peer table's lock), no I/O. A peer is any
hashable key (the relay uses its `PeerAddress`).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)

MAX_PEER_TX_ANNOUNCEMENTS = 5_000  # Bitcoin: MAX_PEER_TX_ANNOUNCEMENTS; past it a peer's announcements are ignored
MAX_PEER_TX_REQUEST_IN_FLIGHT = 100  # Bitcoin: MAX_PEER_TX_REQUEST_IN_FLIGHT; past it a peer waits its turn
# In total; past it new announcements are ignored. Inbound peers alone (16, MAX_INBOUND, x 5,000) fill at most 80,000,
# so strangers cannot lock our own outbound peers' announcements out.
MAX_TX_ANNOUNCEMENTS = 100_000
NONPREF_PEER_TX_DELAY = 2.0  # Bitcoin: NONPREF_PEER_TX_DELAY (and TXID_RELAY_DELAY), 2 s
# Bitcoin: GETDATA_TX_INTERVAL, 60 s. Ours is shorter: the announcer's sender posts what our inv answer asked for right
# after it, and a pull (GET /tx/<txid>) gives up after 3 s to connect and 10 s of silence, so an honest peer that has
# not delivered in 15 s has failed; asking the next one then costs at most one extra copy of the tx.
TX_REQUEST_TIMEOUT = 15.0


@dataclass(slots=True)
class _Announcement:
    """One peer's announcement of one txid: when it may be asked for it, and until when a request is in flight."""

    preferred: bool
    ready_at: float
    expires_at: float | None = None  # set while requested


class TxRequestTracker(Generic[P]):
    """The announcements of txids we lack, by txid and peer, and the requests in flight (bounded, see above)."""

    def __init__(self, salt: int | None = None) -> None:
        self.salt = int.from_bytes(os.urandom(8)) if salt is None else salt
        # Bounded: MAX_PEER_TX_ANNOUNCEMENTS per peer, MAX_TX_ANNOUNCEMENTS in all; past them, new ones are ignored.
        self._by_txid: dict[bytes, dict[P, _Announcement]] = {}
        self._requested: dict[bytes, P] = {}  # txid -> the peer asked for it now (one at most)
        self._per_peer: collections.Counter[P] = collections.Counter()
        self._in_flight: collections.Counter[P] = collections.Counter()
        self._total = 0

    def __len__(self) -> int:
        """How many announcements are remembered."""
        return self._total

    def announcements(self, peer: P) -> int:
        return self._per_peer[peer]

    def in_flight(self, peer: P) -> int:
        return self._in_flight[peer]

    def announced(self, peer: P, txid: bytes, preferred: bool, now: float) -> None:
        """`peer` announced `txid`, which we lack (Bitcoin: ReceivedInv); ignored past the bounds."""
        candidates = self._by_txid.get(txid)
        if candidates is not None and peer in candidates:
            return
        if self._per_peer[peer] >= MAX_PEER_TX_ANNOUNCEMENTS or self._total >= MAX_TX_ANNOUNCEMENTS:
            return
        ready_at = now if preferred else now + NONPREF_PEER_TX_DELAY
        self._by_txid.setdefault(txid, {})[peer] = _Announcement(preferred, ready_at)
        self._per_peer[peer] += 1
        self._total += 1

    def requests(self, now: float, txids: Iterable[bytes] | None = None) -> list[tuple[P, bytes]]:
        """What to ask whom now (Bitcoin: GetRequestable, then RequestedTx): requests past their timeout are given
        up first; then each txid (of `txids`, or all) without a request in flight gets one, from its best candidate
        that is ready and has room. Each returned pair is marked in flight until `now + TX_REQUEST_TIMEOUT`."""
        for txid, peer in list(self._requested.items()):
            expires_at = self._by_txid[txid][peer].expires_at
            if expires_at is not None and expires_at <= now:
                self.completed(peer, txid)
        chosen = []
        for txid in list(self._by_txid) if txids is None else txids:
            candidates = self._by_txid.get(txid)
            if candidates is None or txid in self._requested:
                continue
            ready = [
                (not a.preferred, hash((self.salt, txid, peer)), peer)
                for peer, a in candidates.items()
                if a.ready_at <= now and self._in_flight[peer] < MAX_PEER_TX_REQUEST_IN_FLIGHT
            ]
            if not ready:
                continue
            peer = min(ready, key=lambda entry: entry[:2])[2]
            candidates[peer].expires_at = now + TX_REQUEST_TIMEOUT
            self._requested[txid] = peer
            self._in_flight[peer] += 1
            chosen.append((peer, txid))
        return chosen

    def completed(self, peer: P, txid: bytes) -> None:
        """`peer` will not deliver `txid` (it timed out, said it had none, or sent one we refused): the next
        candidate may be asked (Bitcoin: ReceivedResponse, or the request expiring)."""
        candidates = self._by_txid.get(txid)
        if candidates is None or peer not in candidates:
            return
        del candidates[peer]
        self._forget_one(peer)
        if self._requested.get(txid) == peer:
            del self._requested[txid]
            self._in_flight[peer] -= 1
            if not self._in_flight[peer]:
                del self._in_flight[peer]
        if not candidates:
            del self._by_txid[txid]

    def forget(self, txid: bytes) -> None:
        """We have `txid` (in the pool, a block, or the recent rejects): no one is asked for it any more (Bitcoin:
        ForgetTxHash)."""
        for peer in list(self._by_txid.get(txid, ())):
            self.completed(peer, txid)

    def forget_peer(self, peer: P) -> None:
        """`peer` is gone (dropped or banned): its announcements go, its requests are given up (Bitcoin:
        DisconnectedPeer)."""
        if not self._per_peer[peer]:
            return
        for txid in [txid for txid, candidates in self._by_txid.items() if peer in candidates]:
            self.completed(peer, txid)

    def _forget_one(self, peer: P) -> None:
        self._per_peer[peer] -= 1
        if not self._per_peer[peer]:
            del self._per_peer[peer]
        self._total -= 1
