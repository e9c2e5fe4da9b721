"""Keys, signatures and addresses: secp256k1 ECDSA (RFC 6979, low-S, compressed keys) and Base58Check."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigencode_der_canonize

from simplecoin.core import secp256k1
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash160, sha256d
from simplecoin.core.primitives import Transaction
from simplecoin.core.secp256k1 import check_pubkey, parse_der_signature

CURVE_ORDER = secp256k1.N
HALF_ORDER = secp256k1.HALF_N

# Which library does the verification equation: libsecp256k1 (coincurve) when it imports, else python-ecdsa.
# Both get the same inputs after the same checks of ours and must give the same verdicts (tests/test_signatures.py).
_BACKENDS: dict[str, Callable[[bytes, int, int, bytes], bool]] = {
    "libsecp256k1": secp256k1.verify_libsecp256k1,
    "ecdsa": secp256k1.verify_ecdsa,
}
DEFAULT_VERIFIER = "libsecp256k1" if secp256k1.coincurve is not None else "ecdsa"
VERIFIER = DEFAULT_VERIFIER
_verify = _BACKENDS[VERIFIER]


def use_verifier(name: str | None) -> None:
    """Verify with backend `name` from now on (None: the default). For tests that compare the two."""
    global VERIFIER, _verify
    name = name or DEFAULT_VERIFIER
    if name == "libsecp256k1" and secp256k1.coincurve is None:
        raise ValueError("coincurve is not installed")
    _verify = _BACKENDS[name]  # KeyError for an unknown name
    VERIFIER = name


B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}


def base58_encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))  # each leading zero byte is a leading '1'
    return "1" * zeros + "".join(reversed(out))


def base58_decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise DecodeError(f"{c!r} is not a Base58 character")
        n = n * 58 + _B58_INDEX[c]
    zeros = len(text) - len(text.lstrip("1"))
    return bytes(zeros) + n.to_bytes((n.bit_length() + 7) // 8, "big")


def base58check_encode(payload: bytes) -> str:
    """Base58 of payload + the first 4 bytes of its SHA-256d (Bitcoin: EncodeBase58Check)."""
    return base58_encode(payload + sha256d(payload)[:4])


def base58check_decode(text: str) -> bytes:
    """The payload of a Base58Check string; ValueError on a bad character or checksum."""
    raw = base58_decode(text)
    if len(raw) < 4:
        raise DecodeError("too short for Base58Check")
    payload, checksum = raw[:-4], raw[-4:]
    if sha256d(payload)[:4] != checksum:
        raise DecodeError("bad Base58Check checksum (mistyped?)")
    return payload


def address_from_pubkey_hash(pubkey_hash: bytes, version: int) -> str:
    return base58check_encode(bytes([version]) + pubkey_hash)


def pubkey_hash_from_address(address: str, version: int) -> bytes:
    """The 20-byte HASH160 inside an address of this network; DecodeError if it is not one."""
    payload = base58check_decode(address)
    if len(payload) != 21:
        raise DecodeError(f"address payload is {len(payload)} bytes, expected 21")
    if payload[0] != version:
        raise DecodeError(f"address version {payload[0]} belongs to another network (expected {version})")
    return payload[1:]


def signature_hash(tx: Transaction, input_index: int, genesis_hash: bytes) -> bytes:
    """What input `input_index` signs: the network, and the whole transaction bar the signatures.

    Committing to every outpoint, every output, version and locktime means a signed transaction can't be
    redirected or re-priced; committing to the genesis hash means it can't be replayed on another network;
    the input index keeps one input's signature from serving another.
    """
    # The bytes of Writer().raw(genesis_hash).raw(tx.unsigned_bytes).u32(input_index), without the Writer.
    return sha256d(genesis_hash + tx.unsigned_bytes + input_index.to_bytes(4, "little"))


def signature_hashes(tx: Transaction, genesis_hash: bytes) -> list[bytes]:
    """`signature_hash` of every input, hashing the shared prefix once.

    Each input's hash covers the whole transaction, so hashing it afresh per input costs size x inputs: a
    100 kB transaction of 690 inputs would hash 67 MB (Bitcoin's quadratic legacy sighash). The SHA-256 state
    after the common prefix is copied for each input instead; the digests are the same bytes.
    """
    prefix = hashlib.sha256(genesis_hash + tx.unsigned_bytes)
    digests = []
    for i in range(len(tx.inputs)):
        inner = prefix.copy()
        inner.update(i.to_bytes(4, "little"))
        digests.append(hashlib.sha256(inner.digest()).digest())
    return digests


@dataclass(frozen=True)
class PrivateKey:
    """A secp256k1 secret; `secret` is the 32-byte big-endian scalar."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32 or not 0 < int.from_bytes(self.secret, "big") < CURVE_ORDER:
            raise ValueError("a private key is a 32-byte number in [1, n-1]")

    def __repr__(self) -> str:
        return "PrivateKey(<secret>)"  # never print the secret by accident

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(SigningKey.generate(curve=SECP256k1).to_string())

    @cached_property
    def _signing_key(self) -> SigningKey:
        return SigningKey.from_string(self.secret, curve=SECP256k1)

    @cached_property
    def pubkey(self) -> bytes:
        return self._signing_key.get_verifying_key().to_string("compressed")

    @property
    def pubkey_hash(self) -> bytes:
        return hash160(self.pubkey)

    def sign_digest(self, digest: bytes) -> bytes:
        """Deterministic (RFC 6979) DER signature with low S."""
        return self._signing_key.sign_digest_deterministic(
            digest, hashfunc=hashlib.sha256, sigencode=sigencode_der_canonize
        )


def signature_problem(pubkey: bytes, signature: bytes, digest: bytes) -> tuple[str, str] | None:
    """None when `signature` by `pubkey` over the 32-byte `digest` is valid; otherwise (reject reason, detail).

    Never raises for any bytes in `pubkey` and `signature`: the encoding rules are checked here, the library
    only evaluates the verification equation (see simplecoin/core/secp256k1.py and docs/protocol.md).
    """
    if len(digest) != 32:
        raise ValueError(f"a signature hash is 32 bytes, not {len(digest)}")  # our bug, not a stranger's input
    try:
        check_pubkey(pubkey)
    except DecodeError as e:
        return "bad-txns-pubkey", str(e)
    try:
        r, s = parse_der_signature(signature)
    except DecodeError as e:
        return "bad-txns-sig-der", str(e)
    # Bitcoin leaves r, s >= n to the verifier; a value out of range has no meaning, so it is an encoding error.
    if not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER):
        return "bad-txns-sig-der", "signature's r or s is not in [1, n-1]"
    if s > HALF_ORDER:
        # Bitcoin enforces LOW_S only as relay policy (BIP146 never activated); here it is consensus.
        return "bad-txns-sig-high-s", "signature has a high S value, which makes the txid malleable"
    if not _verify(pubkey, r, s, digest):
        # Includes R = u1*G + u2*Q at infinity (the poison key (n-1)*G with r = digest mod n), SEC 1 4.1.4 step 5.
        return "bad-txns-sig-invalid", "signature does not match the key and transaction"
    return None


def sign_input(tx: Transaction, input_index: int, key: PrivateKey, genesis_hash: bytes) -> bytes:
    return key.sign_digest(signature_hash(tx, input_index, genesis_hash))
