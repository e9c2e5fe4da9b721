"""Peers over HTTP: handshake, relay, headers-first sync, peer exchange, backoff and bans.

Every request has a timeout and every response a size cap. A peer that fails is retried later with
exponential backoff; a peer that sends invalid data gains ban score and, at 100, is banned for a day.
"""

from __future__ import annotations

import itertools
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from simplecoin.core.errors import DecodeError, ValidationError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_RESULTS
from simplecoin.core.pow import check_proof_of_work
from simplecoin.core.primitives import Block, BlockHeader
from simplecoin.httpjson import BadAnswer, read_json_object
from simplecoin.node.service import Event, NodeService
from simplecoin.node.threads import Supervisor

log = logging.getLogger(__name__)

TIMEOUT = (3.0, 10.0)  # connect, read (seconds)
MAX_RESPONSE_BYTES = 40_000_000  # 16 maximal blocks in hex, with room to spare
MAX_PEERS = 32
BAN_THRESHOLD = 100
BAN_SECONDS = 24 * 3600
MAX_BACKOFF = 300.0
POLL_SECONDS = 2.0  # how often each peer's tip is asked for


class PeerError(Exception):
    """Raised when a peer cannot be reached or answers something unusable."""


@dataclass
class Peer:
    """What we know about one peer (mutated only under the manager's lock)."""

    url: str
    failures: int = 0
    next_try: float = 0.0
    ban_score: int = 0
    banned_until: float = 0.0
    connected: bool = False
    height: int = -1
    chain_work: int = 0
    refused: str = ""  # why the handshake was refused (wrong network)


class PeerClient:
    """HTTP calls to one peer, with timeouts and size caps."""

    def __init__(self, session: requests.Session, own_url: str) -> None:
        self.session = session
        self.own_url = own_url

    def _check(self, response: requests.Response) -> dict:
        try:
            data = read_json_object(response, MAX_RESPONSE_BYTES)
        except BadAnswer as e:
            raise PeerError(str(e)) from e
        if response.status_code >= 400:
            raise PeerError(f"answered {response.status_code}: {data.get('reason', '')} {data.get('error', '')}")
        return data

    def get(self, url: str, params: dict | None = None) -> dict:
        try:
            with self.session.get(url, params=params, timeout=TIMEOUT, stream=True) as r:
                return self._check(r)
        except requests.RequestException as e:
            raise PeerError(f"cannot reach {url}: {type(e).__name__}") from e

    def post(self, url: str, body: dict) -> dict:
        headers = {"X-SimpleCoin-Peer": self.own_url}
        try:
            with self.session.post(url, json=body, headers=headers, timeout=TIMEOUT, stream=True) as r:
                return self._check(r)
        except requests.RequestException as e:
            raise PeerError(f"cannot reach {url}: {type(e).__name__}") from e


class PeerManager:
    """The node's peers and the threads that talk to them."""

    def __init__(
        self,
        service: NodeService,
        own_url: str,
        initial: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        progress: bool = True,
    ) -> None:
        self.service = service
        self.own_url = own_url.rstrip("/")
        self.clock = clock
        self.progress = progress and sys.stderr.isatty()
        self.lock = threading.Lock()
        self.peers: dict[str, Peer] = {}
        self.client = PeerClient(requests.Session(), self.own_url)
        self._relay: queue.Queue[Event | None] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._supervisor: Supervisor | None = None
        for url in initial:
            self.add(url)
        service.subscribe(self._on_event)

    # -- the list ---------------------------------------------------------------------------------------------

    def add(self, url: str, announced: bool = False) -> bool:
        """Add a peer by URL; False for a bad URL, ourselves, a banned peer or a full list."""
        url = url.rstrip("/")
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:  # urlsplit refuses some strings outright, e.g. "http://[::1"
            return False
        if parts.scheme not in ("http", "https") or not hostname or url == self.own_url:
            return False
        with self.lock:
            if url in self.peers:
                peer = self.peers[url]
                if peer.banned_until > self.clock():
                    return False
                if announced:  # it just told us it is up: try it now
                    peer.next_try = 0.0
                return True
            if len(self.peers) >= MAX_PEERS:
                return False
            self.peers[url] = Peer(url)
        self._wake.set()
        return True

    def count(self) -> int:
        with self.lock:
            return sum(1 for p in self.peers.values() if p.connected)

    def describe(self) -> list[dict]:
        now = self.clock()
        with self.lock:
            return [
                {
                    "url": p.url,
                    "connected": p.connected,
                    "height": p.height,
                    "banned": p.banned_until > now,
                    "ban_score": p.ban_score,
                    "failures": p.failures,
                    "refused": p.refused or None,
                }
                for p in self.peers.values()
            ]

    def is_banned(self, url: str) -> bool:
        with self.lock:
            peer = self.peers.get(url.rstrip("/"))
            return peer is not None and peer.banned_until > self.clock()

    def misbehaved(self, url: str, why: str, score: int = BAN_THRESHOLD) -> None:
        """Add ban score to a peer; at the threshold it is disconnected and banned."""
        url = url.rstrip("/")
        with self.lock:
            peer = self.peers.setdefault(url, Peer(url))
            peer.ban_score += score
            if peer.ban_score >= BAN_THRESHOLD and peer.banned_until <= self.clock():
                peer.banned_until = self.clock() + BAN_SECONDS
                peer.connected = False
                log.warning("banned peer %s: %s", url, why)
            else:
                log.info("peer %s misbehaved (+%d): %s", url, score, why)

    def sync_soon(self, url: str) -> None:
        with self.lock:
            peer = self.peers.get(url.rstrip("/"))
            if peer is not None:
                peer.next_try = 0.0
        self._wake.set()

    def hello_from(self, data: dict) -> None:
        """Another node introduced itself: remember it as a peer if it is on our network."""
        if (
            data.get("network") == self.service.params.name
            and data.get("genesis") == self.service.params.genesis_hash_hex
        ):
            self.add(str(data["url"]), announced=True)

    # -- threads ----------------------------------------------------------------------------------------------

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the peer threads under `supervisor` (a private one if none): one that raises is restarted."""
        self._supervisor = supervisor or Supervisor(on_fatal=lambda name, error: None)
        for target, name in ((self._sync_loop, "peer-sync"), (self._relay_loop, "peer-relay")):
            self._supervisor.start(name, target)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._relay.put(None)
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor.join(timeout=15)

    def _on_event(self, event: Event) -> None:
        try:
            self._relay.put_nowait(event)
        except queue.Full:
            log.warning("relay queue full: not relaying %s %s", event.kind, hash_hex(event.hash))

    def _relay_loop(self) -> None:
        while True:
            event = self._relay.get()
            if event is None:
                return
            path = "/p2p/block" if event.kind == "block" else "/tx"
            for peer in self._connected(exclude=event.source):
                try:
                    self.client.post(peer.url + path, {"hex": event.raw.hex()})
                except PeerError as e:
                    log.debug("relay of %s to %s failed: %s", hash_hex(event.hash), peer.url, e)

    def _connected(self, exclude: str = "") -> list[Peer]:
        now = self.clock()
        with self.lock:
            return [p for p in self.peers.values() if p.connected and p.url != exclude and p.banned_until <= now]

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            with self.lock:
                due = [
                    p.url for p in self.peers.values() if p.next_try <= now and p.banned_until <= now and not p.refused
                ]
            for url in due:
                if self._stop.is_set():
                    return
                self._visit(url)
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    def _visit(self, url: str) -> None:
        """Handshake, learn its peers, and sync from it if it has more work."""
        try:
            info = self._handshake(url)
            if info is None:
                return
            if int(info["chain_work"]) > self.service.tip().chain_work:
                self._sync_from(url)
            self._exchange_peers(url)
        except PeerError as e:
            with self.lock:
                peer = self.peers[url]
                peer.failures += 1
                peer.connected = False
                peer.next_try = self.clock() + min(MAX_BACKOFF, 2.0**peer.failures)
                banned = peer.banned_until > self.clock()
            if not banned:  # a banned peer is not retried
                log.info("peer %s: %s (retrying in %.0f s)", url, e, min(MAX_BACKOFF, 2.0**peer.failures))
            return
        with self.lock:
            peer = self.peers[url]
            peer.failures = 0
            peer.next_try = self.clock() + POLL_SECONDS

    def _handshake(self, url: str) -> dict | None:
        params = self.service.params
        info = self.client.post(
            url + "/p2p/hello", {"network": params.name, "genesis": params.genesis_hash_hex, "url": self.own_url}
        )
        if info.get("network") != params.name or info.get("genesis") != params.genesis_hash_hex:
            why = f"it runs network {info.get('network')!r} with genesis {info.get('genesis')!r}"
            log.warning(
                "refusing peer %s: %s; we run %s with genesis %s", url, why, params.name, params.genesis_hash_hex
            )
            with self.lock:
                self.peers[url].refused = why
                self.peers[url].connected = False
            return None
        try:
            height, chain_work = int(info["height"]), int(info["chain_work"])
        except (KeyError, TypeError, ValueError) as e:
            raise PeerError("handshake answer lacks height or chain_work") from e
        with self.lock:
            peer = self.peers[url]
            if not peer.connected:
                log.info("connected to peer %s (height %d)", url, height)
            peer.connected, peer.height, peer.chain_work = True, height, chain_work
        return info

    def _exchange_peers(self, url: str) -> None:
        data = self.client.get(url + "/peers")
        listed = data.get("peers")
        if not isinstance(listed, list):
            return
        for item in listed[:MAX_PEERS]:
            if isinstance(item, dict) and isinstance(item.get("url"), str) and not item.get("banned"):
                self.add(item["url"])

    def _sync_from(self, url: str) -> None:
        """Headers first: find the fork from a locator, fetch headers in batches, then the blocks."""
        while not self._stop.is_set():
            locator = ",".join(hash_hex(h) for h in self.service.locator())
            data = self.client.get(url + "/headers", params={"locator": locator})
            headers = self._parse_headers(url, data.get("headers"))
            if not headers:
                return
            self._fetch_blocks(url, headers)
            if len(headers) < MAX_HEADERS_RESULTS:
                return

    def _parse_headers(self, url: str, raw: object) -> list[BlockHeader]:
        if not isinstance(raw, list) or not all(isinstance(h, str) for h in raw):
            raise PeerError("headers answer is not a list of hex strings")
        headers = []
        try:
            for text in raw:
                headers.append(BlockHeader.deserialize(bytes.fromhex(text)))
        except (ValueError, DecodeError) as e:
            self.misbehaved(url, "sent undecodable headers")
            raise PeerError("undecodable header") from e
        params = self.service.params
        for prev, header in itertools.pairwise(headers):
            if header.prev_hash != prev.hash():
                self.misbehaved(url, "sent headers that do not link")
                raise PeerError("headers do not link")
        for header in headers:
            problem = check_proof_of_work(header.hash(), header.bits, params.pow_limit)
            if problem:
                self.misbehaved(url, f"sent a header without valid work (high-hash: {problem})")
                raise PeerError("header without valid work")
        return headers

    def _fetch_blocks(self, url: str, headers: list[BlockHeader]) -> None:
        wanted = [h.hash() for h in headers]
        total = len(wanted)
        for start in range(0, total, MAX_BLOCKS_PER_REQUEST):
            batch = wanted[start : start + MAX_BLOCKS_PER_REQUEST]
            data = self.client.get(url + "/p2p/blocks", params={"hashes": ",".join(hash_hex(h) for h in batch)})
            raw = data.get("blocks")
            if not isinstance(raw, list) or len(raw) != len(batch):
                raise PeerError("blocks answer does not match the request")
            for expected, text in zip(batch, raw, strict=True):
                try:
                    block = Block.deserialize(bytes.fromhex(text))
                except (ValueError, TypeError, DecodeError) as e:
                    self.misbehaved(url, "sent an undecodable block")
                    raise PeerError("undecodable block") from e
                if block.hash != expected:
                    self.misbehaved(url, "sent a block other than the one asked for")
                    raise PeerError("unexpected block")
                try:
                    self.service.submit_block(block, source=url, requested=True)
                except ValidationError as e:
                    self.misbehaved(url, f"sent invalid block {block.header.hash_hex()} ({e.reason}: {e.detail})")
                    raise PeerError(f"invalid block ({e.reason})") from e
            self._show_progress(url, min(start + MAX_BLOCKS_PER_REQUEST, total), total)

    def _show_progress(self, url: str, done: int, total: int) -> None:
        if total < 50:
            return
        if self.progress:
            filled = 30 * done // total
            sys.stderr.write(f"\rsyncing from {url}: [{'#' * filled}{' ' * (30 - filled)}] {done}/{total} blocks")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif done == total or done % 500 < MAX_BLOCKS_PER_REQUEST:
            log.info("syncing from %s: %d/%d blocks", url, done, total)
