"""The node as the server process shares it: one lock around the node, and events for whoever listens.

The API's threads, the peer threads and the mining pump all go through a `NodeService`; it is the only
thing that touches the `Node`, always under its lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from simplecoin.core.chain import IndexEntry
from simplecoin.core.errors import BlockValidationError, TxValidationError, ValidationError
from simplecoin.core.headerview import HeaderView
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.primitives import Block, BlockHeader, Transaction
from simplecoin.core.validation import check_block, check_tx_signatures
from simplecoin.node.node import AddressInfo, AddressPage, BlockOutcome, FeeEstimate, MerkleProof, Node, TxLookup

log = logging.getLogger(__name__)

# Requests checking signatures at once: all cores but one, which stays free for reads and the mining pump.
VERIFY_THREADS = max(1, (os.cpu_count() or 1) - 1)
SEEN_LIMIT = 50_000  # hashes remembered so each block and tx is relayed once


@dataclass(frozen=True)
class Event:
    """Something that changed: a block accepted ("block"), a tx accepted ("tx"); `source` is a peer URL or ""."""

    kind: str
    hash: bytes
    raw: bytes
    source: str
    tip_changed: bool = False


class NodeService:
    """Thread-safe access to one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.params = node.params
        self.lock = threading.RLock()
        self._listeners: list[Callable[[Event], None]] = []
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self.hashrate = 0.0
        self._verify_slots = threading.BoundedSemaphore(VERIFY_THREADS)
        with self.lock:
            self._refresh_status()
        self.threads: Callable[[], dict[str, str]] = dict  # health of the server's threads (server.py sets it)

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    def seen(self, item_hash: bytes) -> bool:
        """Whether this hash was relayed already; marks it seen."""
        with self.lock:
            if item_hash in self._seen:
                return True
            self._seen[item_hash] = None
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            return False

    # -- changes --------------------------------------------------------------------------------------------

    # Signatures are what a block or tx costs most to check, and anyone can send one that makes us check them,
    # so they are verified outside the lock the API's readers need. Each signature check stands on its own
    # (the input carries its key; the signature hash covers only the tx), so no chain state is involved; the
    # node remembers what passed (its signature cache) and what failed (its recent rejects).

    def submit_block(self, block: Block, source: str = "", requested: bool = False) -> BlockOutcome:
        check_block(block, self.params)  # context-free: proof of work first, before anything costs more
        with self.lock:
            self.node.check_rejected(block.hash)
            pending = self.node.unverified(block.txs[1:]) if self.node.wants(block, requested) else []
        try:
            self._verify_signatures(pending)
        except TxValidationError as e:
            error = BlockValidationError(e.reason, e.detail)
            with self.lock:
                self.node.remember_rejected(block.hash, error)
            raise error from e
        with self.lock:
            old_tip = self.node.tip.hash
            outcome = self.node.submit_block(block, source, requested)
            tip_changed = self.node.tip.hash != old_tip
            on_active_chain = block.hash in self.node.index and self.node.is_active(self.node.index[block.hash])
            pool = self.node.mempool.entries
            returned = [pool[txid].tx for txid in outcome.reorg.returned if txid in pool]
            self._refresh_status()
        # Only a block on our active chain is relayed: a side branch we stored may never win, and relaying it
        # would hand every peer the same junk.
        if outcome.status == "accepted" and on_active_chain and not self.seen(block.hash):
            self._emit(Event("block", block.hash, block.serialize(), source, tip_changed))
        for tx in returned:  # back from disconnected blocks: relayed again even if seen before, since peers on
            self.seen(tx.txid)  # the other branch may never have had them
            self._emit(Event("tx", tx.txid, tx.serialize(), ""))
        return outcome

    def submit_tx(self, tx: Transaction, source: str = "") -> MempoolEntry:
        # The lock is taken twice on the way in, not four times: the signature cache, the pool and the relay filter
        # share the second section. Under 4 busy clients each wait for the lock cost more than what it guarded.
        with self.lock:
            self.node.check_rejected(tx.txid)
            pending = self.node.unverified([tx]) if self.node.inputs_look_valid(tx) else []
        try:
            self._check_signatures(pending)
        except TxValidationError as e:
            with self.lock:
                self.node.remember_rejected(tx.txid, e)
            raise
        with self.lock:
            self.node.signatures_verified(t.txid for t in pending)
            entry = self.node.submit_tx(tx)  # the cheap checks again: the pool may have changed meanwhile
            self._refresh_status()
            fresh = not self.seen(tx.txid)
        if fresh:
            self._emit(Event("tx", tx.txid, tx.serialize(), source))
        return entry

    def _verify_signatures(self, txs: list[Transaction]) -> None:
        """Check every signature of `txs` without the lock; remember those that pass. TxValidationError if not."""
        self._check_signatures(txs)
        if txs:
            with self.lock:
                self.node.signatures_verified(tx.txid for tx in txs)

    def _check_signatures(self, txs: list[Transaction]) -> None:
        """Check every signature of `txs` (call without the lock). TxValidationError for the first bad one.

        At most VERIFY_THREADS requests check signatures at once (Bitcoin: -par): the rest wait without using
        a core, so a flood of expensive transactions cannot take every core from the node's other work.
        """
        if not txs:
            return
        with self._verify_slots:
            for tx in txs:
                check_tx_signatures(tx, self.params.genesis_hash)

    def block_template(self, pubkey_hash: bytes, extra: bytes) -> Block:
        with self.lock:
            return self.node.block_template(pubkey_hash, extra)

    # -- reads ----------------------------------------------------------------------------------------------

    def tip(self) -> IndexEntry:
        with self.lock:
            return self.node.tip

    def status(self) -> dict:
        """The node's state; never waits for the lock (monitors and peers poll it while blocks are checked).

        Fresh when the lock is free; otherwise the last state taken, which every change refreshes.
        """
        if self.lock.acquire(blocking=False):
            try:
                self._refresh_status()
            finally:
                self.lock.release()
        return {**self._status, "hashrate": round(self.hashrate, 1)}

    def _refresh_status(self) -> None:
        """Take the state /status shows (lock held by the caller)."""
        tip = self.node.tip
        self._status = {
            "network": self.params.name,
            "genesis": self.params.genesis_hash_hex,
            "height": tip.height,
            "tip": tip.header.hash_hex(),
            "bits": tip.header.bits,
            "chain_work": tip.chain_work,
            "median_time_past": self.node.median_time_past(),
            "mempool": len(self.node.mempool),
            "mempool_bytes": self.node.mempool.total_bytes,
            "orphans": len(self.node.orphans),
            "orphan_bytes": self.node.orphan_bytes(),
        }

    def entry(self, block_hash: bytes) -> IndexEntry:
        with self.lock:
            return self.node.entry(block_hash)

    def hash_at(self, height: int) -> bytes:
        with self.lock:
            return self.node.hash_at(height)

    def block(self, block_hash: bytes) -> tuple[Block, IndexEntry, bool]:
        """A stored block, its index entry, and whether it is on the active chain."""
        with self.lock:
            return self.node.block(block_hash)

    def recent(self, start: int, limit: int) -> list[IndexEntry]:
        """Active-chain entries from height `start` down, at most `limit`."""
        with self.lock:
            start = min(start, self.node.height)
            return [self.node.index[self.node.active[h]] for h in range(start, max(start - limit, -1), -1)]

    def tx(self, txid: bytes) -> TxLookup:
        with self.lock:
            return self.node.tx(txid)

    def mempool_entries(self) -> list[MempoolEntry]:
        """Pending transactions, highest fee rate first (what a miner would take first)."""
        with self.lock:
            entries = list(self.node.mempool.entries.values())
        return sorted(entries, key=lambda e: (-Fraction(e.fee, e.tx.size), e.tx.txid))

    def merkle_proof(self, txid: bytes) -> MerkleProof:
        with self.lock:
            return self.node.merkle_proof(txid)

    def address(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressInfo:
        with self.lock:
            return self.node.address(pubkey_hash, offset, limit)

    def address_page(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressPage:
        with self.lock:
            return self.node.address_page(pubkey_hash, offset, limit)

    def fee_estimate(self) -> FeeEstimate:
        with self.lock:
            return self.node.fee_estimate()

    def headers_after(self, locator: list[bytes], limit: int) -> list[BlockHeader]:
        with self.lock:
            return self.node.headers_after(locator, limit)

    def locator(self) -> list[bytes]:
        with self.lock:
            return self.node.index.locator(self.node.tip)

    # -- for the peer layer: announce-then-fetch and headers presync -----------------------------------------

    def lacks(self, kind: str, item_hash: bytes) -> bool:
        """Whether an announced block or tx is one we have not got (nor refused before): worth fetching."""
        with self.lock:
            if kind == "block":
                return item_hash not in self.node.index and item_hash not in self.node.orphans
            if item_hash in self.node.mempool:
                return False
            try:
                self.node.check_rejected(item_hash)
            except ValidationError:
                return False
            return True

    def relayable(self, kind: str, item_hash: bytes) -> bytes | None:
        """The bytes of a block on our active chain or a tx in our mempool; None for anything else.

        Bitcoin relays only what it would mine on: a side-branch block or a tx evicted since it was announced
        is not handed to anyone (a stored side branch once got an honest relayer banned as the victim's
        "duplicate-invalid").
        """
        with self.lock:
            if kind == "block":
                entry = self.node.index.entries.get(item_hash)
                if entry is None or not self.node.is_active(entry):
                    return None
                return self.node.block(item_hash)[0].serialize()
            mempool_entry = self.node.mempool.entries.get(item_hash)
            return mempool_entry.tx.serialize() if mempool_entry is not None else None

    def header_context(self, prev_hash: bytes) -> IndexEntry | None:
        """Our index entry for a header chain's parent (None if unknown): where a peer's headers attach."""
        with self.lock:
            return self.node.index.entries.get(prev_hash)

    def ancestor(self, entry: IndexEntry, height: int) -> IndexEntry:
        with self.lock:
            return self.node.index.ancestor(entry, height)

    def raw_block(self, block_hash: bytes) -> bytes:
        with self.lock:
            return self.node.block(block_hash)[0].serialize()

    def header_view(self) -> HeaderView:
        """A view of our block index that a peer's headers are added to, leaving the index as it is (presync).

        Read it only through `check_headers`, which holds the lock the index needs."""
        with self.lock:
            return HeaderView(self.node.index)

    def check_headers(
        self, view: HeaderView, headers: list[BlockHeader], now: int
    ) -> tuple[list[IndexEntry], list[bytes], BlockValidationError | None]:
        """Check linked headers on `view` by the index's own rules (bits, median time past, time-too-new at `now`)
        and add them to it, up to the first refused. Returns the entries of those taken, the locator from the last
        (BlockIndex.locator on the view; [] for none) and why the next was refused (None: all were taken). Their
        proof of work is the caller's to check first, outside the lock."""
        entries: list[IndexEntry] = []
        refused = None
        with self.lock:
            for header in headers:
                try:
                    entries.append(view.add_checked(header, now))
                except BlockValidationError as e:
                    refused = e
                    break
            return entries, view.locator(entries[-1]) if entries else [], refused

    def close(self) -> None:
        with self.lock:
            self.node.close()
