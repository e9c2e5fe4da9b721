"""Light-client verification (SPV): check what a node says against block headers checked here.

The wallet keeps the headers of the chain itself and accepts one only if it links to a header it has,
carries valid proof of work, has the bits the retarget rule demands and a time after the median of the
11 before it -- all from the fixed genesis. A confirmed transaction is believed only with a merkle proof
that leads to the merkle root of a header on the best chain it checked. What SPV cannot show: that an
output is still unspent, or that a node tells about every transaction (it can leave some out).
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from dataclasses import dataclass

from simplecoin.core.chain import AsertAnchor, BlockIndex, BlockStatus, IndexEntry, locator_heights, required_bits
from simplecoin.core.errors import SimpleCoinError, ValidationError
from simplecoin.core.hashing import hash_hex, sha256d, verify_merkle_branch
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import bits_to_target, block_work, check_proof_of_work
from simplecoin.core.primitives import HEADER_SIZE, BlockHeader
from simplecoin.core.validation import check_header_contextual

# What the bulk check reads of a serialized header (BlockHeader's layout): prev_hash, time, bits.
_LINK_TIME_BITS = struct.Struct("<4x32s32xII4x")


class SpvError(SimpleCoinError):
    """Raised when a node's answer fails verification: that node is not to be trusted."""


@dataclass(frozen=True, slots=True)
class OnChain:
    """A header on the best chain, at its height."""

    hash: bytes
    header: BlockHeader
    height: int


class HeaderChain:
    """Every header the wallet accepted, with the most-work chain among them.

    The best chain is kept as its serialized headers by height (like the node's active chain, and Electrum's
    blockchain.py), so "is this header on the best chain at height h" is one hash of 80 bytes, not a walk
    back through the index. The index holds only the headers checked in this run plus a window of the best
    chain's tip, enough to check the next header's bits and median time; `resume` starts from a best chain
    saved by an earlier run, at a cost that does not grow with the chain (no header is hashed but the window).
    """

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
        self.index = BlockIndex(params)
        self.index.add(self.index.make_entry(params.genesis_block.header, BlockStatus.VALID))
        self._raw = bytearray(params.genesis_block.header.serialize())  # the best chain's headers, 80 bytes each
        self._heights: dict[bytes, int] | None = None  # hash -> best-chain height, built only when needed
        self.first_changed = 1  # lowest best-chain height replaced since the caller last looked (for saving)

    @classmethod
    def resume(cls, params: NetworkParams, raw: bytes, tip_work: int) -> HeaderChain:
        """A chain from best-chain headers verified by an earlier run (80 bytes each from genesis) and the
        tip's cumulative work. Only the window at the tip is hashed and checked again (links, proof of work);
        the caller vouches for the rest with an integrity check of its own file. SpvError if a check fails."""
        if not raw or len(raw) % HEADER_SIZE:
            raise SpvError("saved headers are not a whole number of 80-byte headers")
        chain = cls(params)
        if raw[:HEADER_SIZE] != chain._raw:
            raise SpvError("saved headers do not start at this network's genesis")
        chain._raw = bytearray(raw)
        chain._rebuild_index(max(chain.height - chain._window, 1), tip_work)
        chain.first_changed = chain.height + 1
        return chain

    @property
    def _window(self) -> int:
        """Best-chain headers kept in the index below the tip: what next_bits and median_time_past read (and the
        ASERT anchor, kept aside when it is below them)."""
        return self.params.retarget_interval + self.params.median_time_span + 2

    def _rebuild_index(self, low: int, tip_work: int | None = None) -> None:
        """Index the best chain from height `low` up (keeping side branches), so a header forking off at or
        above `low` links. Costs O(tip - low): only a fork deeper than the window pays more than the window."""
        old = self.index
        if tip_work is None:
            tip_work = old[self.hash_at(self.height)].chain_work
        activation = None if self.params.no_retargeting else self.params.asert_activation_height
        if activation is not None and low == activation - 1:
            low = max(low - 1, 1)  # the anchor's parent too: its time is part of the anchor
        headers = [self.header_at(h) for h in range(low, self.height + 1)]
        work = tip_work - sum(block_work(h.bits) for h in headers)
        index = BlockIndex(self.params)
        index.add(index.make_entry(self.params.genesis_block.header, BlockStatus.VALID))
        prev_hash = self.hash_at(low - 1)
        for height, header in enumerate(headers, start=low):
            block_hash = header.hash()
            if header.prev_hash != prev_hash or check_proof_of_work(block_hash, header.bits, self.params.pow_limit):
                raise SpvError(f"saved header at height {height} does not link or has no valid work")
            work += block_work(header.bits)
            index.add(IndexEntry.of(header, height, work, BlockStatus.VALID, height))
            if height == low and activation is not None and low >= activation:  # the anchor is below the window
                anchor_height = activation - 1
                anchor_time = self.header_at(anchor_height - 1).time
                index.anchors[block_hash] = AsertAnchor(anchor_height, self.header_at(anchor_height).bits, anchor_time)
            prev_hash = block_hash
        for entry in sorted(old.entries.values(), key=lambda e: e.seq):
            if entry.height >= low and entry.hash not in index and entry.prev_hash in index:
                index.add(index.make_entry(entry.header, BlockStatus.VALID))
        self.index = index

    @property
    def tip(self) -> IndexEntry:
        return self.index.best_candidate()

    @property
    def height(self) -> int:
        return len(self._raw) // HEADER_SIZE - 1

    @property
    def best(self) -> list[bytes]:
        """Every best-chain hash by height (O(height): for tests and tools, not for lookups)."""
        return [self.hash_at(h) for h in range(self.height + 1)]

    def _raw_at(self, height: int) -> bytes:
        if not 0 <= height <= self.height:
            raise IndexError(f"no best-chain header at height {height}")
        return bytes(self._raw[height * HEADER_SIZE : (height + 1) * HEADER_SIZE])

    def hash_at(self, height: int) -> bytes:
        return sha256d(self._raw_at(height))

    def header_at(self, height: int) -> BlockHeader:
        return BlockHeader.deserialize(self._raw_at(height))

    def raw_from(self, height: int) -> bytes:
        """The serialized best-chain headers from `height` to the tip."""
        return bytes(self._raw[height * HEADER_SIZE :])

    def _height_of(self, block_hash: bytes) -> int | None:
        """The best-chain height of a hash, from a map built on first use (O(height) once)."""
        if self._heights is None:
            self._heights = {self.hash_at(h): h for h in range(self.height + 1)}
        return self._heights.get(block_hash)

    def add(self, headers: list[BlockHeader], now: int) -> int:
        """Check and keep `headers` (parents first); return how many were new. SpvError on a bad one."""
        added = 0
        try:
            for header in headers:
                block_hash = header.hash()
                if block_hash in self.index:
                    continue
                parent = self.index.entries.get(header.prev_hash)
                if parent is None:  # a header below the indexed window: known already, or a deep fork
                    if self._height_of(block_hash) is not None:
                        continue
                    parent_height = self._height_of(header.prev_hash)
                    if parent_height is not None:
                        self._rebuild_index(max(parent_height - self._window, 1))
                        parent = self.index.entries.get(header.prev_hash)
                if parent is None:
                    raise SpvError(f"header {header.hash_hex()} does not link to any header the wallet has")
                problem = check_proof_of_work(block_hash, header.bits, self.params.pow_limit)
                if problem:
                    raise SpvError(
                        f"header {header.hash_hex()} at height {parent.height + 1} has no valid work: {problem}"
                    )
                try:
                    check_header_contextual(
                        header,
                        height=parent.height + 1,
                        expected_bits=self.index.next_bits(parent),
                        median_time_past=self.index.median_time_past(parent),
                        now=now,
                        params=self.params,
                    )
                except ValidationError as e:
                    raise SpvError(f"header {header.hash_hex()} at height {parent.height + 1} breaks {e.reason}") from e
                self.index.add(self.index.make_entry(header, BlockStatus.VALID))
                added += 1
        finally:
            self._follow_tip()
        return added

    def add_raw(self, raw: bytes, now: int) -> int:
        """Check and keep serialized headers (80 bytes each, parents first) by the rules of `add`; return how
        many were new. SpvError on a bad one, with what came before it kept.

        A light wallet's first run checks every header of the chain, so the common case -- headers extending
        the best chain's tip -- is checked in bulk (`_extend_tip`: no object per header, the index rebuilt once
        at the end). Whatever it does not take (a header known already, a fork, one that breaks a rule) goes
        through `add` one header at a time, which accepts it or says which rule it breaks.
        """
        if len(raw) % HEADER_SIZE:
            raise SpvError(f"{len(raw)} bytes are not a whole number of 80-byte headers")
        added = offset = 0
        while offset < len(raw):
            taken = self._extend_tip(raw, offset, now)
            added += taken
            offset += taken * HEADER_SIZE
            if offset < len(raw):
                added += self.add([BlockHeader.deserialize(raw[offset : offset + HEADER_SIZE])], now)
                offset += HEADER_SIZE
        return added

    def _extend_tip(self, raw: bytes, offset: int, now: int) -> int:
        """How many headers from `offset` on extend the best chain's tip and pass every check of `add`; those
        are kept. Stops, keeping nothing of it, at the first header that does not (`add` then decides).

        The same rules as `add` on the index, read from the best chain's bytes and the batch: links, proof of
        work, the bits of `BlockIndex.next_bits` (tests/test_spv.py compares the two on every rule), a time
        after the median of the 11 before it and not too far ahead of `now`.
        """
        params = self.params
        start = self.height
        tip = self.tip
        if tip.height != start:  # the index's tip is always the best chain's; a caller's edit is left to `add`
            return 0
        batch = memoryview(raw)[offset:]

        def header_fields(height: int) -> tuple[bytes, int, int]:  # prev_hash, time, bits at a height below
            if height <= start:
                return _LINK_TIME_BITS.unpack_from(self._raw, height * HEADER_SIZE)
            return _LINK_TIME_BITS.unpack_from(batch, (height - start - 1) * HEADER_SIZE)

        prev_hash, prev_time, prev_bits = tip.hash, tip.header.time, tip.header.bits
        times = deque(
            (header_fields(h)[1] for h in range(max(start - params.median_time_span + 1, 0), start + 1)),
            maxlen=params.median_time_span,
        )
        anchors: list[AsertAnchor] = []  # read from the best chain when the rule first needs it

        def anchor() -> AsertAnchor:
            if not anchors:
                height = params.asert_activation_height - 1  # type: ignore[operator]
                anchors.append(AsertAnchor(height, header_fields(height)[2], header_fields(height - 1)[1]))
            return anchors[0]

        def period_start_time(height: int) -> int:
            return header_fields(height)[1]

        targets: dict[int, tuple[int, int]] = {}  # bits -> (target, work), for bits whose target is within the limit
        work = tip.chain_work
        taken = 0
        # Hoisted out of the loop, which runs for every header of the chain: uses_asert is false below the
        # activation and true from it on, and height 0 is never above it.
        activation = params.asert_activation_height
        asert_from = activation if activation is not None and params.uses_asert(activation) else None
        latest = now + params.future_block_time_limit(0)
        latest_asert = now + params.future_block_time_limit(asert_from) if asert_from is not None else latest
        sha256, unpack = hashlib.sha256, _LINK_TIME_BITS.unpack_from
        for position in range(0, len(batch), HEADER_SIZE):
            height = start + taken + 1
            link, time, bits = unpack(batch, position)
            if link != prev_hash:
                break
            asert = asert_from is not None and height >= asert_from
            expected = required_bits(params, height, prev_time, prev_bits, anchor, period_start_time)
            if bits != expected:
                break
            known = targets.get(bits)
            if known is None:
                if check_proof_of_work(bytes(32), bits, params.pow_limit):  # the bits themselves are bad
                    break
                known = targets[bits] = (bits_to_target(bits), block_work(bits))
            target, header_work = known
            block_hash = sha256(sha256(batch[position : position + HEADER_SIZE]).digest()).digest()
            if int.from_bytes(block_hash, "little") > target:
                break
            if time <= sorted(times)[len(times) // 2]:
                break  # Bitcoin: GetMedianTimePast (validation.check_header_contextual)
            if time > (latest_asert if asert else latest):
                break  # Bitcoin: MAX_FUTURE_BLOCK_TIME
            work += header_work
            times.append(time)
            prev_hash, prev_time, prev_bits = block_hash, time, bits
            taken += 1
        if taken:
            self._raw += batch[: taken * HEADER_SIZE]
            if self._heights is not None:
                for height in range(start + 1, start + taken + 1):
                    self._heights[self.hash_at(height)] = height
            self._rebuild_index(max(self.height - self._window, 1), work)
            self.first_changed = min(self.first_changed, start + 1)
        return taken

    def _follow_tip(self) -> None:
        """Bring the best chain to the index's most-work tip, walking back only to the fork point."""
        entry = self.tip
        if entry.height == self.height and entry.hash == self.hash_at(self.height):
            return
        branch = []
        while entry.height > self.height or self.hash_at(entry.height) != entry.hash:
            branch.append(entry)
            entry = self.index[entry.prev_hash]
        fork = entry.height
        if self._heights is not None:
            for stale in range(fork + 1, self.height + 1):
                del self._heights[self.hash_at(stale)]
        del self._raw[(fork + 1) * HEADER_SIZE :]
        for new in reversed(branch):
            self._raw += new.header.serialize()
            if self._heights is not None:
                self._heights[new.hash] = new.height
        self.first_changed = min(self.first_changed, fork + 1)

    def locator(self) -> list[bytes]:
        """The block locator of the best chain (see `chain.locator_heights`)."""
        return [self.hash_at(height) for height in locator_heights(self.height)]

    def on_best_chain(self, block_hash: bytes, height: int | None = None) -> OnChain | None:
        """The header if `block_hash` is on the best chain (at `height`, if given: then one hash, O(1))."""
        if height is None:
            height = self._height_of(block_hash)
        if height is None or not 0 <= height <= self.height or self.hash_at(height) != block_hash:
            return None
        return OnChain(block_hash, self.header_at(height), height)

    def verify_inclusion(
        self, txid: bytes, block_hash: bytes, position: int, branch: list[bytes], height: int | None = None
    ) -> OnChain:
        """The header that proves `txid` confirmed (at `height`, if the node said); SpvError if it does not."""
        entry = self.on_best_chain(block_hash, height)
        if entry is None:
            where = "" if height is None else f" at height {height}"
            raise SpvError(
                f"the node places tx {hash_hex(txid)} in block {hash_hex(block_hash)}{where}, "
                "which is not on the best chain of verified headers"
            )
        if not verify_merkle_branch(txid, branch, position, entry.header.merkle_root):
            raise SpvError(
                f"the merkle proof of tx {hash_hex(txid)} does not lead to block "
                f"{hash_hex(block_hash)}'s merkle root: the tx is not in that block"
            )
        return entry


def check_tx_bytes(txid: bytes, raw: bytes) -> None:
    """A node's copy of a transaction must hash to the txid asked for."""
    # A 64-byte "transaction" could be an inner merkle node passed off as a leaf; no valid tx is 64 bytes.
    if len(raw) == 64:
        raise SpvError(f"the node's bytes for tx {hash_hex(txid)} are 64 bytes, which no valid tx is")
    if sha256d(raw) != txid:
        raise SpvError(f"the node's bytes for tx {hash_hex(txid)} hash to something else")
