"""The block index: every known block with its height and cumulative work, and the choice of best chain.

Pure bookkeeping: no disk. The node loads the index from the store and keeps both in step.
The best chain is the one with the most cumulative work (never the most blocks); among equals the one seen
first wins, so a node does not flip between two tips of the same work.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from simplecoin.core.errors import BlockValidationError
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import asert_target, bits_to_target, block_work, retarget, target_to_bits
from simplecoin.core.primitives import BlockHeader


class BlockStatus(IntEnum):
    """How far a stored block got."""

    STORED = 1  # passed the context-free and header checks; not yet connected
    VALID = 2  # connected to the UTXO set at least once
    INVALID = 3  # failed to connect, or descends from a block that did


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One block in the index (Bitcoin: CBlockIndex)."""

    hash: bytes
    header: BlockHeader
    height: int
    chain_work: int  # total work of the chain ending here
    status: BlockStatus
    seq: int  # arrival order: breaks ties between tips of equal work

    @property
    def prev_hash(self) -> bytes:
        return self.header.prev_hash


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


@dataclass(frozen=True, slots=True)
class AsertAnchor:
    """What aserti3-2d needs of its anchor, the block just below the activation height."""

    height: int
    bits: int
    parent_time: int  # the anchor's parent's time: the anchor's own may be stamped anywhere its rules allowed


class BlockIndex:
    """All known blocks, by hash, with the set of candidate tips."""

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
        self.entries: dict[bytes, IndexEntry] = {}
        self.children: dict[bytes, list[bytes]] = {}
        self._candidates: set[bytes] = set()  # usable blocks with no usable child
        self._leaves: set[bytes] = set()  # blocks with no child at all, invalid ones too: `tips`
        # Blocks set aside for this run without being invalid (their connection failed for a reason of ours),
        # with their descendants; usable again once the index is rebuilt (a restart).
        self.excluded: set[bytes] = set()
        self._seq = 0
        # The ASERT anchor of each block at or above the anchor height, set in `add` from the parent's, so
        # next_bits finds it in O(1) on any branch (a fork below the activation gives branches different anchors).
        self.anchors: dict[bytes, AsertAnchor] = {}

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self.entries

    def __getitem__(self, block_hash: bytes) -> IndexEntry:
        return self.entries[block_hash]

    def __len__(self) -> int:
        return len(self.entries)

    def make_entry(
        self, header: BlockHeader, status: BlockStatus = BlockStatus.STORED, seq: int | None = None
    ) -> IndexEntry:
        """An entry for `header` on top of its (known) parent; genesis has no parent."""
        parent = self.entries.get(header.prev_hash)
        height = parent.height + 1 if parent else 0
        work = (parent.chain_work if parent else 0) + block_work(header.bits)
        return IndexEntry(header.hash(), header, height, work, status, self._seq + 1 if seq is None else seq)

    def add(self, entry: IndexEntry) -> None:
        self.entries[entry.hash] = entry
        self._seq = max(self._seq, entry.seq)
        if entry.hash not in self.children:  # (a child loaded before it would make it no tip)
            self._leaves.add(entry.hash)
        self._leaves.discard(entry.prev_hash)
        if entry.height > 0:
            self.children.setdefault(entry.prev_hash, []).append(entry.hash)
        activation = self.params.asert_activation_height
        if activation is not None and entry.height >= activation - 1:
            if entry.height == activation - 1:
                parent = self.entries.get(entry.prev_hash)
                anchor = AsertAnchor(entry.height, entry.header.bits, parent.header.time) if parent else None
            else:
                anchor = self.anchors.get(entry.prev_hash)
            if anchor is not None:
                self.anchors[entry.hash] = anchor
        if entry.prev_hash in self.excluded:
            self.excluded.add(entry.hash)
        elif entry.status != BlockStatus.INVALID:
            self._candidates.add(entry.hash)
            self._candidates.discard(entry.prev_hash)

    def set_status(self, block_hash: bytes, status: BlockStatus) -> None:
        self.entries[block_hash] = dataclasses.replace(self.entries[block_hash], status=status)

    def mark_invalid(self, block_hash: bytes) -> list[bytes]:
        """Mark a block and all its descendants invalid; return their hashes."""
        marked = []
        for h in self.descendants(block_hash):
            if self.entries[h].status != BlockStatus.INVALID:
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
                self._candidates.discard(self.entries[h].prev_hash)

    def descendants(self, block_hash: bytes) -> list[bytes]:
        """`block_hash` and every block built on it, parents first."""
        found = [block_hash]
        for h in found:
            found.extend(self.children.get(h, ()))
        return found

    def _usable(self, block_hash: bytes) -> bool:
        return self.entries[block_hash].status != BlockStatus.INVALID and block_hash not in self.excluded

    def _restore_parent(self, block_hash: bytes) -> None:
        """After a child became unusable: its parent is a candidate tip again if no usable child is left."""
        parent = self.entries[block_hash].prev_hash
        if parent in self.entries and self._usable(parent):
            if not any(self._usable(c) for c in self.children[parent]):
                self._candidates.add(parent)

    def best_candidate(self) -> IndexEntry:
        """The tip with the most work among blocks not known to be invalid (earliest seen on ties)."""
        return max((self.entries[h] for h in self._candidates), key=lambda e: (e.chain_work, -e.seq))

    def tips(self, limit: int) -> list[IndexEntry]:
        """The `limit` most recently seen blocks that no block builds on, newest first: the active tip and each
        side branch's, invalid or set aside ones too (Bitcoin: getchaintips). O(tips), never O(chain)."""
        return heapq.nlargest(limit, (self.entries[h] for h in self._leaves), key=lambda e: e.seq)

    def ancestor(self, entry: IndexEntry, height: int) -> IndexEntry:
        """The block at `height` on the chain ending in `entry`."""
        if not 0 <= height <= entry.height:
            raise ValueError(f"no ancestor at height {height} of a block at {entry.height}")
        while entry.height > height:
            entry = self.entries[entry.prev_hash]
        return entry

    def locator(self, tip: IndexEntry) -> list[bytes]:
        """The block locator of the chain ending in `tip` (see `locator_heights`)."""
        hashes, entry = [], tip
        for height in locator_heights(tip.height):
            entry = self.ancestor(entry, height)  # heights go down: each walk starts where the last ended
            hashes.append(entry.hash)
        return hashes

    def median_time_past(self, entry: IndexEntry) -> int:
        """Median time of the last 11 blocks up to `entry` (Bitcoin: GetMedianTimePast)."""
        times = []
        for _ in range(self.params.median_time_span):
            times.append(entry.header.time)
            if entry.height == 0:
                break
            entry = self.entries[entry.prev_hash]
        times.sort()
        return times[len(times) // 2]

    def asert_anchor(self, entry: IndexEntry) -> AsertAnchor:
        """The anchor below `entry` (at or above the anchor height). O(1) for blocks that came through `add`;
        otherwise (an index whose `entries` were filled around `add`) found once by walking back, then kept."""
        anchor = self.anchors.get(entry.hash)
        if anchor is None:
            assert self.params.asert_activation_height is not None
            walk = entry
            while walk.height >= self.params.asert_activation_height and walk.hash not in self.anchors:
                walk = self.entries[walk.prev_hash]
            anchor = self.anchors.get(walk.hash)
            if anchor is None:  # `walk` is the anchor itself
                anchor = AsertAnchor(walk.height, walk.header.bits, self.entries[walk.prev_hash].header.time)
            self.anchors[entry.hash] = anchor
        return anchor

    def next_bits(self, prev: IndexEntry) -> int:
        """The bits a block on top of `prev` must carry (Bitcoin: GetNextWorkRequired; Bitcoin Cash's
        aserti3-2d from the activation height). Costs O(1): the anchor is remembered, never walked to."""
        params = self.params
        height = prev.height + 1
        if params.uses_asert(height):
            anchor = self.asert_anchor(prev)
            target = asert_target(
                bits_to_target(anchor.bits),
                prev.header.time - anchor.parent_time,
                prev.height - anchor.height,
                params.target_spacing,
                params.asert_half_life,
                params.pow_limit,
            )
            return target_to_bits(target)
        if params.no_retargeting or height % params.retarget_interval != 0:
            return prev.header.bits
        # Bitcoin measures the period from its first block, so it spans interval-1 gaps; kept for fidelity.
        first = self.ancestor(prev, height - params.retarget_interval)
        timespan = prev.header.time - first.header.time
        return retarget(prev.header.bits, timespan, params.retarget_timespan, params.pow_limit)

    def first_height_off_the_difficulty_rule(self, tip: IndexEntry) -> int | None:
        """The lowest height at or above the ASERT activation where the chain ending in `tip` carries bits other
        than `next_bits` demands; None if it follows the rule (or is not that high). A chain mined before the rule
        existed breaks it there. Walks the chain above the activation once (O(its length); `next_bits` is O(1))."""
        activation = self.params.asert_activation_height
        if activation is None or self.params.no_retargeting or tip.height < activation:
            return None
        path = [tip]
        while path[-1].height > activation:
            path.append(self.entries[path[-1].prev_hash])
        parent = self.entries[path[-1].prev_hash]
        for entry in reversed(path):
            if entry.header.bits != self.next_bits(parent):
                return entry.height
            parent = entry
        return None

    def find_fork(self, a: IndexEntry, b: IndexEntry) -> IndexEntry:
        """The last block two chains share (Bitcoin: LastCommonAncestor)."""
        if a.height > b.height:
            a = self.ancestor(a, b.height)
        elif b.height > a.height:
            b = self.ancestor(b, a.height)
        while a.hash != b.hash:
            a, b = self.entries[a.prev_hash], self.entries[b.prev_hash]
        return a

    def branch(self, fork: IndexEntry, tip: IndexEntry) -> list[IndexEntry]:
        """The blocks after `fork` up to and including `tip`, oldest first."""
        path = []
        while tip.hash != fork.hash:
            path.append(tip)
            tip = self.entries[tip.prev_hash]
        path.reverse()
        return path
