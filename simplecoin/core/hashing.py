"""Bitcoin's hash functions and merkle trees.

Hashes are bytes in internal byte order (as hashed); people see them reversed, in hex: `hash_hex` and
`hash_from_hex` are the one place that turns one into the other.
"""

from __future__ import annotations

import hashlib


def sha256d(data: bytes) -> bytes:
    """SHA-256 applied twice (Bitcoin: Hash)."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash_hex(h: bytes) -> str:
    """A hash as people see it: the bytes reversed, in hex (python-bitcoinlib: b2lx)."""
    return h[::-1].hex()


def hash_from_hex(text: str) -> bytes:
    """A hash's internal bytes from the hex people see (python-bitcoinlib: lx); ValueError on bad hex."""
    return bytes.fromhex(text)[::-1]


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256 (Bitcoin: Hash160), used for addresses."""
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def merkle_root(hashes: list[bytes]) -> bytes:
    """Bitcoin's merkle root: hash pairs level by level, the last hash paired with itself on odd levels.

    The duplication makes [a, b, c] and [a, b, c, c] share a root (CVE-2012-2459); blocks with duplicate
    txids are therefore rejected by validation, not here.
    """
    if not hashes:
        raise ValueError("merkle root of no hashes")
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def merkle_branch(hashes: list[bytes], index: int) -> list[bytes]:
    """The sibling hashes that link leaf `index` to the root, bottom up."""
    if not 0 <= index < len(hashes):
        raise ValueError(f"leaf {index} out of range for {len(hashes)} hashes")
    branch = []
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[index ^ 1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        index //= 2
    return branch


def merkle_root_from_branch(leaf: bytes, branch: list[bytes], index: int) -> bytes:
    """Fold a branch onto its leaf; the result equals the root when the proof is good."""
    if index < 0 or index >> len(branch):
        raise ValueError(f"leaf index {index} does not fit a branch of {len(branch)} levels")
    node = leaf
    for sibling in branch:
        node = sha256d(sibling + node) if index & 1 else sha256d(node + sibling)
        index >>= 1
    return node


def verify_merkle_branch(leaf: bytes, branch: list[bytes], index: int, root: bytes) -> bool:
    """True when `branch` proves that `leaf` sits at `index` under `root`."""
    try:
        return merkle_root_from_branch(leaf, branch, index) == root
    except ValueError:
        return False
