"""The fee estimator's bookkeeping (core/feeest.py), block by block, with no node: what it counts and answers."""

from __future__ import annotations

import bisect

import pytest

from simplecoin.core import feeest
from simplecoin.core.errors import DecodeError
from simplecoin.core.feeest import MAX_CONFIRMS, SUFFICIENT_TXS, ConfirmedEstimate, FeeEstimator
from simplecoin.core.hashing import sha256d

SIZE = 200


def txids(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}{i}".encode().ljust(32, b"\0") for i in range(n)]


def watch(est: FeeEstimator, ids: list[bytes], per_byte: int, height: int) -> None:
    for txid in ids:
        est.track(txid, per_byte * SIZE, SIZE, height)


def pending_total(est: FeeEstimator) -> int:
    return sum(map(sum, est.pending)) + sum(est.old_pending)


def test_no_data_is_no_answer():
    est = FeeEstimator(100)
    answer = est.estimate()
    assert (answer.fee_rate, answer.samples, answer.pending) == (None, 0, 0)


def test_too_few_confirmations_is_no_answer():
    est = FeeEstimator(100)
    few = txids("a", int(SUFFICIENT_TXS) - 1)
    watch(est, few, 3, 100)
    est.block_connected(101, few)
    assert est.estimate().fee_rate is None


def test_what_confirmed_in_one_block_is_the_answer():
    est = FeeEstimator(100)
    ids = txids("a", 10)
    watch(est, ids, 2, 100)
    est.block_connected(101, ids)
    answer = est.estimate()
    assert (answer.fee_rate, answer.samples, answer.pending) == (2, 10, 0)


def test_one_rich_transaction_does_not_raise_it():
    est = FeeEstimator(100)
    honest, rich = txids("a", 10), txids("rich", 1)
    watch(est, honest, 2, 100)
    watch(est, rich, 10_000, 100)
    est.block_connected(101, honest + rich)
    assert est.estimate().fee_rate == 2


def test_a_block_of_txs_never_seen_counts_for_nothing():
    est = FeeEstimator(100)
    est.block_connected(101, txids("unseen", 50))
    assert est.estimate().samples == 0


def test_the_lowest_rate_that_confirms_within_the_target():
    """Cheap txs wait 5 blocks, dear ones 1: for 2 blocks the dear rate; for 6 blocks the cheap one."""
    est = FeeEstimator(100)
    cheap, dear = txids("c", 10), txids("d", 10)
    watch(est, cheap, 1, 100)
    for height in range(101, 105):
        est.block_connected(height, [])
    watch(est, dear, 5, 104)
    est.block_connected(105, cheap + dear)
    assert est.estimate(2).fee_rate == 5
    assert est.estimate(6).fee_rate == 1


def test_pending_txs_that_waited_past_the_target_count_against_their_rate():
    est = FeeEstimator(100)
    confirmed, stuck = txids("c", 10), txids("s", 10)
    watch(est, confirmed + stuck, 1, 100)
    for height in range(101, 104):
        est.block_connected(height, confirmed if height == 101 else [])
    assert est.estimate(2).fee_rate is None  # 10 of 20 within 2 blocks: fails the 85 %
    assert est.estimate(4).fee_rate == 1  # the stuck ones have not waited 4 blocks yet


def test_what_left_the_pool_unmined_is_a_failure():
    est = FeeEstimator(100)
    confirmed, evicted = txids("c", 10), txids("e", 10)
    watch(est, confirmed + evicted, 1, 100)
    est.block_connected(101, confirmed)
    est.block_connected(102, [])
    est.block_connected(103, [])
    est.forget_missing(lambda txid: txid not in evicted)
    assert est.failed[1][0] > 0
    assert est.tracked == {}
    assert est.estimate(2).fee_rate is None
    assert pending_total(est) == 0


def test_pending_counts_move_to_the_old_ones_and_back_to_zero():
    est = FeeEstimator(100)
    ids = txids("a", 3)
    watch(est, ids, 1, 100)
    for height in range(101, 101 + MAX_CONFIRMS + 3):
        est.block_connected(height, [])
    assert sum(est.old_pending) == pending_total(est) == 3
    est.block_connected(200, ids)
    assert pending_total(est) == 0
    assert est.tracked == {}


def test_a_block_at_or_below_the_height_seen_is_not_counted_and_a_restart_forgets_the_pending():
    est = FeeEstimator(100)
    ids = txids("a", 10)
    watch(est, ids, 2, 100)
    est.block_connected(100, ids)  # a reorg's replay of a height seen already
    assert est.estimate().samples == 0
    assert len(est.tracked) == 10
    est.restart(99)
    assert (est.tracked, pending_total(est), est.height) == ({}, 0, 99)


def test_a_target_out_of_range_is_refused():
    with pytest.raises(ValueError, match="target 13 is not in"):
        FeeEstimator(0).estimate(MAX_CONFIRMS + 1)


# -- on disk ------------------------------------------------------------------------------------------------------


def estimator_with_data() -> FeeEstimator:
    est = FeeEstimator(100)
    ids = txids("a", 10)
    watch(est, ids, 2, 100)
    est.block_connected(101, ids)
    return est


def test_the_statistics_round_trip_and_what_is_pending_stays_out():
    est = estimator_with_data()
    watch(est, txids("p", 3), 5, 101)
    restored = FeeEstimator(300)
    restored.restore_stats(est.serialize_stats())
    assert restored.estimate() == ConfirmedEstimate(2, 2, 10, 0)
    assert (restored.height, restored.tracked) == (300, {})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-1], "expected"),
        (lambda data: data[:40] + bytes([data[40] ^ 1]) + data[41:], "bad checksum"),
        (lambda data: b"X" + data[1:-32] + sha256d(b"X" + data[1:-32]), "bad magic"),
        (lambda data: data[:8] + (2).to_bytes(4, "little") + data[12:-32], "version"),
    ],
    ids=["truncated", "checksum", "magic", "version"],
)
def test_damaged_statistics_are_refused_and_change_nothing(damage, message):
    data = estimator_with_data().serialize_stats()
    damaged = damage(data)
    if message == "version":
        damaged += sha256d(damaged)
    est = FeeEstimator(100)
    with pytest.raises(DecodeError, match=message):
        est.restore_stats(damaged)
    assert est.estimate().samples == 0


@pytest.mark.parametrize("rescale_at", [feeest.RESCALE_AT, 1.5])
def test_the_lazy_decay_counts_what_decaying_every_count_at_every_block_counts(monkeypatch, rescale_at):
    """A block costs O(1) (one scale factor, not a multiplication of every count): the counts it stands for are
    those of the plain rule, count *= DECAY at every block, before and after the scale is folded back in."""
    monkeypatch.setattr(feeest, "RESCALE_AT", rescale_at)
    est = FeeEstimator(0)
    plain_total = [0.0] * len(est.total)
    for height in range(1, 400):
        ids = txids(f"h{height}-", height % 4)
        watch(est, ids, 1 + height % 7, height - 1)
        est.block_connected(height, ids)
        plain_total = [count * feeest.DECAY for count in plain_total]
        for _ in ids:
            plain_total[est_bucket(1 + height % 7)] += 1
    scaled = est.serialize_stats()  # folds the scale in
    assert est.total == pytest.approx(plain_total, rel=1e-9)
    again = FeeEstimator(0)
    again.restore_stats(scaled)
    assert again.estimate() == est.estimate()


def est_bucket(per_byte: int) -> int:
    return bisect.bisect_left(feeest.BUCKET_BOUNDS, per_byte * 1000.0)
