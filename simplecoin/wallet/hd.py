"""One backup forever: a 12-word recovery phrase (BIP39) and every key derived from it (BIP32).

Glossary: the *phrase* is 12 words from BIP39's English list (128 random bits and a 4-bit checksum); the *seed* is
PBKDF2-HMAC-SHA512 of the phrase (BIP39, empty extra passphrase); the *master key* and every child key come from
the seed by HMAC-SHA512 (BIP32). Addresses follow the BIP44 layout with a coin type of our own:

    m / 44' / COIN_TYPE' / 0' / chain / index       chain 0: receiving addresses, chain 1: change

The three levels above `chain` are hardened, so a leaked child key and the account's public data never give
away a parent's private key.

BIP39 comes from Trezor's `mnemonic` package, the reference implementation (its English word list, checksum
and seed). BIP32's private derivation is the few lines below, checked against the official test vectors in
tests/test_wallet_hd.py: the maintained `bip32` package pins coincurve < 21 (we need 21), and `bip_utils`
brings ten more packages for the many coins it serves.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from mnemonic import Mnemonic

from simplecoin.core.hashing import hash160
from simplecoin.core.keys import CURVE_ORDER, PrivateKey, base58check_encode

# SLIP-44 lists registered coin types; this number ("SCO" in ASCII) is not among them, so SimpleCoin keys can
# never collide with a Bitcoin wallet's keys from the same phrase (different hardened branch).
COIN_TYPE = 0x53434F
HARDENED = 0x80000000
RECEIVE, CHANGE = 0, 1
ACCOUNT_PATH = f"m/44'/{COIN_TYPE}'/0'"
GAP_LIMIT = 20  # BIP44: a restore stops after this many unused addresses in a row on a chain
PHRASE_WORDS = 12
XPRV_VERSION = 0x0488ADE4  # mainnet "xprv", only to compare with the BIP32 test vectors

_MNEMONIC = Mnemonic("english")


class PhraseError(ValueError):
    """Raised when recovery words are not a valid BIP39 English phrase (unknown word or bad checksum)."""


def new_phrase() -> str:
    """12 fresh words (128 bits from the OS's random source)."""
    return _MNEMONIC.generate(strength=128)


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


@dataclass(frozen=True)
class ExtendedKey:
    """A BIP32 extended private key: the key, its chain code, and where it sits in the tree."""

    secret: bytes
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = bytes(4)
    child_number: int = 0

    def __repr__(self) -> str:
        return f"ExtendedKey(<secret>, depth={self.depth}, child={self.child_number})"

    @classmethod
    def master(cls, seed: bytes) -> ExtendedKey:
        digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
        if not 0 < int.from_bytes(digest[:32], "big") < CURVE_ORDER:
            raise ValueError("this seed gives no valid master key (probability below 2^-127)")
        return cls(digest[:32], digest[32:])

    @property
    def key(self) -> PrivateKey:
        return PrivateKey(self.secret)

    def child(self, index: int) -> ExtendedKey:
        """BIP32 CKDpriv: hardened (index >= 2^31) hashes the private key, normal the public key."""
        if index >= HARDENED:
            data = b"\x00" + self.secret + index.to_bytes(4, "big")
        else:
            data = self.key.pubkey + index.to_bytes(4, "big")
        digest = hmac.new(self.chain_code, data, hashlib.sha512).digest()
        tweak = int.from_bytes(digest[:32], "big")
        child = (tweak + int.from_bytes(self.secret, "big")) % CURVE_ORDER
        if tweak >= CURVE_ORDER or child == 0:  # BIP32: "proceed with the next value for i"; ~2^-127
            raise ValueError(f"child {index} is invalid; use the next index")
        fingerprint = hash160(self.key.pubkey)[:4]
        return ExtendedKey(child.to_bytes(32, "big"), digest[32:], self.depth + 1, fingerprint, index)

    def derive(self, path: str) -> ExtendedKey:
        """The key at `path` below this one, like "m/44'/0'/0'/0/3" ("'" or "h" marks hardened)."""
        parts = path.split("/")
        if parts[0] != "m":
            raise ValueError(f"a derivation path starts with 'm': {path!r}")
        key = self
        for part in parts[1:]:
            hardened = part.endswith(("'", "h"))
            number = int(part.rstrip("'h"))
            if not 0 <= number < HARDENED:
                raise ValueError(f"path element {part!r} is out of range")
            key = key.child(number + (HARDENED if hardened else 0))
        return key

    def xprv(self) -> str:
        """The BIP32 serialization (mainnet version bytes), for the test vectors."""
        payload = (
            XPRV_VERSION.to_bytes(4, "big")
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + b"\x00"
            + self.secret
        )
        return base58check_encode(payload)


def key_path(chain: int, index: int) -> str:
    return f"{ACCOUNT_PATH}/{chain}/{index}"


def account_key(seed: bytes) -> ExtendedKey:
    return ExtendedKey.master(seed).derive(ACCOUNT_PATH)


def derive_key(account: ExtendedKey, chain: int, index: int) -> PrivateKey:
    return account.child(chain).child(index).key
