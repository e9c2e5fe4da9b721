"""SimpleCoin at scale: a year of MAIN's blocks (a million), each figure beside the same at a tenth of the chain.

Run from the repository root:

    python bench/bench_scale.py                   # 1,000,000 blocks (building them takes minutes, then cached)
    python bench/bench_scale.py --blocks 20000    # the same shape, smaller

What is built: a regtest chain of coinbase-only blocks, one second of block time apart, stored with
`Node.submit_block` in this process (every check). It is cached under `bench/out/scale/<blocks>/` (`--out`
moves it): the chain at `--blocks / 10` is built first and copied, then extended, so the reference is the
same chain's prefix. Then, at `--blocks / 10` (the same-run reference) and at `--blocks`:

1. a real `miner.py --no-mine` node on the chain: launch until `/status` answers, and its server's RSS;
2. in this process: the loaded block index's bytes per block (tracemalloc around `Node(...)`), the node's
   `locator` (what it sends peers: read off its active chain, as Core's CChain::GetLocator), and the index's
   `ancestor` and `next_bits` at the tip (calls in a row, median of rounds); the index's own `locator` (skip
   pointer walks, O(log^2 n) as Core's for a chain that is not the active one) is printed beside, no goal;
3. a second, empty node on 127.0.0.2 syncing from the first: blocks/s while blocks arrive;
4. the light wallet (`LightWallet`, the library behind `wallet.py`) on a new wallet: the first run (every
   header fetched and checked, then the balance), and a later `balance`;
5. the explorer's dashboard and a block page (GET over HTTP, median of several);
6. a request that takes the node lock (GET /block/<tip>) alone, then while FLOOD_CLIENTS clients ask for the most
   headers an answer holds (`/headers?format=binary` from genesis) again and again: its p99 each time, and the
   header answers served per second. No goal: it shows that the headers are read without the node lock.

Goals at `--blocks`: start <= 5 s; RSS <= 300 MB; locator, ancestor and next_bits <= 1 ms and <= 1.5x their
figure at blocks/10; sync >= 1,500 blocks/s; wallet first run <= 10 s, later balance <= 1 s; dashboard and block
page <= 100 ms and <= 1.5x at blocks/10. The 1-minute load average is printed: other work slows everything.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from common import (  # first: it puts the repo on sys.path
    ROOT,
    Run,
    Samples,
    ms,
    node_processes,
    open_node,
    show_load,
    stop_on_sigterm,
)

from simplecoin.core.mining import solve
from simplecoin.core.params import REGTEST
from simplecoin.wallet.client import LightWallet, NodeClient
from simplecoin.wallet.keyfile import WalletFile
from tests.framework.builder import MINER_KEY
from tests.framework.nodes import NodeProcess, running_node, wait_until

SECOND_HOST = "127.0.0.2"  # the syncing node: another loopback address, as a peer on another machine would be
INDEX_REPS = 200  # locator / ancestor / next_bits calls timed in a row
INDEX_ROUNDS = 7  # ... this many times: the median round counts
PAGE_REPS = 9  # explorer page loads timed
BALANCE_REPS = 5
GOAL_START_S = 5.0
GOAL_RSS_MB = 300.0
GOAL_INDEX_MS = 1.0
GOAL_SYNC_RATE = 1_500.0
GOAL_WALLET_FIRST_S = 10.0
GOAL_BALANCE_S = 1.0
GOAL_PAGE_MS = 100.0
GOAL_RATIO = 1.5
FLOOD_CLIENTS = 4  # clients asking for headers again and again
FLOOD_SECONDS = 8.0  # each window (alone, flooded); 2 s on chains below 100,000 blocks


@dataclass
class Figures:
    """Everything measured at one chain length."""

    blocks: int
    start: float = 0.0  # launch -> /status answers (s)
    rss_mb: float = 0.0
    index_bytes: float = 0.0  # per block
    locator: float = 0.0  # s
    index_locator: float = 0.0
    ancestor: float = 0.0
    next_bits: float = 0.0
    sync_rate: float = 0.0  # blocks/s while blocks arrived
    sync_wall: float = 0.0  # launch -> same tip (s)
    wallet_first: float = 0.0
    balance: float = 0.0
    dashboard: float = 0.0
    block_page: float = 0.0
    lock_alone: float = 0.0  # p99 of GET /block/<tip> (s)
    lock_flooded: float = 0.0  # ... while FLOOD_CLIENTS clients fetch headers
    headers_served: float = 0.0  # header answers per second to those clients


# -- the chain --------------------------------------------------------------------------------------------------


def extend(path: Path, blocks: int) -> None:
    """Extend the chain at `path` (made if missing) to `blocks` coinbase-only blocks, each with every check."""
    now = [0.0]
    node = open_node(path / "chain.db", REGTEST, clock=lambda: now[0])
    try:
        pay_to, started, first = MINER_KEY.pubkey_hash, time.perf_counter(), node.height
        while node.height < blocks:
            now[0] = REGTEST.genesis_time + node.height + 1
            block = solve(node.block_template(pay_to))
            assert block is not None
            outcome = node.submit_block(block)
            assert outcome.status == "accepted", outcome
            if node.height % 100_000 == 0:
                print(f"   ... {node.height:,} blocks", flush=True)
        if node.height > first:
            seconds = time.perf_counter() - started
            print(
                f"   built {node.height - first:,} blocks in {seconds:.1f} s ({(node.height - first) / seconds:,.0f}/s)"
            )
    finally:
        node.close()


def chain_dir(out: Path, blocks: int) -> Path:
    """The cached data directory of a chain of `blocks` blocks; if missing, the one at blocks/10 (if cached)
    is copied and extended, so the shorter chain is the longer one's prefix."""
    path = out / str(blocks)
    if (path / "complete").exists():
        return path
    partial, small = out / f"{blocks}.partial", out / str(blocks // 10)
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    if (small / "complete").exists():
        shutil.copytree(small, partial, ignore=shutil.ignore_patterns("complete"))
    partial.mkdir(parents=True, exist_ok=True)
    print(f"building a {blocks:,}-block chain in {path} ...", flush=True)
    extend(partial, blocks)
    (partial / "complete").write_text(f"{blocks}\n")
    partial.rename(path)
    return path


# -- the measurements -------------------------------------------------------------------------------------------


def index_figures(path: Path, figures: Figures) -> None:
    """Bytes per block of the index loaded in this process, and the index's per-call costs at the tip."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    node = open_node(path / "chain.db", REGTEST)
    loaded = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    try:
        figures.index_bytes = loaded / (node.height + 1)
        index, tip = node.index, node.tip
        figures.locator = per_call(node.locator)
        figures.index_locator = per_call(lambda: index.locator(tip))
        figures.ancestor = per_call(lambda: index.ancestor(tip, tip.height // 2))
        figures.next_bits = per_call(lambda: index.next_bits(tip))
    finally:
        node.close()


def per_call(fn: Callable[[], object]) -> float:
    """Seconds per call: the median of INDEX_ROUNDS rounds of INDEX_REPS calls each. Not `Samples`: its
    gc.collect before every call walks the whole loaded index (seconds at a million blocks), and calls of a few
    microseconds are timed better in a row."""
    rounds = []
    for _ in range(INDEX_ROUNDS):
        started = time.perf_counter()
        for _ in range(INDEX_REPS):
            fn()
        rounds.append((time.perf_counter() - started) / INDEX_REPS)
    return statistics.median(rounds)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wallet_figures(url: str, workdir: Path, figures: Figures) -> None:
    """The light wallet as `wallet.py` runs it: a first run (every header fetched and checked), a later balance.

    The one place the bench calls the wallet: adapt it here when the wallet's API changes."""
    wallet = WalletFile.create(workdir / f"wallet-{figures.blocks}.json", REGTEST)

    def light() -> LightWallet:
        return LightWallet(wallet.path, REGTEST, NodeClient([url]))

    def first_run() -> None:
        w = light()
        w.sync_headers()
        w.balances()

    figures.wallet_first = Samples.of(first_run, 1).median
    figures.balance = Samples.of(lambda: light().balances(), BALANCE_REPS).median


def explorer_figures(node: NodeProcess, figures: Figures) -> None:
    """The explorer's dashboard and a block page (half-way up the chain) over HTTP: the one place the bench
    calls the explorer."""

    def page(path: str) -> Callable[[], None]:
        def load() -> None:
            response = node.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return load

    page("/")()  # the first of each is not timed (templates compiled, caches warmed)
    figures.dashboard = Samples.of(page("/"), PAGE_REPS).median
    block_path = f"/explorer/block/{figures.blocks // 2}"
    page(block_path)()
    figures.block_page = Samples.of(page(block_path), PAGE_REPS).median


def p99_of_gets(url: str, seconds: float) -> float:
    """The 99th percentile (s) of GETs of `url` one after another for `seconds`."""
    session, took = requests.Session(), []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        response = session.get(url, timeout=60)
        took.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    took.sort()
    return took[min(int(len(took) * 0.99), len(took) - 1)]


def headers_flood_figures(node: NodeProcess, figures: Figures) -> None:
    """GET /block/<tip> (it takes the node lock) alone, then while FLOOD_CLIENTS clients ask for headers."""
    window = FLOOD_SECONDS if figures.blocks >= 100_000 else 2.0
    probe = f"{node.url}/block/{node.status()['tip']}"
    figures.lock_alone = p99_of_gets(probe, window)
    stop, served, failed = threading.Event(), [], []

    def flood() -> None:
        session, answers = requests.Session(), 0
        try:
            while not stop.is_set():
                response = session.get(f"{node.url}/headers?format=binary", timeout=60)
                response.raise_for_status()
                answers += 1
        except Exception as e:  # noqa: BLE001 - told below, in the main thread
            failed.append(e)
        served.append(answers)

    clients = [threading.Thread(target=flood, daemon=True) for _ in range(FLOOD_CLIENTS)]
    for client in clients:
        client.start()
    started = time.perf_counter()
    try:
        figures.lock_flooded = p99_of_gets(probe, window)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)
    figures.headers_served = sum(served) / (time.perf_counter() - started)
    assert not failed, f"a client asking for headers failed: {failed[0]}"


def sync_figures(a: NodeProcess, workdir: Path, figures: Figures) -> None:
    """A second, empty node on SECOND_HOST syncing from `a`: blocks/s from the first block it has to the last."""
    tip = a.status()["tip"]
    launched = time.perf_counter()
    with running_node(workdir / f"b-{figures.blocks}", peers=(a.url,), host=SECOND_HOST) as b:
        first: list[tuple[float, int]] = []

        def synced() -> bool:
            status = b.status()
            if not first and status["height"] > 0:
                first.append((time.perf_counter(), status["height"]))
            return status["tip"] == tip

        wait_until(synced, timeout=max(120.0, figures.blocks / 200), interval=0.02, what="the second node's sync")
        done = time.perf_counter()
    figures.sync_wall = done - launched
    seen_at, seen_height = first[0] if first else (launched, 0)
    figures.sync_rate = (figures.blocks - seen_height) / max(done - seen_at, 1e-9)


def measure(path: Path, workdir: Path) -> Figures:
    """Every figure at the chain cached in `path` (read-only: nodes run on a copy)."""
    data = workdir / f"a-{path.name}"
    shutil.copytree(path, data, ignore=shutil.ignore_patterns("complete"))
    figures = Figures(int(path.name))
    show_load(f"measuring at {figures.blocks:,} blocks")
    index_figures(data, figures)
    launched = time.perf_counter()
    with running_node(data) as a:
        figures.start = time.perf_counter() - launched
        servers, _ = node_processes(a)
        figures.rss_mb = sum(rss_mb(pid) for pid in servers)
        explorer_figures(a, figures)
        headers_flood_figures(a, figures)
        wallet_figures(a.url, workdir, figures)
        sync_figures(a, workdir, figures)
    print(f"   {figures}", flush=True)  # every figure at once, before the summary sets them side by side
    return figures


# -- the report -------------------------------------------------------------------------------------------------


def report(run: Run, full: Figures, small: Figures) -> None:
    ref = f"at {small.blocks:,} blocks"

    def line(label: str, value: str, reference: str, goal: str, verdict: str | None) -> None:
        print(f"   {label}: {value} ({ref}: {reference}) (goal {goal}) {verdict or ''}".rstrip())

    def limited(name: str, value: float, limit: float) -> str:
        return run.judge(name, value <= limit)

    def limited_and_flat(name: str, value: float, reference: float, limit: float) -> str:
        ratio = value / reference if reference > 0 else float("inf")
        return run.judge(name, value <= limit and ratio <= GOAL_RATIO) + f" ({ratio:.2f}x)"

    print(f"SUMMARY at {full.blocks:,} blocks")
    line("start until /status answers", f"{full.start:.2f} s", f"{small.start:.2f} s", f"<= {GOAL_START_S:g} s",
         limited("start", full.start, GOAL_START_S))  # fmt: skip
    line("server RSS", f"{full.rss_mb:.0f} MB", f"{small.rss_mb:.0f} MB", f"<= {GOAL_RSS_MB:g} MB",
         limited("RSS", full.rss_mb, GOAL_RSS_MB))  # fmt: skip
    line("index bytes per block", f"{full.index_bytes:,.0f} B", f"{small.index_bytes:,.0f} B", "none", None)
    for label, value, reference in (
        ("locator", full.locator, small.locator),
        ("ancestor", full.ancestor, small.ancestor),
        ("next_bits", full.next_bits, small.next_bits),
    ):
        verdict = limited_and_flat(label, value * 1e3, reference * 1e3, GOAL_INDEX_MS)
        line(
            label,
            f"{value * 1e3:.4f} ms",
            f"{reference * 1e3:.4f} ms",
            f"<= {GOAL_INDEX_MS:g} ms and <= {GOAL_RATIO}x",
            verdict,
        )
    line("index locator by skip pointers", f"{full.index_locator * 1e3:.4f} ms",
         f"{small.index_locator * 1e3:.4f} ms", "none", None)  # fmt: skip
    line("second node's sync rate", f"{full.sync_rate:,.0f} blocks/s (launch to tip {full.sync_wall:.1f} s)",
         f"{small.sync_rate:,.0f} blocks/s", f">= {GOAL_SYNC_RATE:,.0f} blocks/s",
         run.judge("sync rate", full.sync_rate >= GOAL_SYNC_RATE))  # fmt: skip
    first_ok = limited("wallet first run", full.wallet_first, GOAL_WALLET_FIRST_S)
    line("wallet first run (every header checked)", f"{full.wallet_first:.2f} s", f"{small.wallet_first:.2f} s",
         f"<= {GOAL_WALLET_FIRST_S:g} s", first_ok)  # fmt: skip
    line("wallet later balance", f"{full.balance:.3f} s", f"{small.balance:.3f} s", f"<= {GOAL_BALANCE_S:g} s",
         limited("wallet balance", full.balance, GOAL_BALANCE_S))  # fmt: skip
    for label, value, reference in (
        ("explorer dashboard", full.dashboard, small.dashboard),
        ("explorer block page", full.block_page, small.block_page),
    ):
        verdict = limited_and_flat(label, value * 1e3, reference * 1e3, GOAL_PAGE_MS)
        line(label, ms(value), ms(reference), f"<= {GOAL_PAGE_MS:g} ms and <= {GOAL_RATIO}x", verdict)
    line("GET /block/<tip> p99, alone", ms(full.lock_alone), ms(small.lock_alone), "none", None)
    line(f"GET /block/<tip> p99, while {FLOOD_CLIENTS} clients fetch headers",
         f"{ms(full.lock_flooded)}, {full.headers_served:.1f} header answers/s",
         f"{ms(small.lock_flooded)}, {small.headers_served:.1f} answers/s", "none", None)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="where the chains are cached")
    args = parser.parse_args(argv)
    if args.blocks < 100:
        parser.error("--blocks must be at least 100")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run = Run()
    out = args.out / "scale"
    small_path = chain_dir(out, args.blocks // 10)
    full_path = chain_dir(out, args.blocks)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        small = measure(small_path, Path(tmp))
        full = measure(full_path, Path(tmp))
    report(run, full, small)
    return run.finish()


if __name__ == "__main__":
    stop_on_sigterm()
    raise SystemExit(main())
