"""The memory pool: valid transactions waiting for a block, under Bitcoin Core's package policy.

A transaction enters only if it is valid against the UTXO set plus the pool (so chains of unconfirmed
transactions work), does not spend what another pool transaction spends, pays the minimum relay fee and the
pool's rolling minimum fee, and keeps every package within the ancestor/descendant limits.

Glossary (Bitcoin: txmempool.h):
- ancestors of a tx: the pool transactions it spends from, directly or not; its *ancestor state* is the count,
  size and fee of those plus itself, and its *ancestor score* that fee per byte (what a miner earns by taking it).
- descendants: the pool transactions that spend from it, directly or not; the *descendant score* (fee per byte of
  it plus its descendants) is what the pool loses by evicting it.
- usage: the memory an entry really takes, estimated by `entry_usage` (Bitcoin: DynamicMemoryUsage).

Deliberate simplifications: no replacement (RBF), no expiry, no fee deltas (prioritisetransaction), no
CPFP carve-out, no package relay. Time is passed in by the caller; this module reads no clock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from simplecoin.core.coins import Coin, CoinView
from simplecoin.core.errors import TxValidationError
from simplecoin.core.hashing import hash160, hash_hex
from simplecoin.core.params import NetworkParams
from simplecoin.core.primitives import Block, OutPoint, Transaction
from simplecoin.core.validation import check_transaction, check_tx_inputs, check_tx_signatures, is_final

# Package limits, counting the transaction itself (Bitcoin: DEFAULT_ANCESTOR_LIMIT, DEFAULT_ANCESTOR_SIZE_LIMIT_KVB,
# DEFAULT_DESCENDANT_LIMIT, DEFAULT_DESCENDANT_SIZE_LIMIT_KVB). They bound every walk of the pool's graph, so
# accepting, evicting and selecting cost O(25) per transaction instead of O(pool).
DEFAULT_ANCESTOR_LIMIT = 25
DEFAULT_ANCESTOR_SIZE_LIMIT = 101_000  # serialized bytes of the tx and its ancestors
DEFAULT_DESCENDANT_LIMIT = 25
DEFAULT_DESCENDANT_SIZE_LIMIT = 101_000  # serialized bytes of a pool tx and its descendants

# Bitcoin: DEFAULT_MAX_MEMPOOL_SIZE_MB (300 MB of memory). Ours is 50 MB of memory as entry_usage counts it: about
# 23,000 one-input payments (4.1 MB serialized, four full blocks). The old cap counted 5 MB of serialized bytes,
# which in Python objects is 12x that for small payments (see entry_usage). Bound: usage <= max_usage after every
# accept. Eviction: the package with the lowest descendant score first (_trim).
DEFAULT_MAX_MEMPOOL_USAGE = 50_000_000

# Fee rates of the rolling minimum are integers in base units per 1,000 bytes, like Bitcoin's CFeeRate.
INCREMENTAL_RELAY_FEE_PER_KB = 1_000  # Bitcoin: DEFAULT_INCREMENTAL_RELAY_FEE (what eviction adds on top)
ROLLING_FEE_HALFLIFE = 12 * 60 * 60  # seconds (Bitcoin: CTxMemPool::ROLLING_FEE_HALFLIFE)
ROLLING_FEE_UPDATE_SECONDS = 10  # decay at most this often (Bitcoin: GetMinFee's "time > lastUpdate + 10")

# Template selection gives up after this many packages in a row that do not fit once the block is nearly full
# (Bitcoin: MAX_CONSECUTIVE_FAILURES and the 4,000-weight margin in addPackageTxs).
MAX_CONSECUTIVE_FAILURES = 1_000
NEARLY_FULL_MARGIN = 1_000  # bytes

# What entry_usage charges, fitted to tracemalloc measurements on CPython 3.11 of everything the pool retains per
# transaction (the Transaction with its cached serialization and txid, inputs, outputs, the MempoolEntry, the
# dict slots, spenders, package links, heap items). Measured: a 180-byte payment 2,048 bytes (11.4x its size),
# 1-in-50-out 10,366 (6.7x), 20-in-1-out 10,689 (3.7x). tests/test_mempool_policy.py re-measures and checks the
# estimate stays within 0.9x..1.3x of the real figure for each shape.
ENTRY_USAGE_BASE = 1_400  # per entry whatever its shape
INPUT_USAGE = 330  # per input: TxIn, OutPoint, key and signature objects, a spenders slot
OUTPUT_USAGE = 125  # per output: TxOut and its pubkey hash
# Per serialized byte: the cached serialization. Until the fast decoder moved to core/txcodec_fast.py the unsigned
# serialization was cached too and this was 2 (a 20-input tx retained 13,705 bytes).
BYTE_USAGE = 1


# Bitcoin: GetDustThreshold with DUST_RELAY_TX_FEE (3,000 sat/kvB, three times the minimum relay fee): an output is
# dust when spending it would cost more than a third of it. Ours: 3 base units per byte x (a 28-byte output plus the
# 143-byte input that spends it, as the wallet's size estimate counts one) = 513 base units. Policy only: a block may
# still pay dust, and the pool (what templates are made from) never holds it. Without it 112,001 one-unit outputs
# to a victim's address cost an attacker 0.031 coin of fees (docs/security.md, "Addresses with many coins").
DUST_RELAY_FEE_RATE = 3  # base units per byte
OUTPUT_BYTES = 28  # 8 amount + 20 pubkey hash
SPENDING_INPUT_BYTES = 143  # 36 outpoint + 34 key + 73 signature (wallet/payment.py's _estimated_size)


def entry_usage(tx: Transaction) -> int:
    """Estimated bytes of memory the pool spends on `tx` (Bitcoin: CTxMemPoolEntry's DynamicMemoryUsage)."""
    return ENTRY_USAGE_BASE + INPUT_USAGE * len(tx.inputs) + OUTPUT_USAGE * len(tx.outputs) + BYTE_USAGE * tx.size


@dataclass(frozen=True)
class MempoolPolicy:
    """Local rules for relaying; not consensus (Bitcoin: policy/policy.h)."""

    min_fee_rate: int = 1  # base units per byte (Bitcoin's default minrelaytxfee is 1 sat/vbyte)
    max_usage: int = DEFAULT_MAX_MEMPOOL_USAGE  # bytes of memory, as entry_usage counts them
    ancestor_limit: int = DEFAULT_ANCESTOR_LIMIT
    ancestor_size_limit: int = DEFAULT_ANCESTOR_SIZE_LIMIT
    descendant_limit: int = DEFAULT_DESCENDANT_LIMIT
    descendant_size_limit: int = DEFAULT_DESCENDANT_SIZE_LIMIT
    dust_relay_fee_rate: int = DUST_RELAY_FEE_RATE  # base units per byte; 0 relays dust

    @property
    def dust_threshold(self) -> int:
        """The smallest output amount that is not dust (Bitcoin: GetDustThreshold)."""
        return self.dust_relay_fee_rate * (OUTPUT_BYTES + SPENDING_INPUT_BYTES)


@dataclass(frozen=True, slots=True)
class MempoolEntry:
    tx: Transaction
    fee: int
    usage: int = 0

    @property
    def fee_rate(self) -> float:
        # A ratio used only to order transactions, never money itself.
        return self.fee / self.tx.size


@dataclass(slots=True)
class _Links:
    """One entry's place in the pool's graph and its package state (Bitcoin: CTxMemPoolEntry's aggregates).

    Mutable on purpose: adding or removing a transaction updates at most 25 ancestors' and 25 descendants' sums.
    """

    parents: set[bytes]
    children: set[bytes] = field(default_factory=set)
    anc_count: int = 1
    anc_size: int = 0
    anc_fee: int = 0
    desc_count: int = 1
    desc_size: int = 0
    desc_fee: int = 0


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
    """Unconfirmed transactions with their package state, a memory bound and a rolling minimum fee."""

    def __init__(self, params: NetworkParams, policy: MempoolPolicy | None = None) -> None:
        self.params = params
        self.policy = policy or MempoolPolicy()
        self.entries: dict[bytes, MempoolEntry] = {}  # bound: usage <= policy.max_usage; see _trim for eviction
        self.spenders: dict[OutPoint, bytes] = {}  # outpoint -> txid of the pool tx spending it
        self.links: dict[bytes, _Links] = {}  # one per entry
        # pubkey hash -> txids of the entries that pay it or spend its coins: an address lookup costs that address's
        # entries, not the pool's (it scanned every entry and read each input's coin, under the node lock). Bound:
        # one txid per distinct address of an entry, removed with the entry.
        self.by_address: dict[bytes, set[bytes]] = {}
        self.total_bytes = 0  # serialized bytes (what GET /status reports)
        self.changes = 0  # entries added or removed so far: a check made at one count still holds at the same count
        self.usage = 0  # estimated memory, what the cap counts
        # Lazy min-heap of (descendant score, txid, desc_fee, desc_size): an item is current only while its fee and
        # size equal the entry's; stale ones are skipped when popped. Bound: rebuilt when it passes 4x the entries.
        self._by_desc_score: list[tuple[float, bytes, int, int]] = []
        # Bitcoin: rollingMinimumFeeRate, lastRollingFeeUpdate, blockSinceLastRollingFeeBump.
        self.rolling_min_fee_per_kb = 0
        self._last_rolling_update = 0
        self._block_since_bump = False

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
        now: int,
        check_signatures: bool = True,
        checked_fee: int | None = None,
    ) -> MempoolEntry:
        """Add `tx` or raise TxValidationError with the reason (Bitcoin: AcceptToMemoryPool).

        `now` (seconds) decays the rolling minimum fee; the pool reads no clock. `checked_fee`: the caller ran
        `check_transaction` and `check_tx_inputs` (which found this fee) on this very chain and pool (`changes`
        the same), so they are not run again.
        """
        txid = tx.txid
        if txid in self.entries:
            raise TxValidationError("txn-already-in-mempool", f"tx {hash_hex(txid)} is already pending")
        if tx.is_coinbase():
            raise TxValidationError("coinbase", "a coinbase is only valid in a block")
        if checked_fee is None:
            check_transaction(tx, self.params)
        self.check_standard(tx)
        if not is_final(tx, next_height, median_time_past):
            raise TxValidationError("bad-txns-nonfinal", f"tx {hash_hex(txid)} is locked until {tx.locktime}")
        for txin in tx.inputs:
            if txin.prevout in self.spenders:
                other = hash_hex(self.spenders[txin.prevout])
                raise TxValidationError("txn-mempool-conflict", f"{txin.prevout} is already spent by pending {other}")
        fee = checked_fee
        if fee is None:
            fee, _ = check_tx_inputs(tx, self.view(chain, next_height), next_height, self.params)
        if fee < self.policy.min_fee_rate * tx.size:
            raise TxValidationError(
                "min-relay-fee-not-met", f"fee {fee} < {self.policy.min_fee_rate} per byte x {tx.size} bytes"
            )
        # Bitcoin: CheckFeeRate against GetMinFee(). Without it an attacker refills the pool right after an
        # eviction with transactions just as cheap as the ones evicted.
        min_fee_per_kb = self.min_fee_per_kb(now)
        if fee * 1000 < min_fee_per_kb * tx.size:
            raise TxValidationError(
                "mempool-min-fee-not-met", f"fee {fee} < {min_fee_per_kb} per 1,000 bytes x {tx.size} bytes"
            )
        parents = {txin.prevout.txid for txin in tx.inputs if txin.prevout.txid in self.entries}
        ancestors = self._check_package_limits(tx, parents)
        if check_signatures:  # last: the most expensive check (Bitcoin: limits in PreChecks, scripts after)
            check_tx_signatures(tx, self.params.genesis_hash)
        entry = MempoolEntry(tx, fee, entry_usage(tx))
        self._add(entry, parents, ancestors)
        self._trim()
        if txid not in self.entries:  # the newcomer itself had the lowest descendant score (Bitcoin: "mempool full")
            raise TxValidationError(
                "mempool-full", f"fee rate {entry.fee_rate:.2f}/byte is too low for a full pool (it was evicted)"
            )
        return entry

    def check_standard(self, tx: Transaction) -> None:
        """TxValidationError("dust") for an output below the dust threshold (Bitcoin: IsStandardTx's "dust")."""
        dust = self.policy.dust_threshold
        for i, txout in enumerate(tx.outputs):
            if txout.amount < dust:
                raise TxValidationError("dust", f"output {i} pays {txout.amount} < {dust}, the dust threshold")

    def view(self, chain: CoinView, next_height: int) -> CoinView:
        """The UTXO set as a transaction entering the pool sees it: plus pending outputs, minus pending spends."""
        return _PoolView(self, chain, next_height)

    def _check_package_limits(self, tx: Transaction, parents: set[bytes]) -> set[bytes]:
        """The pool ancestors of `tx`, or TxValidationError if a package would pass a limit.

        Bitcoin: CalculateMemPoolAncestors. Without the limits a rising-fee chain of thousands of transactions made
        every template and eviction walk the whole chain (a 25 s GET /status on an 8,000-long chain).
        """
        policy = self.policy
        ancestors: set[bytes] = set()
        stack = list(parents)
        while stack:
            txid = stack.pop()
            if txid in ancestors:
                continue
            ancestors.add(txid)
            if len(ancestors) + 1 > policy.ancestor_limit:
                raise TxValidationError(
                    "too-long-mempool-chain", f"too many unconfirmed ancestors [limit: {policy.ancestor_limit}]"
                )
            stack.extend(self.links[txid].parents)
        size = tx.size + sum(self.entries[a].tx.size for a in ancestors)
        if size > policy.ancestor_size_limit:
            raise TxValidationError(
                "too-long-mempool-chain",
                f"exceeds ancestor size limit [limit: {policy.ancestor_size_limit}]: {size} bytes",
            )
        for a in ancestors:
            links = self.links[a]
            if links.desc_count + 1 > policy.descendant_limit:
                raise TxValidationError(
                    "too-long-mempool-chain",
                    f"too many descendants for tx {hash_hex(a)} [limit: {policy.descendant_limit}]",
                )
            if links.desc_size + tx.size > policy.descendant_size_limit:
                raise TxValidationError(
                    "too-long-mempool-chain",
                    f"exceeds descendant size limit for tx {hash_hex(a)} [limit: {policy.descendant_size_limit}]",
                )
        return ancestors

    # -- the rolling minimum fee ------------------------------------------------------------------------------

    def min_fee_per_kb(self, now: int) -> int:
        """The fee rate a newcomer must pay, in base units per 1,000 bytes; 0 if only the relay minimum applies.

        Bitcoin: CTxMemPool::GetMinFee. After an eviction the minimum sits just above what was evicted; once a
        block has come since, it halves every 12 hours (faster while the pool is under half or a quarter full).
        """
        if not self._block_since_bump or self.rolling_min_fee_per_kb == 0:
            return self.rolling_min_fee_per_kb
        if now > self._last_rolling_update + ROLLING_FEE_UPDATE_SECONDS:
            halflife = ROLLING_FEE_HALFLIFE
            if self.usage < self.policy.max_usage // 4:
                halflife //= 4
            elif self.usage < self.policy.max_usage // 2:
                halflife //= 2
            decayed = self.rolling_min_fee_per_kb / 2 ** ((now - self._last_rolling_update) / halflife)
            self.rolling_min_fee_per_kb = int(decayed)
            self._last_rolling_update = now
            if self.rolling_min_fee_per_kb < INCREMENTAL_RELAY_FEE_PER_KB // 2:
                self.rolling_min_fee_per_kb = 0
                return 0
        return max(self.rolling_min_fee_per_kb, INCREMENTAL_RELAY_FEE_PER_KB)

    def _trim(self) -> None:
        """Evict the package with the lowest descendant score until the pool fits (Bitcoin: TrimToSize).

        Scoring by descendants keeps a cheap parent whose rich child pays for both: the old rule (own fee rate
        only) evicted such a pair for a lone transaction paying less per byte than the pair.
        """
        while self.usage > self.policy.max_usage:
            _, txid, fee, size = heapq.heappop(self._by_desc_score)
            links = self.links.get(txid)
            if links is None or (links.desc_fee, links.desc_size) != (fee, size):
                continue  # stale: evicted already, or its descendants changed since this item was pushed
            evicted_per_kb = fee * 1000 // size + INCREMENTAL_RELAY_FEE_PER_KB
            if evicted_per_kb > self.rolling_min_fee_per_kb:  # Bitcoin: trackPackageRemoved
                self.rolling_min_fee_per_kb = evicted_per_kb
                self._block_since_bump = False
            self.remove_with_descendants(txid)

    def _push_desc_score(self, txid: bytes, links: _Links) -> None:
        heapq.heappush(self._by_desc_score, (links.desc_fee / links.desc_size, txid, links.desc_fee, links.desc_size))
        if len(self._by_desc_score) > 4 * len(self.entries) + 64:
            self._by_desc_score = [
                (k.desc_fee / k.desc_size, t, k.desc_fee, k.desc_size) for t, k in self.links.items()
            ]
            heapq.heapify(self._by_desc_score)

    # -- reads ------------------------------------------------------------------------------------------------

    def coin(self, outpoint: OutPoint, height: int) -> Coin | None:
        """The output of a pending transaction as a coin in a block at `height`; None if there is none."""
        entry = self.entries.get(outpoint.txid)
        if entry is None or outpoint.index >= len(entry.tx.outputs):
            return None
        return Coin.from_output(entry.tx.outputs[outpoint.index], height, False)

    def activity(self, pubkey_hash: bytes, chain: CoinView, next_height: int) -> tuple[list[MempoolEntry], int, int]:
        """Pending transactions that pay `pubkey_hash` or spend its coins, with what they pay it and take.

        Reads only that address's entries (`by_address`), and the coins of their inputs that are the address's.
        """
        entries, received, sent = [], 0, 0
        for txid in sorted(self.by_address.get(pubkey_hash, ())):
            entry = self.entries[txid]
            received += sum(o.amount for o in entry.tx.outputs if o.pubkey_hash == pubkey_hash)
            for txin in entry.tx.inputs:
                if hash160(txin.pubkey) != pubkey_hash:  # a valid input's key hashes to its coin's address
                    continue
                coin = self.coin(txin.prevout, next_height) or chain.get_coin(txin.prevout)
                if coin is not None:
                    sent += coin.amount
            entries.append(entry)
        return entries, received, sent

    @staticmethod
    def _addresses(tx: Transaction) -> set[bytes]:
        """The addresses `tx` pays, and those whose coins it spends (the keys of its inputs, hashed)."""
        return {o.pubkey_hash for o in tx.outputs} | {hash160(txin.pubkey) for txin in tx.inputs}

    def in_dependency_order(self) -> list[MempoolEntry]:
        """Every entry, parents before children (a parent has fewer ancestors than any child of it)."""
        return sorted(self.entries.values(), key=lambda e: (self.links[e.tx.txid].anc_count, e.tx.txid))

    def ancestors(self, txid: bytes) -> set[bytes]:
        """The pool transactions `txid` spends from, directly or not (not `txid` itself)."""
        found: set[bytes] = set()
        stack = list(self.links[txid].parents)
        while stack:
            t = stack.pop()
            if t not in found:
                found.add(t)
                stack.extend(self.links[t].parents)
        return found

    def descendants(self, txid: bytes) -> set[bytes]:
        """`txid` and every pool transaction that spends its outputs, directly or not."""
        found = {txid}
        stack = [txid]
        while stack:
            for child in self.links[stack.pop()].children:
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    # -- changes ----------------------------------------------------------------------------------------------

    def _add(self, entry: MempoolEntry, parents: set[bytes], ancestors: set[bytes]) -> None:
        txid, size, fee = entry.tx.txid, entry.tx.size, entry.fee
        self.changes += 1
        self.entries[txid] = entry
        for txin in entry.tx.inputs:
            self.spenders[txin.prevout] = txid
        for pkh in self._addresses(entry.tx):
            self.by_address.setdefault(pkh, set()).add(txid)
        links = _Links(
            parents,
            anc_count=len(ancestors) + 1,
            anc_size=size + sum(self.entries[a].tx.size for a in ancestors),
            anc_fee=fee + sum(self.entries[a].fee for a in ancestors),
            desc_size=size,
            desc_fee=fee,
        )
        self.links[txid] = links
        for p in parents:
            self.links[p].children.add(txid)
        for a in ancestors:
            up = self.links[a]
            up.desc_count += 1
            up.desc_size += size
            up.desc_fee += fee
            self._push_desc_score(a, up)
        self._push_desc_score(txid, links)
        self.total_bytes += size
        self.usage += entry.usage

    def _remove(self, txid: bytes) -> None:
        """Drop one entry and take its share out of the package state of what stays (Bitcoin: removeUnchecked)."""
        entry = self.entries[txid]
        size, fee = entry.tx.size, entry.fee
        self.changes += 1
        for a in self.ancestors(txid):
            up = self.links[a]
            up.desc_count -= 1
            up.desc_size -= size
            up.desc_fee -= fee
            self._push_desc_score(a, up)
        for d in self.descendants(txid) - {txid}:
            down = self.links[d]
            down.anc_count -= 1
            down.anc_size -= size
            down.anc_fee -= fee
        links = self.links.pop(txid)
        for p in links.parents:
            self.links[p].children.discard(txid)
        for c in links.children:
            self.links[c].parents.discard(txid)
        del self.entries[txid]
        for txin in entry.tx.inputs:
            del self.spenders[txin.prevout]
        for pkh in self._addresses(entry.tx):
            txids = self.by_address[pkh]
            txids.discard(txid)
            if not txids:
                del self.by_address[pkh]
        self.total_bytes -= size
        self.usage -= entry.usage

    def remove_with_descendants(self, txid: bytes) -> None:
        for t in self.descendants(txid):
            self._remove(t)

    def remove_for_block(self, block: Block, now: int) -> None:
        """Drop the block's transactions and everything that conflicts with them (Bitcoin: removeForBlock).

        A block also lets the rolling minimum fee start decaying again, from `now`.
        """
        for tx in block.txs:
            if tx.txid in self.entries:
                self._remove(tx.txid)
        for tx in block.txs[1:]:
            for txin in tx.inputs:
                conflict = self.spenders.get(txin.prevout)
                if conflict is not None:
                    self.remove_with_descendants(conflict)
        self._last_rolling_update = now
        self._block_since_bump = True

    # -- block templates --------------------------------------------------------------------------------------

    def select(self, max_bytes: int) -> list[MempoolEntry]:
        """Transactions for a block by ancestor score, parents always before their children.

        Bitcoin: BlockAssembler::addPackageTxs. The best ancestor package (fee per byte of a tx with its
        not-yet-chosen ancestors) goes in whole, so a rich child pulls its cheap parent in; then every descendant
        of what went in has its package state reduced by it and is queued again with the new score. Each tx is
        chosen once and updates at most 24 descendants, so this is O(n log n) where the old loop over "waiting"
        transactions was O(n x chain length).
        """
        links, entries = self.links, self.entries
        heap = [(-k.anc_fee / k.anc_size, t, k.anc_fee, k.anc_size) for t, k in links.items()]
        heapq.heapify(heap)
        modified: dict[bytes, tuple[int, int]] = {}  # txid -> (fee, size) of its package minus what was chosen
        chosen: list[MempoolEntry] = []
        included: set[bytes] = set()
        size = 0
        failures = 0
        while heap:
            _, txid, fee, package_size = heapq.heappop(heap)
            if txid in included:
                continue
            if (fee, package_size) != modified.get(txid, (links[txid].anc_fee, links[txid].anc_size)):
                continue  # stale: an ancestor was chosen since this item was pushed
            if size + package_size > max_bytes:
                failures += 1
                if failures > MAX_CONSECUTIVE_FAILURES and size > max_bytes - NEARLY_FULL_MARGIN:
                    break
                continue
            failures = 0
            package = [a for a in self.ancestors(txid) if a not in included]
            package.append(txid)
            package.sort(key=lambda t: links[t].anc_count)  # parents first
            included.update(package)
            for t in package:
                entry = entries[t]
                chosen.append(entry)
                size += entry.tx.size
            for t in package:
                entry = entries[t]
                t_fee, t_size = entry.fee, entry.tx.size
                # The descendants of t (at most 24), walked inline: this loop is most of the selection's time.
                stack = list(links[t].children)
                seen: set[bytes] = set()
                while stack:
                    d = stack.pop()
                    if d in seen:
                        continue
                    seen.add(d)
                    d_links = links[d]
                    stack.extend(d_links.children)
                    if d in included:
                        continue
                    d_fee, d_size = modified.get(d) or (d_links.anc_fee, d_links.anc_size)
                    d_fee, d_size = d_fee - t_fee, d_size - t_size
                    modified[d] = (d_fee, d_size)
                    heapq.heappush(heap, (-d_fee / d_size, d, d_fee, d_size))
        return chosen
