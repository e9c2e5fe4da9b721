"""Reads for the API, the explorer and peers: where a tx is, merkle proofs, an address's coins and history, a
fee estimate, headers after a locator, what we have and may relay, the figures of /status.

Split from `Node` by responsibility: these only read its chain, pool and store, and change nothing. The caller
holds the node lock (`NodeService` does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simplecoin.core.chain import IndexEntry
from simplecoin.core.coins import Coin
from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.hashing import hash160, hash_hex, merkle_branch
from simplecoin.core.headerview import HeaderView
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.mining import COINBASE_RESERVE
from simplecoin.core.params import MAX_HEADERS_RESULTS
from simplecoin.core.primitives import Block, BlockHeader, OutPoint, Transaction
from simplecoin.node.node import Node
from simplecoin.node.store import HistoryRow


class NotFound(SimpleCoinError):
    """Raised when a block, transaction or address the caller asked for is not known."""


# An address's history page for a light wallet (tx bytes and merkle proofs together) stops adding entries once
# this many bytes of transactions are in it, so one answer stays far below the wallet's 10 MB read cap.
MAX_ADDRESS_PAGE_TX_BYTES = 2_000_000
FEE_ESTIMATE_BLOCKS = 6  # recent blocks whose fee rates the estimate reads


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
class MerkleProof:
    """What proves a confirmed transaction is in its block without the block (SPV)."""

    header: BlockHeader
    height: int
    index: int
    branch: list[bytes]


@dataclass(frozen=True)
class AddressInfo:
    """One address: confirmed balance, coins and history (a page), and its pending transactions."""

    balance: int
    pending_received: int
    pending_sent: int
    utxos: dict[OutPoint, Coin]
    history: list[HistoryRow]
    pending: list[MempoolEntry]


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


@dataclass(frozen=True)
class FeeEstimate:
    """A fee rate (base units per byte) likely to be mined soon, and the figures it was taken from."""

    fee_rate: int
    min_relay: int  # the node's policy minimum
    mempool_min: int  # the rolling minimum after evictions, per byte rounded up (0: none)
    mempool: int  # what the pending txs pay: their median, or the next block's cut-off when over a block
    blocks: int  # median fee rate of the recent blocks that had txs besides the coinbase (0: none)
    pending_bytes: int


class Lookups:
    """Read-only answers about one node's chain, pool and store (call with the node lock held)."""

    def __init__(self, node: Node) -> None:
        self.node = node

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

    def address(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressInfo:
        """Balance, coins and a page of history from the store; what the mempool adds and takes."""
        pending, received, sent = self.node.mempool.activity(pubkey_hash, self.node.store, self.node.height + 1)
        return AddressInfo(
            balance=self.node.store.balance(pubkey_hash),
            pending_received=received,
            pending_sent=sent,
            utxos=self.node.store.utxos(pubkey_hash),
            history=self.node.store.history(pubkey_hash, limit, offset),
            pending=pending,
        )

    def address_page(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressPage:
        """A history page with tx bytes and merkle proofs: one request per page for a light wallet, not two
        per tx (Electrum: blockchain.scripthash.get_history + transaction.get_merkle, batched)."""
        rows = self.node.store.history(pubkey_hash, limit + 1, offset)
        more = len(rows) > limit
        blocks: dict[int, Block] = {}
        proven: list[ProvenTx] = []
        parents: dict[bytes, Transaction] = {}
        size = 0
        for row in rows[:limit]:
            if proven and size >= MAX_ADDRESS_PAGE_TX_BYTES:
                more = True
                break
            block = blocks.get(row.height)
            if block is None:
                block = blocks[row.height] = self.block(self.node.active[row.height])[0]
            tx = block.txs[row.position]
            branch = merkle_branch([t.txid for t in block.txs], row.position)
            proven.append(ProvenTx(tx, row.height, row.position, block.hash, branch))
            size += tx.size
            if row.sent:
                size += self._add_parents(tx, pubkey_hash, parents)
        pending = []
        if offset == 0:
            pending, _, _ = self.node.mempool.activity(pubkey_hash, self.node.store, self.node.height + 1)
            for entry in pending:
                self._add_parents(entry.tx, pubkey_hash, parents)
        next_offset = offset + len(proven) if more else None
        return AddressPage(proven, parents, pending, next_offset, self.node.height)

    def _add_parents(self, tx: Transaction, pubkey_hash: bytes, parents: dict[bytes, Transaction]) -> int:
        """Add the txs whose outputs `tx` spends from `pubkey_hash`; return the bytes added."""
        added = 0
        for txin in tx.inputs:
            if tx.is_coinbase() or hash160(txin.pubkey) != pubkey_hash or txin.prevout.txid in parents:
                continue
            try:
                parent = self.tx(txin.prevout.txid).tx
            except NotFound:
                continue
            parents[txin.prevout.txid] = parent
            added += parent.size
        return added

    def fee_estimate(self) -> FeeEstimate:
        """A fee rate likely to be mined soon; docs/api.md (GET /fee-estimate) gives the method.

        Bitcoin Core's estimatesmartfee tracks how long txs of each fee rate waited; this is the simpler
        mempool-and-recent-blocks rule light wallets use when the node keeps no such statistics.
        """
        policy_min = self.node.mempool.policy.min_fee_rate
        rolling = -(-self.node.mempool.min_fee_per_kb(int(self.node.clock())) // 1000)  # per byte, rounded up
        entries = list(self.node.mempool.entries.values())
        pending_bytes = sum(e.tx.size for e in entries)
        pending_rate = 0
        if pending_bytes > self.node.params.max_block_size - COINBASE_RESERVE:
            chosen = self.node.mempool.select(self.node.params.max_block_size - COINBASE_RESERVE)
            pending_rate = min(-(-e.fee // e.tx.size) for e in chosen) + 1 if chosen else 0  # beat the cut-off
        elif entries:
            rates = sorted(-(-e.fee // e.tx.size) for e in entries)
            pending_rate = rates[len(rates) // 2]
        block_rates = []
        for height in range(self.node.height, max(self.node.height - FEE_ESTIMATE_BLOCKS, 0), -1):
            block = self.block(self.node.active[height])[0]
            paid_bytes = sum(t.size for t in block.txs[1:])
            if paid_bytes:
                fees = sum(o.amount for o in block.txs[0].outputs) - self.node.params.subsidy(height)
                block_rates.append(max(fees, 0) // paid_bytes)
        block_rates.sort()
        blocks_rate = block_rates[len(block_rates) // 2] if block_rates else 0
        rate = max(policy_min, rolling, pending_rate, blocks_rate)
        return FeeEstimate(rate, policy_min, rolling, pending_rate, blocks_rate, pending_bytes)

    def headers_after(self, locator: list[bytes], limit: int) -> list[BlockHeader]:
        """Active-chain headers after the first locator hash on it, at most `limit` (Bitcoin: getheaders)."""
        start = 0
        for block_hash in locator:
            entry = self.node.index.entries.get(block_hash)
            if entry is not None and self.node.is_active(entry):
                start = entry.height + 1
                break
        end = min(start + min(limit, MAX_HEADERS_RESULTS), self.node.height + 1)
        return self.node.store.active_headers(start, end)  # one query: the index keeps no whole headers

    def recent(self, start: int, limit: int) -> list[IndexEntry]:
        """Active-chain entries from height `start` down, at most `limit`."""
        start = min(start, self.node.height)
        return [self.node.index[self.node.active[h]].with_header() for h in range(start, max(start - limit, -1), -1)]

    def mempool_entries(self) -> list[MempoolEntry]:
        """The pending transactions, in no particular order (the service sorts them without the lock)."""
        return list(self.node.mempool.entries.values())

    # -- for the peer layer ---------------------------------------------------------------------------------

    def locator(self) -> list[bytes]:
        return self.node.index.locator(self.node.tip)

    def header_context(self, prev_hash: bytes) -> IndexEntry | None:
        """Our index entry for a header chain's parent (None if unknown): where a peer's headers attach."""
        return self.node.index.entries.get(prev_hash)

    def header_view(self) -> HeaderView:
        """A view of the block index that a peer's headers are checked on and added to (presync)."""
        return HeaderView(self.node.index)

    def lacks(self, kind: str, item_hash: bytes) -> bool:
        """Whether an announced block or tx is one we have not got (nor refused before): worth fetching."""
        if kind == "block":
            return item_hash not in self.node.index and item_hash not in self.node.orphans
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
