"""One backup forever: a 12-word recovery phrase (BIP39) and every key derived from it (BIP32).

Glossary: the *phrase* is 12 words from BIP39's English list (128 random bits and a 4-bit checksum); the *seed* is
PBKDF2-HMAC-SHA512 of the phrase (BIP39, empty extra passphrase); the *master key* and every child key come from
the seed by HMAC-SHA512 (BIP32). Addresses follow the BIP44 layout with a coin type of our own:

    m / 44' / COIN_TYPE' / 0' / chain / index       chain 0: receiving addresses, chain 1: change

The three levels above `chain` are hardened, so a leaked child key and the account's public data never give
away a parent's private key.

BIP39 comes from Trezor's `mnemonic` package, the reference implementation (its English word list, checksum
and seed); BIP32 from `bip_utils` (its SLIP-10 secp256k1 derivation, which is BIP32). Both are checked against
the official test vectors in tests/test_wallet_hd.py. (The smaller `bip32` and `hdwallet` packages pin
coincurve below 21, which the node's verifier uses.)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING

from mnemonic import Mnemonic

if TYPE_CHECKING:
    from bip_utils import Bip32Slip10Secp256k1

from simplecoin.core.keys import PrivateKey

# SLIP-44 lists registered coin types; this number ("SCO" in ASCII) is not among them, so SimpleCoin keys can
# never collide with a Bitcoin wallet's keys from the same phrase (different hardened branch).
COIN_TYPE = 0x53434F
HARDENED = 0x80000000
RECEIVE, CHANGE = 0, 1
ACCOUNT_PATH = f"m/44'/{COIN_TYPE}'/0'"
GAP_LIMIT = 20  # BIP44: a restore stops after this many unused addresses in a row on a chain
PHRASE_WORDS = 12

_MNEMONIC = Mnemonic("english")


class PhraseError(ValueError):
    """Raised when recovery words are not a valid BIP39 English phrase (unknown word or bad checksum)."""


def new_phrase() -> str:
    """12 fresh words (128 bits from the OS's random source)."""
    return _MNEMONIC.generate(strength=128)


def recovery_notice(phrase: str) -> str:
    """What a new wallet shows, once, with its words (`wallet.py new` and `miner.py`'s first start)."""
    return (
        "Your recovery words (write them down, in order, and keep them offline; anyone who has them can "
        f"spend your coins; they are shown only this once):\n\n    {phrase}\n"
    )


def unknown_words(phrase: str) -> list[tuple[int, str]]:
    """(position from 1, word) of each word that is not on the BIP39 English list."""
    return [(i, w) for i, w in enumerate(phrase.lower().split(), 1) if w not in _MNEMONIC.wordlist]


def close_words(word: str) -> list[str]:
    """Words of the list a mistyped `word` may have meant (BIP39 words differ in their first 4 letters)."""
    word = word.lower()
    same_start = [w for w in _MNEMONIC.wordlist if len(word) >= 3 and w.startswith(word[:3])]
    return sorted(set(same_start[:6] + difflib.get_close_matches(word, _MNEMONIC.wordlist, n=3, cutoff=0.75)))


def seed_from_phrase(phrase: str) -> bytes:
    """The 64-byte BIP39 seed; PhraseError if a word is unknown or the checksum fails."""
    words = " ".join(phrase.lower().split())
    if len(words.split()) not in (12, 15, 18, 21, 24):
        raise PhraseError(f"a recovery phrase has 12 words (this has {len(words.split())})")
    unknown = [w for w in words.split() if w not in _MNEMONIC.wordlist]
    if unknown:
        raise PhraseError(f"{unknown[0]!r} is not a word of the BIP39 English list")
    if not _MNEMONIC.check(words):
        raise PhraseError("the words' checksum does not match: a word is wrong or in the wrong place")
    return Mnemonic.to_seed(words, passphrase="")


def master_key(seed: bytes) -> Bip32Slip10Secp256k1:
    """The BIP32 master key of a seed."""
    # Imported here, when a key is derived: the package imports every coin it knows (about 0.5 s), which
    # commands like `balance` should not pay.
    from bip_utils import Bip32Slip10Secp256k1

    return Bip32Slip10Secp256k1.FromSeed(seed)


def xprv(seed: bytes, path: str = "m") -> str:
    """The BIP32 serialization (mainnet "xprv") of the key at `path` below the seed's master, as the vectors give it."""
    return master_key(seed).DerivePath(path).PrivateKey().ToExtended()


def key_path(chain: int, index: int) -> str:
    return f"{ACCOUNT_PATH}/{chain}/{index}"


def account_key(seed: bytes) -> Bip32Slip10Secp256k1:
    """The account's extended key, m/44'/COIN_TYPE'/0' (hardened all the way)."""
    return master_key(seed).DerivePath(ACCOUNT_PATH)


def derive_key(account: Bip32Slip10Secp256k1, chain: int, index: int) -> PrivateKey:
    """The key at `chain`/`index` below the account."""
    return PrivateKey(account.ChildKey(chain).ChildKey(index).PrivateKey().Raw().ToBytes())


def keys_in_use(account: Bip32Slip10Secp256k1, is_used: Callable[[PrivateKey], bool]) -> tuple[int, int]:
    """(receiving, change): on each chain, how many keys up to the last one `is_used` says is in use.

    BIP44's account discovery: a chain is scanned until GAP_LIMIT unused keys in a row, so a wallet that
    handed out addresses nobody paid (fewer than the gap limit in a row) is still found whole.
    """
    counts = []
    for chain in (RECEIVE, CHANGE):
        used, index, unused_run = 0, 0, 0
        while unused_run < GAP_LIMIT:
            if is_used(derive_key(account, chain, index)):
                used, unused_run = index + 1, 0
            else:
                unused_run += 1
            index += 1
        counts.append(used)
    return counts[0], counts[1]
