"""Light-client verification (SPV): check what a node says against block headers checked here.

The wallet keeps the headers of the chain itself and accepts one only if it links to a header it has,
carries valid proof of work, has the bits the retarget rule demands and a time after the median of the
11 before it -- all from the fixed genesis. A confirmed transaction is believed only with a merkle proof
that leads to the merkle root of a header on the best chain it checked. What SPV cannot show: that an
output is still unspent, or that a node tells about every transaction (it can leave some out).
"""

from __future__ import annotations

from simplecoin.core.chain import BlockIndex, BlockStatus, IndexEntry
from simplecoin.core.errors import SimpleCoinError, ValidationError
from simplecoin.core.hashing import hash_hex, sha256d, verify_merkle_branch
from simplecoin.core.params import NetworkParams
from simplecoin.core.pow import check_proof_of_work
from simplecoin.core.primitives import BlockHeader
from simplecoin.core.validation import check_header_contextual


class SpvError(SimpleCoinError):
    """Raised when a node's answer fails verification: that node is not to be trusted."""


class HeaderChain:
    """Every header the wallet accepted, with the most-work chain among them."""

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
        self.index = BlockIndex(params)
        self.index.add(self.index.make_entry(params.genesis_block.header, BlockStatus.VALID))

    @property
    def tip(self) -> IndexEntry:
        return self.index.best_candidate()

    def add(self, headers: list[BlockHeader], now: int) -> int:
        """Check and keep `headers` (parents first); return how many were new. SpvError on a bad one."""
        added = 0
        for header in headers:
            block_hash = header.hash()
            if block_hash in self.index:
                continue
            parent = self.index.entries.get(header.prev_hash)
            if parent is None:
                raise SpvError(f"header {header.hash_hex()} does not link to any header the wallet has")
            problem = check_proof_of_work(block_hash, header.bits, self.params.pow_limit)
            if problem:
                raise SpvError(f"header {header.hash_hex()} at height {parent.height + 1} has no valid work: {problem}")
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
        return added

    def locator(self) -> list[bytes]:
        """Hashes back from the tip, for asking a node where to continue."""
        return self.index.locator(self.tip)

    def on_best_chain(self, block_hash: bytes) -> IndexEntry | None:
        entry = self.index.entries.get(block_hash)
        if entry is None or entry.height > self.tip.height:
            return None
        return entry if self.index.ancestor(self.tip, entry.height).hash == block_hash else None

    def verify_inclusion(self, txid: bytes, block_hash: bytes, position: int, branch: list[bytes]) -> IndexEntry:
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
