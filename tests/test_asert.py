"""aserti3-2d (`pow.asert_target`): Bitcoin Cash's published test vectors and the C++ integer semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simplecoin.core.pow import asert_target, bits_to_target, target_to_bits

VECTORS = Path(__file__).parent / "data" / "aserti3-2d.txt"
BCH_SPACING = 600
BCH_HALF_LIFE = 2 * 24 * 60 * 60
BCH_POW_LIMIT = bits_to_target(0x1D00FFFF)
LIMIT = bits_to_target(0x1E0FFFFF)


def load_vectors() -> list[tuple[str, int, int, int, int, int, int, int]]:
    """(run, iteration, anchor height, anchor parent time, anchor bits, height, time, expected bits) each."""
    vectors = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        fields = line.split()
        if fields[0] == "run":
            run, anchor_height, anchor_time = fields[1], int(fields[2]), int(fields[3])
            anchor_bits, height, step, count = int(fields[4], 16), int(fields[5]), int(fields[6]), int(fields[7])
            iteration, time = 0, 0
            declared = len(vectors) + count
            continue
        iteration += 1
        time += int(fields[0])
        vectors.append((run, iteration, anchor_height, anchor_time, anchor_bits, height, time, int(fields[1], 16)))
        height += step
        if iteration == count:
            assert len(vectors) == declared, f"{run} has {iteration} vectors"
    return vectors


def test_every_published_vector():
    vectors = load_vectors()
    assert len(vectors) == 14_000
    assert len({v[0] for v in vectors}) == 12
    failed = []
    for run, iteration, anchor_height, anchor_time, anchor_bits, height, time, expected in vectors:
        target = asert_target(
            bits_to_target(anchor_bits),
            time - anchor_time,
            height - anchor_height,
            BCH_SPACING,
            BCH_HALF_LIFE,
            BCH_POW_LIMIT,
        )
        if target_to_bits(target) != expected:
            failed.append(f"{run} iteration {iteration}: {target_to_bits(target):#010x}, expected {expected:#010x}")
    assert not failed, f"{len(failed)} vectors fail, first: {failed[:5]}"


def test_on_schedule_keeps_the_anchor_target():
    anchor = LIMIT // 1000
    assert asert_target(anchor, 30 * 5, 4, 30, 600, LIMIT) == anchor  # 4 blocks above the anchor, 5 spacings later


def test_one_half_life_behind_doubles_and_ahead_halves():
    anchor = LIMIT // 1000
    assert asert_target(anchor, 30 + 600, 0, 30, 600, LIMIT) == 2 * anchor
    assert asert_target(anchor, 30 - 600, 0, 30, 600, LIMIT) == anchor // 2


def test_clamped_to_the_pow_limit_and_to_one():
    assert asert_target(LIMIT // 2, 30 + 10 * 600, 0, 30, 600, LIMIT) == LIMIT  # 1,024x easier: capped
    assert asert_target(1, -10 * 600, 0, 30, 600, LIMIT) == 1  # would be 0: a target is at least 1
    assert asert_target(LIMIT, 10**9, 0, 30, 600, LIMIT) == LIMIT  # far past any 256-bit value: still the limit


def test_negative_exponent_truncates_toward_zero_as_cpp_does():
    """(-1 * 65536) / 600 is -109.2: C++ gives -109, Python's // would give -110, a different target."""
    anchor = 1 << 200
    toward_zero = asert_target(anchor, 30 - 1, 0, 30, 600, 1 << 255)
    exponent = -109  # 16-bit fixed point: 2^(-109/65536)
    fraction = exponent % 65536  # 65427 after one right shift of the radix
    factor = 65536 + (
        (195_766_423_245_049 * fraction + 971_821_376 * fraction**2 + 5_127 * fraction**3 + (1 << 47)) >> 48
    )
    assert toward_zero == (anchor * factor) >> 17
    floored = -110 % 65536
    factor_floored = 65536 + (
        (195_766_423_245_049 * floored + 971_821_376 * floored**2 + 5_127 * floored**3 + (1 << 47)) >> 48
    )
    assert toward_zero != (anchor * factor_floored) >> 17


@pytest.mark.parametrize("seconds", [1, 299, 300, 599])
def test_the_cubic_stays_between_one_and_two(seconds: int):
    anchor = 1 << 200
    target = asert_target(anchor, 30 + seconds, 0, 30, 600, 1 << 255)
    assert anchor < target < 2 * anchor
    assert abs(target / anchor / 2 ** (seconds / 600) - 1) < 1e-4  # the cubic is this close to 2^x


TARGETS = st.integers(1, LIMIT)
DELTAS = st.integers(-(10**7), 10**7)
HEIGHTS = st.integers(0, 10**6)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(anchor=TARGETS, time_delta=DELTAS, height_delta=HEIGHTS, later=st.integers(1, 10**5))
def test_a_later_tip_never_asks_for_more_work(anchor: int, time_delta: int, height_delta: int, later: int):
    earlier_target = asert_target(anchor, time_delta, height_delta, 30, 600, LIMIT)
    later_target = asert_target(anchor, time_delta + later, height_delta, 30, 600, LIMIT)
    assert 1 <= earlier_target <= later_target <= LIMIT


@settings(max_examples=300, deadline=None, derandomize=True)
@given(anchor=TARGETS, time_delta=DELTAS, height_delta=HEIGHTS)
def test_one_more_block_in_the_same_time_never_asks_for_less_work(anchor: int, time_delta: int, height_delta: int):
    assert asert_target(anchor, time_delta, height_delta + 1, 30, 600, LIMIT) <= asert_target(
        anchor, time_delta, height_delta, 30, 600, LIMIT
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(anchor=st.integers(1 << 100, LIMIT >> 8), blocks=st.integers(0, 10**4))
def test_a_block_exactly_on_schedule_keeps_the_anchor_target(anchor: int, blocks: int):
    assert asert_target(anchor, 30 * (blocks + 1), blocks, 30, 600, LIMIT) == anchor
