"""Sync from a peer: headers presync on the block index's own rules, then only the blocks we lack, with progress.

Work is verified before it is trusted (Bitcoin: headers presync, PR 25717): a hello's height and chain work are
hints; headers are checked (link, proof of work, bits, times) and their work summed before any block is
downloaded, and only blocks we lack are fetched, only for a header chain with more work than ours.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from simplecoin.core.errors import BlockValidationError, DecodeError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.headerview import HeaderView
from simplecoin.core.params import MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_RESULTS
from simplecoin.core.pow import check_proof_of_work
from simplecoin.core.primitives import Block, BlockHeader
from simplecoin.node.p2p.bans import SCORE_INVALID, SCORE_UNCONNECTING_HEADERS, block_score
from simplecoin.node.p2p.client import (
    MAX_RESPONSE_BYTES,
    DownloadInThread,
    DownloadThread,
    Misbehaving,
    PeerClient,
    PeerError,
    Refused,
)
from simplecoin.node.p2p.table import Peer, PeerTable
from simplecoin.node.service import NodeService

log = logging.getLogger(__name__)

MAX_PRESYNC_BATCHES = 10  # header batches per visit (20,000 headers) before the work must exceed ours


class HeadersPresync:
    """A peer's headers checked as they arrive, on top of a block in our index, and their summed work.

    Link and proof of work are checked here, outside the node's lock (hashing is the costly part); bits and
    times are checked under it by the block index's own rules (`HeaderView.add_checked`: `next_bits`,
    `median_time_past`, `check_header_contextual`), at `now` from the clock we were given (Bitcoin:
    CheckHeadersPow and ContextualCheckBlockHeader during presync).
    """

    def __init__(self, service: NodeService, wall_clock: Callable[[], float]) -> None:
        self.service = service
        self.params = service.params
        self.wall_clock = wall_clock
        self.view: HeaderView | None = None  # our index plus the headers checked so far
        self.work = 0  # chain work at the last header (0 until the first batch attaches)
        self.last_hash = b""
        self.locator: list[bytes] = []  # from the last header (BlockIndex.locator on the view), once one is checked
        self.missing: list[bytes] = []  # hashes of headers not in our index, in order; bounded by the batches
        self.due_at: int | None = None  # set at a header from the future: when (our wall clock) it is due

    def extend(self, headers: list[BlockHeader]) -> None:
        """Check one batch on top of the last; Misbehaving at the first bad header. A header from the future is
        early, not bad: the headers before it are kept, none after it is checked, and `due_at` says when it is due."""
        if self.view is None:
            if self.service.header_context(headers[0].prev_hash) is None:
                raise Misbehaving(SCORE_UNCONNECTING_HEADERS, "sent headers that do not connect to our chain")
            self.view = self.service.header_view()
            self.last_hash = headers[0].prev_hash
        hashes, failure = self._check_links_and_work(headers)
        now = int(self.wall_clock())
        entries, locator, refused = self.service.check_headers(self.view, headers[: len(hashes)], now)
        if entries:
            self.work, self.last_hash, self.locator = entries[-1].chain_work, entries[-1].hash, locator
        self.missing += self.service.lacking("block", hashes[: len(entries)])
        if refused is not None and refused.reason == "time-too-new":
            early = headers[len(entries)]
            height = self.view.entries[early.prev_hash].height + 1
            self.due_at = early.time - self.params.future_block_time_limit(height)
            log.info("headers from the future at %s: %s; asking again when due", early.hash_hex(), refused.detail)
            return
        if refused is not None:  # the first header the index's rules refuse comes before `failure`
            raise _presync_error(refused) from refused
        if failure is not None:
            raise failure

    def _check_links_and_work(self, headers: list[BlockHeader]) -> tuple[list[bytes], Misbehaving | None]:
        """The hashes of the headers before the first that does not link or lacks its work, and why that one."""
        hashes: list[bytes] = []
        prev = self.last_hash
        for header in headers:
            if header.prev_hash != prev:
                return hashes, Misbehaving(SCORE_INVALID, "sent headers that do not link")
            prev = header.hash()
            problem = check_proof_of_work(prev, header.bits, self.params.pow_limit)
            if problem:
                return hashes, Misbehaving(SCORE_INVALID, f"sent a header without valid work ({problem})")
            hashes.append(prev)
        return hashes, None


def _presync_error(error: BlockValidationError) -> Misbehaving:
    """What a header refused by the index's rules costs the peer (time-too-new is early, never refused here)."""
    if error.reason == "time-too-old":
        return Misbehaving(SCORE_INVALID, "sent a header older than its median time past (time-too-old)")
    return Misbehaving(SCORE_INVALID, f"sent a header with {error.detail} ({error.reason})")


# Block download (Bitcoin: net_processing's block download window and stalling detection).
# Batches asked of one peer at once, each on a connection of its own: with 2, a sync of coinbase-only blocks
# spent a fifth of its time waiting for the next batch; with 4, 3 %.
IN_FLIGHT_PER_PEER = 4
# Batches downloaded ahead of the one being checked, from all peers. Memory: 8 x 16 blocks, at most 128 MB of
# full 1 MB blocks (and each answer's hex while it is decoded, at most MAX_RESPONSE_BYTES).
MAX_IN_FLIGHT = 8
STALL_SECONDS = 2.0  # Bitcoin: BLOCK_STALLING_TIMEOUT_DEFAULT; doubled after each stall, eased back after each batch
MAX_STALL_SECONDS = 64.0  # Bitcoin: BLOCK_STALLING_TIMEOUT_MAX
PROGRESS_LOG_SECONDS = 5.0  # a progress log line at most this often (the terminal's bar is redrawn every batch)
RATE_WINDOW_SECONDS = 30.0  # the blocks/s of the progress line: over the last this many seconds


@dataclass(frozen=True)
class _Connection:
    """A connection to a peer and the thread that downloads on it."""

    client: PeerClient
    thread: DownloadThread


@dataclass
class _Source:
    """A peer blocks are downloaded from during one sync, and its idle connections."""

    peer: Peer
    idle: list[_Connection] = field(default_factory=list)
    busy: int = 0


@dataclass
class _Fetch:
    """One batch in flight: from whom, on which connection, since when."""

    source: _Source
    connection: _Connection
    download: DownloadInThread
    started: float


class SyncProgress:
    """The sync's progress: blocks/s over the last RATE_WINDOW_SECONDS and the time left, for the progress line."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.marks: deque[tuple[float, int]] = deque()  # (time, height), oldest first, over the window

    def add(self, height: int) -> None:
        now = self.clock()
        self.marks.append((now, height))
        while len(self.marks) > 2 and now - self.marks[1][0] >= RATE_WINDOW_SECONDS:
            self.marks.popleft()

    def rate(self) -> float | None:
        """Blocks per second over the window; None before two marks a moment apart."""
        if len(self.marks) < 2 or self.marks[-1][0] <= self.marks[0][0]:
            return None
        (t0, h0), (t1, h1) = self.marks[0], self.marks[-1]
        return (h1 - h0) / (t1 - t0)

    def describe(self, height: int, target: int) -> str:
        """`height/target blocks, R blocks/s, T left` (rate and time left once they are known)."""
        rate = self.rate()
        if not rate:
            return f"{height}/{target} blocks"
        return f"{height}/{target} blocks, {rate:,.0f} blocks/s, {_duration((target - height) / rate)} left"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class BlockSync:
    """Headers first, work verified, then the blocks we lack, from every peer that has them, with a progress line."""

    def __init__(
        self,
        service: NodeService,
        table: PeerTable,
        new_client: Callable[[], PeerClient],
        stop: threading.Event,
        wall_clock: Callable[[], float],
        progress: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.table = table
        self.new_client = new_client
        self.stop = stop
        self.wall_clock = wall_clock
        self.clock = clock
        self.progress = progress
        self.stall_seconds = STALL_SECONDS
        self._rate = SyncProgress(clock)
        self._first_height = 0  # our height when the sync began (a sync of a few blocks shows no progress)
        self._logged_at = -PROGRESS_LOG_SECONDS

    def sync_from(self, client: PeerClient, peer: Peer) -> int | None:
        """Headers first, work verified, then only the blocks we lack (Bitcoin: headers presync, PR 25717).

        Round after round (2,000 headers, then their blocks) while the peer has more: asking again only at the
        next visit left the sync idle for the poll interval every 2,000 blocks. Returns when (our wall clock) the
        peer's next header from the future is due, if it sent one: the blocks before it are fetched now, and the
        peer is asked again then, at no cost to it.
        """
        self._rate = SyncProgress(self.clock)
        self._first_height = self.service.tip().height
        first = True
        while True:
            more, due_at = self._sync_round(client, peer, first)
            first = False
            if due_at is not None or not more or self.stop.is_set():
                return due_at

    def _sync_round(self, client: PeerClient, peer: Peer, first: bool) -> tuple[bool, int | None]:
        """One round: headers from our tip until their work exceeds ours, then the blocks of those we lack.
        Returns whether to go on with another round, and when the peer's header from the future is due, if any.

        Only the first round holds the peer to its hello's claim: a later one may find that we have it all."""
        tip = self.service.tip()
        locator = [hash_hex(h) for h in self.service.locator()]
        chain = HeadersPresync(self.service, self.wall_clock)
        for _ in range(MAX_PRESYNC_BATCHES):
            data = client.get(peer.address, "/headers", {"locator": ",".join(locator)})
            headers = parse_headers(data.get("headers"))
            if not headers:
                break
            chain.extend(headers)
            if chain.due_at is not None or chain.work > tip.chain_work:
                break
            if len(headers) < MAX_HEADERS_RESULTS:
                break
            locator = [hash_hex(h) for h in chain.locator]  # the next batch: after the last header we checked
        ours = self.service.tip().chain_work  # now: relay may have brought the same blocks meanwhile
        if chain.work <= ours:
            if chain.due_at is not None or not first or (not chain.missing and peer.chain_work <= ours):
                return False, chain.due_at  # it had what we now have, or what it has more is not due yet
            # Its hello claimed more work than its headers show: a hint proven wrong. Not scored (a reorg can
            # change a claim between two requests), but a failure: it is asked again only after a backoff that
            # doubles each time, and no block is downloaded for it.
            raise PeerError(f"claimed more work than its headers show ({chain.work} <= ours {ours})")
        taken = self._fetch_blocks(peer, chain.missing)
        # A whole round, and its hello's height (only a hint: a lie costs it one request that adds nothing, which
        # ends the visit) says there is more.
        more = taken and len(chain.missing) >= MAX_HEADERS_RESULTS and peer.height > self.service.tip().height
        return more, chain.due_at

    def _fetch_blocks(self, peer: Peer, wanted: list[bytes]) -> bool:
        """Download `wanted` in batches from `peer` and every other peer that has them, and submit them in order.

        Batches stay in flight while the oldest is checked (taking turns left the peer idle while we checked and
        us idle while it served), IN_FLIGHT_PER_PEER per peer, MAX_IN_FLIGHT in all; each download runs in a
        daemon thread (`DownloadInThread`) on a connection of its own. `peer`'s headers proved the chain's work;
        the others only serve blocks, each checked to be the one asked for. A batch that holds up the others
        for `stall_seconds` is taken from its peer and asked of another (Bitcoin: the block-stalling timeout);
        the peer is dropped from this sync with a failure (if `peer` stalls, the visit ends with it). Returns
        whether every block was taken (not: stopping, or a block from the future).
        """
        source = self.table.ban_key(peer) or str(peer.address)
        batches = [
            wanted[start : start + MAX_BLOCKS_PER_REQUEST] for start in range(0, len(wanted), MAX_BLOCKS_PER_REQUEST)
        ]
        if not batches:
            return True
        main = _Source(peer)
        sources = [main, *(_Source(p) for p in self._helpers(peer, len(wanted)))]
        waiting: deque[int] = deque(range(len(batches)))  # batch numbers not asked for yet, in order
        in_flight: dict[int, _Fetch] = {}
        connections: list[_Connection] = []  # each with its thread, ended when this download is
        try:
            for number in range(len(batches)):
                blocks = None
                while blocks is None:
                    self._ask(batches, waiting, in_flight, sources, number, connections)
                    blocks = self._take(number, in_flight, waiting, sources, main)
                    if self.stop.is_set():
                        return False
                self.stall_seconds = max(STALL_SECONDS, self.stall_seconds * 0.85)
                sender = in_flight.pop(number).source.peer
                taken = self._submit_downloaded([peer] if sender is peer else [peer, sender], source, blocks)
                self._show_progress(peer)
                if self.stop.is_set() or not taken:
                    return False
            return True
        finally:
            for connection in connections:
                connection.thread.close()
            self._show_progress(peer, done=True)

    def _helpers(self, peer: Peer, count: int) -> list[Peer]:
        """Other connected peers whose hello claims a chain at least as long as ours will be with these blocks."""
        needed = self.service.tip().height + count
        with self.table.lock:
            return [
                p
                for p in self.table.peers.values()
                if p is not peer and p.connected and p.height >= needed and not self.table.banned(p)
            ]

    def _ask(
        self,
        batches: list[list[bytes]],
        waiting: deque[int],
        in_flight: dict[int, _Fetch],
        sources: list[_Source],
        number: int,
        connections: list[_Connection],
    ) -> None:
        """Ask for the next batches of the window, each of the peer with the fewest in flight (ties: `peer`).

        Batch `number`, the one checked next, is asked even past the limits: after a stall it is back in
        `waiting` while later batches hold every slot, and nothing else can move until it comes."""
        while waiting and (
            waiting[0] == number or (len(in_flight) < MAX_IN_FLIGHT and waiting[0] < number + MAX_IN_FLIGHT)
        ):
            free = [s for s in sources if s.busy < IN_FLIGHT_PER_PEER or waiting[0] == number]
            if not free:
                return
            chosen = min(free, key=lambda s: s.busy)  # min keeps the first of equals: `peer` is first
            batch = waiting.popleft()
            if chosen.idle:
                connection = chosen.idle.pop()
            else:
                connection = _Connection(self.new_client(), DownloadThread())
                connections.append(connection)
            chosen.busy += 1
            download = DownloadInThread(
                self._download, connection.client, chosen.peer, batches[batch], thread=connection.thread
            )
            in_flight[batch] = _Fetch(chosen, connection, download, self.clock())

    def _take(
        self,
        number: int,
        in_flight: dict[int, _Fetch],
        waiting: deque[int],
        sources: list[_Source],
        main: _Source,
    ) -> list[Block] | None:
        """Batch `number`'s blocks once downloaded; None if it must be asked again (its peer stalled or failed).

        Re-raises what `peer`'s own download raised (PeerError, Misbehaving): its visit ends with it.
        """
        fetch = in_flight[number]
        others = len(sources) > 1
        left = fetch.started + self.stall_seconds - self.clock()
        if not fetch.download.wait(self.stop, left if others else None):
            if self.stop.is_set():
                return None
            # Stalled: the whole window waits for this batch, and another peer could serve it.
            self.stall_seconds = min(MAX_STALL_SECONDS, self.stall_seconds * 2)
            error = PeerError(f"stalled the block download ({self.clock() - fetch.started:.1f} s for one batch)")
            self._drop(fetch.source, error, in_flight, waiting, sources, main)
            return None
        fetch.source.busy -= 1
        try:
            blocks = fetch.download.result(self.stop)
        except PeerError as e:
            self._drop(fetch.source, e, in_flight, waiting, sources, main)
            return None
        fetch.source.idle.append(fetch.connection)
        return blocks

    def _drop(
        self,
        source: _Source,
        error: PeerError,
        in_flight: dict[int, _Fetch],
        waiting: deque[int],
        sources: list[_Source],
        main: _Source,
    ) -> None:
        """Take a peer that stalled or failed out of this sync; its batches go back to be asked of another.

        The peer whose headers we verified ends the visit (the error is raised); a helper is charged the
        failure (a backoff, and ban score if it misbehaved) unless it merely lacks the blocks (Refused)."""
        if source is main:
            raise error
        sources.remove(source)
        for number in sorted((n for n, f in in_flight.items() if f.source is source), reverse=True):
            del in_flight[number]
            waiting.appendleft(number)
        if isinstance(error, Refused) and not isinstance(error, Misbehaving):
            log.info("peer %s does not serve the blocks we lack: %s", source.peer.address, error)
        else:
            self.table.failed(source.peer, error)

    def _download(self, client: PeerClient, peer: Peer, wanted: list[bytes]) -> list[Block]:
        """The blocks of `wanted` we still lack, from `peer`, decoded and each checked to be the one asked for."""
        batch = self.service.lacking("block", wanted)
        if not batch:
            return []
        query = "hashes=" + ",".join(hash_hex(h) for h in batch)  # hex and commas: nothing to quote
        data = client.get(peer.address, "/p2p/blocks", query, max_bytes=MAX_RESPONSE_BYTES)
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

    def _submit_downloaded(self, holders: list[Peer], source: str, blocks: list[Block]) -> bool:
        """Submit downloaded blocks in order; False at one from the future (the rest is later still: not now).

        `holders`: the peer whose headers listed them and the one that sent them; neither is announced them."""
        with self.table.lock:
            for holder in holders:  # before the submits announce them to every other peer
                holder.learn([block.hash for block in blocks])
        # requested=True only here: the blocks are on a header chain whose work we verified > ours.
        outcomes, error = self.service.submit_blocks(blocks, source=source, requested=True)
        if error is None:
            return True
        if not isinstance(error, BlockValidationError):
            raise error  # refused before (recent rejects): the sync loop charges the peer
        block = blocks[len(outcomes)]
        if error.reason == "time-too-new":  # our clock went back since presync: early, not invalid
            log.info("block %s is from the future (%s): taken when due", block.header.hash_hex(), error.detail)
            return False
        detail = f"sent invalid block {block.header.hash_hex()} ({error.reason}: {error.detail})"
        raise Misbehaving(block_score(error), detail) from error

    def _show_progress(self, peer: Peer, done: bool = False) -> None:
        """The progress line: our height against the peer's (its hello: a hint, shown only), blocks/s, time left."""
        height = self.service.tip().height
        target = max(height, peer.height)
        self._rate.add(height)
        if target - self._first_height < 50:
            return  # a few blocks (relay catching up): no line
        line = f"syncing from {peer.address}: {self._rate.describe(height, target)}"
        if self.progress:
            filled = 30 * height // max(target, 1)
            sys.stderr.write(f"\r{line} [{'#' * filled}{' ' * (30 - filled)}]\033[K")
            if done and height >= target:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif (done and height >= target) or self.clock() - self._logged_at >= PROGRESS_LOG_SECONDS:
            self._logged_at = self.clock()
            log.info("%s", line)


def parse_headers(raw: object) -> list[BlockHeader]:
    """A headers answer decoded; Misbehaving if it is not a list of at most 2,000 headers in hex."""
    if not isinstance(raw, list) or len(raw) > MAX_HEADERS_RESULTS or not all(isinstance(h, str) for h in raw):
        raise Misbehaving(SCORE_INVALID, "headers answer is not a list of at most 2,000 hex strings")
    try:
        return [BlockHeader.deserialize(bytes.fromhex(text)) for text in raw]
    except (ValueError, DecodeError) as e:
        raise Misbehaving(SCORE_INVALID, "sent undecodable headers") from e
