"""Relay: each peer's send queue and sender thread, announce-then-fetch, and what we asked whom.

Each peer has its own bounded send queue and sender thread (Bitcoin: per-peer vInventoryToSend), so a slow peer
delays no one else. Relay announces hashes (`POST /p2p/inv`); the answer names the ones the peer lacks, and only
those are sent: a block crosses each link once.

A tx announced to us is asked of one announcer at a time (`txrequest.TxRequestTracker`): in the answer to its inv
if it may be asked at once, otherwise later by its sender thread (`GET /tx/<txid>`), when the tracker says so: the
next announcer once the one asked has not delivered in time.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
from collections.abc import Callable

from simplecoin.bounded import BoundedDict
from simplecoin.core.errors import DecodeError, ValidationError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.primitives import Block, Transaction
from simplecoin.node.addrman import PeerAddress
from simplecoin.node.p2p.bans import SCORE_INVALID, tx_score
from simplecoin.node.p2p.client import Misbehaving, PeerClient, PeerError, Refused, parse_peer_hash
from simplecoin.node.p2p.table import Peer, PeerTable
from simplecoin.node.p2p.txrequest import MAX_PEER_TX_REQUEST_IN_FLIGHT, TxRequestTracker
from simplecoin.node.service import Event, NodeService

log = logging.getLogger(__name__)

MAX_SEND_QUEUE = 5_000  # announcements waiting per peer; past it the oldest is dropped (it will be re-synced)
MAX_INV = 1_000  # hashes per kind in one inv (Bitcoin: MAX_INV_SZ, 50,000)
ASKED_SECONDS = 10.0  # a block we asked one announcer for is not asked of another meanwhile (txs: txrequest.py)
MAX_ASKED = 50_000  # remembered asks; past it the oldest goes
REQUEST_TICK_SECONDS = 0.5  # how often the tracker is asked which tx requests are due (timeouts, delays over)


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
        # Txs to ask this peer for (GET /tx/<txid>); the tracker keeps at most this many in flight per peer.
        self.fetches: collections.deque[bytes] = collections.deque(maxlen=MAX_PEER_TX_REQUEST_IN_FLIGHT)
        self.wake = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name=f"peer-send {peer.address}", daemon=True)

    def push(self, kind: Kind | str, item_hash: bytes) -> None:
        with self.wake:
            self.queue.append((Kind(kind), item_hash))
            self.wake.notify()

    def fetch(self, txid: bytes) -> None:
        with self.wake:
            self.fetches.append(txid)
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
                    if (self.queue or self.fetches) and pause <= 0:
                        break
                    self.wake.wait(timeout=pause or None)
                if self.stopped:
                    return
                batch = [self.queue.popleft() for _ in range(min(len(self.queue), MAX_INV))]
                fetches = list(self.fetches)
                self.fetches.clear()
            if fetches:  # first: each is a request in flight, timed
                self._step(self.relay.fetch_txs, client, fetches)
            if batch:
                self._step(self.relay.announce, client, batch)

    def _step(self, step: Callable[[PeerClient, Peer, list], None], client: PeerClient, items: list) -> None:
        # Deliberately broad after PeerError: this thread alone talks to this peer, and an unexpected error in
        # one batch must not silence the peer for good. Logged with its traceback.
        try:
            step(client, self.peer, items)
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
        self.asked: BoundedDict[bytes, float] = BoundedDict(MAX_ASKED)  # block -> until when it is asked of one peer
        self.txrequests: TxRequestTracker[PeerAddress] = TxRequestTracker()  # under the table's lock
        self.started = False
        self.stopped = threading.Event()
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
        self.stopped.set()
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
        """A block joined our active chain or a tx our mempool: announce it to every peer (each its own queue), and
        ask no one any more for the txs we now have."""
        if event.kind == Kind.TX.value:
            txids = [event.hash]
        else:
            txids = [tx.txid for tx in Block.deserialize(event.raw).txs] if len(self.txrequests) else []
        with self.table.lock:
            for txid in txids:
                self.txrequests.forget(txid)
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

    def wanted(self, blocks: list[bytes], txs: list[bytes], announcer: Peer | None = None) -> dict[str, list[bytes]]:
        """What of an announcement we want sent (Bitcoin: inv answered by getdata), by inv field. Txs only from an
        announcer in the table (the tracker asks the next one later, by its address)."""
        want: dict[str, list[bytes]] = {kind.inv_field: [] for kind in Kind}
        now = self.table.clock()
        for block_hash in blocks:
            if not self.service.lacks(Kind.BLOCK.value, block_hash):
                continue
            with self.table.lock:
                if self.asked.get(block_hash, 0.0) > now:  # another peer is sending it right now
                    continue
                self.asked[block_hash] = now + ASKED_SECONDS
            want[Kind.BLOCK.inv_field].append(block_hash)
        lacking = [txid for txid in txs if self.service.lacks(Kind.TX.value, txid)]
        if announcer is None or not lacking:
            return want
        with self.table.lock:
            # Bitcoin prefers outbound peers; an inbound peer that brought us a tx first before has earned it too.
            preferred = announcer.manual or announcer.outbound or announcer.txs_sent > 0
            for txid in lacking:
                self.txrequests.announced(announcer.address, txid, preferred, now)
            chosen = self.txrequests.requests(now, lacking)
        want[Kind.TX.inv_field] = [txid for address, txid in chosen if address == announcer.address]
        self._ask([(address, txid) for address, txid in chosen if address != announcer.address])
        return want

    # -- tx requests after the announcement: the next announcer, in its sender thread ------------------------

    def request_loop(self) -> None:
        """The thread asking for txs whose request is due (a timeout, a stranger's delay over) until `stop`."""
        while not self.stopped.wait(REQUEST_TICK_SECONDS):
            self.ask_due()

    def ask_due(self) -> None:
        """Ask for the txs whose request is due now."""
        now = self.table.clock()
        with self.table.lock:
            chosen = self.txrequests.requests(now)
        self._ask(chosen)

    def _ask(self, chosen: list[tuple[PeerAddress, bytes]]) -> None:
        """Hand each request to its peer's sender (Bitcoin: getdata); given up if we have the tx by now, or the peer
        is gone, banned, or not verified by our own hello (it gets no traffic, see `announce`)."""
        for address, txid in chosen:
            have = not self.service.lacks(Kind.TX.value, txid)
            with self.table.lock:
                peer = self.table.peers.get(address)
                if have:
                    self.txrequests.forget(txid)
                    continue
                if peer is None or peer.sender is None or self.table.banned(peer) or not peer.connected:
                    self.txrequests.completed(address, txid)
                    continue
                sender = peer.sender
            sender.fetch(txid)

    def fetch_txs(self, client: PeerClient, peer: Peer, txids: list[bytes]) -> None:
        """Ask `peer` for txs it announced (`GET /tx/<txid>`) and submit them. Whatever comes of it, those requests
        are done: if we still lack a tx, the tracker asks its next announcer."""
        source = self.table.ban_key(peer) or str(peer.address)
        try:
            for txid in txids:
                if not self.service.lacks(Kind.TX.value, txid):
                    continue
                try:
                    data = client.get(peer.address, f"/tx/{hash_hex(txid)}", {})
                except Refused:  # it has none (Bitcoin: notfound)
                    continue
                self._submit_fetched(source, txid, data.get("hex"))
        finally:
            with self.table.lock:
                for txid in txids:
                    self.txrequests.completed(peer.address, txid)

    def _submit_fetched(self, source: str, txid: bytes, text: object) -> None:
        """Submit a tx a peer sent when asked; Misbehaving if no honest node would have sent it."""
        try:
            tx = Transaction.deserialize(bytes.fromhex(text))  # type: ignore[arg-type]
        except (ValueError, TypeError, DecodeError) as e:
            raise Misbehaving(SCORE_INVALID, "sent an undecodable tx") from e
        if tx.txid != txid:
            raise Misbehaving(SCORE_INVALID, "sent a tx other than the one asked for")
        try:
            self.service.submit_tx(tx, source=source)
        except ValidationError as e:
            if tx_score(e):
                raise Misbehaving(tx_score(e), f"sent an invalid tx ({e})") from e
            log.debug("%s sent tx %s, refused: %s", source, hash_hex(txid), e)
