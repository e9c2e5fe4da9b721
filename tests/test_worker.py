"""The mining process' nonce loop against a brute-force reference, and its solutions as real blocks."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from multiprocessing import Pipe, Process
from multiprocessing.connection import Connection

import pytest

from simplecoin.core.hashing import sha256d
from simplecoin.core.mining import (
    COUNTER_NONCE_SIZE,
    EXTRANONCE_SIZE,
    HashReport,
    Solution,
    block_from_solution,
    make_block,
    make_work,
    work_header_prefix,
)
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import Block, OutPoint, Transaction, TxIn, TxOut
from simplecoin.node.worker import NONCE_SPACE, run, scan


@contextlib.contextmanager
def worker(parent: Connection, child: Connection, **kwargs) -> Iterator[Process]:
    """A mining process on `child` (nice 0); on leaving, it is told to stop and must exit 0."""
    process = Process(target=run, args=(child, 0), kwargs=kwargs, daemon=True)
    process.start()
    child.close()
    try:
        yield process
        parent.send(None)
        process.join(timeout=10)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        parent.close()


PREFIX = hashlib.sha256(b"header").digest() * 2 + bytes(range(12))  # 76 bytes, arbitrary
PAY_TO = bytes(range(20))


def header_value(prefix: bytes, nonce: int) -> int:
    return int.from_bytes(sha256d(prefix + nonce.to_bytes(4, "little")), "little")


def brute_force(prefix: bytes, target: int, start: int, count: int) -> int | None:
    """The definition: the first nonce of the range whose header hash, read little-endian, is <= target."""
    for nonce in range(start, min(start + count, NONCE_SPACE)):
        if header_value(prefix, nonce) <= target:
            return nonce
    return None


def test_scan_agrees_with_brute_force_on_many_targets():
    start, count = 1_000, 300
    values = [header_value(PREFIX, n) for n in range(start, start + count)]
    lowest = min(values)
    first_lowest = start + values.index(lowest)
    # Hash values of the range as targets, and just below them: the first nonce is exact, the target
    # itself counts (<=), and below the lowest value nothing is found.
    some = sorted(values)[::10]
    # Targets sharing their most significant byte with hashes of the range: the cheap first comparison passes
    # them, and only the full one may decide.
    top_bytes = [v >> 248 << 248 for v in some] + [((v >> 248) + 1 << 248) - 1 for v in some]
    edges = [lowest, lowest - 1, 0, 1, (1 << 256) - 1, 1 << 248, 1 << 250]
    for target in [*some, *(v - 1 for v in some), *top_bytes, *edges]:
        assert scan(PREFIX, target, start, count) == brute_force(PREFIX, target, start, count), hex(target)
    assert scan(PREFIX, lowest, start, count) == first_lowest
    assert scan(PREFIX, lowest - 1, start, count) is None
    assert scan(PREFIX, (1 << 256) - 1, start, count) == start


def test_scan_finds_the_first_nonce_not_a_later_one():
    # A target met by several nonces of the range: scan stops at the first, even when a later one is lower.
    values = {n: header_value(PREFIX, n) for n in range(200)}
    target = sorted(values.values())[20]  # 21 nonces meet it
    meeting = [n for n, v in values.items() if v <= target]
    assert len(meeting) == 21
    assert scan(PREFIX, target, 0, 200) == meeting[0]
    assert scan(PREFIX, target, meeting[0] + 1, 200 - meeting[0] - 1) == meeting[1]
    assert scan(PREFIX, target, 0, meeting[0]) is None  # the range ends just before it
    assert scan(PREFIX, target, 0, 0) is None


def test_scan_never_leaves_the_32_bit_nonce_space():
    assert scan(PREFIX, (1 << 256) - 1, NONCE_SPACE - 1, 10) == NONCE_SPACE - 1
    assert scan(PREFIX, 0, NONCE_SPACE - 5, 100) is None  # stops at 2^32 - 1 instead of failing to pack 2^32


def test_work_prefix_and_solution_give_the_block_whose_hash_scan_found():
    payments = [  # two non-coinbase transactions: a 3-leaf merkle tree, so the branch has two levels
        Transaction(1, (TxIn(OutPoint(hashlib.sha256(label).digest(), 0), b"", b""),), (TxOut(1, PAY_TO),))
        for label in (b"a", b"b")
    ]
    template = make_block(
        REGTEST.genesis_hash, 1, REGTEST.pow_limit_bits, REGTEST.genesis_time + 30, PAY_TO, REGTEST,
        txs=payments, extra=bytes(EXTRANONCE_SIZE),
    )  # fmt: skip
    work = make_work(template, job_id=7, worker=3)
    target = bits_to_target(work.bits)
    for counter in (0, 5):
        extranonce = work.worker_nonce + counter.to_bytes(COUNTER_NONCE_SIZE, "little")
        prefix = work_header_prefix(work, extranonce)
        assert len(prefix) == 76
        nonce = scan(prefix, target, 0, 1_000)
        assert nonce is not None
        assert nonce == brute_force(prefix, target, 0, 1_000)
        block = block_from_solution(template, Solution(work.job_id, extranonce, nonce))
        assert block.header.serialize() == prefix + nonce.to_bytes(4, "little")
        assert block.header.hash() == sha256d(prefix + nonce.to_bytes(4, "little"))
        assert int.from_bytes(block.header.hash(), "little") <= target
        assert block.header.merkle_root == block.compute_merkle_root()
        assert block.txs[1:] == template.txs[1:]
        assert block.txs[0].inputs[0].signature[4 : 4 + EXTRANONCE_SIZE] == extranonce


def test_run_sends_a_solution_that_makes_a_valid_block_and_stops_when_told():
    template = make_block(REGTEST.genesis_hash, 1, REGTEST.pow_limit_bits, REGTEST.genesis_time + 30, PAY_TO,
                          REGTEST, extra=bytes(EXTRANONCE_SIZE))  # fmt: skip
    parent, child = Pipe()
    with worker(parent, child):
        parent.send(make_work(template, job_id=1, worker=2))
        assert parent.poll(10)
        solution = parent.recv()
        while isinstance(solution, HashReport):  # a report can only come first on a very slow machine
            assert parent.poll(10)
            solution = parent.recv()
        assert isinstance(solution, Solution)
        assert solution.job_id == 1
        assert solution.extranonce[:4] == (2).to_bytes(4, "little")
        block: Block = block_from_solution(template, solution)
        assert int.from_bytes(block.header.hash(), "little") <= bits_to_target(block.header.bits)
    # leaving `worker` sent the stop and checked the process exited 0


@pytest.mark.parametrize("params", [MAIN, REGTEST])
def test_scan_finds_each_genesis_nonce(params):
    header = params.genesis_block.header
    prefix = header.serialize()[:76]
    target = bits_to_target(header.bits)
    assert scan(prefix, target, header.nonce, 1) == header.nonce
    assert header_value(prefix, header.nonce) <= target


def test_a_capped_worker_hashes_no_faster_than_its_cap_and_still_stops_at_once():
    """--max-hashrate (a slower machine, for tests and experiments): the reports add up to at most the cap, however
    often the job changes, and a stop sent while it waits out its budget ends it at once."""
    hard = 0x1D00FFFF  # Bitcoin's difficulty 1: no block in this test's few thousand hashes
    template = make_block(REGTEST.genesis_hash, 1, hard, REGTEST.genesis_time + 30, PAY_TO, REGTEST,
                          extra=bytes(EXTRANONCE_SIZE))  # fmt: skip
    cap = 2_000.0
    parent, child = Pipe()
    with worker(parent, child, max_hashrate=cap):
        reports, job_id = [], 0
        while len(reports) < 3:  # a new job every 20 ms, as on a fast chain: the cap holds across jobs
            job_id += 1
            parent.send(make_work(template, job_id=job_id, worker=0))
            if parent.poll(0.02):
                message = parent.recv()
                assert isinstance(message, HashReport), message
                reports.append(message)
        hashes = sum(r.hashes for r in reports)
        seconds = sum(r.seconds for r in reports)
        assert 0 < hashes <= cap * seconds * 1.1 + 100, (hashes, seconds)


def test_of_many_queued_jobs_only_the_newest_is_solved():
    """On an easy chain the server can send jobs faster than a worker solves them. Solving each stale one in turn
    (each solution answered with new work for every worker) grew the queues until the pump and a worker both
    blocked in send: mining stopped for good after a few blocks with --mining-pause 0 (seen on regtest)."""
    template = make_block(REGTEST.genesis_hash, 1, REGTEST.pow_limit_bits, REGTEST.genesis_time + 30, PAY_TO,
                          REGTEST, extra=bytes(EXTRANONCE_SIZE))  # fmt: skip
    parent, child = Pipe()
    for job_id in range(1, 41):  # queued before the worker starts (few enough to fit the pipe): all waiting
        parent.send(make_work(template, job_id=job_id, worker=0))
    with worker(parent, child):
        assert parent.poll(10)
        message = parent.recv()
        while isinstance(message, HashReport):
            assert parent.poll(10)
            message = parent.recv()
        assert isinstance(message, Solution)
        assert message.job_id == 40
        assert not parent.poll(0.5)  # and nothing for the 39 stale jobs


def test_a_worker_capped_below_ten_hashes_a_second_still_finds_blocks():
    """The token bucket saves at most BURST_SECONDS of the rate; below 10 hashes a second that was less than the
    one hash a chunk costs, so the worker waited forever (a classroom miner at 2 H/s mined nothing)."""
    template = make_block(REGTEST.genesis_hash, 1, REGTEST.pow_limit_bits, REGTEST.genesis_time + 30, PAY_TO,
                          REGTEST, extra=bytes(EXTRANONCE_SIZE))  # fmt: skip
    parent, child = Pipe()
    with worker(parent, child, max_hashrate=2.0):
        parent.send(make_work(template, job_id=1, worker=0))
        message = None
        while parent.poll(10):  # every other regtest hash is a block: about a second at 2 H/s
            message = parent.recv()
            if isinstance(message, Solution):
                break
        assert isinstance(message, Solution), message
