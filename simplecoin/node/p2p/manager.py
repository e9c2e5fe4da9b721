"""The peer layer put together: the table, relay and sync, the sync thread that visits each peer, peers.json."""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from simplecoin.core.errors import ValidationError
from simplecoin.node import addrman
from simplecoin.node.addrman import BadAddress, PeerAddress
from simplecoin.node.p2p.bans import BAN_THRESHOLD, SCORE_INVALID
from simplecoin.node.p2p.client import Misbehaving, PeerClient, PeerError
from simplecoin.node.p2p.clock import ClockOffsets
from simplecoin.node.p2p.relay import Relay
from simplecoin.node.p2p.sync import BlockSync
from simplecoin.node.p2p.table import MAX_BACKOFF, Peer, PeerTable, PeerView
from simplecoin.node.service import NodeService
from simplecoin.node.store import StoreFault
from simplecoin.node.threads import Supervisor

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 2.0  # how often each peer's tip is asked for
ADDRESS_REFRESH_SECONDS = 10 * 60  # how often a connected peer is asked for its addresses again
MAX_ADDRESSES_SHARED = 100  # addresses read from one peer (Bitcoin: MAX_ADDR_TO_SEND 1000)
SAVE_SECONDS = 15 * 60  # peers.json is also written this often, not only at shutdown (Bitcoin: DUMP_PEERS_INTERVAL)


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
        self.source_ip = self.own.host if self.own.is_ip and not self.own.host.startswith("0.") else None
        self.clock = clock
        self.wall_clock = wall_clock  # the node's time: what it tells peers, and what their blocks' times are read by
        self.path = path
        # How far our clock is from our peers' (a warning only): they tell their time in the hello's answer. The limit
        # is read from the status, which never waits for the node's lock (/status shows the verdict).
        self.clock_offsets = ClockOffsets(
            limit=lambda: service.params.future_block_time_limit(service.status()["height"] + 1)
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.table = PeerTable(self.own, service.params, clock, wall_clock, self._wake)
        self.relay = Relay(service, self.table, self.own, self.new_client)
        service.subscribe(lambda event: self.table.sent_us(event.source, event.kind))  # the explorer's peers page
        self.sync = BlockSync(
            service, self.table, self.new_client, self._stop, wall_clock, progress and sys.stderr.isatty(), clock
        )
        # The table's state, by the names tests and tools read it by.
        self.lock, self.peers, self.addrman = self.table.lock, self.table.peers, self.table.addrman
        self.bans, self.scores, self.asked = self.table.bans, self.table.scores, self.relay.asked
        self._supervisor: Supervisor | None = None
        self._saved_at = clock()
        if path is not None:
            addrman.load(path, self.addrman, self.bans)
        for text in initial:
            try:
                self.add(text)
            except BadAddress as e:
                log.warning("not adding peer %r: %s", text, e)

    def new_client(self) -> PeerClient:
        return PeerClient(self.own, self.source_ip)

    # -- what the API and the operator ask ------------------------------------------------------------------

    def add(self, text: str) -> PeerAddress:
        """The operator adds a peer (--peer, POST /peers from this machine); BadAddress if refused."""
        return self.table.add(text)

    def count(self) -> int:
        return self.table.count()

    def describe(self) -> list[dict]:
        return self.table.describe()

    def views(self) -> list[PeerView]:
        return self.table.views()

    def is_banned(self, who: str) -> bool:
        return self.table.is_banned(who)

    def misbehaved(self, who: str, why: str, score: int = BAN_THRESHOLD) -> None:
        """Add ban score to an identity (see PeerTable.misbehaving)."""
        self.table.misbehaving(who, score, why)

    def identity_of_request(self, remote_ip: str, claimed: str) -> str:
        return self.table.identities.of_request(remote_ip, claimed)

    def hello_from(self, remote_ip: str, data: dict) -> bool:
        return self.table.hello_from(remote_ip, data) is not None

    def inv_from(self, blocks: list[bytes], txs: list[bytes]) -> dict[str, list[bytes]]:
        return self.relay.wanted(blocks, txs)

    def clock_report(self) -> dict:
        """How far our clock is from our peers' (see p2p/clock.py): for /status."""
        return self.clock_offsets.report()

    def sender_health(self) -> str:
        return self.relay.sender_health()

    def failed(self, peer: Peer, error: PeerError) -> None:
        self.table.failed(peer, error)

    # -- threads --------------------------------------------------------------------------------------------

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the peer threads under `supervisor` (a private one if none): one that raises is restarted."""
        self._supervisor = supervisor or Supervisor(on_fatal=lambda name, error: None)
        self.relay.start()
        self._supervisor.start("peer-sync", self._sync_loop)
        self._supervisor.start("peer-txrequest", self.relay.request_loop)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.relay.stop()
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
                self.service.file_written(self.path, e)
                return
        self.service.file_written(self.path, None)

    def _sync_loop(self) -> None:
        client = self.new_client()
        while not self._stop.is_set():
            self.relay.revive_senders()
            self.table.fill_outbound()
            due = self.table.due()
            random.shuffle(due)  # no peer is always first (a liar first in line held the only sync thread)
            # Every due peer's handshake first, then the rest of each visit: a sync downloads from every connected
            # peer that has the blocks, so the others must be connected before the first sync starts.
            met = [(p, info) for p in due if (info := self._guarded(p, lambda p=p: self._handshake(client, p)))]
            for peer, info in met:
                if self._stop.is_set():
                    return
                self._guarded(peer, lambda peer=peer, info=info: self._after_handshake(client, peer, info))
            if self.path is not None and self.clock() - self._saved_at > SAVE_SECONDS:
                self._saved_at = self.clock()
                self.save()
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    # -- one visit to a peer --------------------------------------------------------------------------------

    def _guarded(self, peer: Peer, step: Callable[[], T]) -> T | None:
        """One step of a visit to `peer`; what goes wrong is charged to that peer alone (None then)."""
        if self._stop.is_set():
            return None
        # Deliberately broad after the expected PeerError: one peer's surprise must not end the sync
        # thread for every other peer (the supervisor would restart it, but with a backoff).
        try:
            return step()
        except PeerError as e:
            self.failed(peer, e)
        except ValidationError as e:  # a block of a verified chain failed for a reason we did not map
            self.failed(peer, Misbehaving(SCORE_INVALID, f"sent an invalid block ({e})"))
        except StoreFault as e:  # ours (a full disk): the peer is not failed; the store retries (server.py)
            log.warning("syncing from peer %s stopped: %s", peer.address, e)
        except Exception as e:
            log.exception("visiting peer %s failed unexpectedly", peer.address)
            self.failed(peer, PeerError(f"unexpected {type(e).__name__}"))
        return None

    def _visit(self, client: PeerClient, peer: Peer) -> None:
        """Handshake, sync from it if its headers prove more work than ours, and learn its addresses."""
        info = self._handshake(client, peer)
        if info is not None:
            self._after_handshake(client, peer, info)

    def _after_handshake(self, client: PeerClient, peer: Peer, info: dict) -> None:
        """Sync from it if its headers prove more work than ours, and learn its addresses."""
        claimed = info["chain_work"]
        due_at = None  # when its next header from the future is due (our wall clock), if it sent one
        if claimed > self.service.tip().chain_work:  # only a hint that headers are worth asking for
            due_at = self.sync.sync_from(client, peer)
        # Bitcoin asks a new outbound peer for addresses once (getaddr after the handshake); a long-lived
        # connection is asked again now and then, so the tables stay fresh without a request per poll.
        if self.clock() >= peer.addresses_due:
            with self.lock:  # due again only after the refresh time, even if this exchange fails
                peer.addresses_due = self.clock() + ADDRESS_REFRESH_SECONDS
            self._exchange_addresses(client, peer)
        # A header from the future is early, not a fault: ask again when it is due (no sooner than the usual poll,
        # no later than the longest backoff), so a peer that is ahead of our clock costs one visit per wait.
        wait = POLL_SECONDS if due_at is None else min(max(POLL_SECONDS, due_at - self.wall_clock() + 1), MAX_BACKOFF)
        with self.lock:
            peer.failures = 0
            peer.next_try = self.clock() + wait

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
        self.clock_offsets.add(str(peer.address), info.get("time"), self.wall_clock())
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
