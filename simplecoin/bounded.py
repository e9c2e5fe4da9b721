"""A dict with a size limit that forgets its oldest entries: every cache and table a stranger can fill uses it.

Bitcoin Core writes the bound and the eviction rule next to each container (`MAX_ORPHAN_TRANSACTIONS`,
`m_recent_rejects`' size, addrman's buckets). Here the bound is the constructor's argument and the rule is
always the same: past `limit`, the entry written or touched longest ago goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(OrderedDict[K, V]):
    """An OrderedDict of at most `limit` entries. Writing a key makes it the newest; past the limit the oldest
    are dropped. `touch` makes a key the newest without writing it (a least-recently-used cache)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a bounded dict needs room for at least one entry")
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)

    def touch(self, key: K) -> None:
        """Make `key` the newest (KeyError if absent)."""
        self.move_to_end(key)
