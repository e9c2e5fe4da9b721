"""Consensus rules. Pure: no clock, disk or network -- the time, the parameters and a view of the UTXO set
are passed in.

Context-free checks (`check_transaction`, `check_block`) need nothing but the object itself; contextual ones
(`check_header_contextual`, `check_tx_inputs`, `connect_block`) take what they depend on as arguments.
Every rejection is a `ValidationError` whose `reason` is stable; docs/protocol.md lists them all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol, runtime_checkable

from simplecoin.core.coins import BlockUndo, Coin, CoinView
from simplecoin.core.errors import BlockValidationError, TxValidationError
from simplecoin.core.hashing import hash160, hash_hex, merkle_root
from simplecoin.core.keys import signature_hashes, signature_problem
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import check_proof_of_work
from simplecoin.core.primitives import NULL_HASH, NULL_INDEX, Block, BlockHeader, OutPoint, Transaction

LOCKTIME_THRESHOLD = 500_000_000  # below: a block height; at or above: a Unix time (Bitcoin's)
MIN_COINBASE_DATA = 4  # the height
MAX_COINBASE_DATA = 100  # Bitcoin's coinbase scriptSig limit


_NOT_FETCHED = object()


@runtime_checkable
class BatchCoinView(Protocol):
    """A CoinView that can also look many outpoints up at once (the node's store)."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...

    def get_coins(self, outpoints: list[OutPoint]) -> Mapping[tuple[bytes, int], Coin | None]:
        """Every outpoint's coin or None, keyed by (txid, index)."""


class _Overlay:
    """A view plus the changes of the transactions connected so far.

    The block's own outputs are kept by txid and become `Coin`s only when something in the block spends
    them: most are spent in later blocks, and a coin per output cost a tenth of a cold block. Outpoints are
    keyed as (txid, index) tuples, which hash in C (an OutPoint's dataclass __hash__ runs Python).
    """

    def __init__(self, base: CoinView, height: int, prefetched: Mapping[tuple[bytes, int], Coin | None]) -> None:
        self.base = base
        self.height = height
        self.prefetched = prefetched  # base's answers, looked up in advance (the view does not change meanwhile)
        self.added: dict[bytes, tuple[Transaction, bool]] = {}  # txid -> (tx, is coinbase)
        self.spent: set[tuple[bytes, int]] = set()

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        key = (outpoint.txid, outpoint.index)
        if key in self.spent:
            return None
        added = self.added.get(outpoint.txid)
        if added is not None and outpoint.index < len(added[0].outputs):
            tx, is_coinbase = added
            txout = tx.outputs[outpoint.index]
            return Coin(txout.amount, txout.pubkey_hash, self.height, is_coinbase)
        # Not made in this block (or an index past its outputs: as when the overlay was keyed by outpoint).
        coin = self.prefetched.get(key, _NOT_FETCHED)
        return self.base.get_coin(outpoint) if coin is _NOT_FETCHED else coin  # type: ignore[return-value]

    def apply(self, tx: Transaction, is_coinbase: bool) -> None:
        if not is_coinbase:
            self.spent.update((txin.prevout.txid, txin.prevout.index) for txin in tx.inputs)
        self.added[tx.txid] = (tx, is_coinbase)


def _fail(reason: str, tx: Transaction, detail: str) -> TxValidationError:
    """The error to raise for `tx` (built, with its txid in hex, only when there is one)."""
    return TxValidationError(reason, f"tx {hash_hex(tx.txid)}: {detail}")


def check_transaction(tx: Transaction, params: NetworkParams) -> None:
    """Rules a transaction must meet on its own (Bitcoin: CheckTransaction)."""
    inputs, outputs = tx.inputs, tx.outputs  # locals, no closures or generators: this runs for every tx
    if not inputs:
        raise _fail("bad-txns-vin-empty", tx, "no inputs")
    is_coinbase = tx.is_coinbase()
    # A coinbase may pay nothing: once the subsidy has halved to zero, an empty block has nothing to pay,
    # and every output must be positive.
    if not outputs and not is_coinbase:
        raise _fail("bad-txns-vout-empty", tx, "no outputs")
    if tx.size > params.max_tx_size:
        raise _fail("bad-txns-oversize", tx, f"{tx.size} bytes > {params.max_tx_size}")
    max_money = params.max_money
    total = 0
    for i, txout in enumerate(outputs):
        amount = txout.amount
        if amount <= 0:
            raise _fail("bad-txns-vout-notpositive", tx, f"output {i} pays {amount}")
        if amount > max_money:
            raise _fail("bad-txns-vout-toolarge", tx, f"output {i} pays {amount} > {max_money}")
        total += amount
        if total > max_money:
            raise _fail("bad-txns-txouttotal-toolarge", tx, f"outputs add up to more than {max_money}")
    if len(inputs) > 1 and len({txin.prevout for txin in inputs}) != len(inputs):
        raise _fail("bad-txns-inputs-duplicate", tx, "spends the same output twice")
    if is_coinbase:
        data = inputs[0].signature
        if inputs[0].pubkey or not MIN_COINBASE_DATA <= len(data) <= MAX_COINBASE_DATA:
            detail = f"coinbase data must be {MIN_COINBASE_DATA}-{MAX_COINBASE_DATA} bytes, no key"
            raise _fail("bad-cb-length", tx, detail)
        return
    for txin in inputs:
        if txin.prevout.index == NULL_INDEX and txin.prevout.txid == NULL_HASH:  # OutPoint.is_null, inlined
            raise _fail("bad-txns-prevout-null", tx, "a non-coinbase input spends the null outpoint")


def is_final(tx: Transaction, height: int, median_time_past: int) -> bool:
    """Whether the locktime allows `tx` in a block at `height` (Bitcoin: IsFinalTx, with BIP113 time)."""
    if tx.locktime == 0:
        return True
    limit = height if tx.locktime < LOCKTIME_THRESHOLD else median_time_past
    return tx.locktime < limit


def check_tx_inputs(
    tx: Transaction, view: CoinView, spend_height: int, params: NetworkParams
) -> tuple[int, list[Coin]]:
    """Check that every input exists, is mature, is owned by its key and covers the outputs.

    Returns the fee and the coins spent, in input order.
    Signatures are checked separately (`check_tx_signatures`) because they cost far more than all of this.
    """
    total_in = 0
    coins = []
    max_money = params.max_money
    for i, txin in enumerate(tx.inputs):
        coin = view.get_coin(txin.prevout)
        if coin is None:
            txid = hash_hex(tx.txid)  # the hex only for a message: it cost 3 % of a cold block when made for every tx
            raise TxValidationError("bad-txns-inputs-missingorspent", f"tx {txid} input {i} spends {txin.prevout}")
        if coin.is_coinbase and spend_height - coin.height < params.coinbase_maturity:
            raise TxValidationError(
                "bad-txns-premature-spend-of-coinbase",
                f"tx {hash_hex(tx.txid)} input {i}: coinbase from height {coin.height} spent at {spend_height},"
                f" needs {params.coinbase_maturity} confirmations",
            )
        if hash160(txin.pubkey) != coin.pubkey_hash:
            raise TxValidationError(
                "bad-txns-wrong-key", f"tx {hash_hex(tx.txid)} input {i}: key does not hash to the address"
            )
        coins.append(coin)
        total_in += coin.amount
        if not 0 <= coin.amount <= max_money or total_in > max_money:
            raise TxValidationError(
                "bad-txns-inputvalues-outofrange", f"tx {hash_hex(tx.txid)}: inputs exceed max money"
            )
    total_out = sum(txout.amount for txout in tx.outputs)
    if total_in < total_out:
        raise TxValidationError(
            "bad-txns-in-belowout", f"tx {hash_hex(tx.txid)} spends {total_in} but pays {total_out}"
        )
    return total_in - total_out, coins


def check_tx_signatures(tx: Transaction, genesis_hash: bytes) -> None:
    """Every input carries a valid low-S signature by its key over the transaction's signature hash."""
    for i, (txin, digest) in enumerate(zip(tx.inputs, signature_hashes(tx, genesis_hash), strict=True)):
        problem = signature_problem(txin.pubkey, txin.signature, digest)
        if problem:
            reason, detail = problem
            raise TxValidationError(reason, f"tx {hash_hex(tx.txid)} input {i}: {detail}")


def check_block(block: Block, params: NetworkParams) -> None:
    """Rules a block must meet on its own (Bitcoin: CheckBlock)."""
    header = block.header
    problem = check_proof_of_work(block.hash, header.bits, params.pow_limit)
    if problem:
        raise BlockValidationError("high-hash", problem)
    if not block.txs:
        raise BlockValidationError("bad-blk-length", "no transactions")
    txids = [tx.txid for tx in block.txs]
    if merkle_root(txids) != header.merkle_root:  # Block.compute_merkle_root, without listing the txids again
        raise BlockValidationError("bad-txnmrklroot", "merkle root does not match the transactions")
    # CVE-2012-2459: a list with its tail repeated has the same merkle root, so an attacker can turn a
    # valid block into an invalid one with the same hash; refuse repeats outright.
    if len(set(txids)) != len(txids):
        raise BlockValidationError("bad-txns-duplicate", "the same transaction appears twice")
    if block.size > params.max_block_size:
        raise BlockValidationError("bad-blk-length", f"{block.size} bytes > {params.max_block_size}")
    if not block.txs[0].is_coinbase():
        raise BlockValidationError("bad-cb-missing", "first transaction is not a coinbase")
    if any(tx.is_coinbase() for tx in block.txs[1:]):
        raise BlockValidationError("bad-cb-multiple", "more than one coinbase")
    spent: set[tuple[bytes, int]] = set()  # (txid, index): hashed in C
    for tx in block.txs:
        try:
            check_transaction(tx, params)
        except TxValidationError as e:
            raise BlockValidationError(e.reason, e.detail) from e
        if not tx.is_coinbase():
            for txin in tx.inputs:
                key = (txin.prevout.txid, txin.prevout.index)
                if key in spent:
                    raise BlockValidationError(
                        "bad-txns-inputs-duplicate", f"{txin.prevout} is spent twice in the block"
                    )
                spent.add(key)


def check_header_contextual(
    header: BlockHeader, *, height: int, expected_bits: int, median_time_past: int, now: int, params: NetworkParams
) -> None:
    """Rules that depend on the parent chain (Bitcoin: ContextualCheckBlockHeader), for a header at `height`."""
    if header.bits != expected_bits:
        raise BlockValidationError("bad-diffbits", f"bits {header.bits:#010x}, expected {expected_bits:#010x}")
    if header.time <= median_time_past:
        raise BlockValidationError("time-too-old", f"time {header.time} <= median time past {median_time_past}")
    limit = params.future_block_time_limit(height)  # shorter under ASERT, where a later time eases the next block
    if header.time > now + limit:
        raise BlockValidationError("time-too-new", f"time {header.time} is more than {limit} s after {now}")


def coinbase_height(tx: Transaction) -> int:
    return int.from_bytes(tx.inputs[0].signature[:4], "little")


def connect_block(
    block: Block,
    view: CoinView,
    height: int,
    params: NetworkParams,
    median_time_past: int,
    verified_txids: Collection[bytes] = (),
) -> BlockUndo:
    """Check a block against the UTXO set it would extend; return the undo data (Bitcoin: ConnectBlock).

    `block` must have passed `check_block`. `verified_txids` are transactions whose signatures were already
    checked (on mempool entry): a txid commits to the signatures, keys and spent outpoints, so the result
    would be the same. The view itself is not changed; the caller applies the block.
    """
    coinbase = block.txs[0]
    if coinbase_height(coinbase) != height:
        raise BlockValidationError("bad-cb-height", f"coinbase commits to {coinbase_height(coinbase)}, not {height}")
    prefetched: Mapping[tuple[bytes, int], Coin | None] = {}
    if isinstance(view, BatchCoinView):  # the store: one query per few hundred inputs instead of one each
        prefetched = view.get_coins([txin.prevout for tx in block.txs[1:] for txin in tx.inputs])
    overlay = _Overlay(view, height, prefetched)
    spent: list[Coin] = []
    fees = 0
    to_verify = []
    for tx in block.txs:
        if tx.locktime and not is_final(tx, height, median_time_past):
            raise BlockValidationError("bad-txns-nonfinal", f"tx {hash_hex(tx.txid)} is locked until {tx.locktime}")
        is_coinbase = tx.is_coinbase()
        if not is_coinbase:
            try:
                fee, coins = check_tx_inputs(tx, overlay, height, params)
            except TxValidationError as e:
                raise BlockValidationError(e.reason, e.detail) from e
            fees += fee
            spent.extend(coins)
            if tx.txid not in verified_txids:
                to_verify.append(tx)
        overlay.apply(tx, is_coinbase)
    paid = sum(txout.amount for txout in coinbase.outputs)
    allowed = params.subsidy(height) + fees
    if paid > allowed:
        raise BlockValidationError("bad-cb-amount", f"coinbase pays {paid} > subsidy + fees {allowed}")
    # Signatures last: they cost the most, and every cheaper rule has passed by now.
    genesis_hash = params.genesis_hash  # a property that parses hex: once per block, not per tx
    for tx in to_verify:
        try:
            check_tx_signatures(tx, genesis_hash)
        except TxValidationError as e:
            raise BlockValidationError(e.reason, e.detail) from e
    return BlockUndo(tuple(spent))
