"""Keys, signatures and addresses: secp256k1 ECDSA (RFC 6979, low-S, compressed keys) and Base58Check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from ecdsa import BadSignatureError, MalformedPointError, SECP256k1, SigningKey, VerifyingKey
from ecdsa.der import UnexpectedDER
from ecdsa.util import sigdecode_der, sigencode_der, sigencode_der_canonize

from simplecoin.core.encoding import Writer
from simplecoin.core.errors import DecodeError
from simplecoin.core.hashing import hash160, sha256d
from simplecoin.core.primitives import Transaction

CURVE_ORDER = SECP256k1.order
HALF_ORDER = CURVE_ORDER // 2
PUBKEY_SIZE = 33  # compressed: 0x02/0x03 and x
MAX_SIGNATURE_SIZE = 72  # DER of two 33-byte integers

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
    return sha256d(Writer().raw(genesis_hash).raw(tx.unsigned_bytes).u32(input_index).getvalue())


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
    """None when `signature` by `pubkey` over `digest` is valid; otherwise (reject reason, detail)."""
    if len(pubkey) != PUBKEY_SIZE or pubkey[0] not in (2, 3):
        return "bad-txns-pubkey", "public key is not a 33-byte compressed key"
    try:
        key = VerifyingKey.from_string(pubkey, curve=SECP256k1)
    except MalformedPointError:
        return "bad-txns-pubkey", "public key is not a point on secp256k1"
    if len(signature) > MAX_SIGNATURE_SIZE:
        return "bad-txns-sig-der", f"signature is {len(signature)} bytes, more than DER allows"
    try:
        r, s = sigdecode_der(signature, CURVE_ORDER)
    except (UnexpectedDER, ValueError) as e:
        return "bad-txns-sig-der", f"signature is not DER ({e})"
    # Re-encoding must give the same bytes: one signature, one encoding (malleability, BIP66).
    if not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER) or sigencode_der(r, s, CURVE_ORDER) != signature:
        return "bad-txns-sig-der", "signature is not strict DER"
    if s > HALF_ORDER:
        # Bitcoin enforces LOW_S only as relay policy (BIP146 never activated); here it is consensus.
        return "bad-txns-sig-high-s", "signature has a high S value, which makes the txid malleable"
    try:
        key.verify_digest(signature, digest, sigdecode=sigdecode_der)
    except BadSignatureError:
        return "bad-txns-sig-invalid", "signature does not match the key and transaction"
    return None


def sign_input(tx: Transaction, input_index: int, key: PrivateKey, genesis_hash: bytes) -> bytes:
    return key.sign_digest(signature_hash(tx, input_index, genesis_hash))
