"""The block index: every known block with its height and cumulative work, and the choice of best chain.

Pure bookkeeping: no disk. The node loads the index from the store and keeps both in step.
The best chain is the one with the most cumulative work (never the most blocks); among equals the one seen
first wins, so a node does not flip between two tips of the same work.

Compact by design (Bitcoin: CBlockIndex). A node knows every block since genesis, so a Python object per block
(a dataclass, its header, a dozen int objects) cost ~650 bytes each: 845 MB at a million blocks. Here a block is a
row id into columns (`_Blocks`): its hash and small machine integers in `array`s (height, parent, skip, time,
bits, work, status, arrival order), ~200 bytes in all. The whole header is kept too (80 bytes more) unless the
index is given a `read_header` (the node reads headers back from its store). An `IndexEntry` is made from a row
when asked for (`index[hash]`): a value, not the index's own state.

Glossary: a *row* is a block's position in the columns; a *view* (headerview.py) is an index over another one,
whose own rows are numbered from VIEW_FIRST_ID; *skip* is the row a block's skip pointer points to.

Every block keeps a skip pointer besides its parent (Bitcoin: pskip, GetSkipHeight), to an ancestor at a height
chosen so that any ancestor is reached in O(log n) jumps on any branch: `ancestor`, `locator`, `find_fork`,
`next_bits` (the ASERT anchor is the ancestor at the anchor height) cost the same at 1,000 and 1,000,000 blocks.
"""

from __future__ import annotations

import heapq
import struct
from array import array
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import islice

from simplecoin.core.errors import BlockValidationError
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import asert_target, bits_to_target, block_work, retarget, target_to_bits
from simplecoin.core.primitives import HEADER_SIZE, BlockHeader

NONE = -1  # the row id of "no such block" (a parent or skip target not in this index)
LOAD_CHUNK = 10_000  # stored rows taken at a time by BlockIndex.load
VIEW_FIRST_ID = 1 << 30  # a view's own rows are numbered from here, so the base index may grow meanwhile
_TIME_BITS = struct.Struct("<II")  # a header's time and bits, at bytes 68..76
_TIME_OFFSET = 68
_TIME_AND_BITS = slice(_TIME_OFFSET, _TIME_OFFSET + _TIME_BITS.size)  # of a serialized header
_PREV_HASH = slice(4, 36)
NO_PARENT = bytes(32)  # the prev_hash of a genesis header
_BIG_ENDIAN = struct.pack("=I", 1) != struct.pack("<I", 1)  # arrays are native; headers little-endian


class BlockStatus(IntEnum):
    """How far a stored block got."""

    STORED = 1  # passed the context-free and header checks; not yet connected
    VALID = 2  # connected to the UTXO set at least once
    INVALID = 3  # failed to connect, or descends from a block that did


HeaderReader = Callable[[bytes], BlockHeader]  # a block's header by its hash, from wherever its owner keeps it


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One block in the index (Bitcoin: CBlockIndex), as a value: made from the index's columns when asked for.

    What the rules need (time, bits) is at hand; the whole `header` is read when asked for, from the index's
    memory or, in the node, from the store (a node keeping a million headers in memory cost 80 MB).
    """

    hash: bytes
    height: int
    chain_work: int  # total work of the chain ending here
    status: BlockStatus
    seq: int  # arrival order: breaks ties between tips of equal work
    time: int
    bits: int
    prev_hash: bytes
    source: BlockHeader | HeaderReader = field(repr=False, compare=False)  # the header, or where to read it

    @classmethod
    def of(cls, header: BlockHeader, height: int, chain_work: int, status: BlockStatus, seq: int) -> IndexEntry:
        """The entry of a header in hand."""
        return cls(header.hash(), height, chain_work, status, seq, header.time, header.bits, header.prev_hash, header)

    @property
    def header(self) -> BlockHeader:
        source = self.source
        return source if isinstance(source, BlockHeader) else source(self.hash)

    def with_header(self) -> IndexEntry:
        """This entry with its header read now: for a reader outside the lock its source is guarded by."""
        return self if isinstance(self.source, BlockHeader) else replace(self, source=self.header)


@dataclass(frozen=True)
class ReorgResult:
    """What a change of tip did: the net change, so a block that went off and came back on is in neither list."""

    disconnected: tuple[bytes, ...] = ()  # blocks taken off the active chain, tip first
    connected: tuple[bytes, ...] = ()  # blocks put on it, in chain order
    invalid: tuple[tuple[bytes, BlockValidationError], ...] = ()  # blocks found invalid on the way, and why
    returned: tuple[bytes, ...] = ()  # txids of disconnected blocks that are pending again

    @classmethod
    def net(
        cls,
        disconnected: Sequence[bytes],
        connected: Sequence[bytes],
        invalid: Sequence[tuple[bytes, BlockValidationError]] = (),
        returned: Sequence[bytes] = (),
    ) -> ReorgResult:
        both = set(disconnected) & set(connected)
        return cls(
            tuple(h for h in disconnected if h not in both),
            tuple(h for h in connected if h not in both),
            tuple(invalid),
            tuple(returned),
        )

    def merged(self, later: ReorgResult) -> ReorgResult:
        """This change followed by `later`, as one net change."""
        return ReorgResult.net(
            self.disconnected + later.disconnected,
            self.connected + later.connected,
            self.invalid + later.invalid,
            self.returned + later.returned,
        )

    def error_for(self, block_hash: bytes) -> BlockValidationError | None:
        """Why `block_hash` was found invalid on the way, if it was."""
        return next((error for h, error in self.invalid if h == block_hash), None)


def locator_heights(tip_height: int) -> list[int]:
    """Heights back from the tip: ten dense, then gaps doubling, ending at genesis (Bitcoin: GetLocator).

    A peer answers with the headers after the first of these blocks on its own chain, so a short locator finds
    the fork point of chains of any length. The node's block index and the wallet's header chain both use it.
    """
    heights, height, step = [], tip_height, 1
    while height > 0:
        heights.append(height)
        if len(heights) >= 10:
            step *= 2
        height = max(height - step, 0)
    heights.append(0)
    return heights


def skip_height(height: int) -> int:
    """The height a block's skip pointer points to (Bitcoin: GetSkipHeight).

    Any height below works; this choice (clear the lowest set bit, twice for odd heights) makes every ancestor
    reachable in O(log n) jumps, from any block, and keeps the pointers of neighbouring heights far apart.
    """
    if height < 2:
        return 0
    if height & 1:
        lower = height - 1
        lower &= lower - 1
        return (lower & (lower - 1)) + 1
    return height & (height - 1)


@dataclass(frozen=True, slots=True)
class AsertAnchor:
    """What aserti3-2d needs of its anchor, the block just below the activation height."""

    height: int
    bits: int
    parent_time: int  # the anchor's parent's time: the anchor's own may be stamped anywhere its rules allowed


def required_bits(
    params: NetworkParams,
    height: int,
    prev_time: int,
    prev_bits: int,
    anchor: Callable[[], AsertAnchor],
    period_start_time: Callable[[int], int],
) -> int:
    """The bits a block at `height` must carry on a parent stamped `prev_time` with `prev_bits` (Bitcoin:
    GetNextWorkRequired; Bitcoin Cash's aserti3-2d from the activation height): the difficulty rule, stated once.

    The block index and the wallet's bulk header check (spv.py) both ask it; each finds what the rule needs its
    own way, and only when the rule needs it: `anchor()`, the ASERT anchor, and `period_start_time(h)`, the time
    of the block at height h on this chain (the first of a retarget period).
    """
    if params.uses_asert(height):
        fixed = anchor()
        target = asert_target(
            bits_to_target(fixed.bits),
            prev_time - fixed.parent_time,
            height - 1 - fixed.height,
            params.target_spacing,
            params.asert_half_life,
            params.pow_limit,
        )
        return target_to_bits(target)
    if params.no_retargeting or height % params.retarget_interval != 0:
        return prev_bits
    # Bitcoin measures the period from its first block, so it spans interval-1 gaps; kept for fidelity.
    timespan = prev_time - period_start_time(height - params.retarget_interval)
    return retarget(prev_bits, timespan, params.retarget_timespan, params.pow_limit)


class _Blocks:
    """The index's rows: one per block, in columns (a Python object per block costs ~5x the memory).

    A view's rows (`base` given) are numbered from VIEW_FIRST_ID and kept here; rows below are the base's, read
    through it, so a view costs nothing until headers are added to it and never changes its base.
    """

    def __init__(self, base: _Blocks | None = None, read_header: HeaderReader | None = None) -> None:
        self.base = base
        # The whole headers: kept here (80 bytes a row) unless their owner can read them back (the node's store).
        self.read_header = read_header
        self.headers: bytearray | None = None if read_header else bytearray()
        self.first_id = 0 if base is None else base.first_id + VIEW_FIRST_ID
        self.ids: MutableMapping[bytes, int] = {} if base is None else ChainMap({}, base.ids)
        self.hashes: list[bytes] = []
        self.times = array("I")
        self.bits = array("I")
        self.heights = array("i")
        self.parents = array("i")  # row id of the parent, NONE if it is not in the index
        self.skips = array("i")  # row id of the ancestor at skip_height(height), NONE if not in the index
        self.first_child = array("i")  # a row's children: its first child, then that one's next sibling...
        self.next_sibling = array("i")
        self.seqs = array("i")  # arrival order: a 32-bit count, 2 billion blocks
        self.statuses = bytearray()
        # Cumulative work in 8 bytes while it fits (a regtest chain's always does), else Python ints.
        self.works: MutableSequence[int] = array("Q")
        self.base_children: dict[int, list[int]] = {}  # a view's children of base rows (the base's are not changed)
        # The lowest height at or above the ASERT activation where a row's chain breaks the difficulty rule: set
        # only for rows whose chain does (a chain mined before the rule existed), so empty on an honest node.
        self.off_rule: MutableMapping[int, int] = {} if base is None else ChainMap({}, base.off_rule)

    def owner(self, row: int) -> tuple[_Blocks, int]:
        """The columns holding `row`, and its position in them."""
        blocks = self
        while row < blocks.first_id:
            blocks = blocks.base  # type: ignore[assignment] - rows below first_id exist only when there is a base
        return blocks, row - blocks.first_id

    def append(
        self, block_hash: bytes, header: bytes, height: int, parent: int, skip: int, work: int, status: int, seq: int
    ) -> int:
        row = self.first_id + len(self.hashes)
        self.ids[block_hash] = row
        self.hashes.append(block_hash)
        if self.headers is not None:
            self.headers += header
        time, bits = _TIME_BITS.unpack_from(header, _TIME_OFFSET)
        self.times.append(time)
        self.bits.append(bits)
        self.heights.append(height)
        self.parents.append(parent)
        self.skips.append(skip)
        self.first_child.append(NONE)
        self.next_sibling.append(NONE)
        self.seqs.append(seq)
        self.statuses.append(status)
        try:
            self.works.append(work)
        except OverflowError:
            self.works = list(self.works)
            self.works.append(work)
        if parent != NONE:
            self.link_child(parent, row)
        return row

    def link_child(self, parent: int, row: int) -> None:
        """Add `row` to `parent`'s children (kept in this view if the parent is the base's)."""
        if parent >= self.first_id:
            j = row - self.first_id
            p = parent - self.first_id
            self.next_sibling[j], self.first_child[p] = self.first_child[p], row
        else:
            self.base_children.setdefault(parent, []).append(row)

    def children(self, row: int) -> list[int]:
        blocks, j = self.owner(row)
        found = []
        child = blocks.first_child[j]
        while child != NONE:
            found.append(child)
            owner, k = self.owner(child)
            child = owner.next_sibling[k]
        if self.base is not None:
            found += self.base_children.get(row, [])
        return found

    def height(self, row: int) -> int:
        blocks, j = self.owner(row)
        return blocks.heights[j]

    def parent(self, row: int) -> int:
        blocks, j = self.owner(row)
        return blocks.parents[j]

    def skip(self, row: int) -> int:
        blocks, j = self.owner(row)
        return blocks.skips[j]

    def hash(self, row: int) -> bytes:
        blocks, j = self.owner(row)
        return blocks.hashes[j]

    def work(self, row: int) -> int:
        blocks, j = self.owner(row)
        return blocks.works[j]

    def time_bits(self, row: int) -> tuple[int, int]:
        blocks, j = self.owner(row)
        return blocks.times[j], blocks.bits[j]

    def set_status(self, row: int, status: BlockStatus) -> None:
        blocks, j = self.owner(row)
        if blocks is not self:
            raise ValueError("a view does not change its base's blocks")
        blocks.statuses[j] = status

    def entry(self, row: int) -> IndexEntry:
        blocks, j = self.owner(row)
        parent = blocks.parents[j]
        source: BlockHeader | HeaderReader
        if blocks.headers is not None:
            source = BlockHeader.deserialize(bytes(blocks.headers[j * HEADER_SIZE : (j + 1) * HEADER_SIZE]))
            prev_hash = source.prev_hash
        else:  # every row of an index that reads its headers back has its parent in the index (or is genesis)
            source = blocks.read_header  # type: ignore[assignment] - headers is None only when it is set
            prev_hash = self.hash(parent) if parent != NONE else NO_PARENT
        return IndexEntry(
            blocks.hashes[j],
            blocks.heights[j],
            blocks.works[j],
            BlockStatus(blocks.statuses[j]),
            blocks.seqs[j],
            blocks.times[j],
            blocks.bits[j],
            prev_hash,
            source,
        )

    def ancestor(self, row: int, height: int) -> int:
        """The row at `height` on the chain ending in `row`; NONE if the chain leaves the index above it (Bitcoin:
        CBlockIndex::GetAncestor: take the skip pointer unless it overshoots, or the parent's would get closer)."""
        # An index's own columns are read directly (a third of the cost); a view's rows may be its base's.
        skip_of, parent_of = (
            (self.skips.__getitem__, self.parents.__getitem__)
            if self.base is None
            else (
                self.skip,
                self.parent,
            )
        )
        walk_height = self.height(row)
        while walk_height > height and row != NONE:
            jump = skip_height(walk_height)
            jump_prev = skip_height(walk_height - 1)
            skip = NONE
            if jump == height or (jump > height and not (jump_prev < jump - 2 and jump_prev >= height)):
                skip = skip_of(row)
            if skip != NONE:
                row, walk_height = skip, jump
            else:
                row, walk_height = parent_of(row), walk_height - 1
        return row


class _EntryMap(Mapping[bytes, IndexEntry]):
    """`index.entries`: the index read as a mapping from hash to entry (entries are made as they are read)."""

    def __init__(self, blocks: _Blocks) -> None:
        self._blocks = blocks

    def __getitem__(self, block_hash: bytes) -> IndexEntry:
        return self._blocks.entry(self._blocks.ids[block_hash])

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks.ids

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._blocks.ids)

    def __len__(self) -> int:
        return len(self._blocks.ids)


class BlockIndex:
    """All known blocks, by hash, with the set of candidate tips."""

    def __init__(
        self, params: NetworkParams, base: BlockIndex | None = None, read_header: HeaderReader | None = None
    ) -> None:
        """An empty index; over `base` for a view (see headerview.py). `read_header`: where the whole header of a
        block can be read back (the node's store); without it the index keeps every header in memory."""
        self.params = params
        self._blocks = _Blocks(None if base is None else base._blocks, read_header)
        self.entries: Mapping[bytes, IndexEntry] = _EntryMap(self._blocks)
        self._candidates: set[bytes] = set()  # usable blocks with no usable child
        self._leaves: set[bytes] = set()  # blocks with no child at all, invalid ones too: `tips`
        # Blocks set aside for this run without being invalid (their connection failed for a reason of ours),
        # with their descendants; usable again once the index is rebuilt (a restart).
        self.excluded: set[bytes] = set()
        self._seq = 0 if base is None else base._seq
        # ASERT anchors given by hand for blocks whose anchor is not in the index (the wallet indexes only a
        # window of its chain's tip); every other block finds its anchor as its ancestor at the anchor height.
        self.anchors: MutableMapping[bytes, AsertAnchor] = {} if base is None else ChainMap({}, base.anchors)
        self._work_of_bits: dict[int, int] = {}  # block_work by bits: a few distinct values, a million blocks

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self._blocks.ids

    def __getitem__(self, block_hash: bytes) -> IndexEntry:
        return self._blocks.entry(self._blocks.ids[block_hash])

    def __len__(self) -> int:
        return len(self._blocks.ids)

    def _row(self, entry: IndexEntry) -> int:
        return self._blocks.ids[entry.hash]

    def _block_work(self, bits: int) -> int:
        work = self._work_of_bits.get(bits)
        if work is None:
            work = self._work_of_bits[bits] = block_work(bits)
        return work

    def make_entry(
        self, header: BlockHeader, status: BlockStatus = BlockStatus.STORED, seq: int | None = None
    ) -> IndexEntry:
        """An entry for `header` on top of its (known) parent; genesis has no parent."""
        parent = self._blocks.ids.get(header.prev_hash, NONE)
        height = self._blocks.height(parent) + 1 if parent != NONE else 0
        work = (self._blocks.work(parent) if parent != NONE else 0) + self._block_work(header.bits)
        return IndexEntry.of(header, height, work, status, self._seq + 1 if seq is None else seq)

    def add(self, entry: IndexEntry) -> None:
        if entry.hash in self._blocks.ids:
            raise ValueError(f"block {entry.hash[::-1].hex()} is in the index already")
        self._append(entry.hash, entry.header.serialize(), entry.height, entry.chain_work, entry.status, entry.seq)
        self._leaves.add(entry.hash)
        self._leaves.discard(entry.prev_hash)
        if entry.prev_hash in self.excluded:
            self.excluded.add(entry.hash)
        elif entry.status != BlockStatus.INVALID:
            self._candidates.add(entry.hash)
            self._candidates.discard(entry.prev_hash)

    def _append(self, block_hash: bytes, header: bytes, height: int, work: int, status: int, seq: int) -> int:
        blocks = self._blocks
        parent = blocks.ids.get(header[_PREV_HASH], NONE) if height > 0 else NONE
        skip = blocks.ancestor(parent, skip_height(height)) if parent != NONE else NONE
        row = blocks.append(block_hash, header, height, parent, skip, work, status, seq)
        self._seq = max(self._seq, seq)
        self._note_difficulty_rule(row, parent)
        return row

    def load(self, stored: Iterable[tuple[bytes, bytes, int, int, int]], tip: bytes | None) -> list[bytes]:
        """Fill an empty index from the store: `stored` is (hash, header bytes, height, status, seq) per block, in
        any order (trusted: the store wrote them after checking), `tip` the stored active chain's tip.
        Returns the active chain, genesis to `tip`, as the index's own hash objects (one copy of each in memory).

        Column by column, in C where it can be: a Python loop doing everything per block cost ~5 us, 5 s at a
        million blocks. Rows are taken LOAD_CHUNK at a time: holding them all at once took 700 MB at a million
        blocks, which the process kept. The hashes are the store's (not hashed again); a block on the active
        chain finds its skip target among the active chain's rows (O(1)); only side branches (few) walk,
        O(log n) each.
        """
        blocks = self._blocks
        if blocks.hashes or blocks.base is not None:
            raise ValueError("load fills an empty index that is not a view")
        ids, hashes, headers = blocks.ids, blocks.hashes, blocks.headers
        heights, parents, seqs, statuses = blocks.heights, blocks.parents, blocks.seqs, blocks.statuses
        time_bits = array("I")
        unlinked: list[tuple[int, bytes]] = []  # rows read before their parent (none when parents come first)
        rows = iter(stored)
        while chunk := list(islice(rows, LOAD_CHUNK)):
            first = len(hashes)
            chunk_hashes, chunk_headers, chunk_heights, chunk_statuses, chunk_seqs = zip(*chunk, strict=True)
            del chunk
            hashes.extend(chunk_hashes)
            ids.update(zip(chunk_hashes, range(first, len(hashes)), strict=True))
            heights.extend(chunk_heights)
            statuses.extend(chunk_statuses)
            seqs.extend(chunk_seqs)
            time_bits.frombytes(b"".join([header[_TIME_AND_BITS] for header in chunk_headers]))
            if headers is not None:
                headers += b"".join(chunk_headers)
            # Rows come in arrival order from the node's store, so a parent is most often the row just before:
            # a 32-byte comparison, cheaper than a lookup in a dict of a million (genesis' zeros: NONE).
            previous = (hashes[first - 1] if first else None, *chunk_hashes[:-1])
            chunk_parents = [
                row - 1 if prev_hash == last else ids.get(prev_hash, NONE)
                for row, prev_hash, last in zip(
                    range(first, len(hashes)), [header[_PREV_HASH] for header in chunk_headers], previous, strict=True
                )
            ]
            parents.extend(chunk_parents)
            if NONE in chunk_parents:
                unlinked += [
                    (row, header[_PREV_HASH])
                    for row, header, parent, height in zip(
                        range(first, len(hashes)), chunk_headers, chunk_parents, chunk_heights, strict=True
                    )
                    if parent == NONE and height > 0
                ]
        n = len(hashes)
        if len(ids) != n:
            raise ValueError("a block is stored twice")
        for row, prev_hash in unlinked:
            parents[row] = ids.get(prev_hash, NONE)
        if _BIG_ENDIAN:
            time_bits.byteswap()
        blocks.times, blocks.bits = time_bits[0::2], time_bits[1::2]
        del time_bits
        # The active chain: down from its tip by parent (its rows come out in order; a million hashes read from
        # the store and looked up cost a quarter of the load).
        active_rows = array("i")
        row = ids.get(tip, NONE) if tip is not None else NONE
        if tip is not None and row == NONE:
            raise ValueError("the stored active chain's tip is not a stored block")
        while row != NONE:
            active_rows.append(row)
            row = parents[row]
        active_rows.reverse()
        if active_rows and heights[active_rows[0]] != 0:
            raise ValueError("the stored active chain does not reach the genesis")
        skips = blocks.skips = array("i", [NONE]) * n
        first_child = blocks.first_child = array("i", [NONE]) * n
        next_sibling = blocks.next_sibling = array("i", [NONE]) * n
        for height in range(1, len(active_rows)):
            row, parent = active_rows[height], active_rows[height - 1]
            if parents[row] != parent or heights[row] != height:
                raise ValueError(f"the stored active chain does not link at height {height}")
            skips[row] = active_rows[skip_height(height)]
            first_child[parent] = row
        # Side branches, in arrival order: each one's ancestors have their skip pointers already.
        on_active = bytearray(n)
        for row in active_rows:
            on_active[row] = 1
        side = sorted((row for row in range(n) if not on_active[row]), key=heights.__getitem__)  # parents first
        has_usable_child = bytearray(n)  # only the tips' flags are read: the side rows' and the active tip's
        for row in side:
            parent = parents[row]
            if parent != NONE:
                skips[row] = blocks.ancestor(parent, skip_height(heights[row]))
                next_sibling[row], first_child[parent] = first_child[parent], row
                if blocks.statuses[row] != BlockStatus.INVALID:
                    has_usable_child[parent] = 1
        # Cumulative work: down the active chain by a running sum, then the side branches from their parents.
        # In 8-byte slots (a list of a million ints held 32 MB more, kept by the process); Python ints past 2**64.
        work_of_bits = {bits: self._block_work(bits) for bits in set(blocks.bits)}
        bits_of = blocks.bits

        def summed(works: MutableSequence[int]) -> MutableSequence[int]:
            total = 0
            for row in active_rows:
                total = works[row] = total + work_of_bits[bits_of[row]]
            for row in side:
                parent = parents[row]
                works[row] = (works[parent] if parent != NONE else 0) + work_of_bits[bits_of[row]]
            return works

        try:
            blocks.works = summed(array("Q", bytes(8 * n)))
        except OverflowError:
            blocks.works = summed([0] * n)
        tips = [*side, *active_rows[-1:]]
        self._candidates = {
            blocks.hashes[row]
            for row in tips
            if not has_usable_child[row] and blocks.statuses[row] != BlockStatus.INVALID
        }
        # Every active block but the tip has its active child; a side block with no child is a side branch's tip.
        self._leaves = {blocks.hashes[row] for row in tips if first_child[row] == NONE}
        self._seq = max(blocks.seqs, default=0)
        if self.params.asert_activation_height is not None and not self.params.no_retargeting:
            self._load_difficulty_rule(active_rows, side)
        return [blocks.hashes[row] for row in active_rows]

    def _load_difficulty_rule(self, active_rows: Sequence[int], side: list[int]) -> None:
        """`_note_difficulty_rule` for every loaded block: the active chain's share one anchor, found once."""
        assert self.params.asert_activation_height is not None
        anchor_height = self.params.asert_activation_height - 1
        anchor = self._asert_anchor(active_rows[anchor_height]) if len(active_rows) > anchor_height + 1 else None
        for height in range(anchor_height + 1, len(active_rows)):
            self._note_difficulty_rule(active_rows[height], active_rows[height - 1], anchor)
        for row in side:
            self._note_difficulty_rule(row, self._blocks.parents[row])

    def _note_difficulty_rule(self, row: int, parent: int, anchor: AsertAnchor | None = None) -> None:
        """Remember where the chain ending in `row` first breaks the difficulty rule (see `first_height_off_...`):
        once per block as it is added, so the question at start costs O(1), not a walk over the chain."""
        activation = self.params.asert_activation_height
        if activation is None or self.params.no_retargeting or parent == NONE:
            return
        off = self._blocks.off_rule.get(parent)
        if off is None:
            height = self._blocks.height(row)
            if height < activation:
                return
            if self._blocks.time_bits(row)[1] == self._next_bits(parent, anchor):
                return
            off = height
        self._blocks.off_rule[row] = off

    def set_status(self, block_hash: bytes, status: BlockStatus) -> None:
        self._blocks.set_status(self._blocks.ids[block_hash], status)

    def mark_invalid(self, block_hash: bytes) -> list[bytes]:
        """Mark a block and all its descendants invalid; return their hashes."""
        marked = []
        for h in self.descendants(block_hash):
            if self[h].status != BlockStatus.INVALID:
                self.set_status(h, BlockStatus.INVALID)
                marked.append(h)
            self._candidates.discard(h)
        self._restore_parent(block_hash)
        return marked

    def exclude(self, block_hash: bytes) -> None:
        """Set a block and its descendants aside for this run: no tip is chosen among them."""
        for h in self.descendants(block_hash):
            self.excluded.add(h)
            self._candidates.discard(h)
        self._restore_parent(block_hash)

    def include(self, block_hash: bytes) -> None:
        """Undo `exclude`: the block and its descendants may be chosen as the tip again (Bitcoin: ReconsiderBlock)."""
        found = self.descendants(block_hash)
        self.excluded.difference_update(found)
        for h in found:  # parents first: each usable block replaces its parent among the candidate tips
            if self._usable(h):
                self._candidates.add(h)
                self._candidates.discard(self[h].prev_hash)

    def children(self, block_hash: bytes) -> list[bytes]:
        """The blocks built directly on `block_hash`."""
        blocks = self._blocks
        return [blocks.hash(row) for row in blocks.children(blocks.ids[block_hash])]

    def descendants(self, block_hash: bytes) -> list[bytes]:
        """`block_hash` and every block built on it, parents first."""
        found = [block_hash]
        for h in found:
            found.extend(self.children(h))
        return found

    def _usable(self, block_hash: bytes) -> bool:
        return self[block_hash].status != BlockStatus.INVALID and block_hash not in self.excluded

    def _restore_parent(self, block_hash: bytes) -> None:
        """After a child became unusable: its parent is a candidate tip again if no usable child is left."""
        parent = self[block_hash].prev_hash
        if parent in self and self._usable(parent):
            if not any(self._usable(c) for c in self.children(parent)):
                self._candidates.add(parent)

    def best_candidate(self) -> IndexEntry:
        """The tip with the most work among blocks not known to be invalid (earliest seen on ties)."""
        return max((self[h] for h in self._candidates), key=lambda e: (e.chain_work, -e.seq))

    def tips(self, limit: int) -> list[IndexEntry]:
        """The `limit` most recently seen blocks that no block builds on, newest first: the active tip and each
        side branch's, invalid or set aside ones too (Bitcoin: getchaintips). O(tips), never O(chain)."""
        return heapq.nlargest(limit, (self.entries[h] for h in self._leaves), key=lambda e: e.seq)

    def ancestor(self, entry: IndexEntry, height: int) -> IndexEntry:
        """The block at `height` on the chain ending in `entry` (O(log n) by skip pointers)."""
        if not 0 <= height <= entry.height:
            raise ValueError(f"no ancestor at height {height} of a block at {entry.height}")
        row = self._blocks.ancestor(self._row(entry), height)
        if row == NONE:
            raise KeyError(f"the block at height {height} below {entry.hash[::-1].hex()} is not in the index")
        return self._blocks.entry(row)

    def locator(self, tip: IndexEntry) -> list[bytes]:
        """The block locator of the chain ending in `tip` (see `locator_heights`)."""
        blocks, hashes, row = self._blocks, [], self._row(tip)
        for height in locator_heights(tip.height):
            row = blocks.ancestor(row, height)  # heights go down: each walk starts where the last ended
            hashes.append(blocks.hash(row))
        return hashes

    def median_time_past(self, entry: IndexEntry) -> int:
        """Median time of the last 11 blocks up to `entry` (Bitcoin: GetMedianTimePast)."""
        return self._median_time_past(self._row(entry))

    def _median_time_past(self, row: int) -> int:
        blocks, times = self._blocks, []
        for _ in range(self.params.median_time_span):
            times.append(blocks.time_bits(row)[0])
            row = blocks.parent(row)
            if row == NONE:
                break
        times.sort()
        return times[len(times) // 2]

    def asert_anchor(self, entry: IndexEntry) -> AsertAnchor:
        """The anchor below `entry` (at or above the anchor height): its ancestor at the anchor height, O(log n)."""
        return self._asert_anchor(self._row(entry))

    def _asert_anchor(self, row: int) -> AsertAnchor:
        assert self.params.asert_activation_height is not None
        blocks = self._blocks
        height = self.params.asert_activation_height - 1
        anchor = blocks.ancestor(row, height)
        if anchor != NONE and blocks.parent(anchor) != NONE:
            return AsertAnchor(height, blocks.time_bits(anchor)[1], blocks.time_bits(blocks.parent(anchor))[0])
        # The chain leaves the index above the anchor: a window of the wallet's, whose lowest block has its
        # anchor given by hand. Find that lowest block (only the wallet's small windows get here).
        while blocks.parent(row) != NONE:
            row = blocks.parent(row)
        return self.anchors[blocks.hash(row)]

    def next_bits(self, prev: IndexEntry) -> int:
        """The bits a block on top of `prev` must carry (Bitcoin: GetNextWorkRequired; Bitcoin Cash's
        aserti3-2d from the activation height). O(log n): the anchor and the retarget's first block are found
        by skip pointers."""
        return self._next_bits(self._row(prev))

    def _next_bits(self, prev: int, anchor: AsertAnchor | None = None) -> int:
        blocks = self._blocks
        prev_time, prev_bits = blocks.time_bits(prev)
        return required_bits(
            self.params,
            blocks.height(prev) + 1,
            prev_time,
            prev_bits,
            lambda: anchor or self._asert_anchor(prev),
            lambda height: blocks.time_bits(blocks.ancestor(prev, height))[0],
        )

    def first_height_off_the_difficulty_rule(self, tip: IndexEntry) -> int | None:
        """The lowest height at or above the ASERT activation where the chain ending in `tip` carries bits other
        than `next_bits` demands; None if it follows the rule (or is not that high). A chain mined before the rule
        existed breaks it there. O(1): each block's answer was worked out as it was added."""
        return self._blocks.off_rule.get(self._row(tip))

    def find_fork(self, a: IndexEntry, b: IndexEntry) -> IndexEntry:
        """The last block two chains share (Bitcoin: LastCommonAncestor), in O(log n): at equal heights both
        skip pointers go to the same height, so both chains jump together until their skip targets agree."""
        blocks = self._blocks
        height = min(a.height, b.height)
        ra, rb = blocks.ancestor(self._row(a), height), blocks.ancestor(self._row(b), height)
        while ra != rb:
            if ra == NONE or rb == NONE:
                raise KeyError("the two chains meet below the blocks in the index")
            sa, sb = blocks.skip(ra), blocks.skip(rb)
            if sa != sb and sa != NONE and sb != NONE:
                ra, rb = sa, sb
            else:
                ra, rb = blocks.parent(ra), blocks.parent(rb)
        return blocks.entry(ra)

    def branch(self, fork: IndexEntry, tip: IndexEntry) -> list[IndexEntry]:
        """The blocks after `fork` up to and including `tip`, oldest first."""
        blocks, path, row, stop = self._blocks, [], self._row(tip), self._row(fork)
        while row != stop:
            path.append(row)
            row = blocks.parent(row)
        return [blocks.entry(r) for r in reversed(path)]
