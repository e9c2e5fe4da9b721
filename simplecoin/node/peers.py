"""Peers over HTTP: handshake, headers presync, block download, announce-then-fetch relay, addresses and bans.

The peer protocol is in docs/protocol.md ("Peers"); the threat model in docs/security.md ("Peers"). In short:

- A peer is `host:port` (addrman.PeerAddress); the node calls only the protocol's fixed paths on it, never
  follows a redirect, and shows nothing free-form a peer answered.
- Who sent a request is its connection's IP (addrman.identity); ban score and bans go there
  (Bitcoin: Misbehaving, BanMan). A peer on our own IP (this machine) is scored by `ip:port` instead, since
  banning our own address would ban ourselves and every local node (Bitcoin Core does not discourage local
  peers at all).
- Work is verified before it is trusted (Bitcoin: headers presync, PR 25717): a hello's height and chain work
  are hints; headers are checked (link, proof of work, bits, times) and their work summed before any block is
  downloaded, and only blocks we lack are fetched, only for a header chain with more work than ours.
- Each peer has its own bounded send queue and sender thread (Bitcoin: per-peer vInventoryToSend), so a slow
  peer delays no one else. Relay announces hashes (`POST /p2p/inv`); the answer names the ones the peer lacks,
  and only those are sent: a block crosses each link once.
- A failure talking to a peer is that peer's failure (backoff, maybe ban score), never a thread's: every loop
  catches per peer, per item.
"""

from __future__ import annotations

import collections
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from simplecoin.core.errors import BlockValidationError, DecodeError, ValidationError
from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.params import MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_RESULTS
from simplecoin.core.pow import block_work, check_proof_of_work, retarget
from simplecoin.core.primitives import Block, BlockHeader
from simplecoin.httpjson import BadAnswer, read_json_object
from simplecoin.node import addrman
from simplecoin.node.addrman import AddrMan, BadAddress, BanList, PeerAddress, identity, network_group
from simplecoin.node.service import Event, NodeService
from simplecoin.node.threads import Supervisor

log = logging.getLogger(__name__)

TIMEOUT = (3.0, 10.0)  # connect, and silence between two reads (seconds)
ANSWER_SECONDS = 30.0  # a whole answer, first byte to last: a peer trickling its answer is stalling
MAX_RESPONSE_BYTES = 40_000_000  # 16 maximal blocks in hex, with room to spare
MAX_SMALL_ANSWER_BYTES = 1_000_000  # hello, inv, peers; 2,000 headers in hex are 320 kB
MAX_OUTBOUND = 8  # Bitcoin: MAX_OUTBOUND_FULL_RELAY_CONNECTIONS, chosen across network groups
MAX_MANUAL = 16  # Bitcoin: MAX_ADDNODE_CONNECTIONS (8); --peer and POST /peers
MAX_INBOUND = 16  # peers that said hello to us; past it the worst is evicted (see _evict_inbound)
BAN_THRESHOLD = 100  # Bitcoin: DISCOURAGEMENT_THRESHOLD
BAN_SECONDS = 24 * 3600  # Bitcoin: DEFAULT_MISBEHAVING_BANTIME
MAX_SCORES = 10_000  # identities with ban score below the threshold; past it the least recently scored goes
MAX_BACKOFF = 300.0
POLL_SECONDS = 2.0  # how often each peer's tip is asked for
ADDRESS_REFRESH_SECONDS = 10 * 60  # how often a connected peer is asked for its addresses again
MAX_AUTO_FAILURES = 3  # an automatic outbound peer failing this often in a row is dropped for another
MAX_SEND_QUEUE = 5_000  # announcements waiting per peer; past it the oldest is dropped (it will be re-synced)
MAX_INV = 1_000  # hashes per kind in one inv (Bitcoin: MAX_INV_SZ, 50,000)
MAX_PRESYNC_BATCHES = 10  # header batches per visit (20,000 headers) before the work must exceed ours
ASKED_SECONDS = 10.0  # an item we asked one announcer for is not asked of another meanwhile (Bitcoin: GETDATA)
MAX_ASKED = 50_000  # remembered asks; past it the oldest goes
MAX_ADDRESSES_SHARED = 100  # addresses read from, and shown to, one peer (Bitcoin: MAX_ADDR_TO_SEND 1000)
LOCAL_IDENTITIES = (identity("127.0.0.1"), identity("::1"))  # the machine itself, as its own tools connect
MAX_KNOWN_INVENTORY = 5_000  # hashes remembered per peer as ones it has (Bitcoin: the known-inventory filter)
SAVE_SECONDS = 15 * 60  # peers.json is also written this often, not only at shutdown (Bitcoin: DUMP_PEERS_INTERVAL)

# Ban score per misbehaviour. Only what an honest node cannot send scores: a block we already know to be
# invalid ("duplicate-invalid") scores nothing, since a relayer need not have known.
SCORE_INVALID = 100
SCORE_UNCONNECTING_HEADERS = 10  # Bitcoin: MAX_NUM_UNCONNECTING_HEADERS_MSGS leads to a ban after several
SCORED_TX_REASONS = {  # a tx refused for one of these cannot come from an honest node, which checks them first
    "bad-txns-sig-invalid",
    "bad-txns-wrong-key",
    "bad-txns-vin-empty",
    "bad-txns-vout-empty",
    "bad-txns-oversize",
    "bad-txns-vout-notpositive",
    "bad-txns-vout-toolarge",
    "bad-txns-txouttotal-toolarge",
    "bad-txns-inputs-duplicate",
    "bad-cb-length",
    "bad-txns-prevout-null",
    "coinbase",
    "bad-encoding",
}


class PeerError(Exception):
    """Raised when a peer cannot be reached or answers something unusable."""


class Refused(PeerError):
    """Raised when a peer answered with an error status (it is up, but would not take or give something)."""


class Misbehaving(PeerError):
    """Raised when a peer sent something no honest node sends; carries the ban score it earns."""

    def __init__(self, score: int, why: str) -> None:
        super().__init__(why)
        self.score = score


@dataclass
class Peer:
    """What we know about one peer (Bitcoin: CNodeState); mutated only under the manager's lock."""

    address: PeerAddress
    manual: bool = False  # --peer or POST /peers: always kept
    outbound: bool = False  # we chose it from the address tables
    inbound: bool = False  # it said hello to us; we call back its connection's IP at its announced port
    connected: bool = False  # our own hello to it succeeded: its address is verified
    failures: int = 0
    next_try: float = 0.0
    height: int = -1  # from its hello: a hint, never trusted
    chain_work: int = 0  # from its hello: a hint, never trusted
    refused: str = ""  # "wrong-network": it runs another chain (its own words are not kept)
    last_seen: float = 0.0
    addresses_due: float = 0.0  # when to ask it for its addresses next (at once after the first handshake)
    sender: Sender | None = None
    # Blocks it sent us (Bitcoin: m_tx_inventory_known_filter, PeerHasHeader): never announced back to it. An
    # initial sync announced every block to the peer it came from, which cost both nodes a third of the sync.
    # Bounded: the oldest are forgotten, which costs at most an announcement it answers with "not wanted".
    known: collections.OrderedDict[bytes, None] = field(default_factory=collections.OrderedDict)

    def learn(self, hashes: list[bytes]) -> None:
        """Remember that it has `hashes` (under the manager's lock)."""
        for item_hash in hashes:
            self.known[item_hash] = None
            self.known.move_to_end(item_hash)
        while len(self.known) > MAX_KNOWN_INVENTORY:
            self.known.popitem(last=False)

    @property
    def url(self) -> str:
        return self.address.url


class SourceAdapter(HTTPAdapter):
    """Sends from our own listening IP, so a peer sees the address it will call back (and tests on distinct
    127.x addresses exercise per-IP identity for real)."""

    def __init__(self, source_ip: str | None) -> None:
        self.source_ip = source_ip
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        if self.source_ip:
            kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


class PeerClient:
    """HTTP calls to one peer's fixed endpoints, with timeouts, a deadline and size caps; one per thread."""

    def __init__(self, own: PeerAddress, source_ip: str | None) -> None:
        self.own = own
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or .netrc from the environment
        adapter = SourceAdapter(source_ip)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _call(self, method: str, peer: PeerAddress, path: str, max_bytes: int, **kwargs) -> dict:
        url = peer.url + path  # path is one of the protocol's constants: never from a peer
        headers = {"X-SimpleCoin-Peer": str(self.own)}
        deadline = time.monotonic() + ANSWER_SECONDS
        try:
            with self.session.request(
                method, url, headers=headers, timeout=TIMEOUT, stream=True, allow_redirects=False, **kwargs
            ) as r:
                data = read_json_object(r, max_bytes, deadline)
                status = r.status_code
        except requests.RequestException as e:
            raise PeerError(f"cannot reach {peer}: {type(e).__name__}") from e
        except BadAnswer as e:
            raise PeerError(f"{peer} {path}: {e}") from e
        if status >= 300:
            raise Refused(f"{peer} {path} answered {status}: {str(data.get('reason', ''))[:40]!r}")
        return data

    def get(self, peer: PeerAddress, path: str, params: dict, max_bytes: int = MAX_SMALL_ANSWER_BYTES) -> dict:
        return self._call("GET", peer, path, max_bytes, params=params)

    def post(self, peer: PeerAddress, path: str, body: dict) -> dict:
        return self._call("POST", peer, path, MAX_SMALL_ANSWER_BYTES, json=body)


class Ahead:
    """A call running in its own daemon thread (a block download kept in flight); `result` waits for it and
    returns its value or raises its exception in the caller's thread. Neither a stopping node's sync thread
    nor the process waits for a download still in flight (it has a 30 s deadline): the thread is a daemon,
    like every peer thread."""

    def __init__(self, fn: Callable[..., object], *args: object) -> None:
        self._done = threading.Event()
        self._value: object = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(fn, args), name="peer-download", daemon=True).start()

    def _run(self, fn: Callable[..., object], args: tuple) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the result, raised there
            self._error = e
        finally:
            self._done.set()

    def result(self, stop: threading.Event) -> Any:
        """The call's value (its exception is raised here); None if `stop` is set first."""
        while not self._done.wait(timeout=0.1):
            if stop.is_set():
                return None
        if self._error is not None:
            raise self._error
        return self._value


class Sender:
    """One peer's send queue and the thread that drains it (Bitcoin: vInventoryToSend and SendMessages)."""

    def __init__(self, manager: PeerManager, peer: Peer) -> None:
        self.manager = manager
        self.peer = peer
        # Bounded: past MAX_SEND_QUEUE the oldest announcement is dropped; the peer catches up by headers sync.
        self.queue: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=MAX_SEND_QUEUE)
        self.wake = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name=f"peer-send {peer.address}", daemon=True)

    def push(self, kind: str, item_hash: bytes) -> None:
        with self.wake:
            self.queue.append((kind, item_hash))
            self.wake.notify()

    def stop(self) -> None:
        with self.wake:
            self.stopped = True
            self.wake.notify()

    def _run(self) -> None:
        client = self.manager.new_client()
        while True:
            with self.wake:
                while not self.stopped:
                    # Read without the manager's lock (stop() is called under it, then takes ours): a stale value
                    # only shortens or lengthens one wait.
                    pause = max(0.0, self.peer.next_try - self.manager.clock()) if self.peer.failures else 0.0
                    if self.queue and pause <= 0:
                        break
                    self.wake.wait(timeout=pause or None)
                if self.stopped:
                    return
                batch = [self.queue.popleft() for _ in range(min(len(self.queue), MAX_INV))]
            # Deliberately broad after PeerError: this thread alone talks to this peer, and an unexpected error in
            # one batch must not silence the peer for good. Logged with its traceback.
            try:
                self.manager.announce(client, self.peer, batch)
            except PeerError as e:
                self.manager.failed(self.peer, e)
            except Exception as e:
                log.exception("relay to %s failed unexpectedly", self.peer.address)
                self.manager.failed(self.peer, PeerError(f"unexpected {type(e).__name__}"))


@dataclass
class Scores:
    """Ban score per identity below the threshold (Bitcoin: Peer::m_misbehavior_score)."""

    # Bounded: at most MAX_SCORES identities; the least recently scored is forgotten (forgetting only forgives).
    by_identity: collections.OrderedDict[str, int] = field(default_factory=collections.OrderedDict)

    def add(self, who: str, score: int) -> int:
        total = self.by_identity.pop(who, 0) + score
        self.by_identity[who] = total
        while len(self.by_identity) > MAX_SCORES:
            self.by_identity.popitem(last=False)
        return total


class PeerManager:
    """The node's peers, its address tables and bans, and the threads that talk to peers."""

    def __init__(
        self,
        service: NodeService,
        own: str,
        initial: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        progress: bool = True,
        path: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.own = addrman.parse_address(own, allow_names=True)
        self.own_identity = identity(self.own.host)
        self.source_ip = self.own.host if self.own.is_ip and not self.own.host.startswith("0.") else None
        self.clock = clock
        self.progress = progress and sys.stderr.isatty()
        self.path = path
        self.lock = threading.Lock()
        self.peers: dict[PeerAddress, Peer] = {}  # bounded: MAX_MANUAL + MAX_OUTBOUND + MAX_INBOUND
        self.addrman = AddrMan(clock=wall_clock)
        self.bans = BanList(clock=wall_clock)
        self.scores = Scores()
        self.asked: collections.OrderedDict[bytes, float] = collections.OrderedDict()  # bounded: MAX_ASKED
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._started = False
        self._supervisor: Supervisor | None = None
        self._saved_at = clock()
        if path is not None:
            addrman.load(path, self.addrman, self.bans)
        for text in initial:
            try:
                self.add(text)
            except BadAddress as e:
                log.warning("not adding peer %r: %s", text, e)
        service.subscribe(self._on_event)

    def new_client(self) -> PeerClient:
        return PeerClient(self.own, self.source_ip)

    # -- identity and bans ------------------------------------------------------------------------------------

    def is_local(self, host: str) -> bool:
        """Our own IP, or 127.0.0.1 / ::1 (where the operator's tools connect from): the machine itself."""
        return identity(host) == self.own_identity or identity(host) in LOCAL_IDENTITIES

    def ban_key(self, host: str, port: int | None) -> str:
        """What ban score and bans attach to: the IP identity, or `ip:port` for a peer on this machine (banning the
        address itself would ban every local node and the operator's own wallet)."""
        if self.is_local(host):
            return str(PeerAddress(host, port)) if port else ""
        return identity(host)

    def identity_of_request(self, remote_ip: str, claimed: str) -> str:
        """The identity of an incoming request: its connection's IP. A claim (X-SimpleCoin-Peer: host:port) only
        lends its port, and only to a request from our own IP; "" means the request is not scored."""
        if not self.is_local(remote_ip):
            return identity(remote_ip)
        try:
            port = addrman.parse_address(claimed, allow_names=True).port if claimed else None
        except BadAddress:
            port = None
        return self.ban_key(remote_ip, port)

    def is_banned(self, who: str) -> bool:
        """Whether an identity, a ban key, or a peer address (host:port or its URL) is banned."""
        if not who:
            return False
        keys = {who}
        try:
            address = addrman.parse_address(who, allow_names=True)
            keys |= {str(address), identity(address.host), self.ban_key(address.host, address.port)}
        except BadAddress:
            pass
        with self.lock:
            return any(self.bans.banned(k) for k in keys if k)

    def _peer_banned(self, peer: Peer) -> bool:
        return self.bans.banned(identity(peer.address.host)) or self.bans.banned(str(peer.address))

    def misbehaved(self, who: str, why: str, score: int = BAN_THRESHOLD) -> None:
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
            banned = [p for p in self.peers.values() if self._peer_banned(p)]
            for peer in banned:
                peer.connected = False
                if not peer.manual:
                    self._drop(peer)
        if not already:
            names = ", ".join(p.url for p in banned) or who
            log.warning("banned peer %s (%s): %s", names, who, why)

    def score_of(self, who: str) -> int:
        with self.lock:
            return self.scores.by_identity.get(who, BAN_THRESHOLD if self.bans.banned(who) else 0)

    # -- the table --------------------------------------------------------------------------------------------

    def add(self, text: str) -> PeerAddress:
        """The operator adds a peer (--peer, POST /peers from this machine); BadAddress if refused."""
        address = addrman.parse_address(text, allow_names=True)
        if address == self.own:
            raise BadAddress("that is this node")
        with self.lock:
            if self.bans.banned(identity(address.host)) or self.bans.banned(str(address)):
                raise BadAddress("banned")
            peer = self.peers.get(address)
            if peer is None:
                if sum(1 for p in self.peers.values() if p.manual) >= MAX_MANUAL:
                    raise BadAddress(f"already {MAX_MANUAL} peers added by hand")
                peer = self.peers[address] = Peer(address)
            peer.manual = True
            peer.next_try = 0.0
            self._ensure_sender(peer)
        self._wake.set()
        return address

    def _ensure_sender(self, peer: Peer) -> None:
        if peer.sender is None:
            peer.sender = Sender(self, peer)
            if self._started:
                peer.sender.thread.start()

    def _drop(self, peer: Peer) -> None:
        """Forget a peer (under the lock): its sender stops, its address stays in the tables."""
        self.peers.pop(peer.address, None)
        if peer.sender is not None:
            peer.sender.stop()

    def count(self) -> int:
        with self.lock:
            return sum(1 for p in self.peers.values() if p.connected)

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
                    "banned": self._peer_banned(p),
                    "ban_score": max(
                        self.scores.by_identity.get(identity(p.address.host), 0),
                        self.scores.by_identity.get(str(p.address), 0),
                        BAN_THRESHOLD if self._peer_banned(p) else 0,
                    ),
                    "failures": p.failures,
                    "refused": p.refused or None,
                }
                for p in sorted(self.peers.values(), key=lambda p: p.address)
            ]

    def shareable(self) -> list[str]:
        """Addresses we tell others about: peers we connected to ourselves, then tried table entries."""
        with self.lock:
            found = [str(p.address) for p in self.peers.values() if p.connected and p.address.is_ip]
            found += [str(a) for a in self.addrman.tried_addresses(MAX_ADDRESSES_SHARED)]
        return list(dict.fromkeys(found))[:MAX_ADDRESSES_SHARED]

    def hello_from(self, remote_ip: str, data: dict) -> bool:
        """Another node said hello: its connection's IP at its announced port becomes an inbound peer."""
        params = self.service.params
        if data.get("network") != params.name or data.get("genesis") != params.genesis_hash_hex:
            return False
        port = data.get("port")
        if not isinstance(port, int) and isinstance(data.get("url"), str):  # older nodes: only the port is used
            try:
                port = addrman.parse_address(data["url"], allow_names=True).port
            except BadAddress:
                port = None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            return False
        ip = addrman.ip_or_none(remote_ip)
        if ip is None:
            return False
        address = PeerAddress(str(ip), port)
        if address == self.own:
            return False
        with self.lock:
            if self._peer_banned(Peer(address)):
                return False
            peer = self.peers.get(address)
            if peer is None:
                inbound = [p for p in self.peers.values() if p.inbound and not (p.manual or p.outbound)]
                if len(inbound) >= MAX_INBOUND:
                    self._evict_inbound(inbound)
                peer = self.peers[address] = Peer(address)
            peer.inbound = True
            peer.last_seen = self.clock()
            if not peer.connected:
                peer.next_try = 0.0  # call it back now: that verifies the address before we share it
            self._ensure_sender(peer)
            self.addrman.add(address, address.host)
        self._wake.set()
        return True

    def _evict_inbound(self, inbound: list[Peer]) -> None:
        """Make room for a new inbound peer (Bitcoin: AttemptToEvictConnection): from the network group with the
        most inbound peers, the one heard from longest ago; so a flood from one group evicts only itself."""
        per_group = collections.Counter(network_group(p.address.host) for p in inbound)
        victim = max(inbound, key=lambda p: (per_group[network_group(p.address.host)], -p.last_seen))
        log.info("evicting inbound peer %s to make room", victim.address)
        self._drop(victim)

    def sync_soon(self, who: str) -> None:
        """A peer sent a block whose parent we lack: sync from its connection's IP soon."""
        with self.lock:
            for peer in self.peers.values():
                if who in (identity(peer.address.host), str(peer.address)):
                    peer.next_try = 0.0
        self._wake.set()

    def inv_from(self, blocks: list[bytes], txs: list[bytes]) -> dict[str, list[bytes]]:
        """What of an announcement we want sent (Bitcoin: inv answered by getdata)."""
        want: dict[str, list[bytes]] = {"blocks": [], "txs": []}
        now = self.clock()
        for kind, hashes in (("block", blocks), ("tx", txs)):
            for item_hash in hashes:
                if not self.service.lacks(kind, item_hash):
                    continue
                with self.lock:
                    if self.asked.get(item_hash, 0.0) > now:  # another peer is sending it right now
                        continue
                    self.asked[item_hash] = now + ASKED_SECONDS
                    self.asked.move_to_end(item_hash)
                    while len(self.asked) > MAX_ASKED:
                        self.asked.popitem(last=False)
                want[kind + "s"].append(item_hash)
        return want

    # -- threads ----------------------------------------------------------------------------------------------

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the peer threads under `supervisor` (a private one if none): one that raises is restarted."""
        self._supervisor = supervisor or Supervisor(on_fatal=lambda name, error: None)
        with self.lock:
            self._started = True
            senders = [p.sender for p in self.peers.values() if p.sender is not None]
        for sender in senders:
            sender.thread.start()
        self._supervisor.start("peer-sync", self._sync_loop)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self.lock:
            for peer in self.peers.values():
                if peer.sender is not None:
                    peer.sender.stop()
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor.join(timeout=15)
        self.save()

    def save(self) -> None:
        """Write addresses and bans to peers.json (Bitcoin: DumpPeerAddresses, BanMan::DumpBanlist)."""
        if self.path is None:
            return
        with self.lock:
            try:
                addrman.save(self.path, self.addrman, self.bans)
            except OSError as e:
                log.warning("cannot save %s: %s", self.path, e)

    def _on_event(self, event: Event) -> None:
        """A block joined our active chain or a tx our mempool: announce it to every peer (each its own queue)."""
        with self.lock:
            senders = [
                p.sender
                for p in self.peers.values()
                if p.sender is not None and not self._peer_banned(p) and event.hash not in p.known
            ]
        for sender in senders:
            sender.push(event.kind, event.hash)

    def announce(self, client: PeerClient, peer: Peer, batch: list[tuple[str, bytes]]) -> None:
        """Send one inv; then send what the peer asked for, if it is still on our active chain / in our mempool."""
        with self.lock:
            # Only to a peer whose address our own hello verified: an unverified inbound claim gets no traffic
            # (the sync catches it up once it is connected).
            if self._peer_banned(peer) or not peer.connected or peer.address not in self.peers:
                return
        blocks = [h for kind, h in batch if kind == "block"]
        txs = [h for kind, h in batch if kind == "tx"]
        params = self.service.params
        answer = client.post(
            peer.address,
            "/p2p/inv",
            {
                "network": params.name,
                "genesis": params.genesis_hash_hex,
                "port": self.own.port,
                "blocks": [hash_hex(h) for h in blocks],
                "txs": [hash_hex(h) for h in txs],
            },
        )
        want = answer.get("want")
        if not isinstance(want, dict):
            raise PeerError(f"{peer.address}: inv answer lacks 'want'")
        for kind, path, announced in (("block", "/p2p/block", blocks), ("tx", "/tx", txs)):
            wanted = want.get(kind + "s")
            if not isinstance(wanted, list):
                raise PeerError(f"{peer.address}: inv answer's want is malformed")
            asked = {self._parse_hash(text) for text in wanted[:MAX_INV]}
            for item_hash in announced:  # in our order (parents before children), only what we announced
                if item_hash not in asked:
                    continue
                raw = self.service.relayable(kind, item_hash)
                if raw is None:
                    continue
                try:
                    client.post(peer.address, path, {"hex": raw.hex()})
                except Refused as e:  # it refused one item (e.g. a tx its pool no longer takes): go on
                    log.debug("%s refused %s %s: %s", peer.address, kind, hash_hex(item_hash), e)

    @staticmethod
    def _parse_hash(text: object) -> bytes:
        if not isinstance(text, str) or len(text) != 64:
            raise PeerError("a hash is not 64 hex digits")
        try:
            return hash_from_hex(text)
        except ValueError as e:
            raise PeerError("a hash is not hex") from e

    def failed(self, peer: Peer, error: PeerError) -> None:
        """One peer failed us: its own backoff and, for misbehaviour, ban score; nothing else changes."""
        if isinstance(error, Misbehaving):
            self.misbehaved(self.ban_key(peer.address.host, peer.address.port), str(error), error.score)
        with self.lock:
            peer.failures += 1
            peer.connected = False
            delay = min(MAX_BACKOFF, 2.0**peer.failures)
            peer.next_try = self.clock() + delay
            self.addrman.attempt_failed(peer.address)
            if peer.outbound and not peer.manual and peer.failures >= MAX_AUTO_FAILURES:
                self._drop(peer)
            banned = self._peer_banned(peer)
        if not banned:
            log.info("peer %s: %s (retrying in %.0f s)", peer.address, error, delay)

    def _sync_loop(self) -> None:
        client = self.new_client()
        while not self._stop.is_set():
            self._revive_senders()
            self._open_outbound()
            now = self.clock()
            with self.lock:
                due = [
                    p for p in self.peers.values() if p.next_try <= now and not self._peer_banned(p) and not p.refused
                ]
            random.shuffle(due)  # no peer is always first (a liar first in line held the only sync thread)
            for peer in due:
                if self._stop.is_set():
                    return
                # Deliberately broad after the expected PeerError: one peer's surprise must not end the sync
                # thread for every other peer (the supervisor would restart it, but with a backoff).
                try:
                    self._visit(client, peer)
                except PeerError as e:
                    self.failed(peer, e)
                except ValidationError as e:  # a block of a verified chain failed for a reason we did not map
                    self.failed(peer, Misbehaving(SCORE_INVALID, f"sent an invalid block ({e})"))
                except Exception as e:
                    log.exception("visiting peer %s failed unexpectedly", peer.address)
                    self.failed(peer, PeerError(f"unexpected {type(e).__name__}"))
            if self.path is not None and self.clock() - self._saved_at > SAVE_SECONDS:
                self._saved_at = self.clock()
                self.save()
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    def sender_health(self) -> str:
        """For /status: "ok" while every started sender thread is alive."""
        with self.lock:
            senders = [p.sender for p in self.peers.values() if p.sender is not None]
            dead = sum(1 for x in senders if x.thread.ident is not None and not x.thread.is_alive() and not x.stopped)
        return "ok" if not dead else f"{dead} of {len(senders)} dead (restarting)"

    def _revive_senders(self) -> None:
        """A sender thread catches everything per batch; should one die anyway, say so loudly and start another."""
        with self.lock:
            for peer in self.peers.values():
                sender = peer.sender
                if sender is None or sender.stopped or sender.thread.ident is None or sender.thread.is_alive():
                    continue
                log.error("the sender thread for peer %s died; starting a new one", peer.address)
                peer.sender = None
                self._ensure_sender(peer)
                if peer.sender is not None:
                    peer.sender.queue.extend(sender.queue)

    def _open_outbound(self) -> None:
        """Fill automatic outbound slots from the address tables, one peer per network group at most."""
        with self.lock:
            auto = [p for p in self.peers.values() if p.outbound and not p.manual]
            if len(auto) >= MAX_OUTBOUND:
                return
            groups = {network_group(p.address.host) for p in self.peers.values() if p.outbound or p.manual}
            groups.add(network_group(self.own.host))  # the machine itself is no diversity
            choice = self.addrman.select(groups, set(self.peers) | {self.own})
            if choice is None or self._peer_banned(Peer(choice)):
                return
            peer = self.peers[choice] = Peer(choice, outbound=True)
            self._ensure_sender(peer)

    def _visit(self, client: PeerClient, peer: Peer) -> None:
        """Handshake, sync from it if its headers prove more work than ours, and learn its addresses."""
        info = self._handshake(client, peer)
        if info is None:
            return
        claimed = info["chain_work"]
        if claimed > self.service.tip().chain_work:  # only a hint that headers are worth asking for
            self._sync_from(client, peer)
        # Bitcoin asks a new outbound peer for addresses once (getaddr after the handshake); a long-lived
        # connection is asked again now and then, so the tables stay fresh without a request per poll.
        if self.clock() >= peer.addresses_due:
            with self.lock:  # due again only after the refresh time, even if this exchange fails
                peer.addresses_due = self.clock() + ADDRESS_REFRESH_SECONDS
            self._exchange_addresses(client, peer)
        with self.lock:
            peer.failures = 0
            peer.next_try = self.clock() + POLL_SECONDS

    def _handshake(self, client: PeerClient, peer: Peer) -> dict | None:
        params = self.service.params
        info = client.post(
            peer.address,
            "/p2p/hello",
            {"network": params.name, "genesis": params.genesis_hash_hex, "port": self.own.port},
        )
        if info.get("network") != params.name or info.get("genesis") != params.genesis_hash_hex:
            log.warning(
                "refusing peer %s: it runs network %.40r with genesis %.70r; we run %s with genesis %s",
                peer.address,
                info.get("network"),
                info.get("genesis"),
                params.name,
                params.genesis_hash_hex,
            )
            with self.lock:
                peer.refused, peer.connected = "wrong-network", False
            return None
        try:
            height, chain_work = int(info["height"]), int(str(info["chain_work"])[:100])
        except (KeyError, TypeError, ValueError) as e:
            raise PeerError("handshake answer lacks height or chain_work") from e
        with self.lock:
            if not peer.connected:
                log.info("connected to peer %s (height %d)", peer.address, height)
            peer.connected, peer.height, peer.chain_work = True, height, chain_work
            peer.last_seen = self.clock()
            if peer.address.is_ip:
                self.addrman.good(peer.address)
        return {"height": height, "chain_work": chain_work}

    def _exchange_addresses(self, client: PeerClient, peer: Peer) -> None:
        data = client.get(peer.address, "/peers", {})
        listed = data.get("peers")
        if not isinstance(listed, list):
            return
        with self.lock:
            for item in listed[:MAX_ADDRESSES_SHARED]:
                text = item.get("address") if isinstance(item, dict) else None
                if not isinstance(text, str) or not item.get("connected") or item.get("banned"):
                    continue
                try:
                    address = addrman.parse_address(text)  # IP literals only: no names from strangers
                except BadAddress:
                    continue
                if address != self.own:
                    self.addrman.add(address, peer.address.host)  # bucketed by who told us

    # -- headers presync and block download --------------------------------------------------------------------

    def _sync_from(self, client: PeerClient, peer: Peer) -> None:
        """Headers first, work verified, then only the blocks we lack (Bitcoin: headers presync, PR 25717)."""
        tip = self.service.tip()
        locator = [hash_hex(h) for h in self.service.locator()]
        chain = HeaderChain(self.service)
        for _ in range(MAX_PRESYNC_BATCHES):
            data = client.get(peer.address, "/headers", {"locator": ",".join(locator)})
            headers = self._parse_headers(data.get("headers"))
            if not headers:
                break
            chain.extend(headers)
            if chain.work > tip.chain_work:
                break
            if len(headers) < MAX_HEADERS_RESULTS:
                break
            locator = [hash_hex(chain.last_hash), *locator]
        ours = self.service.tip().chain_work  # now: relay may have brought the same blocks meanwhile
        if chain.work <= ours:
            if not chain.missing and peer.chain_work <= ours:
                return  # it had what we now have
            # Its hello claimed more work than its headers show: a hint proven wrong. Not scored (a reorg can
            # change a claim between two requests), but a failure: it is asked again only after a backoff that
            # doubles each time, and no block is downloaded for it.
            raise PeerError(f"claimed more work than its headers show ({chain.work} <= ours {ours})")
        self._fetch_blocks(client, peer, chain.missing)
        if len(chain.missing) >= MAX_HEADERS_RESULTS:
            with self.lock:
                peer.next_try = 0.0
            self._wake.set()

    def _parse_headers(self, raw: object) -> list[BlockHeader]:
        if not isinstance(raw, list) or len(raw) > MAX_HEADERS_RESULTS or not all(isinstance(h, str) for h in raw):
            raise Misbehaving(SCORE_INVALID, "headers answer is not a list of at most 2,000 hex strings")
        try:
            return [BlockHeader.deserialize(bytes.fromhex(text)) for text in raw]
        except (ValueError, DecodeError) as e:
            raise Misbehaving(SCORE_INVALID, "sent undecodable headers") from e

    def _fetch_blocks(self, client: PeerClient, peer: Peer, wanted: list[bytes]) -> None:
        """Download `wanted` in batches and submit them, the next batch downloading while this one is checked.

        Taking turns (ask, wait, check, ask again) left the peer idle while we checked and us idle while it
        served: half of an initial sync's time (Bitcoin keeps blocks in flight while it connects others). At
        most two batches are in memory; each download runs in a daemon thread (`Ahead`) on a connection of its
        own, one at a time.
        """
        total = len(wanted)
        source = self.ban_key(peer.address.host, peer.address.port) or str(peer.address)
        batches = [wanted[start : start + MAX_BLOCKS_PER_REQUEST] for start in range(0, total, MAX_BLOCKS_PER_REQUEST)]
        if not batches:
            return
        downloader = self.new_client()
        ahead = Ahead(self._download, downloader, peer, batches[0])
        for number in range(len(batches)):
            blocks = ahead.result(self._stop)  # re-raises what the download raised (PeerError, Misbehaving)
            if blocks is None:
                return  # stopping: the download ends on its own
            if number + 1 < len(batches) and not self._stop.is_set():
                ahead = Ahead(self._download, downloader, peer, batches[number + 1])
            self._submit_downloaded(peer, source, blocks)
            self._show_progress(peer, min((number + 1) * MAX_BLOCKS_PER_REQUEST, total), total)
            if self._stop.is_set():
                return

    def _download(self, client: PeerClient, peer: Peer, wanted: list[bytes]) -> list[Block]:
        """The blocks of `wanted` we still lack, from `peer`, decoded and each checked to be the one asked for."""
        batch = [h for h in wanted if self.service.lacks("block", h)]
        if not batch:
            return []
        data = client.get(
            peer.address, "/p2p/blocks", {"hashes": ",".join(hash_hex(h) for h in batch)}, max_bytes=MAX_RESPONSE_BYTES
        )
        raw = data.get("blocks")
        if not isinstance(raw, list) or len(raw) != len(batch):
            raise PeerError("blocks answer does not match the request")
        blocks = []
        for expected, text in zip(batch, raw, strict=True):
            try:
                block = Block.deserialize(bytes.fromhex(text))
            except (ValueError, TypeError, DecodeError) as e:
                raise Misbehaving(SCORE_INVALID, "sent an undecodable block") from e
            if block.hash != expected:
                raise Misbehaving(SCORE_INVALID, "sent a block other than the one asked for")
            blocks.append(block)
        return blocks

    def _submit_downloaded(self, peer: Peer, source: str, blocks: list[Block]) -> None:
        with self.lock:
            peer.learn([block.hash for block in blocks])  # before the submits announce them to every other peer
        for block in blocks:
            try:
                # requested=True only here: the block is on a header chain whose work we verified > ours.
                self.service.submit_block(block, source=source, requested=True)
            except BlockValidationError as e:
                score = 0 if e.reason == "duplicate-invalid" else SCORE_INVALID
                detail = f"sent invalid block {block.header.hash_hex()} ({e.reason}: {e.detail})"
                raise Misbehaving(score, detail) from e

    def _show_progress(self, peer: Peer, done: int, total: int) -> None:
        if total < 50:
            return
        if self.progress:
            filled = 30 * done // total
            sys.stderr.write(f"\rsyncing from {peer.address}: [{'#' * filled}{' ' * (30 - filled)}] {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif done == total or done % 500 < MAX_BLOCKS_PER_REQUEST:
            log.info("syncing from %s: %d/%d blocks", peer.address, done, total)


class HeaderChain:
    """A peer's headers checked as they arrive, on top of a block in our index: link, proof of work, bits and
    time (Bitcoin: CheckHeadersPow and ContextualCheckBlockHeader during presync), and their summed work."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.params = service.params
        self.work = 0  # chain work at the last header (0 until the first batch attaches)
        self.last_hash = b""
        self.height = -1
        self.recent: collections.deque[tuple[int, int, int]] = collections.deque(
            maxlen=self.params.retarget_interval + 1
        )  # (height, time, bits) of the newest headers: enough for median time past and a retarget
        self.fork = None
        self.missing: list[bytes] = []  # hashes of headers not in our index, in order; bounded by the batches

    def extend(self, headers: list[BlockHeader]) -> None:
        if self.fork is None:
            parent = self.service.header_context(headers[0].prev_hash)
            if parent is None:
                raise Misbehaving(SCORE_UNCONNECTING_HEADERS, "sent headers that do not connect to our chain")
            self.fork = parent
            self.work, self.last_hash, self.height = parent.chain_work, parent.hash, parent.height
            entry = parent
            back = []
            for _ in range(min(self.params.median_time_span, parent.height + 1)):
                back.append((entry.height, entry.header.time, entry.header.bits))
                if entry.height == 0:
                    break
                entry = self.service.ancestor(entry, entry.height - 1)
            self.recent.extend(reversed(back))
        now = int(time.time())
        for header in headers:
            if header.prev_hash != self.last_hash:
                raise Misbehaving(SCORE_INVALID, "sent headers that do not link")
            block_hash = header.hash()
            problem = check_proof_of_work(block_hash, header.bits, self.params.pow_limit)
            if problem:
                raise Misbehaving(SCORE_INVALID, f"sent a header without valid work ({problem})")
            expected = self._expected_bits()
            if header.bits != expected:
                raise Misbehaving(SCORE_INVALID, f"sent a header with bits {header.bits:#x}, expected {expected:#x}")
            times = sorted(t for _, t, _ in list(self.recent)[-self.params.median_time_span :])
            if times and header.time <= times[len(times) // 2]:
                raise Misbehaving(SCORE_INVALID, "sent a header older than its median time past (time-too-old)")
            if header.time > now + self.params.max_future_block_time:
                raise PeerError("sent a header from the future (time-too-new): not scored, clocks differ")
            self.height += 1
            self.work += block_work(header.bits)
            self.last_hash = block_hash
            self.recent.append((self.height, header.time, header.bits))
            if self.service.lacks("block", block_hash):
                self.missing.append(block_hash)

    def _expected_bits(self) -> int:
        """Bitcoin: GetNextWorkRequired, from the headers seen (and our index below the fork)."""
        params = self.params
        _, prev_time, prev_bits = self.recent[-1]
        height = self.height + 1
        if params.no_retargeting or height % params.retarget_interval != 0:
            return prev_bits
        first_height = height - params.retarget_interval
        first_time = next((t for h, t, _ in self.recent if h == first_height), None)
        if first_time is None:
            assert self.fork is not None
            first_time = self.service.ancestor(self.fork, first_height).header.time
        return retarget(prev_bits, prev_time - first_time, params.retarget_timespan, params.pow_limit)
