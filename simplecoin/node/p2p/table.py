"""The peer table: per-peer state, who is connected, misbehaviour and bans, inbound eviction, backoff.

One lock (`PeerTable.lock`) guards the table, the address tables, the ban scores and bans, and every `Peer`.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simplecoin.bounded import BoundedDict
from simplecoin.core.params import NetworkParams
from simplecoin.node import addrman
from simplecoin.node.addrman import AddrMan, BadAddress, PeerAddress, network_group
from simplecoin.node.p2p.bans import BAN_SECONDS, BAN_THRESHOLD, Identities
from simplecoin.node.p2p.client import Misbehaving, PeerError

if TYPE_CHECKING:
    from simplecoin.node.p2p.relay import Sender

log = logging.getLogger(__name__)

MAX_OUTBOUND = 8  # Bitcoin: MAX_OUTBOUND_FULL_RELAY_CONNECTIONS, chosen across network groups
MAX_MANUAL = 16  # Bitcoin: MAX_ADDNODE_CONNECTIONS (8); --peer and POST /peers
MAX_INBOUND = 16  # peers that said hello to us; past it the worst is evicted (see _evict_inbound)
MAX_BACKOFF = 300.0
MAX_AUTO_FAILURES = 3  # an automatic outbound peer failing this often in a row is dropped for another
MAX_KNOWN_INVENTORY = 5_000  # hashes remembered per peer as ones it has (Bitcoin: the known-inventory filter)
MAX_REMEMBERED_BACKOFFS = 1_000  # failing peers' backoffs kept after their entry goes; past it the oldest goes


@dataclass
class Peer:
    """What we know about one peer (Bitcoin: CNodeState); mutated only under the table's lock."""

    address: PeerAddress
    manual: bool = False  # --peer or POST /peers: always kept
    outbound: bool = False  # we chose it from the address tables
    inbound: bool = False  # it said hello to us; we call back its connection's IP at its announced port
    connected: bool = False  # our own hello to it succeeded: its address is verified
    failures: int = 0
    next_try: float = 0.0
    # Whether the last failure came after it answered our hello (it was up, and failed us: a false claim, a stall,
    # junk): a backoff it earned, which nothing it says shortens. A failure to answer the hello is only its being
    # unreachable, which its own hello disproves.
    backoff_earned: bool = False
    height: int = -1  # from its hello: a hint, never trusted
    chain_work: int = 0  # from its hello: a hint, never trusted
    refused: str = ""  # "wrong-network": it runs another chain (its own words are not kept)
    last_seen: float = 0.0
    since: float = 0.0  # when it entered the table (wall clock, for people to read)
    blocks_sent: int = 0  # blocks it was the first to bring us that joined our active chain (`sent_us`)
    txs_sent: int = 0  # txs it was the first to bring us that joined our pool
    addresses_due: float = 0.0  # when to ask it for its addresses next (at once after the first handshake)
    sender: Sender | None = None
    # Blocks it sent us (Bitcoin: m_tx_inventory_known_filter, PeerHasHeader): never announced back to it. An
    # initial sync announced every block to the peer it came from, which cost both nodes a third of the sync.
    # Bounded: the oldest are forgotten, which costs at most an announcement it answers with "not wanted".
    known: BoundedDict[bytes, None] = field(default_factory=lambda: BoundedDict(MAX_KNOWN_INVENTORY))

    def learn(self, hashes: list[bytes]) -> None:
        """Remember that it has `hashes` (under the table's lock)."""
        for item_hash in hashes:
            self.known[item_hash] = None

    @property
    def url(self) -> str:
        return self.address.url


def direction(peer: Peer) -> str:
    """How we came to know the peer: manual (the operator added it), outbound (we chose it) or inbound."""
    return "manual" if peer.manual else "outbound" if peer.outbound else "inbound"


@dataclass(frozen=True)
class PeerView:
    """One peer as the explorer shows it (`PeerTable.views`)."""

    address: str
    direction: str  # "outbound" (we chose it), "manual" (the operator added it) or "inbound" (it said hello)
    connected: bool
    since: float  # wall clock
    height: int  # what its hello said: a hint
    blocks_sent: int
    txs_sent: int
    ban_score: int
    banned: bool
    failures: int
    retry_in: float  # seconds until the next visit (0: due)


@dataclass(frozen=True)
class PeerFigures:
    """What GET /metrics shows of the peer table."""

    inbound: int  # connected peers that said hello to us (neither chosen by us nor added by hand)
    outbound: int  # connected peers we chose from the address tables
    manual: int  # connected peers the operator added (--peer, POST /peers)
    banned: int  # identities banned now
    best_height: int  # the best height a connected peer claimed in its hello: a hint, never trusted (-1: none)


class PeerTable:
    """Our peers (bounded: MAX_MANUAL + MAX_OUTBOUND + MAX_INBOUND), their scores and bans, under one lock."""

    def __init__(
        self,
        own: PeerAddress,
        params: NetworkParams,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        wake: threading.Event,
    ) -> None:
        self.own = own
        self.params = params
        self.clock = clock
        self.wall_clock = wall_clock
        self.wake = wake  # set when a peer is due at once: the sync loop looks again
        self.lock = threading.Lock()
        self.peers: dict[PeerAddress, Peer] = {}
        self.addrman = AddrMan(clock=wall_clock)
        self.identities = Identities(own, wall_clock)
        self.bans = self.identities.bans
        self.scores = self.identities.scores
        self.on_new_peer: Callable[[Peer], None] = lambda peer: None  # under the lock: the relay gives it a sender
        # A dropped peer's failures and next try if it earned them, so that coming back (a hello makes a new entry)
        # does not wipe its backoff. Bounded: the oldest is forgotten, which only forgives one peer early.
        self.backoffs: BoundedDict[PeerAddress, tuple[int, float]] = BoundedDict(MAX_REMEMBERED_BACKOFFS)

    # -- misbehaviour and bans ------------------------------------------------------------------------------

    def misbehaving(self, who: str, score: int, why: str) -> None:
        """Add ban score to an identity (Bitcoin: Misbehaving); at the threshold it is banned and disconnected."""
        if not who or score <= 0:
            log.info("not scoring %s (local or unscored): %s", who or "a local request", why)
            return
        with self.lock:
            total = self.scores.add(who, score)
            if total < BAN_THRESHOLD:
                log.info("peer %s misbehaved (+%d, now %d): %s", who, score, total, why)
                return
            already = self.bans.banned(who)
            self.bans.ban(who, BAN_SECONDS)
            banned = [p for p in self.peers.values() if self.banned(p)]
            for peer in banned:
                peer.connected = False
                if not peer.manual:
                    self.drop(peer)
        if not already:
            names = ", ".join(p.url for p in banned) or who
            log.warning("banned peer %s (%s): %s", names, who, why)

    def is_banned(self, who: str) -> bool:
        """Whether an identity, a ban key, or a peer address (host:port or its URL) is banned."""
        if not who:
            return False
        keys = self.identities.keys_of(who)
        with self.lock:
            return any(self.bans.banned(k) for k in keys)

    def banned(self, peer: Peer) -> bool:
        """Whether `peer` is banned (under the lock)."""
        return self.identities.address_banned(peer.address)

    def ban_key(self, peer: Peer) -> str:
        return self.identities.ban_key(peer.address.host, peer.address.port)

    def failed(self, peer: Peer, error: PeerError) -> None:
        """One peer failed us: its own backoff and, for misbehaviour, ban score; nothing else changes."""
        if isinstance(error, Misbehaving):
            self.misbehaving(self.ban_key(peer), error.score, str(error))
        with self.lock:
            peer.failures += 1
            peer.backoff_earned = peer.connected or isinstance(error, Misbehaving)
            peer.connected = False
            delay = min(MAX_BACKOFF, 2.0**peer.failures)
            peer.next_try = self.clock() + delay
            self.addrman.attempt_failed(peer.address)
            if peer.outbound and not peer.manual and peer.failures >= MAX_AUTO_FAILURES:
                self.drop(peer)
            banned = self.banned(peer)
        if not banned:
            log.info("peer %s: %s (retrying in %.0f s)", peer.address, error, delay)

    # -- who is in the table --------------------------------------------------------------------------------

    def add(self, text: str) -> PeerAddress:
        """The operator adds a peer (--peer, POST /peers from this machine); BadAddress if refused."""
        address = addrman.parse_address(text, allow_names=True)
        if address == self.own:
            raise BadAddress("that is this node")
        with self.lock:
            if self.identities.address_banned(address):
                raise BadAddress("banned")
            peer = self.peers.get(address)
            if peer is None:
                if sum(1 for p in self.peers.values() if p.manual) >= MAX_MANUAL:
                    raise BadAddress(f"already {MAX_MANUAL} peers added by hand")
                peer = self._new_peer(address)
            peer.manual = True
            peer.next_try = 0.0
            self.on_new_peer(peer)
        self.wake.set()
        return address

    def _new_peer(self, address: PeerAddress, outbound: bool = False) -> Peer:
        """A new entry (under the lock), with the backoff its address earned before it was dropped, if any."""
        peer = self.peers[address] = Peer(address, outbound=outbound, since=self.wall_clock())
        if address in self.backoffs:
            peer.failures, peer.next_try = self.backoffs.pop(address)
            peer.backoff_earned = True
        return peer

    def _call_back_soon(self, peer: Peer) -> None:
        """Make a peer due at once (under the lock), unless it is backing off from a failure it earned: only a visit
        that succeeds resets that (manager._visit), never what the peer says (a hello, an inv, an orphan block)."""
        if not (peer.failures and peer.backoff_earned):
            peer.next_try = 0.0

    def drop(self, peer: Peer) -> None:
        """Forget a peer (under the lock): its sender stops, its address stays in the tables, its backoff too."""
        self.peers.pop(peer.address, None)
        if peer.failures and peer.backoff_earned:
            self.backoffs[peer.address] = (peer.failures, peer.next_try)
        if peer.sender is not None:
            peer.sender.stop()

    def hello_from(self, remote_ip: str, data: dict) -> Peer | None:
        """Another node said hello: its connection's IP at its announced port becomes an inbound peer (returned;
        None if refused)."""
        if data.get("network") != self.params.name or data.get("genesis") != self.params.genesis_hash_hex:
            return None
        port = data.get("port")
        if not isinstance(port, int) and isinstance(data.get("url"), str):  # older nodes: only the port is used
            try:
                port = addrman.parse_address(data["url"], allow_names=True).port
            except BadAddress:
                port = None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            return None
        ip = addrman.ip_or_none(remote_ip)
        if ip is None:
            return None
        address = PeerAddress(str(ip), port)
        if address == self.own:
            return None
        with self.lock:
            if self.identities.address_banned(address):
                return None
            peer = self.peers.get(address)
            if peer is None:
                inbound = [p for p in self.peers.values() if p.inbound and not (p.manual or p.outbound)]
                if len(inbound) >= MAX_INBOUND:
                    self._evict_inbound(inbound)
                peer = self._new_peer(address)
            peer.inbound = True
            peer.last_seen = self.clock()
            if not peer.connected:
                self._call_back_soon(peer)  # that verifies the address before we share it
            self.on_new_peer(peer)
            self.addrman.add(address, address.host)
        self.wake.set()
        return peer

    def _evict_inbound(self, inbound: list[Peer]) -> None:
        """Make room for a new inbound peer (Bitcoin: AttemptToEvictConnection): from the network group with the
        most inbound peers, the one heard from longest ago; so a flood from one group evicts only itself."""
        per_group = collections.Counter(network_group(p.address.host) for p in inbound)
        victim = max(inbound, key=lambda p: (per_group[network_group(p.address.host)], -p.last_seen))
        log.info("evicting inbound peer %s to make room", victim.address)
        self.drop(victim)

    def fill_outbound(self) -> None:
        """Fill automatic outbound slots from the address tables, one peer per network group at most."""
        with self.lock:
            auto = [p for p in self.peers.values() if p.outbound and not p.manual]
            if len(auto) >= MAX_OUTBOUND:
                return
            groups = {network_group(p.address.host) for p in self.peers.values() if p.outbound or p.manual}
            groups.add(network_group(self.own.host))  # the machine itself is no diversity
            choice = self.addrman.select(groups, set(self.peers) | {self.own})
            if choice is None or self.identities.address_banned(choice):
                return
            peer = self._new_peer(choice, outbound=True)
            self.on_new_peer(peer)

    def due_now(self, who: str) -> None:
        """Visit the peers at identity or address `who` at once (it sent a block whose parent we lack)."""
        with self.lock:
            for peer in self.peers.values():
                if who in (addrman.identity(peer.address.host), str(peer.address)):
                    self._call_back_soon(peer)
        self.wake.set()

    def due(self) -> list[Peer]:
        """Peers whose visit is due, neither banned nor refused."""
        now = self.clock()
        with self.lock:
            return [p for p in self.peers.values() if p.next_try <= now and not self.banned(p) and not p.refused]

    # -- what we show ---------------------------------------------------------------------------------------

    def count(self) -> int:
        with self.lock:
            return sum(1 for p in self.peers.values() if p.connected)

    def sent_us(self, source: str, kind: str) -> None:
        """A block or tx from `source` (a ban key, as the peer layer names who sent it) was new to us and taken:
        count it for the peers at that identity (the explorer's peers page)."""
        if not source:
            return
        with self.lock:
            for peer in self.peers.values():
                if self.ban_key(peer) == source:
                    if kind == "block":
                        peer.blocks_sent += 1
                    else:
                        peer.txs_sent += 1

    def views(self) -> list[PeerView]:
        """Our peers for the explorer's peers page, by address: numbers and flags, none of a peer's own words."""
        now = self.clock()
        with self.lock:
            return [
                PeerView(
                    str(p.address),
                    direction(p),
                    p.connected,
                    p.since,
                    p.height,
                    p.blocks_sent,
                    p.txs_sent,
                    self.identities.address_score(p.address),
                    self.banned(p),
                    p.failures,
                    max(p.next_try - now, 0.0),
                )
                for p in sorted(self.peers.values(), key=lambda p: p.address)
            ]

    def figures(self) -> PeerFigures:
        """Counts for GET /metrics: connected peers by direction, identities banned now, the best height claimed."""
        with self.lock:
            connected = [p for p in self.peers.values() if p.connected]
            now = self.bans.clock()
            directions = [direction(p) for p in connected]
            return PeerFigures(
                inbound=directions.count("inbound"),
                outbound=directions.count("outbound"),
                manual=directions.count("manual"),
                banned=sum(1 for until in self.bans.until.values() if until > now),
                best_height=max((p.height for p in connected), default=-1),
            )

    def describe(self) -> list[dict]:
        """Our peers as numbers and flags: nothing a peer wrote in its own words is shown (it could be anything)."""
        with self.lock:
            return [
                {
                    "address": str(p.address),
                    "url": p.url,
                    "manual": p.manual,
                    "inbound": p.inbound,
                    "outbound": p.outbound or p.manual,
                    "connected": p.connected,
                    "height": p.height,
                    "banned": self.banned(p),
                    "ban_score": self.identities.address_score(p.address),
                    "failures": p.failures,
                    "refused": p.refused or None,
                }
                for p in sorted(self.peers.values(), key=lambda p: p.address)
            ]
