"""SimpleCoin light-wallet benchmark: checking every header of a long chain, as a wallet's first run does.

Run from the repository root:

    python bench/bench_headers.py                     # the goal's size: 1,000,000 headers (about a minute)
    python bench/bench_headers.py --headers 100000    # smaller, same shape

What is built: N regtest headers (minimum difficulty, a block every target spacing), mined here with hashlib
(about two hashes a header), so no node and no store is involved. What is timed is the wallet's own check:
`HeaderChain.add_raw` on answers of MAX_HEADERS_BINARY_RESULTS headers, as `LightWallet.sync_headers` feeds it
the binary GET /headers answers (proof of work, links, the difficulty rule, median time past), at N and at N/10.
The one-object-per-header path (`HeaderChain.add`, what every header went through before) is timed at N/10 for
comparison.

Goals: the check of N headers <= 6 s at 1,000,000 (the first run's goal is 10 s with the fetching), and the time
at N no more than 12x the time at N/10 (linear: no cost that grows faster than the chain).
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import time

from common import Run, show_load, stop_on_sigterm  # first: it puts the repository on sys.path

from simplecoin.core.params import MAX_HEADERS_BINARY_RESULTS, REGTEST
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import HEADER_SIZE, BlockHeader
from simplecoin.core.spv import HeaderChain

GOAL_SECONDS_AT_1M = 6.0
MAX_RATIO = 12.0


def make_headers(count: int) -> bytes:
    """`count` valid regtest headers after the genesis, 80 bytes each."""
    target = bits_to_target(REGTEST.pow_limit_bits)
    sha256 = hashlib.sha256
    pack = struct.Struct("<i32s32sIII").pack
    prev = REGTEST.genesis_hash
    out = bytearray()
    for height in range(1, count + 1):
        merkle = sha256(height.to_bytes(8, "little")).digest()
        when = REGTEST.genesis_time + height * REGTEST.target_spacing
        nonce = 0
        while True:
            header = pack(1, prev, merkle, when, REGTEST.pow_limit_bits, nonce)
            block_hash = sha256(sha256(header).digest()).digest()
            if int.from_bytes(block_hash, "little") <= target:
                break
            nonce += 1
        out += header
        prev = block_hash
    return bytes(out)


def check_in_answers(raw: bytes, now: int) -> tuple[float, HeaderChain]:
    """Seconds to check `raw` as a wallet's first run does, answer by answer."""
    chain = HeaderChain(REGTEST)
    step = MAX_HEADERS_BINARY_RESULTS * HEADER_SIZE
    started = time.perf_counter()
    for i in range(0, len(raw), step):
        chain.add_raw(raw[i : i + step], now)
    return time.perf_counter() - started, chain


def check_one_by_one(raw: bytes, now: int) -> float:
    """Seconds for HeaderChain.add on BlockHeader objects (the path before add_raw), in JSON-sized answers."""
    chain = HeaderChain(REGTEST)
    started = time.perf_counter()
    for i in range(0, len(raw), 2_000 * HEADER_SIZE):
        chunk = raw[i : i + 2_000 * HEADER_SIZE]
        chain.add([BlockHeader.deserialize(chunk[j : j + HEADER_SIZE]) for j in range(0, len(chunk), HEADER_SIZE)], now)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headers", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    run = Run()
    count, tenth = args.headers, args.headers // 10
    print(f"mining {count:,} regtest headers ...", flush=True)
    started = time.perf_counter()
    raw = make_headers(count)
    print(f"   made in {time.perf_counter() - started:.1f} s", flush=True)
    now = REGTEST.genesis_time + (count + 10) * REGTEST.target_spacing

    show_load("the checks")
    small, _ = check_in_answers(raw[: tenth * HEADER_SIZE], now)
    full, chain = check_in_answers(raw, now)
    assert chain.height == count, chain.height
    old = check_one_by_one(raw[: tenth * HEADER_SIZE], now)
    goal = GOAL_SECONDS_AT_1M * count / 1_000_000
    print(f"1. add_raw, {tenth:,} headers: {small:.2f} s ({tenth / small:,.0f} headers/s)")
    print(
        f"   add_raw, {count:,} headers: {full:.2f} s ({count / full:,.0f} headers/s) (goal <= {goal:.1f} s) "
        f"{run.judge('check of every header', full <= goal)}"
    )
    ratio = full / small
    linear = run.judge("linear", ratio <= MAX_RATIO)
    print(f"2. {count:,} vs {tenth:,}: {ratio:.1f}x (goal <= {MAX_RATIO:.0f}x) {linear}")
    print(f"   for comparison, add (a BlockHeader and an index entry each), {tenth:,} headers: {old:.2f} s")
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    raise SystemExit(main())
