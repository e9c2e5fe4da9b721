"""The memory pool: valid transactions waiting for a block.

A transaction enters only if it is valid against the UTXO set plus the pool (so chains of unconfirmed
transactions work), does not spend what another pool transaction spends, and pays the minimum relay fee.
The pool is bounded in bytes; when full, the lowest fee-rate transactions (and what depends on them) leave.
"""

from __future__ import annotations

from dataclasses import dataclass

from simplecoin.core.coins import Coin, CoinView
from simplecoin.core.errors import TxValidationError
from simplecoin.core.hashing import hash_hex
from simplecoin.core.params import NetworkParams
from simplecoin.core.primitives import Block, OutPoint, Transaction
from simplecoin.core.validation import check_transaction, check_tx_inputs, check_tx_signatures, is_final


@dataclass(frozen=True)
class MempoolPolicy:
    """Local rules for relaying; not consensus (Bitcoin: policy/policy.h)."""

    min_fee_rate: int = 1  # base units per byte (Bitcoin's default minrelaytxfee is 1 sat/vbyte)
    max_bytes: int = 5_000_000


@dataclass(frozen=True, slots=True)
class MempoolEntry:
    tx: Transaction
    fee: int

    @property
    def fee_rate(self) -> float:
        # A ratio used only to order transactions, never money itself.
        return self.fee / self.tx.size


class _PoolView:
    """The chain's UTXO set as the pool sees it: plus pool outputs, minus what the pool spends."""

    def __init__(self, pool: Mempool, chain: CoinView, height: int) -> None:
        self.pool, self.chain, self.height = pool, chain, height

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        if outpoint in self.pool.spenders:
            return None
        if outpoint.txid in self.pool.entries:
            return self.pool.coin(outpoint, self.height)
        return self.chain.get_coin(outpoint)


class Mempool:
    """Unconfirmed transactions, in arrival order."""

    def __init__(self, params: NetworkParams, policy: MempoolPolicy | None = None) -> None:
        self.params = params
        self.policy = policy or MempoolPolicy()
        self.entries: dict[bytes, MempoolEntry] = {}
        self.spenders: dict[OutPoint, bytes] = {}  # outpoint -> txid of the pool tx spending it
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, txid: bytes) -> bool:
        return txid in self.entries

    def accept(
        self,
        tx: Transaction,
        chain: CoinView,
        next_height: int,
        median_time_past: int,
        *,
        check_signatures: bool = True,
    ) -> MempoolEntry:
        """Add `tx` or raise TxValidationError with the reason (Bitcoin: AcceptToMemoryPool)."""
        txid = tx.txid
        if txid in self.entries:
            raise TxValidationError("txn-already-in-mempool", f"tx {hash_hex(txid)} is already pending")
        if tx.is_coinbase():
            raise TxValidationError("coinbase", "a coinbase is only valid in a block")
        check_transaction(tx, self.params)
        if not is_final(tx, next_height, median_time_past):
            raise TxValidationError("bad-txns-nonfinal", f"tx {hash_hex(txid)} is locked until {tx.locktime}")
        for txin in tx.inputs:
            if txin.prevout in self.spenders:
                other = hash_hex(self.spenders[txin.prevout])
                raise TxValidationError("txn-mempool-conflict", f"{txin.prevout} is already spent by pending {other}")
        fee, _ = check_tx_inputs(tx, self.view(chain, next_height), next_height, self.params)
        if fee < self.policy.min_fee_rate * tx.size:
            raise TxValidationError(
                "min-relay-fee-not-met", f"fee {fee} < {self.policy.min_fee_rate} per byte x {tx.size} bytes"
            )
        if check_signatures:
            check_tx_signatures(tx, self.params.genesis_hash)
        entry = MempoolEntry(tx, fee)
        self._make_room(entry)
        self._add(entry)
        return entry

    def view(self, chain: CoinView, next_height: int) -> CoinView:
        """The UTXO set as a transaction entering the pool sees it: plus pending outputs, minus pending spends."""
        return _PoolView(self, chain, next_height)

    def coin(self, outpoint: OutPoint, height: int) -> Coin | None:
        """The output of a pending transaction as a coin in a block at `height`; None if there is none."""
        entry = self.entries.get(outpoint.txid)
        if entry is None or outpoint.index >= len(entry.tx.outputs):
            return None
        return Coin.from_output(entry.tx.outputs[outpoint.index], height, False)

    def activity(self, pubkey_hash: bytes, chain: CoinView, next_height: int) -> tuple[list[MempoolEntry], int, int]:
        """Pending transactions that pay `pubkey_hash` or spend its coins, with what they pay it and take."""
        entries, received, sent = [], 0, 0
        for entry in self.entries.values():
            mine_out = sum(o.amount for o in entry.tx.outputs if o.pubkey_hash == pubkey_hash)
            mine_in = 0
            for txin in entry.tx.inputs:
                coin = chain.get_coin(txin.prevout) or self.coin(txin.prevout, next_height)
                if coin is not None and coin.pubkey_hash == pubkey_hash:
                    mine_in += coin.amount
            if mine_out or mine_in:
                entries.append(entry)
                received += mine_out
                sent += mine_in
        return entries, received, sent

    def _make_room(self, entry: MempoolEntry) -> None:
        """Evict lower fee-rate transactions (with their descendants) until `entry` fits, or refuse it."""
        need = self.total_bytes + entry.tx.size - self.policy.max_bytes
        if need <= 0:
            return
        ancestors = self._ancestors(entry.tx)
        victims: set[bytes] = set()
        freed = 0
        for candidate in sorted(self.entries.values(), key=lambda e: e.fee_rate):
            if freed >= need or candidate.fee_rate >= entry.fee_rate:
                break
            if candidate.tx.txid in victims:
                continue
            family = self.descendants(candidate.tx.txid)
            if family & ancestors:
                continue
            victims |= family
            freed = sum(self.entries[t].tx.size for t in victims)
        if freed < need:
            raise TxValidationError("mempool-full", f"fee rate {entry.fee_rate:.2f}/byte is too low for a full pool")
        for txid in victims:
            self._remove(txid)

    def _ancestors(self, tx: Transaction) -> set[bytes]:
        found: set[bytes] = set()
        stack = [tx]
        while stack:
            for txin in stack.pop().inputs:
                parent = self.entries.get(txin.prevout.txid)
                if parent is not None and parent.tx.txid not in found:
                    found.add(parent.tx.txid)
                    stack.append(parent.tx)
        return found

    def descendants(self, txid: bytes) -> set[bytes]:
        """`txid` and every pool transaction that spends its outputs, directly or not."""
        found = {txid}
        stack = [txid]
        while stack:
            tx = self.entries[stack.pop()].tx
            for i in range(len(tx.outputs)):
                child = self.spenders.get(OutPoint(tx.txid, i))
                if child is not None and child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def _add(self, entry: MempoolEntry) -> None:
        self.entries[entry.tx.txid] = entry
        for txin in entry.tx.inputs:
            self.spenders[txin.prevout] = entry.tx.txid
        self.total_bytes += entry.tx.size

    def _remove(self, txid: bytes) -> None:
        entry = self.entries.pop(txid)
        for txin in entry.tx.inputs:
            del self.spenders[txin.prevout]
        self.total_bytes -= entry.tx.size

    def remove_with_descendants(self, txid: bytes) -> None:
        for t in self.descendants(txid):
            self._remove(t)

    def remove_for_block(self, block: Block) -> None:
        """Drop the block's transactions and everything that conflicts with them (Bitcoin: removeForBlock)."""
        for tx in block.txs:
            if tx.txid in self.entries:
                self._remove(tx.txid)
        for tx in block.txs[1:]:
            for txin in tx.inputs:
                conflict = self.spenders.get(txin.prevout)
                if conflict is not None:
                    self.remove_with_descendants(conflict)

    def select(self, max_bytes: int) -> list[MempoolEntry]:
        """Transactions for a block, highest fee rate first, parents always before their children."""
        chosen: list[MempoolEntry] = []
        included: set[bytes] = set()
        waiting = sorted(self.entries.values(), key=lambda e: e.fee_rate, reverse=True)
        size = 0
        progress = True
        while waiting and progress:
            progress = False
            later = []
            for entry in waiting:
                parents = {txin.prevout.txid for txin in entry.tx.inputs} & self.entries.keys()
                if not parents <= included:
                    later.append(entry)
                    continue
                if size + entry.tx.size <= max_bytes:
                    chosen.append(entry)
                    included.add(entry.tx.txid)
                    size += entry.tx.size
                    progress = True
            waiting = later
        return chosen
