"""The node as the server process shares it: one lock around the node, and events for whoever listens.

The API's threads, the peer threads, the mining pump and the mempool loader all go through a `NodeService`;
it is the only thing that calls the `Node` (and its `Lookups`), always under its lock, and only through their
methods. A block or tx is checked once, in this order: context-free checks, recent rejects, whether we want
it, signatures (outside the lock), then connect (`submit_block`, `submit_tx`). The cheap checks that decide
whether a tx's signatures are worth checking run again in the pool's acceptance only if the tip or the pool
changed while the lock was free.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from simplecoin.bounded import BoundedDict
from simplecoin.core.chain import IndexEntry
from simplecoin.core.errors import BlockValidationError, TxValidationError, ValidationError
from simplecoin.core.headerview import HeaderView
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.primitives import Block, BlockHeader, Transaction
from simplecoin.core.validation import check_block, check_tx_signatures
from simplecoin.node.lookups import AddressInfo, AddressPage, FeeEstimate, Lookups, MerkleProof, TxLookup
from simplecoin.node.node import BlockOutcome, Node

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
        self.lookups = Lookups(node)
        self.params = node.params
        self.lock = threading.RLock()
        self._listeners: list[Callable[[Event], None]] = []
        self._relayed: BoundedDict[bytes, None] = BoundedDict(SEEN_LIMIT)
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

    def first_sighting(self, item_hash: bytes) -> bool:
        """Mark this hash as relayed; True if it was not already (so it is relayed once)."""
        with self.lock:
            if item_hash in self._relayed:
                return False
            self._relayed[item_hash] = None
            return True

    # -- changes --------------------------------------------------------------------------------------------

    # Signatures are what a block or tx costs most to check, and anyone can send one that makes us check them,
    # so they are verified outside the lock the API's readers need. Each signature check stands on its own
    # (the input carries its key; the signature hash covers only the tx), so no chain state is involved; the
    # node remembers what passed (its signature cache) and what failed (its recent rejects).

    def submit_block(self, block: Block, source: str = "", requested: bool = False) -> BlockOutcome:
        """Check a block, store it, follow the most-work chain; relay it if it joined our active chain.

        `requested=False` (a block pushed to us) is stored only if its chain could become the tip (`Node.add_block`).
        """
        check_block(block, self.params)  # context-free: proof of work first, before anything costs more
        with self.lock:
            unverified = self.node.block_to_verify(block, requested)  # recent rejects; whether we want it
        try:
            self._check_signatures(unverified)
        except TxValidationError as e:
            raise self._refused(block.hash, BlockValidationError(e.reason, e.detail)) from e
        with self.lock:
            old_tip = self.node.tip.hash
            outcome = self.node.add_block(block, source, requested, verified=[tx.txid for tx in unverified])
            tip_changed = self.node.tip.hash != old_tip
            on_active_chain = self.lookups.on_active_chain(block.hash)
            returned = self.lookups.pending(outcome.reorg.returned)
            self._refresh_status()
        # Only a block on our active chain is relayed: a side branch we stored may never win, and relaying it
        # would hand every peer the same junk.
        if outcome.status == "accepted" and on_active_chain and self.first_sighting(block.hash):
            self._emit(Event("block", block.hash, block.serialize(), source, tip_changed))
        for tx in returned:  # back from disconnected blocks: relayed again even if seen before, since peers on
            self.first_sighting(tx.txid)  # the other branch may never have had them
            self._emit(Event("tx", tx.txid, tx.serialize(), ""))
        return outcome

    def submit_tx(self, tx: Transaction, source: str = "") -> MempoolEntry:
        """Check a tx and add it to the pool; relay it if it is new to us."""
        entry, fresh = self._accept_tx(tx, relay=True)
        if fresh:
            self._emit(Event("tx", tx.txid, tx.serialize(), source))
        return entry

    def restore_tx(self, tx: Transaction) -> MempoolEntry:
        """Re-validate a tx saved across a restart (`mempool.dat`): the checks of `submit_tx`, but not relayed,
        since peers most likely have it already."""
        return self._accept_tx(tx, relay=False)[0]

    def _accept_tx(self, tx: Transaction, relay: bool) -> tuple[MempoolEntry, bool]:
        """Add `tx` to the pool; return its entry and whether it is to be relayed (first sighting)."""
        # The lock is taken twice, not four times: the signature cache, the pool and the relay filter share the
        # second section. Under 4 busy clients each wait for the lock cost more than what it guarded.
        with self.lock:
            unverified = self.node.tx_to_verify(tx)  # recent rejects; the cheap checks, once the inputs are read
        try:
            self._check_signatures(unverified)
        except TxValidationError as e:
            self._refused(tx.txid, e)
            raise
        with self.lock:
            entry = self.node.accept_tx(tx, verified=[t.txid for t in unverified])
            self._refresh_status()
            return entry, relay and self.first_sighting(tx.txid)

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

    def _refused(self, item_hash: bytes, error: ValidationError) -> ValidationError:
        """Have the node remember a block or tx refused for a bad signature; return the error to raise."""
        with self.lock:
            self.node.remember_rejected(item_hash, error)
        return error

    def block_template(self, pubkey_hash: bytes, extra: bytes) -> Block:
        with self.lock:
            return self.node.block_template(pubkey_hash, extra)

    def pending_txs(self) -> list[Transaction]:
        """The pool's transactions, parents first (what `mempool.dat` saves)."""
        with self.lock:
            return self.lookups.pending_in_dependency_order()

    # -- reads ----------------------------------------------------------------------------------------------

    def tip(self) -> IndexEntry:
        with self.lock:
            return self.node.tip.with_header()  # its header read under the lock, as the store's every read

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
        self._status = self.lookups.status()

    def entry(self, block_hash: bytes) -> IndexEntry:
        with self.lock:
            return self.lookups.entry(block_hash).with_header()

    def hash_at(self, height: int) -> bytes:
        with self.lock:
            return self.lookups.hash_at(height)

    def block(self, block_hash: bytes) -> tuple[Block, IndexEntry, bool]:
        """A stored block, its index entry, and whether it is on the active chain."""
        with self.lock:
            return self.lookups.block(block_hash)

    def recent(self, start: int, limit: int) -> list[IndexEntry]:
        """Active-chain entries from height `start` down, at most `limit`."""
        with self.lock:
            return self.lookups.recent(start, limit)

    def tx(self, txid: bytes) -> TxLookup:
        with self.lock:
            return self.lookups.tx(txid)

    def mempool_entries(self) -> list[MempoolEntry]:
        """Pending transactions, highest fee rate first (what a miner would take first)."""
        with self.lock:
            entries = self.lookups.mempool_entries()
        # Sorted without the lock: with a full pool the Fraction keys cost tens of ms that block pushes would wait.
        return sorted(entries, key=lambda e: (-Fraction(e.fee, e.tx.size), e.tx.txid))

    def merkle_proof(self, txid: bytes) -> MerkleProof:
        with self.lock:
            return self.lookups.merkle_proof(txid)

    def address(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressInfo:
        with self.lock:
            return self.lookups.address(pubkey_hash, offset, limit)

    def address_page(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressPage:
        with self.lock:
            return self.lookups.address_page(pubkey_hash, offset, limit)

    def fee_estimate(self) -> FeeEstimate:
        with self.lock:
            return self.lookups.fee_estimate()

    def headers_after(self, locator: list[bytes], limit: int) -> list[BlockHeader]:
        with self.lock:
            return self.lookups.headers_after(locator, limit)

    def locator(self) -> list[bytes]:
        with self.lock:
            return self.lookups.locator()

    # -- for the peer layer: announce-then-fetch and headers presync -----------------------------------------

    def lacks(self, kind: str, item_hash: bytes) -> bool:
        """Whether an announced block or tx is one we have not got (nor refused before): worth fetching."""
        with self.lock:
            return self.lookups.lacks(kind, item_hash)

    def relayable(self, kind: str, item_hash: bytes) -> bytes | None:
        """The bytes of a block on our active chain or a tx in our mempool; None for anything else."""
        with self.lock:
            return self.lookups.relayable(kind, item_hash)

    def header_context(self, prev_hash: bytes) -> IndexEntry | None:
        """Our index entry for a header chain's parent (None if unknown): where a peer's headers attach."""
        with self.lock:
            return self.lookups.header_context(prev_hash)

    def raw_block(self, block_hash: bytes) -> bytes:
        with self.lock:
            return self.lookups.block(block_hash)[0].serialize()

    def header_view(self) -> HeaderView:
        """A view of our block index that a peer's headers are added to, leaving the index as it is (presync).

        Read it only through `check_headers`, which holds the lock the index needs."""
        with self.lock:
            return self.lookups.header_view()

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

    def first_height_off_the_difficulty_rule(self) -> int | None:
        """Where our active chain first breaks the difficulty rule (mined before it existed); None if nowhere."""
        with self.lock:
            return self.lookups.first_height_off_the_difficulty_rule()

    def close(self) -> None:
        with self.lock:
            self.node.close()
