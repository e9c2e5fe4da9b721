"""The node as the server process shares it: one lock around the node, and events for whoever listens.

The API's threads, the peer threads, the mining pump and the mempool loader all go through a `NodeService`;
it is the only thing that calls the `Node` (and its `Lookups`), always under its lock, and only through their
methods. A block or tx is checked once, in this order: context-free checks, recent rejects, whether we want
it, signatures (outside the lock), then connect (`submit_block`, `submit_tx`). The cheap checks that decide
whether a tx's signatures are worth checking run again in the pool's acceptance only if the tip or the pool
changed while the lock was free.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from simplecoin.bounded import BoundedDict
from simplecoin.core.chain import IndexEntry
from simplecoin.core.errors import BlockValidationError, TxValidationError, ValidationError
from simplecoin.core.headerview import HeaderView
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.mining import COINBASE_RESERVE
from simplecoin.core.params import MAX_HEADERS_BINARY_RESULTS
from simplecoin.core.primitives import Block, BlockHeader, Transaction
from simplecoin.core.validation import check_block, check_tx_signatures
from simplecoin.node import snapshots
from simplecoin.node.lookups import (
    AddressInfo,
    AddressPage,
    Lookups,
    MerkleProof,
    OutputSpend,
    SideBranch,
    TxLookup,
    confirmed_page,
)
from simplecoin.node.metrics import NodeMetrics
from simplecoin.node.node import BlockOutcome, Node
from simplecoin.node.poolhistory import PoolHistory, PoolSample
from simplecoin.node.snapshots import FeeEstimate, MempoolSnapshot
from simplecoin.node.store import AddressQuery

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# Requests checking signatures at once: all cores but one, which stays free for reads and the mining pump.
VERIFY_THREADS = max(1, (os.cpu_count() or 1) - 1)
SEEN_LIMIT = 50_000  # hashes remembered so each block and tx is relayed once
Submit = TypeVar("Submit", bound=Callable)


def _counting_rejects(kind: str) -> Callable[[Submit], Submit]:
    """Have a submit method count each refusal by its reject reason (GET /metrics), whichever check raised it."""

    def wrap(method: Submit) -> Submit:
        @functools.wraps(method)
        def counted(self: NodeService, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except ValidationError as e:
                self.metrics.rejected(kind, e.reason)
                raise

        return counted  # type: ignore[return-value]

    return wrap


SNAPSHOT_TRIES = 3  # address pages read outside the lock before one is read under it (the tip kept moving)


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
        self.metrics = NodeMetrics()  # what GET /metrics counts: blocks, reorgs, rejects, waits for the lock
        self.lock = self.metrics.lock  # re-entrant; it times the waits for it (metrics.TimedLock)
        self._listeners: list[Callable[[Event], None]] = []
        self._relayed: BoundedDict[bytes, None] = BoundedDict(SEEN_LIMIT)
        self.hashrate = 0.0
        self._verify_slots = threading.BoundedSemaphore(VERIFY_THREADS)
        self._snapshot: MempoolSnapshot | None = None
        self._snapshot_lock = threading.Lock()  # one reader takes a new snapshot; the others wait for it, not the node
        self._headers_lock = threading.Lock()  # one /headers read at a time (see headers_after)
        self._pool_history = PoolHistory()  # the explorer's mempool chart: noted with each status, read lock-free
        with self.lock:
            self._refresh_status()
        self.threads: Callable[[], dict[str, str]] = dict  # health of the server's threads (server.py sets it)
        # Files other than the store that could not be written (peers.json): file name -> what failed.
        # One entry per file the node writes, so a handful at most. Replaced, never changed in place: `faults`
        # reads it without the lock.
        self._file_faults: dict[str, str] = {}

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
        outcomes, error = self.submit_blocks([block], source, requested)
        if error is not None:
            raise error
        return outcomes[0]

    def submit_blocks(
        self, blocks: list[Block], source: str = "", requested: bool = False
    ) -> tuple[list[BlockOutcome], ValidationError | None]:
        """`submit_block` for consecutive blocks (a sync's batch), taking the lock twice for all of them, not each.

        Returns the outcomes of the blocks taken, in order, and why the next was refused (None: all were
        taken); the blocks after a refused one are not looked at.
        """
        checked: list[Block] = []
        error: ValidationError | None = None
        for block in blocks:
            try:
                check_block(block, self.params)  # context-free: proof of work first, before anything costs more
            except BlockValidationError as e:
                error = e
                break
            checked.append(block)
        to_verify: list[list[Transaction]] = []
        with self.lock:
            for block in checked:
                try:
                    to_verify.append(self.node.block_to_verify(block, requested))  # recent rejects; wanted?
                except ValidationError as e:
                    error = e
                    break
        for number, unverified in enumerate(to_verify):
            try:
                self._check_signatures(unverified)
            except TxValidationError as e:
                refused = BlockValidationError(e.reason, e.detail)
                refused.__cause__ = e
                error = self._refused(checked[number].hash, refused)
                to_verify = to_verify[:number]
                break
        outcomes: list[BlockOutcome] = []
        relayed: list[tuple[Block, bool]] = []  # (block, tip changed) for each that joined the active chain
        returned: list[Transaction] = []
        failure: BaseException | None = None  # not a rule a block broke (InternalError...): raised after the relay
        with self.lock:
            try:
                for block, unverified in zip(checked, to_verify, strict=False):
                    old_tip = self.node.tip.hash
                    try:
                        outcome = self.node.add_block(block, source, requested, verified=[tx.txid for tx in unverified])
                    except BlockValidationError as e:
                        error = e
                        break
                    outcomes.append(outcome)
                    # Only a block on our active chain is relayed: a side branch we stored may never win, and
                    # relaying it would hand every peer the same junk. Marked here, under the lock we hold.
                    if outcome.status == "accepted" and self.lookups.on_active_chain(block.hash):
                        if self.first_sighting(block.hash):
                            relayed.append((block, self.node.tip.hash != old_tip))
                    for tx in self.lookups.pending(outcome.reorg.returned):  # back from disconnected blocks:
                        self.first_sighting(tx.txid)  # relayed again even if seen before, since peers on the
                        returned.append(tx)  # other branch may never have had them
            except BaseException as e:  # noqa: BLE001 - raised below, once the blocks taken before it are relayed
                failure = e
            self._refresh_status()
        for outcome in outcomes:
            self.metrics.chain_moved(outcome.reorg)
        if error is not None:
            self.metrics.rejected("block", error.reason)
        for block, tip_changed in relayed:
            self._emit(Event("block", block.hash, block.serialize(), source, tip_changed))
        for tx in returned:
            self._emit(Event("tx", tx.txid, tx.serialize(), ""))
        if failure is not None:
            raise failure
        return outcomes, error

    @_counting_rejects("tx")
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

    def resume(self) -> None:
        """After a store write failed: try again to reach the best chain (Node.resume); the server calls this
        every few seconds, so the node recovers once space returns, without a restart."""
        with self.lock:
            if self.node.store.write_error is None:
                return
            old_tip = self.node.tip.hash
            moved = self.node.resume()
            tip = self.node.tip
            raw = self.lookups.relayable("block", tip.hash) if tip.hash != old_tip else None
            self._refresh_status()
        self.metrics.chain_moved(moved)
        if raw is not None and self.first_sighting(tip.hash):
            self._emit(Event("block", tip.hash, raw, "", tip_changed=True))

    def file_written(self, path: Path, error: OSError | None) -> None:
        """Note that writing the file at `path` failed (shown in /status by its name) or, with None, succeeded."""
        with self.lock:
            others = {name: fault for name, fault in self._file_faults.items() if name != path.name}
            self._file_faults = others if error is None else {**others, path.name: f"cannot write {path}: {error}"}

    def faults(self) -> dict[str, str]:
        """What the node could not write, by file ({} when all is well): the store's last failed write until
        one succeeds, and other files' (`file_written`). Never waits for the lock, like `status`."""
        found = dict(self._file_faults)  # a dict replaced whole (`file_written`): copied safely without the lock
        store_error = self.node.store.write_error
        if store_error is not None:
            found[self.node.store.path.name] = store_error
        return found

    def block_template(self, pubkey_hash: bytes, extra: bytes) -> Block:
        with self.lock:
            return self.node.block_template(pubkey_hash, extra)

    def pending_txs(self) -> list[Transaction]:
        """The pool's transactions, parents first (what `mempool.dat` saves)."""
        with self.lock:
            return self.lookups.pending_in_dependency_order()

    def fee_stats(self) -> bytes:
        """The fee estimator's counts (what `fee_estimates.dat` saves)."""
        with self.lock:
            return self.node.fee_estimator.serialize_stats()

    def restore_fee_stats(self, data: bytes) -> None:
        """Take saved fee-estimator counts back; DecodeError (and nothing changed) if they do not decode."""
        with self.lock:
            self.node.fee_estimator.restore_stats(data)

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

    def last_status(self) -> tuple[dict, tuple[int, int]]:
        """What the last change left: the figures of /status and the fee floors (relay minimum, rolling minimum per
        byte). Never touches the lock: GET /metrics is scraped while blocks are checked."""
        return self._status, self._fee_floors

    def _refresh_status(self) -> None:
        """Take the state /status shows (lock held by the caller)."""
        self._status = self.lookups.status()
        self._pool_history.note(int(self.node.clock()), self._status["mempool"], self._status["mempool_bytes"])
        self._fee_floors = self.lookups.fee_floors()

    def pool_history(self) -> tuple[PoolSample, ...]:
        """The mempool's (time, count, bytes) samples, oldest first (bounded); never waits for the lock."""
        return self._pool_history.samples()

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

    def side_branches(self, limit: int) -> list[SideBranch]:
        """The most recently seen branches off the active chain, newest first, each with why it lost."""
        with self.lock:
            return self.lookups.side_branches(limit)

    def tx(self, txid: bytes) -> TxLookup:
        with self.lock:
            return self.lookups.tx(txid)

    def mempool_snapshot(self) -> MempoolSnapshot:
        """The pool's totals and its top by fee rate, highest first (what a miner would take first)."""
        return self._pool()[0]

    def output_spends(self, found: TxLookup) -> list[OutputSpend]:
        with self.lock:
            return self.lookups.output_spends(found)

    def block_times(self, heights: list[int]) -> dict[int, int]:
        with self.lock:
            return self.lookups.block_times(heights)

    def tx_counts(self, low: int, high: int) -> dict[int, int]:
        with self.lock:
            return self.lookups.tx_counts(low, high)

    def merkle_proof(self, txid: bytes) -> MerkleProof:
        with self.lock:
            return self.lookups.merkle_proof(txid)

    def address(self, query: AddressQuery) -> AddressInfo:
        """An address's totals, a page of coins and of history, and its pending txs, all of one tip.

        Read outside the lock (`_at_one_tip`): a 112,001-coin address held the lock for 1.9-3.3 s, and block pushes
        waited; the lock is taken only to read the address's own pool entries (Mempool.by_address).
        """
        store = self.node.store
        return self._at_one_tip(
            lambda: store.address_snapshot(query),
            lambda snapshot: snapshot.tip_hash,
            lambda snapshot: self.lookups.with_pending(snapshot, query.pubkey_hash),
        )

    def address_page(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressPage:
        """A light wallet's history page with proofs, read outside the lock (`_at_one_tip`): up to 2 MB of txs
        and the blocks holding them took 0.4 s under it for the dust flood's victim."""

        def read() -> AddressPage:
            with self.node.store.reading() as reader:
                return confirmed_page(reader, pubkey_hash, offset, limit)

        return self._at_one_tip(
            read, lambda page: page.tip_hash, lambda page: self.lookups.with_pending_txs(page, pubkey_hash)
        )

    def _at_one_tip(self, read: Callable[[], T], tip_of: Callable[[T], bytes], finish: Callable[[T], R]) -> R:
        """`finish(read())`, where `read` reads the store without the lock (its own read-only connection) and
        `finish` adds what the node holds in memory (the pool) under it, both at the same tip.

        A page read at another tip than the pool's could show a coin both confirmed and pending, so it is read
        again; if the tip moved every time, it is read under the lock (bounded: a page, never a whole address).
        A store in memory has no second connection: then everything is read under the lock.
        """
        for _ in range(SNAPSHOT_TRIES if self.node.store.has_readers else 0):
            snapshot = read()
            with self.lock:
                if self.node.tip.hash == tip_of(snapshot):
                    return finish(snapshot)
        with self.lock:
            return finish(read())

    def fee_estimate(self) -> FeeEstimate:
        snapshot, (min_relay, rolling_min) = self._pool()
        return snapshots.fee_estimate(snapshot, min_relay, rolling_min)

    def _pool(self) -> tuple[MempoolSnapshot, tuple[int, int]]:
        """The pool's snapshot for the current (tip, pool change), and the fee floors (read fresh: they decay).

        The node lock is held for O(1) work and a copy of the list of entries, never for sorting or summing the
        pool (issue 21: 643 ms under the lock for the explorer's page of a 12,000-tx pool).
        """
        with self._snapshot_lock:
            with self.lock:
                floors = self.lookups.fee_floors()
                snapshot = self._snapshot
                if snapshot is not None and snapshot.key == self.lookups.pool_key():
                    return snapshot, floors
                figures = self.lookups.pool_figures()
            self._snapshot = snapshots.take(figures, self.params.max_block_size - COINBASE_RESERVE)
            return self._snapshot, floors

    def headers_after(self, locator: list[bytes], limit: int) -> list[bytes]:
        """Active-chain headers after the locator (StoreReader.headers_after), never more than a binary answer
        holds. They are read on a read connection, all of one committed state, without the node lock: 20,000 of
        them, a light wallet's request, are 50 ms of SQL at a million blocks. A store in memory has no read
        connection: then under the lock.

        One read runs at a time, under a lock of its own: sqlite3 lets go of the GIL for each row, and four reads
        at once fought over it. At a million blocks, four clients asking again and again got 122 answers in 16 s
        that way, and 220 one at a time (249 under the node lock, while a request that needs it waited 254 ms)."""
        limit = min(limit, MAX_HEADERS_BINARY_RESULTS)
        store = self.node.store

        def read() -> list[bytes]:
            with store.reading() as reader:
                return reader.headers_after(locator, limit)

        if store.has_readers:
            with self._headers_lock:
                return read()
        with self.lock:
            return read()

    def locator(self) -> list[bytes]:
        with self.lock:
            return self.lookups.locator()

    # -- for the peer layer: announce-then-fetch and headers presync -----------------------------------------

    def lacks(self, kind: str, item_hash: bytes) -> bool:
        """Whether an announced block or tx is one we have not got (nor refused before): worth fetching."""
        with self.lock:
            return self.lookups.lacks(kind, item_hash)

    def lacking(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        """Those of `hashes` that `lacks` would say yes to, in order, with the lock taken once (a sync's batch)."""
        with self.lock:
            return [h for h in hashes if self.lookups.lacks(kind, h)]

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
