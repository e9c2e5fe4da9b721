"""SimpleCoin light-wallet benchmark: balance and history at a long chain, against the same history at a short one.

Run from the repository root:

    python bench/bench_wallet.py                        # the goals' size: 50,000 blocks, 5,000 txs (minutes)
    python bench/bench_wallet.py --blocks 5000 --txs 1000   # smaller, same shape

What is built: a regtest chain (tests.framework.builder.ChainBuilder, stored with `NodeService.submit_block`, every
check) whose first 1,000 blocks pay the wallet's address `--txs` times (chained payments from a miner key, up
to 10 per block, so the history does not need one block per tx), then empty blocks up to `--blocks`. The node's
API (simplecoin.web.api over that NodeService) is served on 127.0.0.1 by a werkzeug thread; the wallet
(`LightWallet`, the library behind `wallet.py`) talks to it over HTTP, as the command does.

Measured, each in this one run:
1. the first `history` with no header cache (every header fetched and verified): goal <= 20 s;
2. after that: `balance` <= 0.5 s, `history` (the newest page, 20 entries) <= 1 s, the full history <= 5 s;
3. the same-run reference: the newest page of history when the chain was 1,000 blocks long (same history,
   header cache made then), against the newest page at the full length: within 1.5x.
Each "after the first run" figure is the median of 5 calls of a new LightWallet (as a new process would load
the header cache). The 1-minute load average is printed: other work on the machine slows everything.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import Run, Samples, open_service, show_load, stop_on_sigterm  # first: it puts the repository on sys.path

from simplecoin.core.amounts import COIN
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node.service import NodeService
from simplecoin.wallet.client import LightWallet, NodeClient
from simplecoin.wallet.keyfile import WalletFile
from simplecoin.web.app import create_app
from tests.framework.builder import ChainBuilder
from tests.framework.nodes import serving

REFERENCE_BLOCKS = 1_000
PER_BLOCK = 10
PAGE = 20
RUNS = 5


def extend(service: NodeService, b: ChainBuilder, height: int, txs_for: Callable[[int], list]) -> None:
    while service.tip().height < height:
        h = service.tip().height + 1
        block = b.block(f"b{h}", txs=txs_for(h))
        outcome = service.submit_block(block)
        assert outcome.status == "accepted", outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=50_000)
    parser.add_argument("--txs", type=int, default=5_000)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    if args.txs > (REFERENCE_BLOCKS - REGTEST.coinbase_maturity - 2) * PER_BLOCK:
        parser.error(f"--txs must fit in the first {REFERENCE_BLOCKS} blocks at {PER_BLOCK} per block")
    run = Run()
    # Everything the run makes (about 40 MB at the full size) lives here and goes, also on Ctrl-C.
    with tempfile.TemporaryDirectory(prefix="bench_wallet_") as tmp, contextlib.ExitStack() as cleanup:
        root = Path(tmp)
        wallet = WalletFile.create(root / "wallet.json", REGTEST)
        pay_to = wallet.keys[0].key.pubkey_hash
        b = ChainBuilder(REGTEST)
        end_time = REGTEST.genesis_time + (args.blocks + 10) * REGTEST.target_spacing

        def clock() -> float:
            return end_time

        service = open_service(root / "chain.db", REGTEST, clock)
        cleanup.callback(service.close)  # before the directory goes
        print(f"building {REFERENCE_BLOCKS:,} blocks with {args.txs:,} payments to the wallet ...", flush=True)
        started = time.perf_counter()
        remaining = [args.txs]
        change: list[tuple[OutPoint, int] | None] = [None]  # the miner's change: the next payment's input

        def payments(height: int) -> list:
            if height <= REGTEST.coinbase_maturity + 1 or not remaining[0]:
                return []
            txs = []
            for _ in range(min(PER_BLOCK, remaining[0])):
                source, funds = change[0] or (b.coinbase_outpoint("b1"), REGTEST.subsidy(1))
                rest = funds - COIN // 1000 - 1_000
                tx = b.spend(source, [(COIN // 1000, pay_to), (rest, b.key.pubkey_hash)])
                change[0] = (OutPoint(tx.txid, 1), rest)
                txs.append(tx)
                remaining[0] -= 1
            return txs

        extend(service, b, REFERENCE_BLOCKS, payments)
        print(f"   built in {time.perf_counter() - started:.1f} s", flush=True)
        with serving(create_app(service)) as url:

            def light() -> LightWallet:
                return LightWallet(wallet.path, REGTEST, NodeClient([url]), clock=clock)

            show_load("the reference at 1,000 blocks")
            light().history_page(PAGE)  # the header cache, made at 1,000 blocks
            reference = Samples.of(lambda: light().history_page(PAGE), RUNS).median
            print(f"   history, newest {PAGE}, at {REFERENCE_BLOCKS:,} blocks: {reference:.3f} s (median of {RUNS})")

            print(f"extending to {args.blocks:,} blocks ...", flush=True)
            started = time.perf_counter()
            extend(service, b, args.blocks, lambda h: [])
            print(f"   built in {time.perf_counter() - started:.1f} s", flush=True)
            for cache in root.glob("wallet.json.headers*"):
                cache.unlink()

            show_load("the first run")
            first_run = Samples.of(lambda: light().history_page(PAGE), 1)
            first, page = first_run.median, first_run.last
            assert len(page.entries) == PAGE, page  # type: ignore[attr-defined]
            print(
                f"1. first history (all {args.blocks:,} headers fetched and verified): {first:.2f} s (goal <= 20 s) "
                f"{run.judge('first history', first <= 20)}"
            )

            show_load("the later runs")
            balance = Samples.of(lambda: light().balances(), RUNS).median
            latest = Samples.of(lambda: light().history_page(PAGE), RUNS).median
            full_run = Samples.of(lambda: light().history_page(None), 1)
            full_time, full = full_run.median, full_run.last
            assert len(full.entries) == args.txs, len(full.entries)  # type: ignore[attr-defined]
            print(f"2. balance: {balance:.3f} s (goal <= 0.5 s) {run.judge('balance', balance <= 0.5)}")
            page_ok, full_ok = run.judge("history, newest page", latest <= 1), run.judge("history, all", full_time <= 5)
            print(f"   history, newest {PAGE}: {latest:.3f} s (goal <= 1 s) {page_ok}")
            print(f"   history, all {args.txs:,}: {full_time:.2f} s (goal <= 5 s) {full_ok}")
            ratio = latest / reference
            print(
                f"3. history at {args.blocks:,} vs {REFERENCE_BLOCKS:,} blocks: {latest:.3f} / {reference:.3f} s = "
                f"{ratio:.2f}x (goal <= 1.5x) {run.judge('history ratio', ratio <= 1.5)}"
            )

    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    raise SystemExit(main())
