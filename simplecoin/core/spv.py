"""Light-client verification (SPV): check what a node says against block headers checked here.

The wallet keeps the headers of the chain itself and accepts one only if it links to a header it has,
carries valid proof of work, has the bits the retarget rule demands and a time after the median of the
11 before it -- all from the fixed genesis. A confirmed transaction is believed only with a merkle proof
that leads to the merkle root of a header on the best chain it checked. What SPV cannot show: that an
output is still unspent, or that a node tells about every transaction (it can leave some out).
"""

from __future__ import annotations

from dataclasses import dataclass

from simplecoin.core.chain import BlockIndex, BlockStatus, IndexEntry
from simplecoin.core.errors import SimpleCoinError, ValidationError
from simplecoin.core.hashing import hash_hex, sha256d, verify_merkle_branch
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import bits_to_target, block_work, check_proof_of_work
from simplecoin.core.primitives import HEADER_SIZE, BlockHeader
from simplecoin.core.validation import check_header_contextual


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

    `best` is the best chain as a height -> hash array (like the node's active chain), so "is this header on
    the best chain" is one lookup, not a walk back through the index (Electrum: blockchain.py keeps the same).
    The index holds only the headers checked in this run plus a window of the best chain's tip, enough to check
    the next header's bits and median time; `resume` starts from a best chain saved by an earlier run.
    """

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
        self.index = BlockIndex(params)
        self.index.add(self.index.make_entry(params.genesis_block.header, BlockStatus.VALID))
        self.best: list[bytes] = [params.genesis_hash]
        self.heights: dict[bytes, int] = {params.genesis_hash: 0}
        self._raw: list[bytes] = [params.genesis_block.header.serialize()]  # serialized best-chain headers
        self.first_changed = 1  # lowest best-chain height replaced since the caller last looked (for saving)

    @classmethod
    def resume(cls, params: NetworkParams, raw: bytes) -> HeaderChain:
        """A chain from best-chain headers verified by an earlier run (80 bytes each from genesis).

        Checked again here, cheaply: every header links to the one before and its hash meets its own bits
        (hashes and targets are computed anyway; the targets are cached per bits value). Not checked again:
        that each header's bits and time followed the retarget and median-time rules -- the caller vouches for
        that with an integrity check of its own file. SpvError if a check fails.
        """
        if not raw or len(raw) % HEADER_SIZE:
            raise SpvError("saved headers are not a whole number of 80-byte headers")
        chain = cls(params)
        headers = [raw[i : i + HEADER_SIZE] for i in range(0, len(raw), HEADER_SIZE)]
        if headers[0] != chain._raw[0]:
            raise SpvError("saved headers do not start at this network's genesis")
        hashes = [sha256d(h) for h in headers]
        targets: dict[bytes, tuple[int, int]] = {}  # bits -> (target, work)
        tip_work = 0
        for height, header in enumerate(headers):
            if height and header[4:36] != hashes[height - 1]:
                raise SpvError(f"saved header at height {height} does not link to the one before it")
            bits = header[72:76]
            known = targets.get(bits)
            if known is None:
                value = int.from_bytes(bits, "little")
                if check_proof_of_work(b"\0" * 32, value, params.pow_limit):
                    raise SpvError(f"saved header at height {height} has bits above the proof-of-work limit")
                known = targets[bits] = (bits_to_target(value), block_work(value))
            if int.from_bytes(hashes[height], "little") > known[0]:
                raise SpvError(f"saved header at height {height} has no valid work")
            tip_work += known[1]
        chain.best, chain._raw = hashes, headers
        chain.heights = {h: i for i, h in enumerate(hashes)}
        chain._rebuild_index(max(len(hashes) - 1 - chain._window, 1), tip_work)
        chain.first_changed = len(hashes)
        return chain

    @property
    def _window(self) -> int:
        """Best-chain headers kept in the index below the tip: what next_bits and median_time_past read."""
        return self.params.retarget_interval + self.params.median_time_span + 2

    def _rebuild_index(self, low: int, tip_work: int | None = None) -> None:
        """Index the best chain from height `low` up (keeping side branches), so a header forking off at or
        above `low` links. Costs O(tip - low): only a fork deeper than the window pays it."""
        old = self.index
        tip_height = len(self.best) - 1
        if tip_work is None:
            tip_work = old[self.best[-1]].chain_work
        work = tip_work - sum(block_work(self.header_at(h).bits) for h in range(low, tip_height + 1))
        index = BlockIndex(self.params)
        index.add(index.make_entry(self.params.genesis_block.header, BlockStatus.VALID))
        for height in range(low, tip_height + 1):
            header = self.header_at(height)
            work += block_work(header.bits)
            index.add(IndexEntry(self.best[height], header, height, work, BlockStatus.VALID, height))
        side = [e for e in old.entries.values() if self.heights.get(e.hash) != e.height and e.height >= low]
        for entry in sorted(side, key=lambda e: e.seq):
            if entry.prev_hash in index:
                index.add(index.make_entry(entry.header, BlockStatus.VALID))
        self.index = index

    @property
    def tip(self) -> IndexEntry:
        return self.index.best_candidate()

    @property
    def height(self) -> int:
        return len(self.best) - 1

    def header_at(self, height: int) -> BlockHeader:
        return BlockHeader.deserialize(self._raw[height])

    def raw_from(self, height: int) -> bytes:
        """The serialized best-chain headers from `height` to the tip."""
        return b"".join(self._raw[height:])

    def add(self, headers: list[BlockHeader], now: int) -> int:
        """Check and keep `headers` (parents first); return how many were new. SpvError on a bad one."""
        added = 0
        try:
            for header in headers:
                block_hash = header.hash()
                if block_hash in self.index or block_hash in self.heights:
                    continue
                parent = self.index.entries.get(header.prev_hash)
                if parent is None and header.prev_hash in self.heights:  # a fork below the indexed window
                    self._rebuild_index(max(self.heights[header.prev_hash] - self._window, 1))
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

    def _follow_tip(self) -> None:
        """Bring `best` to the index's most-work tip, walking back only to the fork point."""
        entry = self.tip
        if entry.hash == self.best[-1]:
            return
        branch = []
        while entry.height >= len(self.best) or self.best[entry.height] != entry.hash:
            branch.append(entry)
            entry = self.index[entry.prev_hash]
        fork = entry.height
        for stale in self.best[fork + 1 :]:
            del self.heights[stale]
        del self.best[fork + 1 :], self._raw[fork + 1 :]
        for new in reversed(branch):
            self.best.append(new.hash)
            self._raw.append(new.header.serialize())
            self.heights[new.hash] = new.height
        self.first_changed = min(self.first_changed, fork + 1)

    def locator(self) -> list[bytes]:
        """Hashes back from the tip: ten dense, then gaps doubling, ending at genesis (Bitcoin: GetLocator)."""
        hashes, height, step = [], self.height, 1
        while height > 0:
            hashes.append(self.best[height])
            if len(hashes) >= 10:
                step *= 2
            height = max(height - step, 0)
        hashes.append(self.best[0])
        return hashes

    def on_best_chain(self, block_hash: bytes) -> OnChain | None:
        height = self.heights.get(block_hash)
        return None if height is None else OnChain(block_hash, self.header_at(height), height)

    def verify_inclusion(self, txid: bytes, block_hash: bytes, position: int, branch: list[bytes]) -> OnChain:
        """The header that proves `txid` confirmed; SpvError if the proof does not hold."""
        entry = self.on_best_chain(block_hash)
        if entry is None:
            raise SpvError(
                f"the node places tx {hash_hex(txid)} in block {hash_hex(block_hash)}, "
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
