"""Relay: each peer's send queue and sender thread, announce-then-fetch, and what we asked whom.

Each peer has its own bounded send queue and sender thread (Bitcoin: per-peer vInventoryToSend), so a slow peer
delays no one else. Relay announces hashes (`POST /p2p/inv`); the answer names the ones the peer lacks, and only
those are sent: a block crosses each link once.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
from collections.abc import Callable

from simplecoin.bounded import BoundedDict
from simplecoin.core.hashing import hash_hex
from simplecoin.node.addrman import PeerAddress
from simplecoin.node.p2p.client import PeerClient, PeerError, Refused, parse_peer_hash
from simplecoin.node.p2p.table import Peer, PeerTable
from simplecoin.node.service import Event, NodeService

log = logging.getLogger(__name__)

MAX_SEND_QUEUE = 5_000  # announcements waiting per peer; past it the oldest is dropped (it will be re-synced)
MAX_INV = 1_000  # hashes per kind in one inv (Bitcoin: MAX_INV_SZ, 50,000)
ASKED_SECONDS = 10.0  # an item we asked one announcer for is not asked of another meanwhile (Bitcoin: GETDATA)
MAX_ASKED = 50_000  # remembered asks; past it the oldest goes


class Kind(enum.Enum):
    """What an inv announces; the value is the service's name for it (`Event.kind`, `NodeService.lacks`)."""

    BLOCK = "block"
    TX = "tx"

    @property
    def inv_field(self) -> str:
        """Its list's name in an inv and in the answer's `want`."""
        return INV_FIELDS[self]

    @property
    def push_path(self) -> str:
        """Where a peer takes one of them."""
        return PUSH_PATHS[self]


INV_FIELDS = {Kind.BLOCK: "blocks", Kind.TX: "txs"}
PUSH_PATHS = {Kind.BLOCK: "/p2p/block", Kind.TX: "/tx"}


class Sender:
    """One peer's send queue and the thread that drains it (Bitcoin: vInventoryToSend and SendMessages)."""

    def __init__(self, relay: Relay, peer: Peer) -> None:
        self.relay = relay
        self.peer = peer
        # Bounded: past MAX_SEND_QUEUE the oldest announcement is dropped; the peer catches up by headers sync.
        self.queue: collections.deque[tuple[Kind, bytes]] = collections.deque(maxlen=MAX_SEND_QUEUE)
        self.wake = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name=f"peer-send {peer.address}", daemon=True)

    def push(self, kind: Kind | str, item_hash: bytes) -> None:
        with self.wake:
            self.queue.append((Kind(kind), item_hash))
            self.wake.notify()

    def stop(self) -> None:
        with self.wake:
            self.stopped = True
            self.wake.notify()

    def _run(self) -> None:
        client = self.relay.new_client()
        while True:
            with self.wake:
                while not self.stopped:
                    # Read without the table's lock (stop() is called under it, then takes ours): a stale value
                    # only shortens or lengthens one wait.
                    pause = max(0.0, self.peer.next_try - self.relay.table.clock()) if self.peer.failures else 0.0
                    if self.queue and pause <= 0:
                        break
                    self.wake.wait(timeout=pause or None)
                if self.stopped:
                    return
                batch = [self.queue.popleft() for _ in range(min(len(self.queue), MAX_INV))]
            # Deliberately broad after PeerError: this thread alone talks to this peer, and an unexpected error in
            # one batch must not silence the peer for good. Logged with its traceback.
            try:
                self.relay.announce(client, self.peer, batch)
            except PeerError as e:
                self.relay.table.failed(self.peer, e)
            except Exception as e:
                log.exception("relay to %s failed unexpectedly", self.peer.address)
                self.relay.table.failed(self.peer, PeerError(f"unexpected {type(e).__name__}"))


class Relay:
    """Announce-then-fetch both ways: what we send each peer, and what of a peer's announcement we ask for."""

    def __init__(
        self, service: NodeService, table: PeerTable, own: PeerAddress, new_client: Callable[[], PeerClient]
    ) -> None:
        self.service = service
        self.table = table
        self.own = own
        self.new_client = new_client
        self.asked: BoundedDict[bytes, float] = BoundedDict(MAX_ASKED)  # hash -> until when it is asked of one peer
        self.started = False
        table.on_new_peer = self.ensure_sender
        service.subscribe(self.on_event)

    # -- senders --------------------------------------------------------------------------------------------

    def ensure_sender(self, peer: Peer) -> None:
        """Give `peer` a sender (under the table's lock), started if the relay is."""
        if peer.sender is None:
            peer.sender = Sender(self, peer)
            if self.started:
                peer.sender.thread.start()

    def start(self) -> None:
        with self.table.lock:
            self.started = True
            senders = [p.sender for p in self.table.peers.values() if p.sender is not None]
        for sender in senders:
            sender.thread.start()

    def stop(self) -> None:
        with self.table.lock:
            for peer in self.table.peers.values():
                if peer.sender is not None:
                    peer.sender.stop()

    def sender_health(self) -> str:
        """For /status: "ok" while every started sender thread is alive."""
        with self.table.lock:
            senders = [p.sender for p in self.table.peers.values() if p.sender is not None]
            dead = sum(1 for x in senders if x.thread.ident is not None and not x.thread.is_alive() and not x.stopped)
        return "ok" if not dead else f"{dead} of {len(senders)} dead (restarting)"

    def revive_senders(self) -> None:
        """A sender thread catches everything per batch; should one die anyway, say so loudly and start another."""
        with self.table.lock:
            for peer in self.table.peers.values():
                sender = peer.sender
                if sender is None or sender.stopped or sender.thread.ident is None or sender.thread.is_alive():
                    continue
                log.error("the sender thread for peer %s died; starting a new one", peer.address)
                peer.sender = None
                self.ensure_sender(peer)
                if peer.sender is not None:
                    peer.sender.queue.extend(sender.queue)

    # -- outgoing: announce, then send what was asked for ---------------------------------------------------

    def on_event(self, event: Event) -> None:
        """A block joined our active chain or a tx our mempool: announce it to every peer (each its own queue)."""
        with self.table.lock:
            senders = [
                p.sender
                for p in self.table.peers.values()
                if p.sender is not None and not self.table.banned(p) and event.hash not in p.known
            ]
        for sender in senders:
            sender.push(event.kind, event.hash)

    def announce(self, client: PeerClient, peer: Peer, batch: list[tuple[Kind, bytes]]) -> None:
        """Send one inv; then send what the peer asked for, if it is still on our active chain / in our mempool."""
        with self.table.lock:
            # Only to a peer whose address our own hello verified: an unverified inbound claim gets no traffic
            # (the sync catches it up once it is connected).
            if self.table.banned(peer) or not peer.connected or peer.address not in self.table.peers:
                return
        announced = {kind: [h for k, h in batch if k is kind] for kind in Kind}
        params = self.service.params
        body: dict = {"network": params.name, "genesis": params.genesis_hash_hex, "port": self.own.port}
        body.update({kind.inv_field: [hash_hex(h) for h in hashes] for kind, hashes in announced.items()})
        answer = client.post(peer.address, "/p2p/inv", body)
        want = answer.get("want")
        if not isinstance(want, dict):
            raise PeerError(f"{peer.address}: inv answer lacks 'want'")
        for kind, hashes in announced.items():
            wanted = want.get(kind.inv_field)
            if not isinstance(wanted, list):
                raise PeerError(f"{peer.address}: inv answer's want is malformed")
            asked = {parse_peer_hash(text) for text in wanted[:MAX_INV]}
            for item_hash in hashes:  # in our order (parents before children), only what we announced
                if item_hash not in asked:
                    continue
                raw = self.service.relayable(kind.value, item_hash)
                if raw is None:
                    continue
                try:
                    client.post(peer.address, kind.push_path, {"hex": raw.hex()})
                except Refused as e:  # it refused one item (e.g. a tx its pool no longer takes): go on
                    log.debug("%s refused %s %s: %s", peer.address, kind.value, hash_hex(item_hash), e)

    # -- incoming: what of an announcement we want ----------------------------------------------------------

    def wanted(self, blocks: list[bytes], txs: list[bytes]) -> dict[str, list[bytes]]:
        """What of an announcement we want sent (Bitcoin: inv answered by getdata), by inv field."""
        want: dict[str, list[bytes]] = {kind.inv_field: [] for kind in Kind}
        now = self.table.clock()
        for kind, hashes in ((Kind.BLOCK, blocks), (Kind.TX, txs)):
            for item_hash in hashes:
                if not self.service.lacks(kind.value, item_hash):
                    continue
                with self.table.lock:
                    if self.asked.get(item_hash, 0.0) > now:  # another peer is sending it right now
                        continue
                    self.asked[item_hash] = now + ASKED_SECONDS
                want[kind.inv_field].append(item_hash)
        return want
