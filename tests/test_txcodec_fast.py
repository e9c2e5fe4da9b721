"""core/txcodec_fast.py decodes exactly what the plain decoder (`Transaction.read_plain`) decodes.

On every transaction of a test chain (coinbases, spends of one and many inputs and outputs, a locktime, one
with a key too long for the fast path) and on thousands of seeded mutations of their bytes -- bit flips,
truncations, insertions, length-prefix edits -- both give the same value (fields, bytes, txid, signature
hash, where the reading stopped) or the same DecodeError with the same reason.

    genesis -- b1 -- ... -- b12 -- b13 (three spends) -- b14 (a spend of b13's outputs)
"""

from __future__ import annotations

import random
import re

import pytest

from simplecoin.core.encoding import Reader
from simplecoin.core.errors import DecodeError
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint, Transaction, TxIn, TxOut
from simplecoin.core.txcodec_fast import read_common_tx
from tests.framework.builder import ALICE, BOB, ChainBuilder

MUTATIONS_PER_TX = 300  # about 5,000 mutated byte strings in all


def chain_txs() -> list[Transaction]:
    b = ChainBuilder(REGTEST)
    b.chain([f"b{h}" for h in range(1, 13)])
    many_out = b.spend("b1", [(1_000 * (i + 1), ALICE.pubkey_hash) for i in range(5)])
    with_locktime = b.spend("b2", locktime=7)
    two_in = b.spend([b.coinbase_outpoint("b3"), b.coinbase_outpoint("b4")], fee=20_000)
    b.block("b13", txs=[many_out, with_locktime, two_in])
    b.block("b14", txs=[b.spend([OutPoint(many_out.txid, i) for i in range(3)], key=ALICE)])
    txs = [tx for block in b.blocks.values() for tx in block.txs]
    # A long field (a 3-byte length) and an unsigned input: the plain decoder's part of the work.
    txs.append(Transaction(1, (TxIn(OutPoint(bytes(range(32)), 1), b"\x02" * 300, b""),), (TxOut(5, BOB.pubkey_hash),)))
    return txs


def length_prefixes(raw: bytes) -> list[int]:
    """Offsets of every CompactSize in a transaction's bytes (all one byte long in the fast path's case)."""
    r = Reader(raw)
    r.i32()
    offsets = [r.pos]
    for _ in range(r.length()):
        r.raw(36)
        offsets.append(r.pos)
        r.var_bytes()
        offsets.append(r.pos)
        r.var_bytes()
    offsets.append(r.pos)
    return offsets


def mutate(raw: bytes, rng: random.Random, prefixes: list[int]) -> bytes:
    kind = rng.choice(["flip", "truncate", "insert", "length"])
    at = rng.randrange(len(raw))
    if kind == "flip":
        return raw[:at] + bytes([raw[at] ^ (1 << rng.randrange(8))]) + raw[at + 1 :]
    if kind == "truncate":
        return raw[:at]
    if kind == "insert":
        return raw[:at] + rng.randbytes(rng.randint(1, 4)) + raw[at:]
    at = rng.choice(prefixes)
    old = raw[at]
    if old >= 0xFD:  # a long length: give it a one-byte value instead
        return raw[:at] + bytes([rng.randrange(0xFD)]) + raw[at + 3 :]
    new = rng.choice(
        [
            bytes([max(old - 1, 0)]),
            bytes([min(old + 1, 0xFC)]),
            bytes([0xFC]),
            bytes([rng.randrange(256)]),
            b"\xfd" + old.to_bytes(2, "little"),  # the same length, not canonical
            b"\xfd" + rng.randbytes(2),
            b"\xfe" + rng.randbytes(4),
            b"\xff" + rng.randbytes(8),
        ]
    )
    return raw[:at] + new + raw[at + 1 :]


def plain_deserialize(data: bytes) -> Transaction:
    r = Reader(data)
    tx = Transaction.read_plain(r)
    r.end()
    return tx


def outcome(decode, data: bytes) -> tuple:
    try:
        tx = decode(data)
    except DecodeError as e:
        return ("DecodeError", str(e))
    return (tx, tx.serialize(), tx.unsigned_bytes, tx.txid, tx.size)


def read_at(read, data: bytes, start: int) -> tuple:
    """One transaction read from the middle of a buffer (as in a block), and where the reading stopped."""
    r = Reader(data)
    r.skip_to(start)
    try:
        tx = read(r)
    except DecodeError as e:
        return ("DecodeError", str(e))
    return (tx, tx.serialize(), tx.unsigned_bytes, tx.txid, r.pos)


@pytest.fixture(scope="module")
def txs() -> list[Transaction]:
    return chain_txs()


def test_every_chain_tx_decodes_to_the_same_value_both_ways(txs: list[Transaction]):
    fast_ones = 0
    for tx in txs:
        raw = tx.serialize()
        expected = (tx, raw, tx.unsigned_bytes, tx.txid, tx.size)
        assert outcome(Transaction.deserialize, raw) == outcome(plain_deserialize, raw) == expected
        fast_ones += read_common_tx(raw, 0) is not None
    assert fast_ones == len(txs) - 1  # all but the one with a 300-byte key took the fast path
    assert len(txs) > 15


def test_mutated_bytes_give_the_same_value_or_the_same_reason(txs: list[Transaction]):
    rng = random.Random(20261206)
    tried, accepted, by_fast = 0, 0, 0
    reasons: set[str] = set()
    for tx in txs:
        raw = tx.serialize()
        prefixes = length_prefixes(raw)
        for _ in range(MUTATIONS_PER_TX):
            data = mutate(raw, rng, prefixes)
            result = outcome(Transaction.deserialize, data)
            assert result == outcome(plain_deserialize, data), data.hex()
            lead = rng.randbytes(rng.randint(0, 3))
            assert read_at(Transaction.read, lead + data, len(lead)) == read_at(
                Transaction.read_plain, lead + data, len(lead)
            ), data.hex()
            tried += 1
            if result[0] == "DecodeError":
                reasons.add(re.sub(r"\d+", "N", result[1]))
            else:
                accepted += 1
                by_fast += read_common_tx(data, 0) is not None
    assert tried >= 5_000
    assert accepted > 500  # the mutations reach the accepting paths,
    assert by_fast > 300  # the fast one's too,
    assert len(reasons) >= 4  # and every kind of the plain decoder's reasons
