"""SimpleCoin core benchmarks: block validation cost and address-lookup scaling.

Run from the repository root:

    python bench/bench_core.py                # the full run (1,000-tx block, 50,000-block chain)
    python bench/bench_core.py --quick        # a smoke run (200-tx block, 2,000-block chain)
    python bench/bench_core.py --blocks 20000 # choose the size of the large chain

What is measured, and why:

1. Cold validation. A node must check every signature of a block it has not seen before, and a
   signature check is by far the most expensive thing it does. So the honest yardstick for "how fast is
   block validation" is "how close to the cost of the signature checks alone": a block of N signed
   1-input 2-output payments (N distinct keys, each spending a distinct mature output) is validated with
   `check_block` + `connect_block` against the node's SQLite-backed UTXO view with no signature cache,
   and compared with N raw python-ecdsa checks of the very same (pubkey, signature, digest) triples
   measured in the same run. A raw check is `VerifyingKey.from_string` + `verify_digest`: key parsing
   counts as part of a signature check, as in libsecp256k1's own verify benchmark, which also parses the
   key. The verify-only rate with keys parsed in advance is printed for transparency.
   Goal: overhead = cold / raw checks - 1 <= 15 %.

2. Warm connect. Transactions normally reach a node before the block that mines them; their signatures
   are checked on mempool entry (`Node.submit_tx`) and the txids remembered. Connecting the block then
   only needs the cheap rules. The same block is timed with `verified_txids` = the node's cache.
   Goal: warm >= 20x faster than cold. The whole `Node.submit_block` (which also writes the block, its
   undo data and indexes to SQLite) is printed cold and warm for information only.

3. Address lookup scaling. A wallet or explorer asks for an address' balance, latest history and
   UTXOs. Those queries must cost the same however long the chain grows, as long as the address itself
   has the same activity. One watched address gets 20 history rows (12 payments in, 8 out; 4 UTXOs left)
   in the first blocks; the queries are timed at 1,000 blocks, then the same chain is extended to
   50,000 blocks through `Node.submit_block` (real validation, real store writes) and they are timed again,
   alternately with a copy of the same chain taken at 1,000 blocks, so that a change in machine load
   during the minutes of building cannot pass for a change in lookup cost (the figure measured before
   extending is printed as well). Goal: time at 50,000 / time at 1,000 <= 1.5.

Every timed figure is the median of several repetitions, timed with time.perf_counter. Every
repetition validates a freshly deserialized block, so no txid, serialization or block hash is cached
from the run before (the SQLite page cache is warm, as on a running node).

Regtest halves the subsidy every 150 blocks, so from height 4,950 on the long chain's blocks are empty
coinbases that pay nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ecdsa
from common import ms, verdict  # first: it puts the repository on sys.path
from ecdsa import SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_der

from simplecoin.core.amounts import COIN
from simplecoin.core.keys import PrivateKey, sign_input, signature_hash
from simplecoin.core.mining import make_block, solve
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction, TxIn, TxOut
from simplecoin.core.validation import check_block, connect_block
from simplecoin.node.node import Node
from simplecoin.node.store import Store

PARAMS = REGTEST
# A stopped clock far after genesis: no block of a long chain (30 s apart) is ever "too new".
NOW = PARAMS.genesis_time + 100_000_000
FEE = 1_000  # base units per payment: above the 1 unit/byte relay minimum for a ~226-byte payment

GOAL_OVERHEAD = 0.15
GOAL_WARM_SPEEDUP = 20.0
GOAL_LOOKUP_RATIO = 1.5


# -- small helpers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wallet:
    """A key with its public key and address computed once (PrivateKey recomputes them on every access)."""

    key: PrivateKey
    pubkey: bytes
    pkh: bytes

    @classmethod
    def from_label(cls, label: str) -> Wallet:
        key = PrivateKey(hashlib.sha256(label.encode()).digest())
        pubkey = key.pubkey
        return cls(key, pubkey, key.pubkey_hash)


def pay(wallet: Wallet, prevouts: Sequence[OutPoint], outputs: Sequence[tuple[int, bytes]]) -> Transaction:
    """A transaction spending `prevouts` (all owned by `wallet`), every input signed."""
    unsigned = Transaction(
        1, tuple(TxIn(p, wallet.pubkey, b"") for p in prevouts), tuple(TxOut(a, pkh) for a, pkh in outputs)
    )
    inputs = tuple(
        TxIn(txin.prevout, txin.pubkey, sign_input(unsigned, i, wallet.key, PARAMS.genesis_hash))
        for i, txin in enumerate(unsigned.inputs)
    )
    return Transaction(unsigned.version, inputs, unsigned.outputs, unsigned.locktime)


def next_block(node: Node, pay_to: bytes, txs: Sequence[Transaction] = (), fees: int = 0) -> Block:
    """A solved block on the node's tip, 30 s after it."""
    tip = node.tip
    block = make_block(
        prev_hash=tip.hash,
        height=tip.height + 1,
        bits=node.index.next_bits(tip),
        time=tip.header.time + PARAMS.target_spacing,
        pubkey_hash=pay_to,
        params=PARAMS,
        txs=txs,
        fees=fees,
    )
    solved = solve(block)
    assert solved is not None
    return solved


def mine(node: Node, pay_to: bytes, txs: Sequence[Transaction] = (), fees: int = 0) -> Block:
    """Mine a block through Node.submit_block and check that it became the tip."""
    block = next_block(node, pay_to, txs, fees)
    outcome = node.submit_block(block)
    assert outcome.status == "accepted", outcome
    assert node.tip.hash == block.hash
    return block


def open_node(path: Path) -> Node:
    return Node(Store(path, PARAMS), PARAMS, clock=lambda: NOW)


def copy_store(src: Path, dst: Path) -> Path:
    """Copy a closed store (and its WAL, should one be left) so each repetition starts from the same state."""
    for suffix in ("", "-wal"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst) + suffix)
    return dst


@dataclass
class Samples:
    """Repeated timings of one thing: wall time (time.perf_counter, the figure used) and this process' CPU time."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, fn: Callable[[], object]) -> None:
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def spread(self) -> str:
        return f"median of {len(self.wall)}, range {min(self.wall) * 1e3:.1f}-{max(self.wall) * 1e3:.1f} ms"


def profile(label: str, fn: Callable[[], object], top: int = 15) -> None:
    """Print where `fn` spends its time (cProfile, by own time)."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    print(f"\n  cProfile of {label} (top {top} by own time):")
    for line in out.getvalue().splitlines():
        if line.strip():
            print("    " + line)


# -- benchmarks 1 and 2: block validation ------------------------------------------------------------------------


@dataclass
class ValidationSetup:
    base_db: Path  # a closed store at the height before the benchmark block
    raw_block: bytes  # the benchmark block, serialized: every repetition deserializes it afresh
    height: int  # the benchmark block's height
    triples: list[tuple[bytes, bytes, bytes]]  # (pubkey, signature, digest) of its inputs


def setup_validation(workdir: Path, n_tx: int) -> ValidationSetup:
    """A store holding `n_tx` mature outputs for `n_tx` keys, and a block with one signed payment per key.

    Block 11 holds a transaction fanning the (mature) coinbase of block 1 out to the keys; blocks 12..21
    bury it. The benchmark block (height 22) holds payment i: key i's output -> key i+1 (and change to i).
    """
    print(f"setting up: {n_tx} keys, a fan-out transaction and a {n_tx}-payment block ...", flush=True)
    start = time.perf_counter()
    miner = Wallet.from_label("miner")
    wallets = [Wallet.from_label(f"payer {i}") for i in range(n_tx)]
    path = workdir / "validation.db"
    node = open_node(path)
    coinbases = [mine(node, miner.pkh).txs[0] for _ in range(10)]
    source = coinbases[0]
    each = (source.outputs[0].amount - 100_000) // n_tx
    fan_out = pay(miner, [OutPoint(source.txid, 0)], [(each, w.pkh) for w in wallets])
    mine(node, miner.pkh, [fan_out], fees=source.outputs[0].amount - each * n_tx)
    for _ in range(10):  # let it mature (non-coinbase outputs need no maturity; buried all the same)
        mine(node, miner.pkh)
    payments = []
    for i, wallet in enumerate(wallets):
        to = wallets[(i + 1) % n_tx].pkh
        payments.append(
            pay(wallet, [OutPoint(fan_out.txid, i)], [(each // 3, to), (each - each // 3 - FEE, wallet.pkh)])
        )
    block = next_block(node, miner.pkh, payments, fees=FEE * n_tx)
    height = node.height + 1
    triples = [
        (tx.inputs[0].pubkey, tx.inputs[0].signature, signature_hash(tx, 0, PARAMS.genesis_hash)) for tx in payments
    ]
    node.close()
    print(
        f"  done in {time.perf_counter() - start:.1f} s: block at height {height}, {len(block.txs)} txs,"
        f" {block.size:,} bytes",
        flush=True,
    )
    return ValidationSetup(path, block.serialize(), height, triples)


@dataclass
class ValidationResult:
    n_tx: int
    cold: Samples
    raw_checks: Samples
    verify_only: Samples
    warm: Samples
    submit_cold: Samples
    submit_warm: Samples

    @property
    def overhead(self) -> float:
        return self.cold.median / self.raw_checks.median - 1

    @property
    def cpu_overhead(self) -> float:
        return self.cold.cpu_median / self.raw_checks.cpu_median - 1

    @property
    def speedup(self) -> float:
        return self.cold.median / self.warm.median


def raw_parse_and_verify(triples: Sequence[tuple[bytes, bytes, bytes]]) -> None:
    for pubkey, signature, digest in triples:
        key = VerifyingKey.from_string(pubkey, curve=SECP256k1)
        key.verify_digest(signature, digest, sigdecode=sigdecode_der)


def raw_verify_only(parsed: Sequence[tuple[VerifyingKey, bytes, bytes]]) -> None:
    for key, signature, digest in parsed:
        key.verify_digest(signature, digest, sigdecode=sigdecode_der)


def bench_validation(
    setup: ValidationSetup, workdir: Path, reps: int, submit_reps: int, show_profile: bool
) -> ValidationResult:
    """Cold and warm check_block + connect_block on the store-backed view, and the raw ecdsa reference."""
    n_tx = len(setup.triples)
    node = open_node(copy_store(setup.base_db, workdir / "measure.db"))
    assert node.height + 1 == setup.height
    mtp = node.median_time_past()

    def validate(verified: object = ()) -> Callable[[], object]:
        block = Block.deserialize(setup.raw_block)  # fresh objects: no txid or serialization cached

        def run() -> object:
            check_block(block, PARAMS)
            undo = connect_block(block, node.store, setup.height, PARAMS, mtp, verified)  # type: ignore[arg-type]
            assert len(undo.spent) == n_tx
            return undo

        return run

    parsed = [(VerifyingKey.from_string(p, curve=SECP256k1), s, d) for p, s, d in setup.triples]
    validate()()  # warm-up: imports, SQLite page cache, ecdsa tables
    raw_parse_and_verify(setup.triples[:50])

    print(f"\n[1] cold validation of a {n_tx}-tx block: {reps} repetitions, interleaved with the reference", flush=True)
    cold, raw, verify_only = Samples(), Samples(), Samples()
    runs: list[tuple[Samples, Callable[[], Callable[[], object]]]] = [
        (cold, validate),
        (raw, lambda: lambda: raw_parse_and_verify(setup.triples)),
        (verify_only, lambda: lambda: raw_verify_only(parsed)),
    ]
    for i in range(reps):  # interleaved, in alternating order, so drift in machine speed hits every side alike
        for samples, make in runs if i % 2 == 0 else reversed(runs):
            samples.add(make())

    print(f"[2] warm validation: the {n_tx} txs go through Node.submit_tx first", flush=True)
    for tx in Block.deserialize(setup.raw_block).txs[1:]:
        node.submit_tx(tx)
    assert len(node.mempool) == n_tx
    warm = Samples()
    for _ in range(reps):
        warm.add(validate(node._verified))
    if show_profile:
        profile("cold check_block + connect_block", validate())
        profile("warm check_block + connect_block", validate(node._verified))
    node.close()

    print(f"    Node.submit_block cold and warm, {submit_reps} time(s) each on a fresh copy of the store", flush=True)
    submit_cold, submit_warm = Samples(), Samples()
    for rep in range(submit_reps):
        for warm_run, results in ((False, submit_cold), (True, submit_warm)):
            fresh = open_node(copy_store(setup.base_db, workdir / f"submit-{rep}-{warm_run}.db"))
            block = Block.deserialize(setup.raw_block)
            if warm_run:
                for tx in Block.deserialize(setup.raw_block).txs[1:]:
                    fresh.submit_tx(tx)
            results.add(lambda f=fresh, b=block: f.submit_block(b))
            assert fresh.height == setup.height
            assert len(fresh.mempool) == 0
            fresh.close()

    return ValidationResult(n_tx, cold, raw, verify_only, warm, submit_cold, submit_warm)


def show(label: str, value: str, note: str = "") -> None:
    """One labelled figure, aligned."""
    print(f"  {label:<68} {value:>12}{note}")


def report_validation(r: ValidationResult) -> None:
    n = r.n_tx
    print()
    show(
        "cold validation (check_block + connect_block, no signature cache)",
        ms(r.cold.median),
        f"  {r.cold.median / n * 1e6:8.1f} us/tx   ({r.cold.spread()})",
    )
    show(
        f"raw ecdsa parse+verify, {n} checks (reference)",
        ms(r.raw_checks.median),
        f"  {n / r.raw_checks.median:8.0f} checks/s ({r.raw_checks.spread()})",
    )
    show(
        "raw ecdsa verify only, pre-parsed keys (transparency)",
        ms(r.verify_only.median),
        f"  {n / r.verify_only.median:8.0f} checks/s ({r.verify_only.spread()})",
    )
    print("    a signature check = VerifyingKey.from_string + verify_digest: key parsing counts as part of it")
    print("    (libsecp256k1's verify bench also parses the key); the reference is that, for the same triples")
    show(
        "overhead = cold / raw checks - 1",
        f"{r.overhead * 100:.1f} %",
        f"  goal <= {GOAL_OVERHEAD * 100:.0f} %   {verdict(r.overhead <= GOAL_OVERHEAD)}",
    )
    show(
        "  same, by CPU time (process_time; information only)",
        f"{r.cpu_overhead * 100:.1f} %",
    )
    show(
        "warm validation (check_block + connect_block, verified_txids = cache)",
        ms(r.warm.median),
        f"  {r.warm.median / n * 1e6:8.1f} us/tx   ({r.warm.spread()})",
    )
    show(
        "warm speed-up = cold / warm",
        f"{r.speedup:.1f} x",
        f"  goal >= {GOAL_WARM_SPEEDUP:.0f} x    {verdict(r.speedup >= GOAL_WARM_SPEEDUP)}",
    )
    show("Node.submit_block cold (information only: includes SQLite writes)", ms(r.submit_cold.median))
    show("Node.submit_block warm (information only: includes SQLite writes)", ms(r.submit_warm.median))


# -- benchmark 3: address lookups ----------------------------------------------------------------------------------


@dataclass
class LookupTiming:
    blocks: int
    balance: float
    history: float
    utxos: float
    total: float  # balance + history + utxos, measured together
    total_cpu: float  # the same, by this process' CPU time
    db_bytes: int


class ChainGrower:
    """A regtest chain on a temp store, grown block by block through Node.submit_block."""

    RECEIVES = 12  # payments to the watched address
    SENDS = 8  # payments from it (each spends one received output, no change)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.node = open_node(path)
        self.miner = Wallet.from_label("chain miner")
        self.watched = Wallet.from_label("watched address")
        self.sink = Wallet.from_label("shop")

    def start(self) -> None:
        """The watched address' 20 history rows, all in blocks 21..40."""
        coinbases = [mine(self.node, self.miner.pkh).txs[0] for _ in range(self.RECEIVES)]  # heights 1..12
        while self.node.height < 20:
            mine(self.node, self.miner.pkh)
        received = []
        for cb in coinbases[: self.RECEIVES]:  # one payment in per block
            amount = cb.outputs[0].amount
            tx = pay(
                self.miner,
                [OutPoint(cb.txid, 0)],
                [(1 * COIN, self.watched.pkh), (amount - COIN - FEE, self.miner.pkh)],
            )
            mine(self.node, self.miner.pkh, [tx], FEE)
            received.append(OutPoint(tx.txid, 0))
        for outpoint in received[: self.SENDS]:  # one payment out per block
            tx = pay(self.watched, [outpoint], [(COIN - FEE, self.sink.pkh)])
            mine(self.node, self.miner.pkh, [tx], FEE)

    def grow_to(self, height: int, progress_every: int = 5_000) -> float:
        """Mine empty blocks up to `height`; return the seconds taken."""
        start = time.perf_counter()
        first = self.node.height
        while self.node.height < height:
            mine(self.node, self.miner.pkh)
            if self.node.height % progress_every == 0:
                elapsed = time.perf_counter() - start
                rate = (self.node.height - first) / elapsed
                print(f"    height {self.node.height:,}: {elapsed:6.1f} s, {rate:6.0f} blocks/s", flush=True)
        return time.perf_counter() - start

    def snapshot(self, dst: Path) -> Path:
        """A copy of the store as it is now (the node is closed for the copy and reopened)."""
        self.node.close()
        copy_store(self.path, dst)
        self.node = open_node(self.path)
        return dst


def db_bytes(path: Path) -> int:
    return sum(Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists())


def measure_lookups(stores: Sequence[tuple[Store, Path]], pkh: bytes, reps: int, batches: int) -> list[LookupTiming]:
    """Per-lookup time of balance, history(limit=50) and utxos of `pkh` on each store.

    Each figure is the median of `batches` batches of `reps` calls. With several stores the batches
    alternate between them (in alternating order), so changes in machine load hit every store alike.
    """
    queries: dict[str, Callable[[Store], object]] = {
        "total": lambda st: (st.balance(pkh), st.history(pkh, limit=50), st.utxos(pkh)),
        "balance": lambda st: st.balance(pkh),
        "history": lambda st: st.history(pkh, limit=50),
        "utxos": lambda st: st.utxos(pkh),
    }
    samples = [{name: Samples() for name in queries} for _ in stores]
    for store, _ in stores:
        assert len(store.history(pkh, limit=50)) == ChainGrower.RECEIVES + ChainGrower.SENDS
        assert len(store.utxos(pkh)) == ChainGrower.RECEIVES - ChainGrower.SENDS
        assert store.balance(pkh) == (ChainGrower.RECEIVES - ChainGrower.SENDS) * COIN
    for batch in range(batches):
        order = list(enumerate(stores)) if batch % 2 == 0 else list(reversed(list(enumerate(stores))))
        for k, (store, _) in order:
            for name, query in queries.items():
                samples[k][name].add(lambda q=query, st=store: [q(st) for _ in range(reps)])
    timings = []
    for (store, path), by_name in zip(stores, samples, strict=True):
        med = {name: statistics.median(sm.wall) / reps for name, sm in by_name.items()}
        cpu = statistics.median(by_name["total"].cpu) / reps
        height = len(store.active_chain()) - 1
        timings.append(
            LookupTiming(height, med["balance"], med["history"], med["utxos"], med["total"], cpu, db_bytes(path))
        )
    return timings


def report_lookup(t: LookupTiming, note: str = "") -> None:
    show(
        f"address lookup at {t.blocks:,} blocks{note} (balance + history(50) + utxos)",
        f"{t.total * 1e6:.1f} us",
        f"  [balance {t.balance * 1e6:.1f} us, history {t.history * 1e6:.1f} us, utxos {t.utxos * 1e6:.1f} us;"
        f" store {t.db_bytes / 1e6:.1f} MB]",
    )


@dataclass
class LookupResult:
    before: LookupTiming  # at the small size, measured before the chain was extended
    at_small: LookupTiming  # at the small size (a snapshot), measured alternately with...
    at_large: LookupTiming  # ...the same chain at the large size
    build_small: float  # seconds to mine the first chain (through Node.submit_block)
    build_large: float  # seconds to extend it (without the blocks built under cProfile, if any)
    built_large: int  # blocks that took

    @property
    def ratio(self) -> float:
        return self.at_large.total / self.at_small.total

    @property
    def cpu_ratio(self) -> float:
        return self.at_large.total_cpu / self.at_small.total_cpu

    @property
    def sequential_ratio(self) -> float:
        return self.at_large.total / self.before.total


def bench_lookups(workdir: Path, small: int, large: int, reps: int, batches: int, show_profile: bool) -> LookupResult:
    """The watched address' lookups at `small` blocks, then on the same chain extended to `large` blocks."""
    print(f"\n[3] address lookups: a chain to {small:,} blocks, then the same chain to {large:,}", flush=True)
    grower = ChainGrower(workdir / "chain.db")
    pkh = grower.watched.pkh
    grower.start()
    build_small = grower.grow_to(small)
    print(f"    built {small:,} blocks in {build_small:.1f} s", flush=True)
    (before,) = measure_lookups([(grower.node.store, grower.path)], pkh, reps, batches)
    report_lookup(before)
    small_copy = grower.snapshot(workdir / f"chain-{small}.db")
    profiled = min(2_000, large - small) if show_profile else 0
    build_large = grower.grow_to(large - profiled)
    built = large - profiled - small
    print(
        f"    extended to {large - profiled:,} blocks: {built:,} more blocks in {build_large:.1f} s"
        f" ({build_large / max(built, 1) * 1e3:.2f} ms/block)",
        flush=True,
    )
    if profiled:
        profile(f"building the last {profiled:,} blocks (Node.submit_block)", lambda: grower.grow_to(large))
    snapshot_store = Store(small_copy, PARAMS)
    print(f"    measuring {large:,} blocks alternately with the copy of the chain at {small:,} blocks", flush=True)
    at_large, at_small = measure_lookups(
        [(grower.node.store, grower.path), (snapshot_store, small_copy)], pkh, reps, batches
    )
    snapshot_store.close()
    grower.node.close()
    report_lookup(at_large)
    report_lookup(at_small, " (copy, alternated)")
    result = LookupResult(before, at_small, at_large, build_small, build_large, built)
    show(
        f"lookup ratio = time at {large:,} / time at {small:,} blocks (alternated)",
        f"{result.ratio:.2f}",
        f"  goal <= {GOAL_LOOKUP_RATIO}    {verdict(result.ratio <= GOAL_LOOKUP_RATIO)}",
    )
    show("  same, by CPU time (process_time; information only)", f"{result.cpu_ratio:.2f}")
    show(
        f"  same, against the {small:,}-block figure measured before extending (information)",
        f"{result.sequential_ratio:.2f}",
    )
    return result


# -- main ----------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200-tx block, 2,000-block chain")
    parser.add_argument("--blocks", type=int, default=None, help="size of the large chain (default 50,000)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile breakdowns")
    args = parser.parse_args(argv)

    n_tx = 200 if args.quick else 1_000
    small = 1_000
    large = args.blocks or (2_000 if args.quick else 50_000)
    if large <= small:
        parser.error(f"--blocks must be more than {small}")
    reps, submit_reps = (3, 1) if args.quick else (9, 3)
    lookup_reps, lookup_batches = (100, 15) if args.quick else (200, 41)  # many short batches: robust medians

    print("SimpleCoin core benchmark" + (" (--quick)" if args.quick else ""))
    print(f"python {sys.version.split()[0]}, ecdsa {ecdsa.__version__}, regtest, median of {reps} repetitions")
    with tempfile.TemporaryDirectory(prefix="simplecoin-bench-") as tmp:
        workdir = Path(tmp)
        setup = setup_validation(workdir, n_tx)
        validation = bench_validation(setup, workdir, reps, submit_reps, args.profile)
        report_validation(validation)
        overhead_ok = validation.overhead <= GOAL_OVERHEAD
        speedup_ok = validation.speedup >= GOAL_WARM_SPEEDUP
        if not args.profile and not (overhead_ok and speedup_ok):
            print("\n  a validation goal was missed; where the time goes:")
            node = open_node(copy_store(setup.base_db, workdir / "profile.db"))
            block = Block.deserialize(setup.raw_block)
            mtp = node.median_time_past()
            profile(
                "cold check_block + connect_block",
                lambda: (check_block(block, PARAMS), connect_block(block, node.store, setup.height, PARAMS, mtp)),
            )
            node.close()
        lookups = bench_lookups(workdir, small, large, lookup_reps, lookup_batches, args.profile)

    v, lk = validation, lookups
    rows = [
        (
            "cold validation vs raw ecdsa",
            f"{ms(v.cold.median)} vs {ms(v.raw_checks.median)}",
            f"overhead {v.overhead * 100:.1f} %",
            f"<= {GOAL_OVERHEAD * 100:.0f} %",
            verdict(overhead_ok),
        ),
        (
            "warm vs cold validation",
            f"{ms(v.warm.median)} vs {ms(v.cold.median)}",
            f"{v.speedup:.1f} x faster",
            f">= {GOAL_WARM_SPEEDUP:.0f} x",
            verdict(speedup_ok),
        ),
        (
            f"lookup {lk.at_large.blocks:,} vs {lk.at_small.blocks:,} blocks",
            f"{lk.at_large.total * 1e6:.1f} us vs {lk.at_small.total * 1e6:.1f} us",
            f"ratio {lk.ratio:.2f}",
            f"<= {GOAL_LOOKUP_RATIO}",
            verdict(lk.ratio <= GOAL_LOOKUP_RATIO),
        ),
    ]
    print(f"\nSUMMARY ({v.n_tx}-tx block; chains of {lk.at_small.blocks:,} and {lk.at_large.blocks:,} blocks)")
    header = ("goal", "measured", "figure", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("  information, not goals:")
    print(
        f"    raw ecdsa: {v.n_tx / v.raw_checks.median:.0f} parse+verify/s,"
        f" {v.n_tx / v.verify_only.median:.0f} verify/s (pre-parsed keys)"
    )
    print(f"    by CPU time (process_time): overhead {v.cpu_overhead * 100:.1f} %, lookup ratio {lk.cpu_ratio:.2f}")
    print(f"    Node.submit_block: cold {ms(v.submit_cold.median)}, warm {ms(v.submit_warm.median)}")
    print(
        f"    chain build through Node.submit_block: {lk.at_small.blocks:,} blocks in {lk.build_small:.1f} s,"
        f" then {lk.built_large:,} more in {lk.build_large:.1f} s"
        f" ({lk.build_large / max(lk.built_large, 1) * 1e3:.2f} ms/block)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
