"""SimpleCoin: a small cryptocurrency that validates like Bitcoin.

Glossary:
    base unit   the smallest amount; 1 coin = 100,000,000 base units (Bitcoin's satoshi)
    txid        SHA-256d of a transaction's bytes; shown byte-reversed in hex, as Bitcoin shows it
    outpoint    (txid, output index): one output of one transaction
    coin / UTXO an output nobody has spent yet
    bits        a compact encoding of the target a block hash must not exceed
    chain work  the expected number of hashes behind a chain; the node follows the most of it
    coinbase    a block's first transaction, which creates the subsidy and collects the fees
    undo data   the coins a block spent, kept so the block can be disconnected in a reorg

Deliberate simplifications against Bitcoin: no script language (an input carries a public key and a
signature; an output names a public-key hash); one signature hash covering every input and output; no
sequence numbers, segwit or soft-fork machinery.

The public helpers below behave exactly like Bitcoin's functions of the same job; `signature_problem(pubkey,
signature, digest)` returns None for a valid signature, else (reject reason, detail).
"""

from simplecoin.core.hashing import hash160, merkle_root, sha256d
from simplecoin.core.keys import base58check_decode, base58check_encode, signature_problem
from simplecoin.core.pow import bits_to_target, retarget, target_to_bits
from simplecoin.core.primitives import BlockHeader

__all__ = [
    "BlockHeader",
    "base58check_decode",
    "base58check_encode",
    "bits_to_target",
    "hash160",
    "merkle_root",
    "retarget",
    "sha256d",
    "signature_problem",
    "target_to_bits",
]
