"""The fast paths of validation give the verdicts and bytes of the slow ones they replace.

Each fast path is checked against the straightforward code it stands in for, on the inputs where they could
part ways: keys off the curve (the Jacobi symbol against the square root), and transactions decoded from
bytes (the cached serialization and signature hash against ones written afresh).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simplecoin.core import secp256k1
from simplecoin.core.encoding import Reader
from simplecoin.core.errors import DecodeError, TxValidationError
from simplecoin.core.keys import CURVE_ORDER, PrivateKey
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, BlockHeader, OutPoint, Transaction, TxIn, TxOut
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from tests.conftest import NOW
from tests.framework.builder import ALICE, ChainBuilder


def assert_rejected_tx(node: Node, tx: Transaction, reason: str) -> None:
    with pytest.raises(TxValidationError) as info:
        node.submit_tx(tx)
    assert info.value.reason == reason


def verdict(check, pubkey: bytes) -> str | None:
    try:
        check(pubkey)
    except DecodeError as e:
        return str(e)
    return None


def key_candidates() -> list[bytes]:
    rng = random.Random(11)
    keys = [PrivateKey(rng.randrange(1, CURVE_ORDER).to_bytes(32, "big")).pubkey for _ in range(50)]
    keys += [bytes([rng.choice((2, 3))]) + rng.randbytes(32) for _ in range(400)]  # about half off the curve
    keys += [b"\x02" + (secp256k1.P + i).to_bytes(32, "big") for i in range(-3, 0)]  # x just below p
    keys += [b"\x02" + (secp256k1.P + i).to_bytes(32, "big") for i in range(3)]  # x >= p
    keys += [b"\x04" + bytes(32), b"\x02" + bytes(31), b"", b"\x03" + bytes(32)]
    return keys


@pytest.mark.parametrize("gmpy2", [True, False], ids=["jacobi", "no-gmpy2"])
def test_key_check_matches_decoding_the_point(monkeypatch, gmpy2: bool):
    if not gmpy2:
        monkeypatch.setattr(secp256k1, "_gmp_jacobi", None)
        monkeypatch.setattr(secp256k1, "_gmp_powmod", None)
    candidates = key_candidates()
    fast = [verdict(secp256k1.check_pubkey, k) for k in candidates]
    slow = [verdict(secp256k1.decode_pubkey, k) for k in candidates]
    assert fast == slow
    assert fast.count(None) > 50
    assert sum(v == "public key is not a point on secp256k1" for v in fast) > 100


# -- decoding: the one-byte-length fast path against the strict Reader ------------------------------------------


def reader_deserialize(data: bytes) -> Transaction:
    """Transaction.deserialize as it was before the fast path: every field through the strict Reader."""
    r = Reader(data)
    version = r.i32()
    inputs = tuple(TxIn.read(r) for _ in range(r.length()))
    outputs = tuple(TxOut.read(r) for _ in range(r.length()))
    tx = Transaction(version, inputs, outputs, r.u32())
    r.end()
    return tx


def outcome(decode, data: bytes):
    try:
        tx = decode(data)
    except DecodeError:
        return "DecodeError"
    except ValueError as e:  # a field the type refuses (there should be none left after decoding)
        return f"ValueError {e}"
    return tx, tx.serialize(), tx.unsigned_bytes, tx.txid


def sample_tx(n_in: int, n_out: int, key_size: int, sig_size: int, locktime: int) -> Transaction:
    inputs = tuple(
        TxIn(OutPoint(bytes([i]) * 32, i), bytes([2]) * key_size, bytes([0x30]) * sig_size) for i in range(n_in)
    )
    outputs = tuple(TxOut(1_000 * (i + 1), bytes([i]) * 20) for i in range(n_out))
    return Transaction(-3 if locktime % 2 else 1, inputs, outputs, locktime)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from([0, 33, 252, 253, 300]),
    st.sampled_from([0, 71, 252, 253]),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_fast_decoding_agrees_with_the_reader(n_in, n_out, key_size, sig_size, locktime, data):
    raw = sample_tx(n_in, n_out, key_size, sig_size, locktime).serialize()
    mutation = data.draw(st.sampled_from(["none", "truncate", "extend", "flip"]))
    if mutation == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif mutation == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=4))
    elif mutation == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1 :]
    fast, slow = outcome(Transaction.deserialize, raw), outcome(reader_deserialize, raw)
    assert fast == slow
    if fast != "DecodeError":
        assert fast[1] == raw  # the cached serialization is the input


def test_decoded_block_keeps_its_bytes_and_written_txs_match():
    txs = [sample_tx(1, 2, 33, 71, 0), sample_tx(2, 1, 33, 72, 5), sample_tx(1, 1, 300, 71, 0)]  # the last: slow path
    header = BlockHeader(1, bytes(32), bytes(32), 0, 0x207FFFFF, 0)
    written = Block(header, tuple(txs))
    decoded = Block.deserialize(written.serialize())
    assert decoded == written
    assert decoded.serialize() == written.serialize()
    for a, b in zip(decoded.txs, written.txs, strict=True):
        assert (a.txid, a.unsigned_bytes, a.size) == (b.txid, b.unsigned_bytes, b.size)


# -- the block's inputs in a few queries: the same coins as one query each --------------------------------------


def test_store_get_coins_matches_get_coin(tmp_path):
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    builder = ChainBuilder(REGTEST)
    blocks = builder.chain([f"b{h}" for h in range(1, 13)])
    spend = builder.spend("b1", [(1_000, ALICE.pubkey_hash)] * 3)
    blocks.append(builder.block("b13", txs=[spend]))
    for block in blocks:
        assert node.submit_block(block).status == "accepted"
    known = [OutPoint(b.txs[0].txid, 0) for b in blocks]  # b1's coinbase output is spent by now
    known += [OutPoint(spend.txid, i) for i in range(4)]  # index 3 does not exist
    unknown = [OutPoint(i.to_bytes(32, "big"), i) for i in range(900)]  # more than two queries' worth
    outpoints = known + unknown
    batched = node.store.get_coins(outpoints)
    assert batched == {(o.txid, o.index): node.store.get_coin(o) for o in outpoints}
    assert sum(coin is not None for coin in batched.values()) == len(blocks) - 1 + 3
    node.close()


# -- a tx's input lookup reused between its cheap checks and its submit, never across a tip change ----------------


def counting_lookups(node: Node) -> list[int]:
    calls = [0]
    real = node.store.get_coins

    def get_coins(outpoints):
        calls[0] += 1
        return real(outpoints)

    node.store.get_coins = get_coins  # type: ignore[method-assign]
    return calls


def test_a_txs_inputs_are_looked_up_once_between_its_checks_and_its_submit(tmp_path):
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    builder = ChainBuilder(REGTEST)
    for block in builder.chain([f"b{h}" for h in range(1, 13)]):
        assert node.submit_block(block).status == "accepted"
    tx = builder.spend("b1")
    calls = counting_lookups(node)
    assert node.inputs_look_valid(tx)
    node.submit_tx(tx)
    assert calls[0] == 1
    assert tx.txid in node.mempool.entries
    node.close()


def test_a_lookup_from_before_a_new_tip_is_not_used(tmp_path):
    """The block that arrives between a tx's checks and its submit spends the same coin: the tx must be refused."""
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    builder = ChainBuilder(REGTEST)
    for block in builder.chain([f"b{h}" for h in range(1, 13)]):
        assert node.submit_block(block).status == "accepted"
    mtp_before = node.median_time_past()
    tx = builder.spend("b1")
    rival = builder.spend("b1", fee=2_000)  # the same coin, paid on in the block
    assert node.inputs_look_valid(tx)  # the coin is unspent at the old tip
    assert node.submit_block(builder.block("b13", txs=[rival])).status == "accepted"
    calls = counting_lookups(node)
    assert_rejected_tx(node, tx, "bad-txns-inputs-missingorspent")
    assert calls[0] == 1  # looked up again at the new tip
    assert node.median_time_past() == node.index.median_time_past(node.tip) != mtp_before  # follows the tip too
    node.close()
