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
from dataclasses import dataclass
from functools import cached_property

from simplecoin.core import txcodec_fast
from simplecoin.core.encoding import Reader, Writer
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash_hex, merkle_root, sha256d

NULL_HASH = bytes(32)
NULL_INDEX = 0xFFFFFFFF
HEADER_SIZE = 80
_HEADER_LAYOUT = struct.Struct("<i32s32sIII")  # version, prev_hash, merkle_root, time, bits, nonce
MAX_FIELD_BYTES = 1_000  # public keys and signatures are far smaller; stops a length prefix asking for gigabytes


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

    def __str__(self) -> str:
        return f"{hash_hex(self.txid)}:{self.index}"


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
        """Decode one transaction: the common kind by txcodec_fast (the same value, faster, and its txid at
        hand), anything else -- every malformed case included -- by `read_plain`."""
        decoded = txcodec_fast.read_common_tx(r.buffer, r.pos)
        if decoded is None:
            return cls.read_plain(r)
        tx, end = decoded
        r.skip_to(end)
        return tx

    @classmethod
    def read_plain(cls, r: Reader) -> Transaction:
        """Decode one transaction with the strict Reader, which names the fault of malformed bytes."""
        version = r.i32()
        inputs = tuple(TxIn.read(r) for _ in range(r.length()))
        outputs = tuple(TxOut.read(r) for _ in range(r.length()))
        return cls(version, inputs, outputs, r.u32())

    @classmethod
    def deserialize(cls, data: bytes) -> Transaction:
        r = Reader(data)
        tx = cls.read(r)
        r.end()
        return tx


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
        # One struct call: a node answers a light wallet's first run with every header of the chain.
        return _HEADER_LAYOUT.pack(self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce)

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
