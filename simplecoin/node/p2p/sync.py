"""Sync from a peer: headers presync on the block index's own rules, then only the blocks we lack, with progress.

Work is verified before it is trusted (Bitcoin: headers presync, PR 25717): a hello's height and chain work are
hints; headers are checked (link, proof of work, bits, times) and their work summed before any block is
downloaded, and only blocks we lack are fetched, only for a header chain with more work than ours.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from simplecoin.core.errors import BlockValidationError, DecodeError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.headerview import HeaderView
from simplecoin.core.params import MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_RESULTS
from simplecoin.core.pow import check_proof_of_work
from simplecoin.core.primitives import Block, BlockHeader
from simplecoin.node.p2p.bans import SCORE_INVALID, SCORE_UNCONNECTING_HEADERS, block_score
from simplecoin.node.p2p.client import MAX_RESPONSE_BYTES, DownloadInThread, Misbehaving, PeerClient, PeerError
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
        self.missing += [h for h in hashes[: len(entries)] if self.service.lacks("block", h)]
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


class BlockSync:
    """Headers first, work verified, then the blocks we lack, in batches kept in flight, with a progress line."""

    def __init__(
        self,
        service: NodeService,
        table: PeerTable,
        new_client: Callable[[], PeerClient],
        stop: threading.Event,
        wall_clock: Callable[[], float],
        progress: bool,
    ) -> None:
        self.service = service
        self.table = table
        self.new_client = new_client
        self.stop = stop
        self.wall_clock = wall_clock
        self.progress = progress

    def sync_from(self, client: PeerClient, peer: Peer) -> int | None:
        """Headers first, work verified, then only the blocks we lack (Bitcoin: headers presync, PR 25717).

        Returns when (our wall clock) the peer's next header from the future is due, if it sent one: the blocks
        before it are fetched now, and the peer is asked again then, at no cost to it.
        """
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
            if chain.due_at is not None or (not chain.missing and peer.chain_work <= ours):
                return chain.due_at  # it had what we now have, or what it has more is not due yet
            # Its hello claimed more work than its headers show: a hint proven wrong. Not scored (a reorg can
            # change a claim between two requests), but a failure: it is asked again only after a backoff that
            # doubles each time, and no block is downloaded for it.
            raise PeerError(f"claimed more work than its headers show ({chain.work} <= ours {ours})")
        self._fetch_blocks(peer, chain.missing)
        if len(chain.missing) >= MAX_HEADERS_RESULTS:
            self.table.due_now(str(peer.address))
        return chain.due_at

    def _fetch_blocks(self, peer: Peer, wanted: list[bytes]) -> None:
        """Download `wanted` in batches and submit them, the next batch downloading while this one is checked.

        Taking turns (ask, wait, check, ask again) left the peer idle while we checked and us idle while it
        served: half of an initial sync's time (Bitcoin keeps blocks in flight while it connects others). At
        most two batches are in memory; each download runs in a daemon thread (`DownloadInThread`) on a
        connection of its own, one at a time.
        """
        total = len(wanted)
        source = self.table.ban_key(peer) or str(peer.address)
        batches = [wanted[start : start + MAX_BLOCKS_PER_REQUEST] for start in range(0, total, MAX_BLOCKS_PER_REQUEST)]
        if not batches:
            return
        downloader = self.new_client()
        download = DownloadInThread(self._download, downloader, peer, batches[0])
        for number in range(len(batches)):
            blocks = download.result(self.stop)  # re-raises what the download raised (PeerError, Misbehaving)
            if blocks is None:
                return  # stopping: the download ends on its own
            if number + 1 < len(batches) and not self.stop.is_set():
                download = DownloadInThread(self._download, downloader, peer, batches[number + 1])
            taken = self._submit_downloaded(peer, source, blocks)
            self._show_progress(peer, min((number + 1) * MAX_BLOCKS_PER_REQUEST, total), total)
            if self.stop.is_set() or not taken:
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

    def _submit_downloaded(self, peer: Peer, source: str, blocks: list[Block]) -> bool:
        """Submit downloaded blocks in order; False at one from the future (the rest is later still: not now)."""
        with self.table.lock:
            peer.learn([block.hash for block in blocks])  # before the submits announce them to every other peer
        for block in blocks:
            try:
                # requested=True only here: the block is on a header chain whose work we verified > ours.
                self.service.submit_block(block, source=source, requested=True)
            except BlockValidationError as e:
                if e.reason == "time-too-new":  # our clock went back since presync: early, not invalid
                    log.info("block %s is from the future (%s): taken when due", block.header.hash_hex(), e.detail)
                    return False
                detail = f"sent invalid block {block.header.hash_hex()} ({e.reason}: {e.detail})"
                raise Misbehaving(block_score(e), detail) from e
        return True

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


def parse_headers(raw: object) -> list[BlockHeader]:
    """A headers answer decoded; Misbehaving if it is not a list of at most 2,000 headers in hex."""
    if not isinstance(raw, list) or len(raw) > MAX_HEADERS_RESULTS or not all(isinstance(h, str) for h in raw):
        raise Misbehaving(SCORE_INVALID, "headers answer is not a list of at most 2,000 hex strings")
    try:
        return [BlockHeader.deserialize(bytes.fromhex(text)) for text in raw]
    except (ValueError, DecodeError) as e:
        raise Misbehaving(SCORE_INVALID, "sent undecodable headers") from e
