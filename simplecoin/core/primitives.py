"""The wire types: outpoints, inputs, outputs, transactions, block headers and blocks.

Each type is immutable and carries its own codec. Ids are SHA-256d of the serialized bytes, never of JSON.

Transaction layout (all integers little-endian; `n:` is a CompactSize count):

    version i32 | n: inputs | n: outputs | locktime u32
    input  = prev txid (32) | prev index u32 | n: public key | n: signature
    output = amount i64 (base units) | public-key hash (20)

A coinbase has one input whose outpoint is null (zero txid, index 0xffffffff), an empty public key and, in
the signature field, the "coinbase data": the block height (u32) then up to 96 free bytes (extra nonce,
a message) -- the same place Bitcoin puts them (its coinbase scriptSig, BIP34).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from simplecoin.core.encoding import Reader, Writer
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash_hex, merkle_root, sha256d

NULL_HASH = bytes(32)
NULL_INDEX = 0xFFFFFFFF
HEADER_SIZE = 80
MAX_FIELD_BYTES = 1_000  # public keys and signatures are far smaller; stops a length prefix asking for gigabytes


_T = TypeVar("_T")


class cached_property(Generic[_T]):  # lower case: a drop-in for functools.cached_property
    """functools.cached_property without the lock Python 3.11 takes on every first access (a third of the
    cost of a fresh transaction's txid); the value types are immutable, so two threads that race compute the
    same bytes. After the first access the instance's __dict__ entry shadows this descriptor.
    """

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> _T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.func(instance)
        return value


def _hash32(value: bytes, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes")
    return value


def _uint(value: int, bits: int, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in [0, 2^{bits})")
    return value


@dataclass(frozen=True, slots=True)
class OutPoint:
    """A reference to one output of an earlier transaction (Bitcoin: COutPoint)."""

    txid: bytes
    index: int

    def __post_init__(self) -> None:
        _hash32(self.txid, "txid")
        _uint(self.index, 32, "output index")

    def is_null(self) -> bool:
        return self.txid == NULL_HASH and self.index == NULL_INDEX

    @classmethod
    def _decoded(cls, txid: bytes, index: int) -> OutPoint:
        """An outpoint whose fields a decoder already bounded (32 bytes, a u32): no checks to repeat."""
        outpoint = _new(cls)
        _set_txid(outpoint, txid)
        _set_index(outpoint, index)
        return outpoint

    def __str__(self) -> str:
        return f"{hash_hex(self.txid)}:{self.index}"


_new = object.__new__
_set_txid = OutPoint.txid.__set__  # type: ignore[attr-defined]  # the slots' descriptors
_set_index = OutPoint.index.__set__  # type: ignore[attr-defined]

NULL_OUTPOINT = OutPoint(NULL_HASH, NULL_INDEX)


@dataclass(frozen=True, slots=True)
class TxIn:
    """Spends `prevout`, proving ownership with `pubkey` and `signature` (a coinbase: data instead)."""

    prevout: OutPoint
    pubkey: bytes
    signature: bytes

    def write(self, w: Writer, with_signature: bool = True) -> None:
        w.raw(self.prevout.txid).u32(self.prevout.index).var_bytes(self.pubkey)
        if with_signature:
            w.var_bytes(self.signature)

    @classmethod
    def read(cls, r: Reader) -> TxIn:
        prevout = OutPoint(r.raw(32), r.u32())
        return cls(prevout, r.var_bytes(MAX_FIELD_BYTES), r.var_bytes(MAX_FIELD_BYTES))


@dataclass(frozen=True, slots=True)
class TxOut:
    """Pays `amount` base units to whoever holds the key whose HASH160 is `pubkey_hash`."""

    amount: int
    pubkey_hash: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise ValueError("amount must be an integer number of base units")
        if not -(1 << 63) <= self.amount < 1 << 63:
            raise ValueError("amount does not fit in 64 bits")
        if not isinstance(self.pubkey_hash, bytes) or len(self.pubkey_hash) != 20:
            raise ValueError("pubkey_hash must be 20 bytes")

    def write(self, w: Writer) -> None:
        w.i64(self.amount).raw(self.pubkey_hash)

    @classmethod
    def read(cls, r: Reader) -> TxOut:
        return cls(r.i64(), r.raw(20))

    @classmethod
    def _decoded(cls, amount: int, pubkey_hash: bytes) -> TxOut:
        """An output whose fields a decoder already bounded (an i64, 20 bytes): no checks to repeat."""
        txout = _new(cls)
        _set_amount(txout, amount)
        _set_pubkey_hash(txout, pubkey_hash)
        return txout


_set_amount = TxOut.amount.__set__  # type: ignore[attr-defined]
_set_pubkey_hash = TxOut.pubkey_hash.__set__  # type: ignore[attr-defined]
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_SHORT_LENGTH = 0xFD  # a CompactSize below this is the length itself, in one byte, and always canonical


@dataclass(frozen=True)
class Transaction:
    """A transfer of value (Bitcoin: CTransaction)."""

    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or not -(1 << 31) <= self.version < 1 << 31:
            raise ValueError("version must fit in int32")
        _uint(self.locktime, 32, "locktime")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def _write(self, w: Writer, with_signatures: bool) -> None:
        w.i32(self.version).compact_size(len(self.inputs))
        for txin in self.inputs:
            txin.write(w, with_signatures)
        w.compact_size(len(self.outputs))
        for txout in self.outputs:
            txout.write(w)
        w.u32(self.locktime)

    def serialize(self) -> bytes:
        return self._raw

    @cached_property
    def _raw(self) -> bytes:
        w = Writer()
        self._write(w, with_signatures=True)
        return w.getvalue()

    @cached_property
    def unsigned_bytes(self) -> bytes:
        """The serialization without signatures: what every input's signature commits to."""
        spans = self.__dict__.get("_signature_spans")
        if spans is not None:  # decoded: the bytes between the signature fields are the same bytes
            raw, parts, at = self._raw, [], 0
            for start, end in spans:
                parts.append(raw[at:start])
                at = end
            parts.append(raw[at:])
            return b"".join(parts)
        w = Writer()
        self._write(w, with_signatures=False)
        return w.getvalue()

    @cached_property
    def txid(self) -> bytes:
        return sha256d(self._raw)

    @property
    def size(self) -> int:
        return len(self._raw)

    def is_coinbase(self) -> bool:
        inputs = self.inputs  # OutPoint.is_null inlined: this runs several times per tx of every block
        return len(inputs) == 1 and inputs[0].prevout.index == NULL_INDEX and inputs[0].prevout.txid == NULL_HASH

    @classmethod
    def read(cls, r: Reader) -> Transaction:
        """Decode one transaction; it keeps the bytes it came from as its serialization (strict decoding makes
        them the only one), so its txid and signature hash need no re-serialization."""
        start = r.pos
        fast = _decode_common_tx(r.buffer, start)
        if fast is not None:
            tx, end = fast
            r.skip_to(end)
            return tx
        version = r.i32()  # anything unusual, including every malformed case: the Reader names the fault
        inputs = tuple(TxIn.read(r) for _ in range(r.length()))
        outputs = tuple(TxOut.read(r) for _ in range(r.length()))
        return cls(version, inputs, outputs, r.u32())

    @classmethod
    def deserialize(cls, data: bytes) -> Transaction:
        r = Reader(data)
        tx = cls.read(r)
        r.end()
        return tx


def _decode_common_tx(data: bytes, pos: int) -> tuple[Transaction, int] | None:
    """The transaction at data[pos:] and where it ends, when every length fits in one byte (all our own
    transactions); None for anything else -- longer lengths, truncation -- which `Transaction.read` then
    decodes with the strict Reader. It accepts nothing the Reader refuses: one-byte lengths are canonical
    and below every limit, and a slice cut short by the end of the data leaves `pos` past the end.
    """
    start = pos
    try:
        version = _I32(data, pos)[0]
        count = data[pos + 4]
        pos += 5
        if count >= _SHORT_LENGTH:
            return None
        inputs = []
        spans = []  # where each signature field (its length byte included) sits, for `unsigned_bytes`
        for _ in range(count):
            prevout = OutPoint._decoded(data[pos : pos + 32], _U32(data, pos + 32)[0])
            size = data[pos + 36]
            pos += 37
            if size >= _SHORT_LENGTH:
                return None
            pubkey = data[pos : pos + size]
            pos += size
            size = data[pos]
            if size >= _SHORT_LENGTH:
                return None
            spans.append((pos - start, pos + 1 + size - start))
            signature = data[pos + 1 : pos + 1 + size]
            pos += 1 + size
            inputs.append(TxIn(prevout, pubkey, signature))
        count = data[pos]
        pos += 1
        if count >= _SHORT_LENGTH:
            return None
        outputs = []
        for _ in range(count):
            outputs.append(TxOut._decoded(_I64(data, pos)[0], data[pos + 8 : pos + 28]))
            pos += 28
        locktime = _U32(data, pos)[0]
        pos += 4
    except (IndexError, struct.error):  # ran off the end
        return None
    if pos > len(data):
        return None
    raw = data[start:pos]
    tx = _new(Transaction)
    tx.__dict__.update(
        version=version,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        locktime=locktime,
        _raw=raw,
        txid=sha256d(raw),  # every decoded tx needs it (merkle root, indexes); the cached property's value
        _signature_spans=spans,
    )
    return tx, pos


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """Bitcoin's 80-byte block header; hashes in internal byte order."""

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or not -(1 << 31) <= self.version < 1 << 31:
            raise ValueError("version must fit in int32")
        _hash32(self.prev_hash, "prev_hash")
        _hash32(self.merkle_root, "merkle_root")
        _uint(self.time, 32, "time")
        _uint(self.bits, 32, "bits")
        _uint(self.nonce, 32, "nonce")

    def serialize(self) -> bytes:
        w = Writer().i32(self.version).raw(self.prev_hash).raw(self.merkle_root)
        return w.u32(self.time).u32(self.bits).u32(self.nonce).getvalue()

    @classmethod
    def read(cls, r: Reader) -> BlockHeader:
        return cls(r.i32(), r.raw(32), r.raw(32), r.u32(), r.u32(), r.u32())

    @classmethod
    def deserialize(cls, data: bytes) -> BlockHeader:
        if len(data) != HEADER_SIZE:
            raise DecodeError(f"a block header is {HEADER_SIZE} bytes, got {len(data)}")
        return cls.read(Reader(data))

    def hash(self) -> bytes:
        return sha256d(self.serialize())

    def hash_hex(self) -> str:
        return hash_hex(self.hash())


@dataclass(frozen=True)
class Block:
    """A header and its transactions, coinbase first."""

    header: BlockHeader
    txs: tuple[Transaction, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "txs", tuple(self.txs))

    @cached_property
    def hash(self) -> bytes:
        return self.header.hash()

    def serialize(self) -> bytes:
        return self._raw

    @cached_property
    def _raw(self) -> bytes:
        w = Writer().raw(self.header.serialize()).compact_size(len(self.txs))
        for tx in self.txs:
            w.raw(tx.serialize())
        return w.getvalue()

    @cached_property
    def size(self) -> int:
        return len(self._raw)

    def compute_merkle_root(self) -> bytes:
        return merkle_root([tx.txid for tx in self.txs])

    @classmethod
    def deserialize(cls, data: bytes) -> Block:
        r = Reader(data)
        header = BlockHeader.read(r)
        txs = tuple(Transaction.read(r) for _ in range(r.length()))
        r.end()
        block = cls(header, txs)
        block.__dict__["_raw"] = r.buffer  # what was decoded is what serialize() would write
        return block
