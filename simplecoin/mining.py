"""Building blocks to mine: the coinbase, a template from the mempool, and a plain nonce search."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from simplecoin.hashing import merkle_root
from simplecoin.params import NetworkParams
from simplecoin.pow import bits_to_target
from simplecoin.primitives import NULL_OUTPOINT, Block, BlockHeader, Transaction, TxIn, TxOut

COINBASE_RESERVE = 1_000  # bytes kept free in a template for the coinbase and header


def make_coinbase(height: int, pubkey_hash: bytes, amount: int, extra: bytes = b"") -> Transaction:
    """The block's first transaction; its data starts with the height, so every coinbase txid is unique (BIP34)."""
    data = height.to_bytes(4, "little") + extra
    outputs = (TxOut(amount, pubkey_hash),) if amount else ()  # zero-value outputs are invalid
    return Transaction(1, (TxIn(NULL_OUTPOINT, b"", data),), outputs)


def make_block(
    prev_hash: bytes,
    height: int,
    bits: int,
    time: int,
    pubkey_hash: bytes,
    params: NetworkParams,
    txs: Sequence[Transaction] = (),
    fees: int = 0,
    extra: bytes = b"",
) -> Block:
    """An unsolved block (nonce 0) paying subsidy + fees to `pubkey_hash`."""
    coinbase = make_coinbase(height, pubkey_hash, params.subsidy(height) + fees, extra)
    all_txs = (coinbase, *txs)
    header = BlockHeader(1, prev_hash, merkle_root([tx.txid for tx in all_txs]), time, bits, 0)
    return Block(header, all_txs)


def solve(block: Block, max_tries: int = 1 << 32) -> Block | None:
    """Search nonces until the header meets its target; None if `max_tries` run out."""
    target = bits_to_target(block.header.bits)
    header = block.header
    for nonce in range(min(max_tries, 1 << 32)):
        candidate = dataclasses.replace(header, nonce=nonce)
        if int.from_bytes(candidate.hash(), "little") <= target:
            return Block(candidate, block.txs)
    return None
