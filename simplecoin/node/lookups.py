"""Reads for the API, the explorer and peers: where a tx is, merkle proofs, an address's coins and history, what a
snapshot of the pool and the fee estimate are taken from, headers after a locator, what we have and may relay,
the figures of /status.

Split from `Node` by responsibility: these only read its chain, pool and store, and change nothing. The caller
holds the node lock (`NodeService` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from simplecoin.core.chain import BlockStatus, IndexEntry
from simplecoin.core.coins import Coin
from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.hashing import hash160, hash_hex, merkle_branch
from simplecoin.core.headerview import HeaderView
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.primitives import Block, BlockHeader, OutPoint, Transaction
from simplecoin.node.node import Node
from simplecoin.node.snapshots import PoolFigures, SnapshotKey
from simplecoin.node.store import AddressSnapshot, HistoryRow, StoreReader


class NotFound(SimpleCoinError):
    """Raised when a block, transaction or address the caller asked for is not known."""


# An address's history page for a light wallet (tx bytes and merkle proofs together) stops adding entries once
# this many bytes of transactions are in it, so one answer stays far below the wallet's 10 MB read cap.
MAX_ADDRESS_PAGE_TX_BYTES = 2_000_000
FEE_ESTIMATE_BLOCKS = 6  # recent blocks whose median fee rate GET /fee-estimate shows (not what it answers)
# Blocks the explorer reads to find what spent a transaction's outputs (there is no spent-by index): past this
# many an output is shown as spent without a link, so one page never reads the whole chain under the lock.
SPENDER_SCAN_BLOCKS = 50
MAX_BRANCH_WALK = 250  # blocks walked back from a side branch's tip to find where it left the active chain


@dataclass(frozen=True)
class TxLookup:
    """Where a transaction is: pending, or confirmed in an active-chain block."""

    tx: Transaction
    block_hash: bytes | None  # None: pending in the mempool
    height: int | None
    position: int | None
    confirmations: int
    fee: int | None  # known for pending transactions


@dataclass(frozen=True)
class OutputSpend:
    """What became of one output: "unspent", "pending" (a mempool tx spends it) or "spent" (in a block)."""

    state: str
    txid: bytes | None  # the spending tx; None when unspent, or spent beyond SPENDER_SCAN_BLOCKS


@dataclass(frozen=True)
class MerkleProof:
    """What proves a confirmed transaction is in its block without the block (SPV)."""

    header: BlockHeader
    height: int
    index: int
    branch: list[bytes]


@dataclass(frozen=True)
class AddressInfo:
    """One address at one tip: confirmed totals, a page of coins and of history, and its pending transactions.

    The confirmed part is what block `tip_hash` left; the pending part is the pool on that same tip (see
    NodeService.address), so no coin is shown both confirmed and pending.
    """

    balance: int
    pending_received: int
    pending_sent: int
    utxos: list[tuple[OutPoint, Coin]]  # a page, largest first
    history: list[HistoryRow]  # a page, newest first
    pending: list[MempoolEntry]
    tip_height: int = 0
    tip_hash: bytes = b""
    immature: int = 0  # of `balance`: coinbase outputs not spendable in the next block
    utxo_count: int = 0  # all confirmed coins, not only this page's
    next_utxo_cursor: tuple[int, bytes, int] | None = None  # None: the last page of coins
    next_history_cursor: tuple[int, int] | None = None  # None: the last page of history


@dataclass(frozen=True)
class SideBranch:
    """A branch the node knows that is not its active chain (Bitcoin: getchaintips), and why it is not."""

    tip: IndexEntry
    fork: IndexEntry | None  # the last block it shares with the active chain; None: more than MAX_BRANCH_WALK back
    length: int  # blocks after the fork (at least MAX_BRANCH_WALK when the fork was not reached)
    work: int  # the branch's work after the fork
    active_work: int  # the active chain's work after the same fork
    why: str  # why the active chain won: less work, the same work seen later, invalid, set aside


@dataclass(frozen=True)
class ProvenTx:
    """A confirmed tx of an address's history with what a light wallet needs to check it (SPV)."""

    tx: Transaction
    height: int
    position: int
    block_hash: bytes
    branch: list[bytes]


@dataclass(frozen=True)
class AddressPage:
    """A page of an address's history, newest first, each tx with its merkle proof; the parents of the inputs
    that spend the address's coins (so a wallet can check what it spent); pending txs on the first page."""

    txs: list[ProvenTx]
    parents: dict[bytes, Transaction]
    pending: list[MempoolEntry]
    next_offset: int | None  # None: this was the last page
    tip_height: int
    tip_hash: bytes = b""  # the block the confirmed part was read at
    first: bool = False  # the first page (offset 0): the one that carries the pending txs


class Lookups:
    """Read-only answers about one node's chain, pool and store (call with the node lock held)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._blocks_rate: tuple[bytes, int] = (b"", 0)  # (tip hash, its recent blocks' median fee rate)

    def entry(self, block_hash: bytes) -> IndexEntry:
        if block_hash not in self.node.index:
            raise NotFound(f"no block {hash_hex(block_hash)}")
        return self.node.index[block_hash]

    def hash_at(self, height: int) -> bytes:
        if not 0 <= height <= self.node.height:
            raise NotFound(f"no block at height {height} (the tip is at {self.node.height})")
        return self.node.active[height]

    def block(self, block_hash: bytes) -> tuple[Block, IndexEntry, bool]:
        """A stored block, its index entry, and whether it is on the active chain."""
        entry = self.entry(block_hash)
        block = self.node.store.get_block(block_hash)
        assert block is not None, "indexed blocks are stored"
        return block, replace(entry, source=block.header), self.node.is_active(entry)

    def tx(self, txid: bytes) -> TxLookup:
        pending = self.node.mempool.entries.get(txid)
        if pending is not None:
            return TxLookup(pending.tx, None, None, None, 0, pending.fee)
        block, height, position = self._confirmed(txid, "in the active chain or the mempool")
        return TxLookup(block.txs[position], block.hash, height, position, self.node.height - height + 1, None)

    def output_spends(self, found: TxLookup) -> list[OutputSpend]:
        """For each output of a tx `tx()` found: unspent, or the tx that spent it (pool first, then the chain).

        A spender in the chain is one of the spending rows of the output's address from the tx's height on
        (address_history), checked input by input; at most SPENDER_SCAN_BLOCKS blocks are read for the whole tx.
        """
        txid, budget = found.tx.txid, SPENDER_SCAN_BLOCKS
        blocks: dict[int, Block] = {}
        spends = []
        for index, out in enumerate(found.tx.outputs):
            outpoint = OutPoint(txid, index)
            pending = self.node.mempool.spenders.get(outpoint)
            if pending is not None:
                spends.append(OutputSpend("pending", pending))
                continue
            if found.height is None or self.node.store.get_coin(outpoint) is not None:
                spends.append(OutputSpend("unspent", None))
                continue
            spender = None
            for row in self.node.store.spends_from(out.pubkey_hash, found.height, SPENDER_SCAN_BLOCKS):
                if row.height not in blocks:
                    if budget == 0:
                        break
                    budget -= 1
                    block = self.node.store.get_block(self.node.active[row.height])
                    assert block is not None, "active-chain blocks are stored"
                    blocks[row.height] = block
                tx = blocks[row.height].txs[row.position]
                if any(txin.prevout == outpoint for txin in tx.inputs):
                    spender = tx.txid
                    break
            spends.append(OutputSpend("spent", spender))
        return spends

    def block_times(self, heights: list[int]) -> dict[int, int]:
        """The header time of each active-chain height asked for (heights above the tip are left out)."""
        return {h: self.node.index[self.node.active[h]].header.time for h in heights if 0 <= h <= self.node.height}

    def tx_counts(self, low: int, high: int) -> dict[int, int]:
        """Transactions in each active-chain block from height `low` to `high` (the explorer's latest blocks)."""
        counts = self.node.store.tx_counts(low, high)
        if low <= 0 <= high:  # the genesis coinbase is not in the tx index (Bitcoin: it cannot be spent)
            counts[0] = len(self.node.params.genesis_block.txs)
        return counts

    def merkle_proof(self, txid: bytes) -> MerkleProof:
        block, height, position = self._confirmed(txid, "in the active chain")
        return MerkleProof(block.header, height, position, merkle_branch([tx.txid for tx in block.txs], position))

    def _confirmed(self, txid: bytes, where: str) -> tuple[Block, int, int]:
        """The active-chain block holding `txid`, its height and the tx's position."""
        location = self.node.store.tx_location(txid)
        if location is None:
            raise NotFound(f"no transaction {hash_hex(txid)} {where}")
        height, position = location
        block = self.node.store.get_block(self.node.active[height])
        assert block is not None, "active-chain blocks are stored"
        return block, height, position

    def with_pending(self, snapshot: AddressSnapshot, pubkey_hash: bytes) -> AddressInfo:
        """`snapshot` with the pool's activity for the address: the pool is on `snapshot`'s tip only if the
        caller checked it is the node's tip."""
        pending, received, sent = self.node.mempool.activity(pubkey_hash, self.node.store, self.node.height + 1)
        return AddressInfo(
            balance=snapshot.balance,
            pending_received=received,
            pending_sent=sent,
            utxos=snapshot.utxos,
            history=snapshot.history,
            pending=pending,
            tip_height=snapshot.tip_height,
            tip_hash=snapshot.tip_hash,
            immature=snapshot.immature,
            utxo_count=snapshot.utxo_count,
            next_utxo_cursor=snapshot.next_utxo_cursor,
            next_history_cursor=snapshot.next_history_cursor,
        )

    def with_pending_txs(self, page: AddressPage, pubkey_hash: bytes) -> AddressPage:
        """`page` (from `confirmed_page`) with the address's pending txs and their parents, on its first page: the
        pool is on the page's tip only if the caller checked it is the node's tip."""
        if not page.first:
            return page
        pending, _, _ = self.node.mempool.activity(pubkey_hash, self.node.store, self.node.height + 1)
        parents = dict(page.parents)
        for entry in pending:
            _add_parents(entry.tx, pubkey_hash, parents, self._find_tx)
        return replace(page, parents=parents, pending=pending)

    def _find_tx(self, txid: bytes) -> Transaction | None:
        try:
            return self.tx(txid).tx
        except NotFound:
            return None

    def pool_key(self) -> SnapshotKey:
        """What a snapshot of the pool is valid for: the tip and the pool's count of changes."""
        return self.node.tip.hash, id(self.node.mempool), self.node.mempool.changes

    def fee_floors(self) -> tuple[int, int]:
        """The relay minimum and the rolling minimum after evictions, per byte rounded up (0: none)."""
        rolling = -(-self.node.mempool.min_fee_per_kb(int(self.node.clock())) // 1000)
        return self.node.mempool.policy.min_fee_rate, rolling

    def pool_figures(self) -> PoolFigures:
        """What a snapshot of the pool is taken from (`node/snapshots.py`): O(1) but for copying a list."""
        return PoolFigures(
            self.pool_key(),
            list(self.node.mempool.entries.values()),
            self.node.fee_estimator.estimate(),
            self._recent_blocks_rate(),
        )

    def _recent_blocks_rate(self) -> int:
        """Median fee rate of the last 6 blocks that had txs besides the coinbase (0: none); read once per tip."""
        tip = self.node.tip.hash
        if self._blocks_rate[0] == tip:
            return self._blocks_rate[1]
        block_rates = []
        for height in range(self.node.height, max(self.node.height - FEE_ESTIMATE_BLOCKS, 0), -1):
            block = self.block(self.node.active[height])[0]
            paid_bytes = sum(t.size for t in block.txs[1:])
            if paid_bytes:
                fees = sum(o.amount for o in block.txs[0].outputs) - self.node.params.subsidy(height)
                block_rates.append(max(fees, 0) // paid_bytes)
        block_rates.sort()
        rate = block_rates[len(block_rates) // 2] if block_rates else 0
        self._blocks_rate = (tip, rate)
        return rate

    def recent(self, start: int, limit: int) -> list[IndexEntry]:
        """Active-chain entries from height `start` down, at most `limit`."""
        start = min(start, self.node.height)
        return [self.node.index[self.node.active[h]].with_header() for h in range(start, max(start - limit, -1), -1)]

    def side_branches(self, limit: int) -> list[SideBranch]:
        """The `limit` most recently seen side branches, newest first. Costs O(tips) plus at most
        MAX_BRANCH_WALK steps per branch: never a walk of the active chain."""
        index, tip = self.node.index, self.node.tip
        return [self._side_branch(t, tip) for t in index.tips(limit + 1) if t.hash != tip.hash][:limit]

    def _side_branch(self, branch_tip: IndexEntry, tip: IndexEntry) -> SideBranch:
        index = self.node.index
        entry, invalid_at, rejected = branch_tip, None, None
        for _ in range(MAX_BRANCH_WALK):
            if self.node.is_active(entry):
                break
            if entry.status == BlockStatus.INVALID:
                invalid_at, rejected = entry, self.node.recent_rejects.get(entry.hash) or rejected
            entry = index[entry.prev_hash]
        fork = entry if self.node.is_active(entry) else None
        base = fork.chain_work if fork else entry.chain_work
        if invalid_at is not None:
            why = f"invalid from height {invalid_at.height}" + (f" ({rejected.reason})" if rejected else "")
        elif branch_tip.hash in index.excluded:
            why = "set aside: it could not be connected here (tried again after a restart)"
        elif branch_tip.chain_work < tip.chain_work:
            why = "less work"
        elif branch_tip.chain_work == tip.chain_work:
            why = "same work, seen after the active tip"
        else:
            why = "more work: not connected yet"
        return SideBranch(
            branch_tip,
            fork,
            branch_tip.height - (fork.height if fork else entry.height),
            branch_tip.chain_work - base,
            tip.chain_work - base if fork else 0,
            why,
        )

    # -- for the peer layer ---------------------------------------------------------------------------------

    def locator(self) -> list[bytes]:
        return self.node.locator()

    def header_context(self, prev_hash: bytes) -> IndexEntry | None:
        """Our index entry for a header chain's parent (None if unknown): where a peer's headers attach."""
        return self.node.index.entries.get(prev_hash)

    def header_view(self) -> HeaderView:
        """A view of the block index that a peer's headers are checked on and added to (presync)."""
        return HeaderView(self.node.index)

    def lacks(self, kind: str, item_hash: bytes) -> bool:
        """Whether an announced block or tx is one we have not got (nor refused before): worth fetching."""
        if kind == "block":
            # A block whose stored bytes are damaged is one we lack: the sync fetches it again (Node.damaged).
            missing = item_hash not in self.node.index or item_hash in self.node.damaged
            return missing and item_hash not in self.node.orphans
        return item_hash not in self.node.mempool and item_hash not in self.node.recent_rejects

    def relayable(self, kind: str, item_hash: bytes) -> bytes | None:
        """The bytes of a block on our active chain or a tx in our mempool; None for anything else.

        Bitcoin relays only what it would mine on: a side-branch block or a tx evicted since it was announced
        is not handed to anyone (a stored side branch once got an honest relayer banned as the victim's
        "duplicate-invalid").
        """
        if kind == "block":
            return self.block(item_hash)[0].serialize() if self.on_active_chain(item_hash) else None
        mempool_entry = self.node.mempool.entries.get(item_hash)
        return mempool_entry.tx.serialize() if mempool_entry is not None else None

    def status(self) -> dict:
        """The node's figures /status shows."""
        tip = self.node.tip
        return {
            "network": self.node.params.name,
            "genesis": self.node.params.genesis_hash_hex,
            "height": tip.height,
            "tip": hash_hex(tip.hash),
            "bits": tip.bits,
            "chain_work": tip.chain_work,
            "median_time_past": self.node.median_time_past(),
            "mempool": len(self.node.mempool),
            "mempool_bytes": self.node.mempool.total_bytes,
            "orphans": len(self.node.orphans),
            "orphan_bytes": self.node.orphan_bytes(),
        }

    def first_height_off_the_difficulty_rule(self) -> int | None:
        """Where the active chain first breaks the difficulty rule (a chain mined before it); None if nowhere."""
        return self.node.index.first_height_off_the_difficulty_rule(self.node.tip)

    def on_active_chain(self, block_hash: bytes) -> bool:
        entry = self.node.index.entries.get(block_hash)
        return entry is not None and self.node.is_active(entry)

    def pending(self, txids: list[bytes]) -> list[Transaction]:
        """Those of `txids` still in the pool, in that order."""
        pool = self.node.mempool.entries
        return [pool[txid].tx for txid in txids if txid in pool]

    def pending_in_dependency_order(self) -> list[Transaction]:
        return [entry.tx for entry in self.node.mempool.in_dependency_order()]


def confirmed_page(reader: StoreReader, pubkey_hash: bytes, offset: int, limit: int) -> AddressPage:
    """A history page with tx bytes and merkle proofs, all read from `reader` (one state of the store, no node
    lock needed): one request per page for a light wallet, not two per tx (Electrum: blockchain.scripthash.
    get_history + transaction.get_merkle, batched). No pending txs: `Lookups.with_pending_txs` adds those."""
    tip_height, tip_hash = reader.tip()
    rows = reader.history(pubkey_hash, limit + 1, offset)
    more = len(rows) > limit
    blocks: dict[int, Block] = {}
    proven: list[ProvenTx] = []
    parents: dict[bytes, Transaction] = {}
    size = 0

    def find(txid: bytes) -> Transaction | None:
        location = reader.tx_location(txid)
        return None if location is None else block_at(location[0]).txs[location[1]]

    def block_at(height: int) -> Block:
        if height not in blocks:
            blocks[height] = reader.block(reader.hash_at(height))
        return blocks[height]

    for row in rows[:limit]:
        if proven and size >= MAX_ADDRESS_PAGE_TX_BYTES:
            more = True
            break
        block = block_at(row.height)
        tx = block.txs[row.position]
        branch = merkle_branch([t.txid for t in block.txs], row.position)
        proven.append(ProvenTx(tx, row.height, row.position, block.hash, branch))
        size += tx.size
        if row.sent:
            size += _add_parents(tx, pubkey_hash, parents, find)
    next_offset = offset + len(proven) if more else None
    return AddressPage(proven, parents, [], next_offset, tip_height, tip_hash, first=offset == 0)


def _add_parents(
    tx: Transaction, pubkey_hash: bytes, parents: dict[bytes, Transaction], find: Callable[[bytes], Transaction | None]
) -> int:
    """Add the txs whose outputs `tx` spends from `pubkey_hash` (found by `find`); return the bytes added."""
    added = 0
    for txin in tx.inputs:
        if tx.is_coinbase() or hash160(txin.pubkey) != pubkey_hash or txin.prevout.txid in parents:
            continue
        parent = find(txin.prevout.txid)
        if parent is not None:
            parents[txin.prevout.txid] = parent
            added += parent.size
    return added
