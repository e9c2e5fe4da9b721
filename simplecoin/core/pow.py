"""Proof of work: compact targets, chain work and retargeting, with Bitcoin Core's exact arithmetic."""

from __future__ import annotations

from simplecoin.core.hashing import hash_hex


def bits_to_target(bits: int) -> int:
    """Decode a compact target (Bitcoin: arith_uint256::SetCompact).

    Raises ValueError for the negative and overflowing encodings, which no valid block may use.
    """
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)
        target = word
    else:
        target = word << (8 * (size - 3))
    if word != 0 and bits & 0x00800000:
        raise ValueError(f"compact target {bits:#010x} is negative")
    if word != 0 and (size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)):
        raise ValueError(f"compact target {bits:#010x} overflows 256 bits")
    return target


def target_to_bits(target: int) -> int:
    """Encode a target compactly (Bitcoin: arith_uint256::GetCompact), losing low bits as Bitcoin does."""
    if target < 0:
        raise ValueError("target must not be negative")
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    # The top mantissa bit is a sign bit: move one byte up rather than look negative.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    return compact | (size << 24)


def block_work(bits: int) -> int:
    """Expected number of hashes to find a block at this target (Bitcoin: GetBlockProof)."""
    target = bits_to_target(bits)
    return (1 << 256) // (target + 1)


def check_proof_of_work(block_hash: bytes, bits: int, pow_limit: int) -> str | None:
    """None when the hash meets the target; otherwise why not (Bitcoin: CheckProofOfWork)."""
    try:
        target = bits_to_target(bits)
    except ValueError as e:
        return str(e)
    if target == 0 or target > pow_limit:
        return f"target of bits {bits:#010x} is zero or above the proof-of-work limit"
    if int.from_bytes(block_hash, "little") > target:
        return f"hash {hash_hex(block_hash)} is above the target of bits {bits:#010x}"
    return None


def retarget(old_bits: int, actual_timespan: int, target_timespan: int, pow_limit: int) -> int:
    """New compact target after a retarget period (Bitcoin: CalculateNextWorkRequired).

    The measured timespan is clamped to [T/4, 4T] so one period can move difficulty at most 4x.
    """
    actual = min(max(actual_timespan, target_timespan // 4), target_timespan * 4)
    new_target = bits_to_target(old_bits) * actual // target_timespan
    return target_to_bits(min(new_target, pow_limit))


# aserti3-2d (Bitcoin Cash, 2020-11-15; BCHN: CalculateASERT): the target is the anchor's, times 2 to the power
# (how far the chain is behind its schedule) / half-life. Integer-only, so every node gets the same bits.
ASERT_RADIX_BITS = 16  # the exponent is fixed-point with 16 fractional bits
ASERT_RADIX = 1 << ASERT_RADIX_BITS


def _c_div(numerator: int, denominator: int) -> int:
    """Integer division that truncates toward zero, as C++'s `/` does (Python's `//` floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator < 0) == (denominator < 0) else -quotient


def asert_target(
    anchor_target: int, time_delta: int, height_delta: int, spacing: int, half_life: int, pow_limit: int
) -> int:
    """The target after a tip `height_delta` blocks above the anchor and `time_delta` seconds after the anchor's
    parent (Bitcoin Cash: aserti3-2d), clamped to [1, pow_limit].

    target = anchor_target * 2^((time_delta - spacing * (height_delta + 1)) / half_life), with the exponent in
    16-bit fixed point and 2^x for x in [0, 1) by the specification's cubic, which is exact at both ends.
    """
    exponent = _c_div((time_delta - spacing * (height_delta + 1)) * ASERT_RADIX, half_life)
    shifts = exponent >> ASERT_RADIX_BITS  # floor, also for negative exponents (C++'s >> on int64)
    fraction = exponent - shifts * ASERT_RADIX  # in [0, 65535]
    factor = ASERT_RADIX + (
        (195_766_423_245_049 * fraction + 971_821_376 * fraction**2 + 5_127 * fraction**3 + (1 << 47)) >> 48
    )
    target = anchor_target * factor
    shifts -= ASERT_RADIX_BITS
    target = target << shifts if shifts > 0 else target >> -shifts
    # Python does not wrap at 2^256; where arith_uint256 would overflow, BCHN gives pow_limit too.
    return min(max(target, 1), pow_limit)
