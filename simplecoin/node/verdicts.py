"""What the node remembers of the checks it made, so the same bytes are not checked twice.

Both are keyed by a hash that commits to everything checked: a txid covers the signatures, keys and spent
outpoints; a block hash covers its transactions (through the merkle root, which `check_block` verified).
"""

from __future__ import annotations

from collections.abc import Iterable

from simplecoin.bounded import BoundedDict
from simplecoin.core.errors import ValidationError
from simplecoin.core.primitives import Transaction

SIGNATURE_CACHE_SIZE = 200_000  # txids whose signatures were verified (Bitcoin: the script cache)
RECENT_REJECTS_SIZE = 50_000  # txs and blocks refused for a bad signature (Bitcoin: m_recent_rejects)


class SignatureCache(BoundedDict[bytes, None]):
    """Txids whose signatures passed; `connect_block` and the pool skip them."""

    def __init__(self) -> None:
        super().__init__(SIGNATURE_CACHE_SIZE)

    def unverified(self, txs: Iterable[Transaction]) -> list[Transaction]:
        """The transactions whose signatures have not been verified yet."""
        return [tx for tx in txs if tx.txid not in self]

    def add(self, txids: Iterable[bytes]) -> None:
        for txid in txids:
            self[txid] = None


class RecentRejects(BoundedDict[bytes, ValidationError]):
    """Txs and blocks refused for a bad signature, with the error: their hash commits to it, so they stay refused."""

    def __init__(self) -> None:
        super().__init__(RECENT_REJECTS_SIZE)

    def check(self, item_hash: bytes) -> None:
        """Raise the remembered error of a tx or block refused before, at no cost."""
        error = self.get(item_hash)
        if error is not None:
            raise type(error)(error.reason, f"{error.detail} (refused before)")
