"""A stranger's headers checked on a view of the block index, by the index's own rules.

Headers presync (Bitcoin: PR 25717) checks a peer's headers before any of its blocks is downloaded. It must ask
exactly what the node asks of a block's header, so it asks the same functions: `BlockIndex.next_bits`,
`BlockIndex.median_time_past` and `validation.check_header_contextual`. A `HeaderView` is a `BlockIndex` whose
entries fall back to the node's: the headers checked are added to the view alone, so the rules see the chain they
would extend and the node's index is left as it was.
"""

from __future__ import annotations

from simplecoin.core.chain import BlockIndex, IndexEntry
from simplecoin.core.primitives import BlockHeader
from simplecoin.core.validation import check_header_contextual


class HeaderView(BlockIndex):
    """A block index over `base`: reads fall through to it, additions stay here. Read it under `base`'s lock.

    It copies nothing of the base (its own rows are numbered above the base's, see `chain._Blocks`), so it is
    as cheap at a million blocks as at ten.
    """

    def __init__(self, base: BlockIndex) -> None:
        super().__init__(base.params, base=base)

    def add_checked(self, header: BlockHeader, now: int) -> IndexEntry:
        """Check `header` in context on its parent (in the view) and add it: BlockValidationError if it fails.

        The parent must be in the view (KeyError otherwise); proof of work is checked by the caller beforehand.
        A header the view knows already (a block the node stored, whose bytes it must fetch again because they
        were damaged on its disk) passed these checks when it was added: its entry is the answer.
        """
        known = self.entries.get(header.hash())
        if known is not None:
            return known
        parent = self.entries[header.prev_hash]
        check_header_contextual(
            header,
            expected_bits=self.next_bits(parent),
            median_time_past=self.median_time_past(parent),
            now=now,
            height=parent.height + 1,
            params=self.params,
        )
        entry = self.make_entry(header)
        self.add(entry)
        return entry
