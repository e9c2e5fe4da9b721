"""A fast decoder for the common transaction, beside the plain one in primitives.py (`Transaction.read_plain`).

Nearly every transaction has lengths that fit in one byte (all our own do), and decoding them is most of
decoding a block. This reads them with struct and slices instead of the Reader, builds the value types
without repeating the checks the byte layout already makes (a 32-byte txid, a u32, an i64, 20 bytes), and
keeps what the decoding gives for free: the bytes themselves (the serialization: strict decoding makes them
the only one), their txid and the bytes without signatures (what every signature commits to).

It decodes exactly what the plain decoder does, to an equal value, and gives up (None) on anything else --
a longer length, bytes cut short -- which the plain decoder then decodes or refuses with its reason.
tests/test_txcodec_fast.py checks both on every transaction of the test chains and on mutated bytes.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from simplecoin.core import primitives  # a module, not its names: primitives imports this module too
from simplecoin.core.hashing import sha256d

if TYPE_CHECKING:
    from simplecoin.core.primitives import Transaction

_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_SHORT_LENGTH = 0xFD  # a CompactSize below this is the length itself, in one byte, and always canonical
_new = object.__new__
_set = object.__setattr__  # past the frozen dataclasses' __setattr__, as their own __init__ does


def read_common_tx(data: bytes, pos: int) -> tuple[Transaction, int] | None:
    """The transaction at data[pos:] and where it ends, when every length fits in one byte; else None.

    It accepts nothing the plain decoder refuses: one-byte lengths are canonical and below every limit, and
    a slice cut short by the end of the data leaves `pos` past the end, which is checked last.
    """
    OutPoint, TxIn, TxOut = primitives.OutPoint, primitives.TxIn, primitives.TxOut
    start = pos
    try:
        version = _I32(data, pos)[0]
        count = data[pos + 4]
        pos += 5
        if count >= _SHORT_LENGTH:
            return None
        inputs = []
        unsigned = []  # the pieces between the signature fields (each with its length byte)
        piece = start
        for _ in range(count):
            prevout = _new(OutPoint)
            _set(prevout, "txid", data[pos : pos + 32])
            _set(prevout, "index", _U32(data, pos + 32)[0])
            size = data[pos + 36]
            pos += 37
            if size >= _SHORT_LENGTH:
                return None
            pubkey = data[pos : pos + size]
            pos += size
            size = data[pos]
            if size >= _SHORT_LENGTH:
                return None
            unsigned.append(data[piece:pos])
            txin = _new(TxIn)
            _set(txin, "prevout", prevout)
            _set(txin, "pubkey", pubkey)
            _set(txin, "signature", data[pos + 1 : pos + 1 + size])
            inputs.append(txin)
            pos += 1 + size
            piece = pos
        count = data[pos]
        pos += 1
        if count >= _SHORT_LENGTH:
            return None
        outputs = []
        for _ in range(count):
            txout = _new(TxOut)
            _set(txout, "amount", _I64(data, pos)[0])
            _set(txout, "pubkey_hash", data[pos + 8 : pos + 28])
            outputs.append(txout)
            pos += 28
        locktime = _U32(data, pos)[0]
        pos += 4
    except (IndexError, struct.error):  # ran off the end
        return None
    if pos > len(data):
        return None
    raw = data[start:pos]
    unsigned.append(data[piece:pos])
    tx = _new(primitives.Transaction)
    tx.__dict__.update(  # the dataclass fields, then the cached properties' values
        version=version,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        locktime=locktime,
        _raw=raw,
        txid=sha256d(raw),
        unsigned_bytes=b"".join(unsigned),
    )
    return tx, pos
