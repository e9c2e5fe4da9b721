"""secp256k1 ECDSA verification: our encoding rules first, then the arithmetic by libsecp256k1 or python-ecdsa.

Which checks are ours (consensus, identical whatever library is installed):
    public key  33 bytes, 0x02/0x03 then x < p, and x^3 + 7 a square mod p (the point is on the curve);
                decided with a Jacobi symbol (gmpy2), ~8x cheaper than the square root, which only the
                python-ecdsa path needs
    signature   strict DER (Bitcoin: IsValidSignatureEncoding, BIP66, without the sighash byte); 0 < r, s < n
    low S       s <= n/2 (Bitcoin: IsLowDERSignature; policy there, consensus here)
What the library does: only the verification equation, on inputs that already passed the checks above.
    libsecp256k1 (through `coincurve`'s cffi module, called directly: the key bytes and (r, s) as 64 bytes,
    no DER re-encoding or wrapper objects) when it can be imported; otherwise python-ecdsa (+gmpy2), with the
    final point addition done here so that R = point at infinity is an invalid signature, not a TypeError
    (python-ecdsa's `verifies` computes `INFINITY.x() % n`; the poison key (n-1)*G with r = digest mod n hits it).

Glossary: p the field prime, n the group order, G the generator, (r, s) a signature, z the 32-byte digest as
an integer, u1 = z/s, u2 = r/s, R = u1*G + u2*Q; valid iff R is not infinity and x(R) mod n == r
(SEC 1 v2 section 4.1.4).
"""

from __future__ import annotations

from ecdsa import SECP256k1
from ecdsa.ellipticcurve import INFINITY, PointJacobi

from simplecoin.core.errors import DecodeError

try:  # Bitcoin Core's own library; python-ecdsa is the fallback when the wheel is missing
    import coincurve

    # coincurve's public wrappers cost as much as a third of a verification (a PublicKey object, DER re-parsed);
    # its cffi module is the same C functions without them. Pinned to coincurve 21 in requirements.txt.
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib
    from coincurve.context import GLOBAL_CONTEXT as _CONTEXT
except ImportError:
    coincurve = None

try:  # a 256-bit modular power is ~10x faster in GMP, and the key check needs one (python-ecdsa uses it too)
    from gmpy2 import jacobi as _gmp_jacobi
    from gmpy2 import powmod as _gmp_powmod
except ImportError:
    _gmp_powmod = None
    _gmp_jacobi = None

P = 2**256 - 2**32 - 977  # field prime
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # group order
HALF_N = N // 2
B = 7  # y^2 = x^3 + 7
PUBKEY_SIZE = 33  # compressed: 0x02/0x03 and x
MAX_SIGNATURE_SIZE = 72  # DER of two 33-byte integers (Bitcoin: the 73-byte limit less the sighash byte)
MIN_SIGNATURE_SIZE = 8  # 30 06 02 01 r 02 01 s

Point = tuple[int, int] | None  # affine (x, y); None is the point at infinity


# -- encodings: ours --------------------------------------------------------------------------------------------------


def decode_pubkey(pubkey: bytes) -> tuple[int, int]:
    """The affine point of a 33-byte compressed key; DecodeError if it is not one on secp256k1."""
    if len(pubkey) != PUBKEY_SIZE or pubkey[0] not in (2, 3):
        raise DecodeError("public key is not a 33-byte compressed key")
    x = int.from_bytes(pubkey[1:], "big")
    if x >= P:
        raise DecodeError("public key x is not below the field prime")
    y_squared = (pow(x, 3, P) + B) % P
    y = _sqrt_candidate(y_squared)
    if y * y % P != y_squared:
        raise DecodeError("public key is not a point on secp256k1")
    if y & 1 != pubkey[0] & 1:
        y = P - y
    return x, y


def check_pubkey(pubkey: bytes) -> None:
    """`decode_pubkey`'s verdict without computing y (libsecp256k1 never needs it from us)."""
    if len(pubkey) != PUBKEY_SIZE or pubkey[0] not in (2, 3):
        raise DecodeError("public key is not a 33-byte compressed key")
    x = int.from_bytes(pubkey[1:], "big")
    if x >= P:
        raise DecodeError("public key x is not below the field prime")
    if _gmp_jacobi is None:
        decode_pubkey(pubkey)
        return
    # Euler's criterion by a Jacobi symbol: x^3 + 7 has a square root mod p iff the symbol is 0 or 1
    # (0 cannot happen on secp256k1, whose order is odd, but is a square all the same: y = 0).
    if _gmp_jacobi((x * x * x + B) % P, P) < 0:
        raise DecodeError("public key is not a point on secp256k1")


def _sqrt_candidate(a: int) -> int:
    """a^((p+1)/4) mod p: since p = 3 mod 4, the square root of `a` if it has one."""
    if _gmp_powmod is not None:
        return int(_gmp_powmod(a, (P + 1) // 4, P))
    return pow(a, (P + 1) // 4, P)


def parse_der_signature(signature: bytes) -> tuple[int, int]:
    """(r, s) of a strictly DER-encoded signature; DecodeError otherwise (Bitcoin: IsValidSignatureEncoding).

    Strict means the one encoding DER allows: short-form lengths that add up, two INTEGERs, no sign bit
    set and no zero byte in front that the next byte does not need (BIP66; malleability otherwise).
    """
    size = len(signature)
    if not MIN_SIGNATURE_SIZE <= size <= MAX_SIGNATURE_SIZE:
        raise DecodeError(f"signature is {size} bytes, DER of (r, s) is {MIN_SIGNATURE_SIZE}-{MAX_SIGNATURE_SIZE}")
    if signature[0] != 0x30 or signature[1] != size - 2:
        raise DecodeError("signature is not one short-form DER SEQUENCE covering all its bytes")
    len_r = signature[3]
    if 5 + len_r >= size:
        raise DecodeError("signature's r runs past its end")
    len_s = signature[5 + len_r]
    if 6 + len_r + len_s != size:
        raise DecodeError("signature's lengths do not add up")
    r = _der_integer(signature, 2, len_r, "r")
    s = _der_integer(signature, 4 + len_r, len_s, "s")
    return r, s


def _der_integer(signature: bytes, at: int, length: int, name: str) -> int:
    body = signature[at + 2 : at + 2 + length]
    if signature[at] != 0x02:
        raise DecodeError(f"signature's {name} is not a DER INTEGER")
    if length == 0:
        raise DecodeError(f"signature's {name} is empty")
    if body[0] & 0x80:
        raise DecodeError(f"signature's {name} is negative")
    if length > 1 and body[0] == 0 and not body[1] & 0x80:
        raise DecodeError(f"signature's {name} has a zero byte in front it does not need")
    return int.from_bytes(body, "big")


# -- the verification equation: a library's ---------------------------------------------------------------------------


def verify_libsecp256k1(pubkey: bytes, r: int, s: int, digest: bytes) -> bool:
    """libsecp256k1's secp256k1_ecdsa_verify on inputs our checks passed; it too calls R = infinity invalid."""
    assert coincurve is not None, "use_verifier() chooses this backend only when coincurve imported"
    ctx = _CONTEXT.ctx
    key = _ffi.new("secp256k1_pubkey *")
    signature = _ffi.new("secp256k1_ecdsa_signature *")
    # Neither parse can fail on what our checks let through (a point on the curve; 0 < r, s < n); if one
    # did, the verdict is "invalid", never a signature checked against uninitialised memory.
    if not _lib.secp256k1_ec_pubkey_parse(ctx, key, pubkey, PUBKEY_SIZE):
        return False
    if not _lib.secp256k1_ecdsa_signature_parse_compact(ctx, signature, r.to_bytes(32, "big") + s.to_bytes(32, "big")):
        return False
    # libsecp256k1 refuses a high S here too (it wants the normalised form); ours refused it first.
    return _lib.secp256k1_ecdsa_verify(ctx, signature, digest, key) == 1


_GENERATOR = SECP256k1.generator  # PointJacobi with precomputed multiples of G
_CURVE = SECP256k1.curve


def verify_ecdsa(pubkey: bytes, r: int, s: int, digest: bytes) -> bool:
    """SEC 1 v2 4.1.4 with python-ecdsa's scalar multiplication and our own final addition."""
    point = decode_pubkey(pubkey)  # DecodeError cannot happen: check_pubkey passed
    z = int.from_bytes(digest, "big")  # 256-bit digest, 256-bit n: nothing to truncate
    w = pow(s, -1, N)
    u1, u2 = z * w % N, r * w % N
    q = PointJacobi(_CURVE, point[0], point[1], 1, N)
    big_r = _add(_affine(_GENERATOR * u1), _affine(q * u2))
    if big_r is None:  # the poison case: u1*G = -u2*Q
        return False
    return big_r[0] % N == r


def _affine(point: PointJacobi) -> Point:
    # python-ecdsa returns its INFINITY singleton for 0*P and for a sum that cancels.
    if point is INFINITY:
        return None
    a = point.to_affine()
    return None if a is INFINITY else (a.x(), a.y())


def _add(a: Point, b: Point) -> Point:
    """Affine addition with every case spelled out: infinity, P + (-P), doubling, the general case."""
    if a is None:
        return b
    if b is None:
        return a
    (x1, y1), (x2, y2) = a, b
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        slope = 3 * x1 * x1 * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P
