"""Building blocks to mine: the coinbase, a template from the mempool, and a plain nonce search."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from simplecoin.core.hashing import merkle_branch, merkle_root, sha256d
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import NULL_OUTPOINT, Block, BlockHeader, Transaction, TxIn, TxOut

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


# -- work for mining processes ------------------------------------------------------------------------------------
# A mining process gets the block template as a header without its merkle root plus the coinbase cut around
# a 12-byte extra nonce (4 bytes naming the worker, 8 counting), and the coinbase's merkle branch. When its
# 32-bit nonce space runs out it bumps the extra nonce and recomputes the merkle root itself, like a Stratum
# miner, so it never waits for the server.

WORKER_NONCE_SIZE = 4
COUNTER_NONCE_SIZE = 8
EXTRANONCE_SIZE = WORKER_NONCE_SIZE + COUNTER_NONCE_SIZE
IDLE = "idle"  # sent instead of Work: stop hashing until the next job


@dataclass(frozen=True, slots=True)
class Work:
    """One mining job, as sent to a mining process."""

    job_id: int
    version: int
    prev_hash: bytes
    time: int
    bits: int
    coinbase_head: bytes  # the coinbase's bytes before the extra nonce
    coinbase_tail: bytes  # and after it
    merkle_branch: tuple[bytes, ...]  # siblings of the coinbase's txid, bottom up
    worker_nonce: bytes  # WORKER_NONCE_SIZE bytes, different for every worker


@dataclass(frozen=True, slots=True)
class Solution:
    """A nonce that meets the target, as sent back by a mining process."""

    job_id: int
    extranonce: bytes  # worker nonce + counter
    nonce: int


@dataclass(frozen=True, slots=True)
class HashReport:
    """How many hashes a worker tried in how many seconds."""

    hashes: int
    seconds: float


def make_work(template: Block, job_id: int, worker: int) -> Work:
    """Cut a template (built with EXTRANONCE_SIZE zero bytes of coinbase extra) into a mining job."""
    coinbase = template.txs[0].serialize()
    start = _extranonce_offset(template.txs[0])
    branch = merkle_branch([tx.txid for tx in template.txs], 0)
    header = template.header
    return Work(
        job_id=job_id,
        version=header.version,
        prev_hash=header.prev_hash,
        time=header.time,
        bits=header.bits,
        coinbase_head=coinbase[:start],
        coinbase_tail=coinbase[start + EXTRANONCE_SIZE :],
        merkle_branch=tuple(branch),
        worker_nonce=worker.to_bytes(WORKER_NONCE_SIZE, "little"),
    )


def _extranonce_offset(coinbase: Transaction) -> int:
    """Where the extra nonce starts: after version, input count, null outpoint, key and data lengths, height."""
    data = coinbase.inputs[0].signature
    if len(data) < 4 + EXTRANONCE_SIZE:
        raise ValueError("the template's coinbase has no room for an extra nonce")
    return 4 + 1 + 36 + 1 + 1 + 4


def work_header_prefix(work: Work, extranonce: bytes) -> bytes:
    """The first 76 bytes of the header (all but the nonce) for one extra nonce."""
    node = sha256d(work.coinbase_head + extranonce + work.coinbase_tail)
    for sibling in work.merkle_branch:  # the coinbase is leaf 0: always the left child
        node = sha256d(node + sibling)
    return struct.pack("<i", work.version) + work.prev_hash + node + struct.pack("<II", work.time, work.bits)


def block_from_solution(template: Block, solution: Solution) -> Block:
    """The solved block: the template with the solution's extra nonce and nonce."""
    coinbase = template.txs[0]
    data = coinbase.inputs[0].signature
    data = data[:4] + solution.extranonce + data[4 + EXTRANONCE_SIZE :]
    coinbase = dataclasses.replace(coinbase, inputs=(dataclasses.replace(coinbase.inputs[0], signature=data),))
    txs = (coinbase, *template.txs[1:])
    header = dataclasses.replace(
        template.header, merkle_root=merkle_root([tx.txid for tx in txs]), nonce=solution.nonce
    )
    return Block(header, txs)
