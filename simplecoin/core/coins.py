"""Coins (unspent outputs) and the undo data that puts them back (Bitcoin: coins.h, undo.h)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from simplecoin.core.encoding import Reader, Writer
from simplecoin.core.errors import DecodeError
from simplecoin.core.primitives import OutPoint, TxOut


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output and where it was created (Bitcoin: Coin)."""

    amount: int
    pubkey_hash: bytes
    height: int
    is_coinbase: bool

    def write(self, w: Writer) -> None:
        w.i64(self.amount).raw(self.pubkey_hash).u32(self.height).raw(b"\x01" if self.is_coinbase else b"\x00")

    @classmethod
    def read(cls, r: Reader) -> Coin:
        amount, pubkey_hash, height, flag = r.i64(), r.raw(20), r.u32(), r.raw(1)
        if flag not in (b"\x00", b"\x01"):
            raise DecodeError("coinbase flag must be 0 or 1")
        return cls(amount, pubkey_hash, height, flag == b"\x01")

    @classmethod
    def from_output(cls, txout: TxOut, height: int, is_coinbase: bool) -> Coin:
        """The coin an output becomes once its transaction is in a block at `height` (or pending for it)."""
        return cls(txout.amount, txout.pubkey_hash, height, is_coinbase)


class CoinView(Protocol):
    """Read access to a UTXO set."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...


@dataclass(frozen=True)
class BlockUndo:
    """The coins a block spent, in the order it spent them: enough to disconnect it without a rescan."""

    spent: tuple[Coin, ...]

    def serialize(self) -> bytes:
        w = Writer().compact_size(len(self.spent))
        for coin in self.spent:
            coin.write(w)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> BlockUndo:
        r = Reader(data)
        spent = tuple(Coin.read(r) for _ in range(r.length()))
        r.end()
        return cls(spent)
