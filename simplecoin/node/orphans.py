"""Orphan blocks: blocks whose parent is not known yet, kept in memory until it arrives (Bitcoin: mapOrphanBlocks).

Anyone can send them, so the pool is bounded three ways: by count (adding an orphan, refreshing /status and a
parent's arrival walk the pool under the node lock), by bytes in all, and by bytes per source (one source could
otherwise fill it with 1 MB blocks). Past any bound the oldest go first (of that source, if it is over).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from simplecoin.bounded import BoundedDict
from simplecoin.core.hashing import hash_hex
from simplecoin.core.primitives import Block

log = logging.getLogger(__name__)

MAX_ORPHAN_BYTES = 8_000_000
MAX_ORPHAN_BYTES_PER_SOURCE = 2_000_000
MAX_ORPHANS = 100  # 8 MB of tiny orphans would be ~26,000 to walk


class OrphanBlocks(BoundedDict[bytes, tuple[Block, str]]):
    """Orphan blocks by hash, each with its source (a peer URL or ""), oldest first."""

    def __init__(self) -> None:
        super().__init__(MAX_ORPHANS)

    def add(self, block: Block, source: str) -> None:
        self[block.hash] = (block, source)
        self._trim(lambda src: src == source, MAX_ORPHAN_BYTES_PER_SOURCE)
        self._trim(lambda src: True, MAX_ORPHAN_BYTES)
        log.info("orphan block %s: parent %s unknown", block.header.hash_hex(), hash_hex(block.header.prev_hash))

    def _trim(self, counts: Callable[[str], bool], limit: int) -> None:
        """Drop the oldest orphans among those whose source `counts` until theirs are at most `limit` bytes."""
        mine = [(h, block.size) for h, (block, src) in self.items() if counts(src)]
        total = sum(size for _, size in mine)
        for block_hash, size in mine:
            if total <= limit:
                break
            del self[block_hash]
            total -= size

    def total_bytes(self) -> int:
        return sum(block.size for block, _ in self.values())

    def take_children(self, parent_hash: bytes) -> list[Block]:
        """Remove and return the orphans whose parent is `parent_hash`."""
        children = [block for block, _ in self.values() if block.header.prev_hash == parent_hash]
        for block in children:
            del self[block.hash]
        return children
