"""Property-based tests (hypothesis) for SimpleCoin's codecs, merkle proofs, Base58Check and compact bits.

The codec properties are the contract stated in simplecoin/core/encoding.py: decoding is strict (a short read, a
non-minimal length or leftover bytes are all `DecodeError`) and canonical (whatever decodes re-encodes to
exactly the bytes it came from: one object, one encoding).

Only `DecodeError` is ever caught; any other exception escaping a decoder fails the property.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simplecoin.core.coins import BlockUndo, Coin
from simplecoin.core.encoding import Reader, Writer
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import merkle_branch, merkle_root, merkle_root_from_branch, sha256d, verify_merkle_branch
from simplecoin.core.keys import (
    B58_ALPHABET,
    address_from_pubkey_hash,
    base58_decode,
    base58_encode,
    base58check_decode,
    base58check_encode,
    pubkey_hash_from_address,
    signature_hash,
    signature_hashes,
)
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.pow import bits_to_target, target_to_bits
from simplecoin.core.primitives import (
    MAX_FIELD_BYTES,
    NULL_OUTPOINT,
    Block,
    BlockHeader,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
)

# derandomize: the same examples every run, so the suite is reproducible and its runtime stable.
# deadline=None: some properties loop over every prefix / every index and may be slow on a loaded machine.
FEW = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SOME_MORE = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------

u32s = st.integers(0, 2**32 - 1)
i32s = st.integers(-(2**31), 2**31 - 1)
i64s = st.integers(-(2**63), 2**63 - 1)
hashes32 = st.binary(min_size=32, max_size=32)
hashes20 = st.binary(min_size=20, max_size=20)
# Mostly short fields, sometimes long enough (>= 253 bytes) that their length needs the 0xfd CompactSize form.
fields = st.one_of(st.binary(max_size=80), st.binary(min_size=250, max_size=300))

outpoints = st.one_of(st.builds(OutPoint, hashes32, u32s), st.just(NULL_OUTPOINT))
txins = st.builds(TxIn, outpoints, fields, fields)
txouts = st.builds(TxOut, i64s, hashes20)
transactions = st.builds(
    Transaction,
    i32s,
    st.lists(txins, max_size=3).map(tuple),
    st.lists(txouts, max_size=4).map(tuple),
    u32s,
)
headers = st.builds(BlockHeader, i32s, hashes32, hashes32, u32s, u32s, u32s)
blocks = st.builds(Block, headers, st.lists(transactions, max_size=3).map(tuple))
coins = st.builds(Coin, i64s, hashes20, u32s, st.booleans())
undos = st.builds(BlockUndo, st.lists(coins, max_size=6).map(tuple))


# OutPoint has no codec of its own and TxIn / TxOut only `write(Writer)` / `read(Reader)`; these helpers give
# them the same serialize / deserialize shape as the top-level types (deserialize refuses leftovers).
def _writer_codec(cls: type) -> tuple[Callable[[object], bytes], Callable[[bytes], object]]:
    def ser(obj: object) -> bytes:
        w = Writer()
        obj.write(w)
        return w.getvalue()

    def de(data: bytes) -> object:
        r = Reader(data)
        obj = cls.read(r)
        r.end()
        return obj

    return ser, de


def _outpoint_ser(op: OutPoint) -> bytes:
    return Writer().raw(op.txid).u32(op.index).getvalue()


def _outpoint_de(data: bytes) -> OutPoint:
    # How TxIn.read decodes the outpoint it starts with.
    r = Reader(data)
    op = OutPoint(r.raw(32), r.u32())
    r.end()
    return op


_txin_ser, _txin_de = _writer_codec(TxIn)
_txout_ser, _txout_de = _writer_codec(TxOut)
_coin_ser, _coin_de = _writer_codec(Coin)

# name -> (strategy, serialize, deserialize)
CODECS = {
    "OutPoint": (outpoints, _outpoint_ser, _outpoint_de),
    "TxIn": (txins, _txin_ser, _txin_de),
    "TxOut": (txouts, _txout_ser, _txout_de),
    "Transaction": (transactions, Transaction.serialize, Transaction.deserialize),
    "BlockHeader": (headers, BlockHeader.serialize, BlockHeader.deserialize),
    "Block": (blocks, Block.serialize, Block.deserialize),
    "BlockUndo": (undos, BlockUndo.serialize, BlockUndo.deserialize),
}


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after 1-4 random edits: bit flips, byte overwrites, insertions and deletions."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete"] if buf else ["insert"]))
        if kind == "insert":
            pos = draw(st.integers(0, len(buf)))
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            continue
        pos = draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            buf[pos] = draw(st.integers(0, 255))
        else:
            del buf[pos : pos + draw(st.integers(1, 8))]
    return bytes(buf)


def _decodes_canonically_or_rejects(de: Callable[[bytes], object], ser: Callable[[object], bytes], data: bytes):
    """Decoding `data` raises DecodeError (nothing else) or gives an object that re-encodes to `data`."""
    try:
        obj = de(data)
    except DecodeError:
        return
    assert ser(obj) == data


# ---------------------------------------------------------------------------------------------------
# 1. Serialization round-trips
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CODECS))
@SOME
@given(data=st.data())
def test_round_trip(name, data):
    strategy, ser, de = CODECS[name]
    obj = data.draw(strategy)
    raw = ser(obj)
    back = de(raw)
    assert back == obj
    assert type(back) is type(obj)
    assert ser(back) == raw


@SOME
@given(transactions)
def test_txid_is_sha256d_of_serialization(tx):
    raw = tx.serialize()
    assert tx.txid == sha256d(raw)
    assert Transaction.deserialize(raw).txid == tx.txid
    assert tx.size == len(raw)


@SOME
@given(headers)
def test_header_is_80_bytes_and_hash_is_sha256d(header):
    raw = header.serialize()
    assert len(raw) == 80
    assert header.hash() == sha256d(raw)


@FEW
@given(blocks)
def test_block_layout(block):
    raw = block.serialize()
    assert raw[:80] == block.header.serialize()
    assert block.hash == sha256d(raw[:80])
    assert raw.endswith(b"".join(tx.serialize() for tx in block.txs))
    back = Block.deserialize(raw)
    assert [tx.txid for tx in back.txs] == [tx.txid for tx in block.txs]


@SOME
@given(txins)
def test_outpoint_is_first_36_bytes_of_txin(txin):
    assert _txin_ser(txin)[:36] == txin.prevout.txid + struct.pack("<I", txin.prevout.index)


@SOME
@given(transactions, st.data())
def test_unsigned_bytes_ignore_signatures_only(tx, data):
    """Replacing every signature leaves unsigned_bytes (what is signed) unchanged but changes the txid."""
    new_sigs = [data.draw(fields) for _ in tx.inputs]
    resigned = Transaction(
        tx.version,
        tuple(TxIn(i.prevout, i.pubkey, s) for i, s in zip(tx.inputs, new_sigs, strict=True)),
        tx.outputs,
        tx.locktime,
    )
    assert resigned.unsigned_bytes == tx.unsigned_bytes
    if new_sigs != [i.signature for i in tx.inputs]:
        assert resigned.txid != tx.txid


@pytest.mark.parametrize("count", [0, 1, 252, 253, 254, 300])
def test_list_lengths_at_compact_size_boundary(count):
    """Counts of 253 and more switch to the 3-byte CompactSize form; both forms round-trip."""
    tx = Transaction(1, (), tuple(TxOut(i, bytes([i % 256]) * 20) for i in range(count)), 0)
    raw = tx.serialize()
    assert raw[4] == 0  # no inputs
    assert raw[5:6] == (b"\xfd" if count >= 253 else bytes([count]))
    assert Transaction.deserialize(raw) == tx
    undo = BlockUndo(tuple(Coin(i, b"\x07" * 20, i, i % 2 == 0) for i in range(count)))
    assert BlockUndo.deserialize(undo.serialize()) == undo


# ---------------------------------------------------------------------------------------------------
# 2. Strict decoding
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CODECS))
@FEW
@given(data=st.data())
def test_every_proper_prefix_is_rejected(name, data):
    strategy, ser, de = CODECS[name]
    raw = ser(data.draw(strategy))
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            de(raw[:cut])


@pytest.mark.parametrize("name", list(CODECS))
@SOME
@given(data=st.data())
def test_drawn_truncation_is_rejected(name, data):
    strategy, ser, de = CODECS[name]
    raw = ser(data.draw(strategy))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        de(raw[:cut])


@pytest.mark.parametrize("name", list(CODECS))
@SOME
@given(data=st.data(), extra=st.binary(min_size=1, max_size=40))
def test_trailing_bytes_are_rejected(name, data, extra):
    strategy, ser, de = CODECS[name]
    raw = ser(data.draw(strategy))
    with pytest.raises(DecodeError):
        de(raw + extra)


@pytest.mark.parametrize("name", list(CODECS))
@SOME_MORE
@given(data=st.data())
def test_mutated_bytes_decode_canonically_or_are_rejected(name, data):
    strategy, ser, de = CODECS[name]
    raw = ser(data.draw(strategy))
    _decodes_canonically_or_rejects(de, ser, data.draw(mutations(raw)))


@pytest.mark.parametrize("flag", [2, 0x80, 0xFF])
def test_block_undo_bad_coinbase_flag_is_a_decode_error(flag):
    """Regression: a coin whose coinbase flag byte is not 0/1 once escaped as a plain ValueError."""
    data = b"\x01" + bytes(8) + bytes(20) + bytes(4) + bytes([flag])
    with pytest.raises(DecodeError):
        BlockUndo.deserialize(data)


@pytest.mark.parametrize("cls", [Transaction, Block, BlockHeader])
@MANY
@given(data=st.one_of(st.binary(max_size=200), st.binary(min_size=80, max_size=80)))
@example(data=b"")
@example(data=bytes(10))
@example(data=b"\xff" * 100)
def test_random_bytes_decode_canonically_or_are_rejected(cls, data):
    _decodes_canonically_or_rejects(cls.deserialize, cls.serialize, data)


@MANY
@given(data=st.builds(lambda n, rest: bytes([n]) + rest, st.integers(0, 5), st.binary(min_size=33, max_size=200)))
def test_random_bytes_as_block_undo(data):
    # A small leading count, so random bytes reach the coin records instead of all failing as truncated.
    _decodes_canonically_or_rejects(BlockUndo.deserialize, BlockUndo.serialize, data)


# The three non-minimal forms: (prefix byte, width, smallest value that needs it).
_WIDE_FORMS = [(0xFD, 2, 0xFD), (0xFE, 4, 0x10000), (0xFF, 8, 0x100000000)]


@pytest.mark.parametrize(("prefix", "width", "minimum"), _WIDE_FORMS)
@SOME
@given(data=st.data())
def test_non_minimal_compact_size_is_rejected(prefix, width, minimum, data):
    n = data.draw(st.integers(0, minimum - 1))
    encoded = bytes([prefix]) + n.to_bytes(width, "little")
    with pytest.raises(DecodeError):
        Reader(encoded).compact_size()


@pytest.mark.parametrize("encoded", [b"\xfd\x05\x00", b"\xfd\xfc\x00", b"\xfe\xff\xff\x00\x00", b"\xff" + bytes(8)])
def test_non_minimal_compact_size_literal(encoded):
    with pytest.raises(DecodeError):
        Reader(encoded).compact_size()


@SOME
@given(tx=transactions, data=st.data())
def test_non_minimal_count_in_a_transaction_is_rejected(tx, data):
    """A valid transaction with its input count re-encoded in a longer form no longer decodes."""
    raw = tx.serialize()
    n = len(tx.inputs)
    assert raw[4] == n  # the strategy keeps counts below 0xfd
    prefix, width, _ = data.draw(st.sampled_from(_WIDE_FORMS))
    longer = raw[:4] + bytes([prefix]) + n.to_bytes(width, "little") + raw[5:]
    with pytest.raises(DecodeError):
        Transaction.deserialize(longer)


@MANY
@given(n=st.one_of(st.integers(0, 0x20000), st.integers(0, 2**64 - 1)))
@example(n=0xFC)
@example(n=0xFD)
@example(n=0xFFFF)
@example(n=0x10000)
@example(n=0xFFFFFFFF)
@example(n=0x100000000)
@example(n=2**64 - 1)
def test_compact_size_round_trip_is_minimal(n):
    raw = Writer().compact_size(n).getvalue()
    expected_len = 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9
    assert len(raw) == expected_len
    r = Reader(raw)
    assert r.compact_size() == n
    r.end()


def test_oversized_field_is_rejected():
    """A public key or signature longer than MAX_FIELD_BYTES is refused when decoding."""
    raw = Writer().raw(bytes(36)).var_bytes(bytes(MAX_FIELD_BYTES + 1)).var_bytes(b"").getvalue()
    with pytest.raises(DecodeError):
        _txin_de(raw)


# ---------------------------------------------------------------------------------------------------
# 3. Merkle proofs
# ---------------------------------------------------------------------------------------------------

leaf_lists = st.lists(hashes32, min_size=1, max_size=70, unique=True)


@st.composite
def leaves_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(leaf_lists)
    return leaves, draw(st.integers(0, len(leaves) - 1))


@FEW
@given(leaves=leaf_lists)
@example(leaves=[bytes(32)])
@example(leaves=[bytes([i]) * 32 for i in range(3)])
def test_every_index_verifies(leaves):
    root = merkle_root(leaves)
    depth = (len(leaves) - 1).bit_length()
    for i, leaf in enumerate(leaves):
        branch = merkle_branch(leaves, i)
        assert len(branch) == depth
        assert merkle_root_from_branch(leaf, branch, i) == root
        assert verify_merkle_branch(leaf, branch, i, root) is True


@SOME
@given(li=leaves_and_index(), other=hashes32)
def test_other_leaf_fails(li, other):
    leaves, i = li
    if other == leaves[i]:
        other = bytes(b ^ 0xFF for b in other)
    assert verify_merkle_branch(other, merkle_branch(leaves, i), i, merkle_root(leaves)) is False


@FEW
@given(li=leaves_and_index())
@example(li=([bytes([i]) * 32 for i in range(3)], 2))  # odd level: leaf 2 is paired with itself
@example(li=([bytes([i]) * 32 for i in range(5)], 4))
def test_other_valid_index_fails(li):
    leaves, i = li
    branch, root = merkle_branch(leaves, i), merkle_root(leaves)
    for j in range(len(leaves)):
        if j != i:  # leaves are distinct, so leaves[j] != leaves[i]
            assert verify_merkle_branch(leaves[i], branch, j, root) is False


@FEW
@given(li=leaves_and_index())
@example(li=([bytes([i]) * 32 for i in range(3)], 2))
def test_any_bit_flip_in_branch_fails(li):
    leaves, i = li
    branch, root = merkle_branch(leaves, i), merkle_root(leaves)
    for k in range(len(branch)):
        for bit in range(256):
            bad = list(branch)
            bad[k] = (int.from_bytes(bad[k], "big") ^ (1 << bit)).to_bytes(32, "big")
            assert verify_merkle_branch(leaves[i], bad, i, root) is False


@SOME
@given(li=leaves_and_index(), other_root=hashes32)
def test_other_root_fails(li, other_root):
    leaves, i = li
    root = merkle_root(leaves)
    if other_root == root:
        other_root = bytes(b ^ 0x01 for b in other_root)
    assert verify_merkle_branch(leaves[i], merkle_branch(leaves, i), i, other_root) is False


@SOME
@given(li=leaves_and_index(), data=st.data())
def test_index_out_of_branch_range_fails(li, data):
    """Negative indexes and indexes with bits above the branch depth are refused, not wrapped."""
    leaves, i = li
    branch, root = merkle_branch(leaves, i), merkle_root(leaves)
    bad = data.draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=1 << len(branch))))
    assert verify_merkle_branch(leaves[i], branch, bad, root) is False


@SOME
@given(li=leaves_and_index(), data=st.data())
def test_shortened_or_lengthened_branch_fails(li, data):
    leaves, i = li
    branch, root = merkle_branch(leaves, i), merkle_root(leaves)
    if branch and data.draw(st.booleans()):
        bad = branch[:-1]
    else:
        bad = [*branch, data.draw(hashes32)]
    assert verify_merkle_branch(leaves[i], bad, i, root) is False


# ---------------------------------------------------------------------------------------------------
# 4. Base58Check and addresses
# ---------------------------------------------------------------------------------------------------

payloads = st.builds(lambda zeros, rest: bytes(zeros) + rest, st.integers(0, 5), st.binary(max_size=40))


@MANY
@given(payloads)
@example(b"")
@example(bytes(5))
def test_base58_round_trip_and_leading_ones(payload):
    text = base58_encode(payload)
    zeros = len(payload) - len(payload.lstrip(b"\0"))
    assert len(text) - len(text.lstrip("1")) == zeros
    assert set(text) <= set(B58_ALPHABET)
    assert base58_decode(text) == payload


@MANY
@given(payloads)
@example(b"")
@example(bytes(3))
def test_base58check_round_trip(payload):
    text = base58check_encode(payload)
    zeros = len(payload) - len(payload.lstrip(b"\0"))
    assert text.startswith("1" * zeros)
    assert base58check_decode(text) == payload


@MANY
@given(payload=payloads, data=st.data())
def test_base58check_single_substitution_is_rejected(payload, data):
    text = base58check_encode(payload)
    pos = data.draw(st.integers(0, len(text) - 1))
    new = data.draw(st.sampled_from(B58_ALPHABET).filter(lambda c: c != text[pos]))
    with pytest.raises(DecodeError):
        base58check_decode(text[:pos] + new + text[pos + 1 :])


@SOME
@given(payload=payloads, data=st.data())
def test_base58check_foreign_character_is_rejected(payload, data):
    text = base58check_encode(payload)
    pos = data.draw(st.integers(0, len(text)))
    bad = data.draw(st.sampled_from("0OIl+/ -_"))
    with pytest.raises(DecodeError):
        base58check_decode(text[:pos] + bad + text[pos:])


@pytest.mark.parametrize(("params", "other"), [(MAIN, REGTEST), (REGTEST, MAIN)])
@SOME
@given(pubkey_hash=hashes20)
def test_address_round_trip_and_network(params, other, pubkey_hash):
    address = address_from_pubkey_hash(pubkey_hash, params.address_version)
    assert pubkey_hash_from_address(address, params.address_version) == pubkey_hash
    with pytest.raises(DecodeError):
        pubkey_hash_from_address(address, other.address_version)


@SOME
@given(body=st.binary(max_size=40).filter(lambda b: len(b) != 20), version=st.integers(0, 255))
def test_address_with_wrong_payload_length_is_rejected(body, version):
    with pytest.raises(DecodeError):
        pubkey_hash_from_address(base58check_encode(bytes([version]) + body), version)


# ---------------------------------------------------------------------------------------------------
# 5. Compact bits
# ---------------------------------------------------------------------------------------------------

targets = st.one_of(
    st.integers(1, 2**256 - 1),
    st.integers(1, 2**32),
    st.integers(0, 255).map(lambda k: 1 << k),  # powers of two: the sign-bit byte shift
    st.integers(1, 32).map(lambda n: 256**n - 1),  # all ones
)


@MANY
@given(targets)
@example(1)
@example(0x7FFFFF)
@example(0x800000)
@example(2**255)
@example(2**256 - 1)
def test_compact_bits_lose_little_and_never_round_up(t):
    bits = target_to_bits(t)
    assert 0 <= bits < 2**32
    back = bits_to_target(bits)
    assert back <= t
    assert (t - back) << 15 < t  # relative loss below 2^-15 (the mantissa keeps at least 16 significant bits)
    assert target_to_bits(back) == bits  # canonical bits survive the round trip
    assert bits_to_target(target_to_bits(back)) == back


@SOME
@given(targets)
def test_compact_bits_are_exact_for_small_mantissas(t):
    """A target whose significant bits fit the mantissa is encoded without loss.

    The mantissa is the top 3 bytes, or the top 2 when the third would set the sign bit (0x00800000).
    """
    size = (t.bit_length() + 7) // 8
    kept = 2 if (t >> (8 * size - 8)) & 0x80 else 3
    drop = max(0, 8 * (size - kept))
    exact = (t >> drop) << drop
    assert bits_to_target(target_to_bits(exact)) == exact


@MANY
@given(u32s)
def test_bits_to_target_in_range_or_value_error(bits):
    try:
        target = bits_to_target(bits)
    except ValueError:
        return
    assert 0 <= target < 2**256


@SOME
@given(transactions, hashes32)
def test_signature_hashes_of_all_inputs_equal_each_input_s_own(tx, genesis_hash):
    """The shared-prefix shortcut gives exactly the digest each input signs."""
    assert signature_hashes(tx, genesis_hash) == [signature_hash(tx, i, genesis_hash) for i in range(len(tx.inputs))]
