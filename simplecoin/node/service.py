"""The node as the server process shares it: one lock around the node, and events for whoever listens.

The API's threads, the peer threads and the mining pump all go through a `NodeService`; it is the only
thing that touches the `Node`, always under its lock.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from simplecoin.core.chain import IndexEntry
from simplecoin.core.errors import SimpleCoinError
from simplecoin.core.hashing import hash_hex, merkle_branch
from simplecoin.core.mempool import MempoolEntry
from simplecoin.core.primitives import Block, BlockHeader, OutPoint, Transaction
from simplecoin.core.validation import Coin
from simplecoin.node.node import BlockOutcome, Node
from simplecoin.node.store import HistoryRow

log = logging.getLogger(__name__)

MAX_HEADERS = 2_000  # per headers request (Bitcoin: MAX_HEADERS_RESULTS)
SEEN_LIMIT = 50_000  # hashes remembered so each block and tx is relayed once


class NotFound(SimpleCoinError):
    """Raised when a block, transaction or address the caller asked for is not known."""


@dataclass(frozen=True)
class Event:
    """Something that changed: a block accepted ("block"), a tx accepted ("tx"); `source` is a peer URL or ""."""

    kind: str
    hash: bytes
    raw: bytes
    source: str
    tip_changed: bool = False


@dataclass(frozen=True)
class TxLookup:
    tx: Transaction
    block_hash: bytes | None  # None: pending in the mempool
    height: int | None
    position: int | None
    confirmations: int
    fee: int | None  # known for pending transactions


@dataclass(frozen=True)
class AddressInfo:
    balance: int
    pending_received: int
    pending_sent: int
    utxos: dict[OutPoint, Coin]
    history: list[HistoryRow]
    pending: list[MempoolEntry]


class NodeService:
    """Thread-safe access to one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.params = node.params
        self.lock = threading.RLock()
        self._listeners: list[Callable[[Event], None]] = []
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self.hashrate = 0.0

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

    def submit_block(self, block: Block, source: str = "") -> BlockOutcome:
        with self.lock:
            old_tip = self.node.tip.hash
            outcome = self.node.submit_block(block)
            tip_changed = self.node.tip.hash != old_tip
            pool = self.node.mempool.entries
            returned = [pool[txid].tx for txid in outcome.reorg.returned if txid in pool]
        if outcome.status == "accepted" and not self.seen(block.hash):
            self._emit(Event("block", block.hash, block.serialize(), source, tip_changed))
        for tx in returned:  # back from disconnected blocks: relayed again even if seen before, since peers on
            self.seen(tx.txid)  # the other branch may never have had them
            self._emit(Event("tx", tx.txid, tx.serialize(), ""))
        return outcome

    def submit_tx(self, tx: Transaction, source: str = "") -> MempoolEntry:
        with self.lock:
            entry = self.node.submit_tx(tx)
        if not self.seen(tx.txid):
            self._emit(Event("tx", tx.txid, tx.serialize(), source))
        return entry

    def block_template(self, pubkey_hash: bytes, extra: bytes) -> Block:
        with self.lock:
            return self.node.block_template(pubkey_hash, extra)

    # -- reads ----------------------------------------------------------------------------------------------

    def tip(self) -> IndexEntry:
        with self.lock:
            return self.node.tip

    def status(self) -> dict:
        with self.lock:
            tip = self.node.tip
            return {
                "network": self.params.name,
                "genesis": self.params.genesis_hash_hex,
                "height": tip.height,
                "tip": tip.header.hash_hex(),
                "bits": tip.header.bits,
                "chain_work": tip.chain_work,
                "median_time_past": self.node.median_time_past(),
                "mempool": len(self.node.mempool),
                "mempool_bytes": self.node.mempool.total_bytes,
                "hashrate": round(self.hashrate, 1),
            }

    def entry(self, block_hash: bytes) -> IndexEntry:
        with self.lock:
            if block_hash not in self.node.index:
                raise NotFound(f"no block {hash_hex(block_hash)}")
            return self.node.index[block_hash]

    def hash_at(self, height: int) -> bytes:
        with self.lock:
            if not 0 <= height <= self.node.height:
                raise NotFound(f"no block at height {height} (the tip is at {self.node.height})")
            return self.node.active[height]

    def block(self, block_hash: bytes) -> tuple[Block, IndexEntry, bool]:
        """A stored block, its index entry, and whether it is on the active chain."""
        with self.lock:
            entry = self.entry(block_hash)
            block = self.node.store.get_block(block_hash)
            assert block is not None, "indexed blocks are stored"
            active = entry.height < len(self.node.active) and self.node.active[entry.height] == block_hash
            return block, entry, active

    def recent(self, start: int, limit: int) -> list[IndexEntry]:
        """Active-chain entries from height `start` down, at most `limit`."""
        with self.lock:
            start = min(start, self.node.height)
            return [self.node.index[self.node.active[h]] for h in range(start, max(start - limit, -1), -1)]

    def tx(self, txid: bytes) -> TxLookup:
        with self.lock:
            pending = self.node.mempool.entries.get(txid)
            if pending is not None:
                return TxLookup(pending.tx, None, None, None, 0, pending.fee)
            block, height, position = self._confirmed(txid, "in the active chain or the mempool")
            return TxLookup(block.txs[position], block.hash, height, position, self.node.height - height + 1, None)

    def mempool_entries(self) -> list[MempoolEntry]:
        """Pending transactions, highest fee rate first (what a miner would take first)."""
        with self.lock:
            entries = list(self.node.mempool.entries.values())
        return sorted(entries, key=lambda e: (-Fraction(e.fee, e.tx.size), e.tx.txid))

    def merkle_proof(self, txid: bytes) -> tuple[BlockHeader, int, int, list[bytes]]:
        """(header, height, index, branch) proving a confirmed tx is in its block."""
        with self.lock:
            block, height, position = self._confirmed(txid, "in the active chain")
            return block.header, height, position, merkle_branch([tx.txid for tx in block.txs], position)

    def _confirmed(self, txid: bytes, where: str) -> tuple[Block, int, int]:
        """The active-chain block holding `txid`, its height and the tx's position (lock held by the caller)."""
        location = self.node.store.tx_location(txid)
        if location is None:
            raise NotFound(f"no transaction {hash_hex(txid)} {where}")
        height, position = location
        block = self.node.store.get_block(self.node.active[height])
        assert block is not None, "active-chain blocks are stored"
        return block, height, position

    def address(self, pubkey_hash: bytes, offset: int, limit: int) -> AddressInfo:
        with self.lock:
            store = self.node.store
            pending = []
            received = sent = 0
            for entry in self.node.mempool.entries.values():
                tx = entry.tx
                mine_out = sum(o.amount for o in tx.outputs if o.pubkey_hash == pubkey_hash)
                mine_in = 0
                for txin in tx.inputs:
                    coin = store.get_coin(txin.prevout) or self._pending_output(txin.prevout)
                    if coin is not None and coin.pubkey_hash == pubkey_hash:
                        mine_in += coin.amount
                if mine_out or mine_in:
                    pending.append(entry)
                    received += mine_out
                    sent += mine_in
            return AddressInfo(
                balance=store.balance(pubkey_hash),
                pending_received=received,
                pending_sent=sent,
                utxos=store.utxos(pubkey_hash),
                history=store.history(pubkey_hash, limit, offset),
                pending=pending,
            )

    def _pending_output(self, outpoint: OutPoint) -> Coin | None:
        parent = self.node.mempool.entries.get(outpoint.txid)
        if parent is None or outpoint.index >= len(parent.tx.outputs):
            return None
        out = parent.tx.outputs[outpoint.index]
        return Coin(out.amount, out.pubkey_hash, self.node.height + 1, False)

    def headers_after(self, locator: list[bytes], limit: int) -> list[BlockHeader]:
        """Active-chain headers after the first locator hash on it (Bitcoin: getheaders)."""
        with self.lock:
            start = 0
            for block_hash in locator:
                entry = self.node.index.entries.get(block_hash)
                if (
                    entry is not None
                    and entry.height <= self.node.height
                    and self.node.active[entry.height] == block_hash
                ):
                    start = entry.height + 1
                    break
            end = min(start + min(limit, MAX_HEADERS), self.node.height + 1)
            return [self.node.index[self.node.active[h]].header for h in range(start, end)]

    def locator(self) -> list[bytes]:
        """Hashes back from the tip, dense then exponentially sparse, ending at genesis (Bitcoin: GetLocator)."""
        with self.lock:
            hashes, height, step = [], self.node.height, 1
            while height > 0:
                hashes.append(self.node.active[height])
                if len(hashes) >= 10:
                    step *= 2
                height -= step
            hashes.append(self.node.active[0])
            return hashes

    def raw_block(self, block_hash: bytes) -> bytes:
        with self.lock:
            block = self.node.store.get_block(block_hash)
            if block is None:
                raise NotFound(f"no block {hash_hex(block_hash)}")
            return block.serialize()

    def close(self) -> None:
        with self.lock:
            self.node.close()
