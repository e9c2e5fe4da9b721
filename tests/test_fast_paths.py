"""The fast paths of validation give the verdicts and bytes of the slow ones they replace.

Each fast path is checked against the straightforward code it stands in for, on the inputs where they could
part ways: keys off the curve (the Jacobi symbol against the square root), and transactions decoded from
bytes (the cached serialization and signature hash against ones written afresh).
"""

from __future__ import annotations

import random

import pytest

from simplecoin.core import secp256k1
from simplecoin.core.errors import DecodeError
from simplecoin.core.keys import CURVE_ORDER, PrivateKey


def verdict(check, pubkey: bytes) -> str | None:
    try:
        check(pubkey)
    except DecodeError as e:
        return str(e)
    return None


def key_candidates() -> list[bytes]:
    rng = random.Random(11)
    keys = [PrivateKey(rng.randrange(1, CURVE_ORDER).to_bytes(32, "big")).pubkey for _ in range(50)]
    keys += [bytes([rng.choice((2, 3))]) + rng.randbytes(32) for _ in range(400)]  # about half off the curve
    keys += [b"\x02" + (secp256k1.P + i).to_bytes(32, "big") for i in range(-3, 0)]  # x just below p
    keys += [b"\x02" + (secp256k1.P + i).to_bytes(32, "big") for i in range(3)]  # x >= p
    keys += [b"\x04" + bytes(32), b"\x02" + bytes(31), b"", b"\x03" + bytes(32)]
    return keys


@pytest.mark.parametrize("gmpy2", [True, False], ids=["jacobi", "no-gmpy2"])
def test_key_check_matches_decoding_the_point(monkeypatch, gmpy2: bool):
    if not gmpy2:
        monkeypatch.setattr(secp256k1, "_gmp_jacobi", None)
        monkeypatch.setattr(secp256k1, "_gmp_powmod", None)
    candidates = key_candidates()
    fast = [verdict(secp256k1.check_pubkey, k) for k in candidates]
    slow = [verdict(secp256k1.decode_pubkey, k) for k in candidates]
    assert fast == slow
    assert fast.count(None) > 50
    assert sum(v == "public key is not a point on secp256k1" for v in fast) > 100
