"""The node: the single owner of the block index, the active chain, the mempool and the store.

This is the I/O shell around the pure core: it reads the clock (passed in as `clock`) and the store, and
hands their values to the consensus functions. It does not talk to the network; whoever calls it does.
Split by responsibility: chain state, reorgs and acceptance here; orphans in `orphans.py`; the signature cache
and recent rejects in `verdicts.py`; a tx's input lookup in `prefetch.py`; read-only answers for the API and
peers in `lookups.py`.

A block or tx goes through each check once. In-process callers use `submit_block` / `submit_tx`, which run
them all under the caller's lock. `NodeService` runs the same checks in stages so that signatures are
verified without its lock: `block_to_verify` / `tx_to_verify` (recent rejects, whether we want it), the
signatures, then `add_block` / `accept_tx` (a tx's cheap checks again only if the tip or the pool moved).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simplecoin.bounded import BoundedDict
from simplecoin.core.chain import BlockIndex, BlockStatus, IndexEntry, ReorgResult, locator_heights
from simplecoin.core.errors import BlockValidationError, SimpleCoinError, TxValidationError, ValidationError
from simplecoin.core.feeest import FeeEstimator
from simplecoin.core.hashing import hash_hex
from simplecoin.core.mempool import Mempool, MempoolEntry, MempoolPolicy
from simplecoin.core.mining import COINBASE_RESERVE, make_block
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import block_work
from simplecoin.core.primitives import Block, BlockHeader, Transaction
from simplecoin.core.validation import (
    check_block,
    check_header_contextual,
    check_transaction,
    check_tx_inputs,
    connect_block,
)
from simplecoin.node.orphans import OrphanBlocks
from simplecoin.node.prefetch import MAX_REMEMBERED_LOOKUPS, InputLookups
from simplecoin.node.store import DamagedBlock, Store, StoreWriteError
from simplecoin.node.verdicts import RecentRejects, SignatureCache

log = logging.getLogger(__name__)

HEADER_CACHE = 64  # headers kept in memory besides the index (see Node._read_header)


class InternalError(SimpleCoinError):
    """Raised when a block could not be connected because of an unexpected error here, not a rule it broke.

    The block is kept (not marked invalid: the fault may be ours) and tried again after a restart. A store
    fault is not this: a failed write is retried (`resume`), a damaged block re-fetched (`Node.damaged`).
    """


@dataclass(frozen=True)
class BlockOutcome:
    """What submitting a block did."""

    # "accepted" (stored; maybe the new tip), "orphan" (parent unknown), "duplicate", or "not-stored" (an
    # unrequested block whose chain has less work than ours: it could not become the tip, so it is dropped)
    status: str
    reorg: ReorgResult = field(default_factory=ReorgResult)


def load_index(index: BlockIndex, store: Store) -> list[bytes]:
    """Fill an empty `index` from `store`; return the active chain (see `BlockIndex.load`).

    The cycle collector is off meanwhile: the load makes millions of short-lived tuples, and collecting over them
    took half of its time (9 s instead of 4.6 at a million blocks); nothing in them forms a cycle.
    """
    stored_tip = store.active_tip()
    collecting = gc.isenabled()
    gc.disable()
    try:
        active = index.load(store.index_rows(), stored_tip[1] if stored_tip else None)
    finally:
        if collecting:
            gc.enable()
    if stored_tip is not None and stored_tip[0] != len(active) - 1:
        raise ValueError(f"the stored active chain's tip is at height {stored_tip[0]}, its block at {len(active) - 1}")
    release_freed_memory()
    return active


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing).

    The load frees as much as it keeps (the store's rows, a chunk at a time, and the columns' old buffers as they
    grow); glibc keeps those pages mapped, 26 MB of the server's RSS at a million blocks.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return
    trim(0)


class Node:
    """Chain state, mempool and store, kept in step."""

    def __init__(
        self,
        store: Store,
        params: NetworkParams,
        clock: Callable[[], float] = time.time,
        policy: MempoolPolicy | None = None,
    ) -> None:
        self.store = store
        self.params = params
        self.clock = clock
        # Headers are read back from the store when asked for (the index keeps what the rules need); the last
        # few read or added are kept here, so the tip's costs no query (bound: HEADER_CACHE, oldest goes first).
        self._headers: BoundedDict[bytes, BlockHeader] = BoundedDict(HEADER_CACHE)
        self.index = BlockIndex(params, read_header=self._read_header)
        # One pass over the stored rows; the active chain shares the index's hash objects (one copy in memory).
        self.active: list[bytes] = load_index(self.index, store)
        self.mempool = Mempool(params, policy)
        self.orphans = OrphanBlocks()
        self._verified = SignatureCache()
        self.recent_rejects = RecentRejects()
        self._inputs = InputLookups(store)  # read by `inputs_look_valid`, used again by `accept_tx`
        # What `inputs_look_valid` found (tip, pool changes, fee): `accept_tx` does not check again if neither moved.
        self._prechecked: BoundedDict[bytes, tuple[bytes, int, int]] = BoundedDict(MAX_REMEMBERED_LOOKUPS)
        self._mtp: tuple[bytes, int] = (b"", 0)  # (tip hash, its median time past): asked for twice per tx
        # What the pool's txs waited for a block, by fee rate: GET /fee-estimate (fed in accept_tx, _update_mempool)
        self.fee_estimator = FeeEstimator(self.height)
        # A stored block whose bytes came back damaged -> the blocks set aside (excluded) because of it, until a
        # peer sends the block again (`lookups.lacks` says we lack it). At most one entry per stored block.
        self.damaged: dict[bytes, set[bytes]] = {}
        # A crash in the middle of a reorg leaves the store at a block boundary short of the best tip.
        self.activate_best_chain()

    def close(self) -> None:
        self.store.close()

    def _read_header(self, block_hash: bytes) -> BlockHeader:
        header = self._headers.get(block_hash)
        if header is None:
            header = self._headers[block_hash] = self.store.header(block_hash)
        return header

    # -- views -------------------------------------------------------------------------------------------------

    @property
    def tip(self) -> IndexEntry:
        return self.index[self.active[-1]]

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def median_time_past(self) -> int:
        tip = self.tip
        if self._mtp[0] != tip.hash:
            self._mtp = (tip.hash, self.index.median_time_past(tip))
        return self._mtp[1]

    def locator(self) -> list[bytes]:
        """The active chain's block locator, each block read from the active chain by height, O(1), so O(log n) in
        all (Bitcoin: CChain::GetLocator); the index's `locator` walks skip pointers for other chains."""
        return [self.active[height] for height in locator_heights(self.height)]

    def is_active(self, entry: IndexEntry) -> bool:
        return entry.height <= self.height and self.active[entry.height] == entry.hash

    def orphan_bytes(self) -> int:
        return self.orphans.total_bytes()

    # -- blocks ------------------------------------------------------------------------------------------------

    def submit_block(self, block: Block, source: str = "", requested: bool = True) -> BlockOutcome:
        """Check a block, store it and follow the most-work chain, all at once. Raises BlockValidationError."""
        if block.hash not in self.index or block.hash in self.damaged:  # a copy to repair ours is checked too
            self.recent_rejects.check(block.hash)
            check_block(block, self.params)
        return self.add_block(block, source, requested)

    def block_to_verify(self, block: Block, requested: bool) -> list[Transaction]:
        """For a block that passed `check_block`: raise if it was refused before; else the transactions whose
        signatures are worth checking (outside the lock) before `add_block` (none if it would not get to them)."""
        self.recent_rejects.check(block.hash)
        return self._verified.unverified(block.txs[1:]) if self._wants(block, requested) else []

    def add_block(
        self, block: Block, source: str = "", requested: bool = True, verified: Iterable[bytes] = ()
    ) -> BlockOutcome:
        """Store a block that passed `check_block` and follow the most-work chain. Raises BlockValidationError.

        `verified`: txids whose signatures the caller has just checked. An unrequested block is stored only if
        its chain has at least the work of our tip and the network's minimum chain work (Bitcoin: AcceptBlock's
        fHasMoreOrSameWork, nMinimumChainWork): anything less could not become the tip, and storing it would
        let anyone fill the disk with cheap side branches. The service passes `requested=False` for blocks
        pushed to us; blocks the sync asked for (after the headers' work), our own and those of in-process
        callers count as requested.
        """
        self._verified.add(verified)
        if block.hash in self.index:
            if self.index[block.hash].status == BlockStatus.INVALID:
                raise BlockValidationError("duplicate-invalid", f"block {block.header.hash_hex()} is known invalid")
            if block.hash in self.damaged:
                return self._repair(block)
            return BlockOutcome("duplicate")
        parent = self.index.entries.get(block.header.prev_hash)
        if parent is None:
            self.orphans.add(block, source)
            return BlockOutcome("orphan")
        if not requested and not self._enough_work(parent, block):
            return BlockOutcome("not-stored")
        reorg = self._accept_block(block)
        error = reorg.error_for(block.hash)
        if error is not None:
            raise error
        if self.store.write_error is not None and not self.is_active(self.index[block.hash]):
            raise StoreWriteError(self.store.write_error)  # stored; connected by `resume` once the disk can write
        if block.hash in self.index.excluded and not self._waits_for_damaged(block.hash):
            raise InternalError(f"block {block.header.hash_hex()} could not be connected (see the log)")
        return BlockOutcome("accepted", reorg.merged(self._connect_orphans(block.hash)))

    def _repair(self, block: Block) -> BlockOutcome:
        """A block whose stored bytes were damaged, sent again: store it over them and follow the best chain."""
        self.store.replace_block_data(block)
        for first in self.damaged.pop(block.hash):
            self.index.include(first)
        log.info("block %s stored again over its damaged bytes", block.header.hash_hex())
        return BlockOutcome("accepted", self.activate_best_chain())

    def _waits_for_damaged(self, block_hash: bytes) -> bool:
        """Whether an excluded block was set aside for a damaged one (not for an error while connecting it)."""
        waiting = set().union(*self.damaged.values())
        entry = self.index[block_hash]
        while entry.hash in self.index.excluded:
            if entry.hash in waiting:
                return True
            entry = self.index[entry.prev_hash]
        return False

    def resume(self) -> ReorgResult:
        """After a store write failed: try again to reach the best chain (nothing to do if none failed), and take
        the orphans waiting for the blocks it connects (the failure kept `add_block` from taking them)."""
        if self.store.write_error is None:
            return ReorgResult()
        result = self.activate_best_chain()
        for block_hash in result.connected:
            result = result.merged(self._connect_orphans(block_hash))
        return result

    def _enough_work(self, parent: IndexEntry, block: Block) -> bool:
        work = parent.chain_work + block_work(block.header.bits)
        return work >= max(self.tip.chain_work, self.params.min_chain_work)

    def _wants(self, block: Block, requested: bool) -> bool:
        """Whether `add_block` would get as far as checking the block's signatures (no duplicate, ...)."""
        if block.hash in self.index:
            return False
        parent = self.index.entries.get(block.header.prev_hash)
        if parent is None:
            return True  # an orphan: checked now, so that connecting it later does not hold the lock for it
        if not requested and not self._enough_work(parent, block):
            return False
        return parent.status != BlockStatus.INVALID and parent.hash not in self.index.excluded

    def remember_rejected(self, item_hash: bytes, error: ValidationError) -> None:
        """A tx or block refused for a bad signature: its hash commits to the signature, so it stays refused."""
        self.recent_rejects[item_hash] = error

    def _accept_block(self, block: Block) -> ReorgResult:
        """Check the header in context, store the block and activate the best chain.

        Raises for a bad header; a block that fails to connect comes back in the result's `invalid`.
        """
        parent = self.index[block.header.prev_hash]
        if parent.status == BlockStatus.INVALID:
            raise BlockValidationError("bad-prevblk", f"parent {hash_hex(block.header.prev_hash)} is invalid")
        check_header_contextual(
            block.header,
            height=parent.height + 1,
            expected_bits=self.index.next_bits(parent),
            median_time_past=self.index.median_time_past(parent),
            now=int(self.clock()),
            params=self.params,
        )
        entry = self.index.make_entry(block.header)
        self._headers[entry.hash] = block.header
        self.store.add_block(block, entry.height, entry.status, entry.seq)
        self.index.add(entry)
        return self.activate_best_chain(block)

    def _connect_orphans(self, parent_hash: bytes) -> ReorgResult:
        """Accept orphans whose parent just arrived, and theirs in turn."""
        result = ReorgResult()
        parents = [parent_hash]
        while parents:
            for orphan in self.orphans.take_children(parents.pop()):
                try:
                    reorg = self._accept_block(orphan)
                except ValidationError as e:
                    log.warning("orphan block %s is invalid: %s", orphan.header.hash_hex(), e)
                    continue
                except StoreWriteError as e:  # not stored: the sync fetches it again
                    log.warning("orphan block %s could not be stored: %s", orphan.header.hash_hex(), e)
                    continue
                result = result.merged(reorg)
                if reorg.error_for(orphan.hash) is None:
                    parents.append(orphan.hash)
        return result

    def activate_best_chain(self, new_block: Block | None = None) -> ReorgResult:
        """Move the tip to the valid chain with the most work (Bitcoin: ActivateBestChain).

        A block that fails to connect is marked invalid with all its descendants, and the search starts
        again, so the node always ends on the best chain it can validate. Our own faults never mark a block
        invalid: a failed write stops the search where it is (the store rolled it back; `resume` tries again),
        and a stored block that reads back damaged is set aside until a peer sends it again (`damaged`).
        """
        disconnected: list[Block] = []
        connected: list[Block] = []
        invalid: list[tuple[bytes, BlockValidationError]] = []
        best = self.tip
        try:
            while True:
                best = self.index.best_candidate()
                if best.chain_work <= self.tip.chain_work:
                    break
                fork = self.index.find_fork(self.tip, best)
                try:
                    while self.tip.hash != fork.hash:
                        disconnected.append(self._disconnect_tip())
                except DamagedBlock as e:  # one of ours: we cannot leave our branch without it
                    self._set_aside(e, self.index.ancestor(best, fork.height + 1).hash)
                    continue
                for entry in self.index.branch(fork, best):
                    try:
                        block = new_block if new_block and new_block.hash == entry.hash else None
                        block = block or self.store.get_block(entry.hash)
                        assert block is not None, "every indexed block has its data stored"
                        self._connect_tip(entry, block)
                    except BlockValidationError as e:
                        log.warning("block %s at height %d is invalid: %s", hash_hex(entry.hash), entry.height, e)
                        self.store.set_status(self.index.mark_invalid(entry.hash), BlockStatus.INVALID)
                        invalid.append((entry.hash, e))
                        break
                    except DamagedBlock as e:
                        self._set_aside(e, entry.hash)
                        break
                    except StoreWriteError:
                        raise
                    except Exception:  # not a rule the block broke: the fault may be ours
                        # Never mark it invalid (a bug of ours must not split us from the network for good): set
                        # it aside for this run, stay on the best chain we can connect, try it after a restart.
                        log.exception(
                            "block %s at height %d could not be connected; set aside until a restart",
                            hash_hex(entry.hash),
                            entry.height,
                        )
                        self.index.exclude(entry.hash)
                        break
                    connected.append(block)
        except StoreWriteError as e:
            # Issue 21: this was an exclusion until a restart, its descendants too, with /status all "ok".
            log.error(
                "%s; staying at height %d, short of block %s at height %d, and trying again until the store can write",
                e,
                self.height,
                hash_hex(best.hash),
                best.height,
            )
        returned = self._update_mempool(disconnected, connected)
        if disconnected:
            log.info("reorganised: %d blocks off, %d on, tip %s", len(disconnected), len(connected), self.tip.height)
        return ReorgResult.net([b.hash for b in disconnected], [b.hash for b in connected], invalid, returned)

    def _set_aside(self, damage: DamagedBlock, first: bytes) -> None:
        """Set `first` and its descendants aside until the damaged block is sent again; no peer is charged."""
        log.error("%s; set aside with the blocks built on it until a peer sends it again", damage)
        self.damaged.setdefault(damage.block_hash, set()).add(first)
        self.index.exclude(first)

    def _connect_tip(self, entry: IndexEntry, block: Block) -> None:
        parent = self.index[entry.prev_hash]
        undo = connect_block(
            block, self.store, entry.height, self.params, self.index.median_time_past(parent), self._verified
        )
        self.store.connect_block(block, entry.height, undo)
        self.index.set_status(entry.hash, BlockStatus.VALID)
        self.active.append(entry.hash)

    def _disconnect_tip(self) -> Block:
        block = self.store.get_block(self.tip.hash)
        assert block is not None, "the active chain's blocks are stored"
        self.store.disconnect_block(block, self.height)
        self.active.pop()
        return block

    # -- transactions ------------------------------------------------------------------------------------------

    def submit_tx(self, tx: Transaction) -> MempoolEntry:
        """Check a transaction and add it to the mempool, all at once. Raises TxValidationError with the reason."""
        self.recent_rejects.check(tx.txid)
        return self.accept_tx(tx)

    def tx_to_verify(self, tx: Transaction) -> list[Transaction]:
        """Raise if `tx` was refused before; else `[tx]` if its signatures are worth checking (outside the lock)
        before `accept_tx`: not checked yet, and the cheap checks pass (if not, `accept_tx` says which)."""
        self.recent_rejects.check(tx.txid)
        return self._verified.unverified([tx]) if self.inputs_look_valid(tx) else []

    def accept_tx(self, tx: Transaction, verified: Iterable[bytes] = ()) -> MempoolEntry:
        """Add a transaction to the mempool (Bitcoin: AcceptToMemoryPool). Raises TxValidationError.

        `verified`: txids whose signatures the caller has just checked; the pool checks those of any other tx.
        The cheap checks `tx_to_verify` ran are not run again unless the tip or the pool changed while the lock
        was free (then they must be).
        """
        self._verified.add(verified)
        tip, fee = self.tip.hash, None
        prechecked = self._prechecked.pop(tx.txid, None)
        if prechecked is not None and prechecked[:2] == (tip, self.mempool.changes):
            fee = prechecked[2]  # checked by inputs_look_valid on this very chain and pool: not again
        entry = self.mempool.accept(
            tx,
            self._inputs.view(tx, tip),
            self.height + 1,
            self.median_time_past(),
            now=int(self.clock()),
            check_signatures=tx.txid not in self._verified,
            checked_fee=fee,
        )
        self._verified.add([tx.txid])
        self._watch_fee(entry)
        return entry

    def _watch_fee(self, entry: MempoolEntry) -> None:
        """Have the fee estimator watch a tx that entered the pool; forget the evicted once they outnumber it."""
        estimator = self.fee_estimator
        estimator.track(entry.tx.txid, entry.fee, entry.tx.size, self.height)
        if len(estimator.tracked) > 2 * len(self.mempool) + 64:  # evictions the estimator was not told of
            estimator.forget_missing(self.mempool.__contains__)

    def inputs_look_valid(self, tx: Transaction) -> bool:
        """Whether `tx` passes the cheap checks before its signatures: worth verifying them at all."""
        height, tip = self.height + 1, self.tip.hash
        try:
            check_transaction(tx, self.params)
            self.mempool.check_standard(tx)  # policy: a dust flood costs no signature check
            view = self._inputs.view(tx, tip)
            self._inputs.keep(tx, tip, view)
            fee, _ = check_tx_inputs(tx, self.mempool.view(view, height), height, self.params)
        except TxValidationError:
            return False
        self._prechecked[tx.txid] = (tip, self.mempool.changes, fee)
        return True

    def _update_mempool(self, disconnected: list[Block], connected: list[Block]) -> list[bytes]:
        """Keep the pool valid for the new tip; return the txids that came back from disconnected blocks."""
        if not disconnected:
            first_height = self.height - len(connected) + 1
            for height, block in enumerate(connected, first_height):
                self.fee_estimator.block_connected(height, [tx.txid for tx in block.txs[1:]])
                self.mempool.remove_for_block(block, int(self.clock()))
            self.fee_estimator.forget_missing(self.mempool.__contains__)  # conflicts of the blocks: failures
            return []
        self.fee_estimator.restart(self.height)  # what waited is re-admitted below, from the new tip
        # After a reorg, re-admit the transactions of the blocks that left (oldest first), then the old pool:
        # whatever is still valid against the new chain stays, the rest (mined, conflicting) is dropped.
        pending = [tx for block in reversed(disconnected) for tx in block.txs[1:]]
        from_blocks = {tx.txid for tx in pending}
        pending += [entry.tx for entry in self.mempool.entries.values()]
        self.mempool = Mempool(self.params, self.mempool.policy)
        for tx in pending:
            try:
                self.submit_tx(tx)
            except ValidationError as e:
                log.debug("dropped %s after reorg: %s", hash_hex(tx.txid), e.reason)
        return [txid for txid in self.mempool.entries if txid in from_blocks]

    # -- mining ------------------------------------------------------------------------------------------------

    def block_template(self, pubkey_hash: bytes, extra: bytes = b"") -> Block:
        """An unsolved block on the tip paying the best-fee mempool transactions' fees to `pubkey_hash`."""
        entries = self.mempool.select(self.params.max_block_size - COINBASE_RESERVE)
        tip = self.tip
        return make_block(
            prev_hash=tip.hash,
            height=tip.height + 1,
            bits=self.index.next_bits(tip),
            time=max(int(self.clock()), self.median_time_past() + 1),
            pubkey_hash=pubkey_hash,
            params=self.params,
            txs=[e.tx for e in entries],
            fees=sum(e.fee for e in entries),
            extra=extra,
        )
