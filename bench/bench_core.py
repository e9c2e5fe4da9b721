"""SimpleCoin core benchmarks: block validation cost and address-lookup scaling.

Run from the repository root:

    python bench/bench_core.py                # the full run (1,000-tx block, 50,000-block chain)
    python bench/bench_core.py --quick        # a smoke run (200-tx block, 2,000-block chain)
    python bench/bench_core.py --blocks 20000 # choose the size of the large chain

What is measured, and why:

1. Signature checks. The node verifies with its own encoding checks (33-byte compressed key on the curve,
   strict DER, 0 < r, s < n, low S) followed by libsecp256k1's verification equation (coincurve), falling back
   to python-ecdsa when coincurve is missing (simplecoin/core/secp256k1.py). For the same (pubkey, signature,
   digest) triples of the benchmark block, measured interleaved in the same run:
     - the node's verifier, `keys.signature_problem`, on libsecp256k1 (our pre-checks + the library);
     - the reference: ecdsa + gmpy2 as a node used it before, `VerifyingKey.from_string` + `verify_digest`
       (key parsing counts as part of a check, as in libsecp256k1's own verify benchmark);
     - for information: `signature_problem` on the ecdsa fallback (the other backend), libsecp256k1 alone
       through coincurve's public API, and ecdsa with keys parsed in advance.
   Goal: the node's verifier >= 20x the checks per second of ecdsa + gmpy2.

2. Cold validation. A block of N signed 1-input 2-output payments (N distinct keys, each spending a
   distinct mature output) goes through the whole `Node.submit_block` on a fresh copy of the store with an
   empty signature cache: check_block, the contextual header checks, connect_block and every SQLite write.
   Its reference, measured interleaved in the same run, is what it cannot avoid: the N signature checks with
   the node's verifier (as in 1) plus the same block's SQLite writes alone (`Store.add_block` +
   `Store.connect_block` with the undo data computed in advance, on another fresh copy).
   Goals, judged by this process' CPU time (the machine may be shared; wall time is printed beside it):
   cold <= 150 ms for 1,000 txs (scaled to N for --quick), and overhead = cold / (signature checks +
   writes) - 1 <= 15 %. The block arrives decoded (decoding is printed apart); `check_block` +
   `connect_block` alone, and the whole `Node.submit_block` on the ecdsa fallback, are printed for information.

   Warm connect. Transactions normally reach a node before the block that mines them; their signatures
   are checked on mempool entry (`Node.submit_tx`) and the txids remembered. Connecting the block then
   only needs the cheap rules. check_block + connect_block is timed cold and with `verified_txids` = the
   node's cache. Goal: warm >= 20x faster than cold (set when a signature check cost 1 ms; with libsecp256k1
   it cannot hold, since the signatures are no longer most of a cold block).

3. Address lookup scaling. A wallet or explorer asks for an address' balance, latest history and
   UTXOs. Those queries must cost the same however long the chain grows, as long as the address itself
   has the same activity. One watched address gets 20 history rows (12 payments in, 8 out; 4 UTXOs left)
   in the first blocks; the queries are timed at 1,000 blocks, then the same chain is extended to
   50,000 blocks through `Node.submit_block` (real validation, real store writes) and they are timed again,
   alternately with a copy of the same chain taken at 1,000 blocks, so that a change in machine load
   during the minutes of building cannot pass for a change in lookup cost (the figure measured before
   extending is printed as well). Goal: time at 50,000 / time at 1,000 <= 1.5.

Every timed figure is the median of several repetitions, timed with time.perf_counter; the CPU time of
this process (time.process_time) is printed beside the goals, with the 1-minute load average, because
the machine may be shared. Every repetition validates a freshly deserialized block, so no txid, check or
block hash is remembered from the run before (the SQLite page cache is warm, as on a running node).

Regtest halves the subsidy every 150 blocks, so from height 4,950 on the long chain's blocks are empty
coinbases that pay nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import importlib.metadata
import io
import itertools
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ecdsa
from common import (  # first: it puts the repository on sys.path
    Run,
    Samples,
    load_average,
    ms,
    open_node,
    stop_on_sigterm,
    verdict,
)
from ecdsa import SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_der

from simplecoin.core import keys, secp256k1
from simplecoin.core.amounts import COIN
from simplecoin.core.coins import BlockUndo
from simplecoin.core.keys import PrivateKey, sign_input, signature_hash, signature_problem
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

GOAL_VERIFY_SPEEDUP = 20.0  # the node's verifier vs ecdsa + gmpy2, checks per second
GOAL_COLD_MS_PER_1000 = 150.0  # cold Node.submit_block of a 1,000-tx block
GOAL_OVERHEAD = 0.15  # cold / (signature checks + SQLite writes) - 1
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


def open_at_now(path: Path) -> Node:
    return open_node(path, PARAMS, lambda: NOW)


def copy_store(src: Path, dst: Path) -> Path:
    """Copy a closed store (and its WAL, should one be left) so each repetition starts from the same state."""
    for suffix in ("", "-wal"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst) + suffix)
    return dst


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
    node = open_at_now(path)
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
    load: str  # 1-minute load average when the measurements started
    decode: Samples  # Block.deserialize of the benchmark block
    # 1. signature checks of the block's triples
    node_checks: Samples  # signature_problem on the node's verifier (libsecp256k1)
    raw_checks: Samples  # ecdsa + gmpy2: VerifyingKey.from_string + verify_digest (the reference)
    fallback_checks: Samples  # signature_problem on the ecdsa fallback
    library_only: Samples  # coincurve.PublicKey(pubkey).verify(signature, digest): the library, no checks of ours
    verify_only: Samples  # ecdsa with keys parsed in advance
    # 2. cold validation
    submit_cold: Samples  # Node.submit_block, fresh store copy, no signature cache
    cold_checks: Samples  # node_checks again, interleaved with submit_cold: the reference's first part
    writes: Samples  # Store.add_block + Store.connect_block of the same block
    submit_cold_fallback: Samples  # Node.submit_block on the ecdsa fallback
    cold: Samples  # check_block + connect_block, no signature cache
    warm: Samples  # the same with verified_txids = the node's cache
    submit_warm: Samples

    @property
    def verify_speedup(self) -> float:
        return self.raw_checks.median / self.node_checks.median

    @property
    def verify_speedup_cpu(self) -> float:
        return self.raw_checks.cpu_median / self.node_checks.cpu_median

    @property
    def cold_goal(self) -> float:
        """Seconds: 150 ms for 1,000 txs, scaled to the block's size."""
        return GOAL_COLD_MS_PER_1000 / 1e3 * self.n_tx / 1_000

    @property
    def reference(self) -> float:
        return self.cold_checks.median + self.writes.median

    @property
    def overhead(self) -> float:
        return self.submit_cold.median / self.reference - 1

    @property
    def cpu_overhead(self) -> float:
        return self.submit_cold.cpu_median / (self.cold_checks.cpu_median + self.writes.cpu_median) - 1

    @property
    def speedup(self) -> float:
        return self.cold.median / self.warm.median

    # The cold goals are judged by this process' CPU time: on a shared machine the wall time also counts the
    # time other work held the core (the wall figures are printed beside them).
    @property
    def cold_ok(self) -> bool:
        return self.submit_cold.cpu_median <= self.cold_goal

    @property
    def overhead_ok(self) -> bool:
        return self.cpu_overhead <= GOAL_OVERHEAD


def raw_parse_and_verify(triples: Sequence[tuple[bytes, bytes, bytes]]) -> None:
    for pubkey, signature, digest in triples:
        key = VerifyingKey.from_string(pubkey, curve=SECP256k1)
        key.verify_digest(signature, digest, sigdecode=sigdecode_der)


def raw_verify_only(parsed: Sequence[tuple[VerifyingKey, bytes, bytes]]) -> None:
    for key, signature, digest in parsed:
        key.verify_digest(signature, digest, sigdecode=sigdecode_der)


def node_checks(triples: Sequence[tuple[bytes, bytes, bytes]]) -> None:
    """What the node runs per input: our encoding checks, then the backend's verification equation."""
    for pubkey, signature, digest in triples:
        assert signature_problem(pubkey, signature, digest) is None


def library_only(triples: Sequence[tuple[bytes, bytes, bytes]]) -> None:
    """libsecp256k1 through coincurve's public API, with none of our checks (information: what ours cost)."""
    for pubkey, signature, digest in triples:
        assert secp256k1.coincurve.PublicKey(pubkey).verify(signature, digest, hasher=None)


@contextmanager
def verifier(name: str) -> Iterator[None]:
    """The node's signature checks on backend `name` while the block runs."""
    keys.use_verifier(name)
    try:
        yield
    finally:
        keys.use_verifier(None)


class FreshStores:
    """Copies of the base store, one per repetition, deleted as soon as the repetition is done."""

    def __init__(self, setup: ValidationSetup, workdir: Path) -> None:
        self.setup = setup
        self.workdir = workdir
        self.counter = itertools.count()
        self.open: list[tuple[Node, Path]] = []

    def node(self) -> Node:
        path = copy_store(self.setup.base_db, self.workdir / f"fresh-{next(self.counter)}.db")
        node = open_at_now(path)
        self.open.append((node, path))
        return node

    def submit(self) -> Callable[[], object]:
        """Node.submit_block of a freshly decoded block on a fresh store."""
        node, block = self.node(), Block.deserialize(self.setup.raw_block)

        def run() -> None:
            outcome = node.submit_block(block)
            assert outcome.status == "accepted", outcome
            assert node.height == self.setup.height

        return run

    def writes(self, undo: BlockUndo) -> Callable[[], object]:
        """The block's SQLite writes alone, as Node.submit_block makes them, with the undo data given."""
        node, block = self.node(), Block.deserialize(self.setup.raw_block)
        entry = node.index.make_entry(block.header)
        assert entry.height == self.setup.height

        def run() -> None:
            node.store.add_block(block, entry.height, entry.status, entry.seq)
            node.store.connect_block(block, entry.height, undo)

        return run

    def close(self) -> None:
        for node, path in self.open:
            node.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        self.open.clear()


def bench_validation(
    setup: ValidationSetup, workdir: Path, reps: int, submit_reps: int, show_profile: bool
) -> ValidationResult:
    """Signature checks on both backends and the ecdsa reference; cold and warm validation of the block."""
    n_tx = len(setup.triples)
    triples = setup.triples
    node = open_at_now(copy_store(setup.base_db, workdir / "measure.db"))
    assert node.height + 1 == setup.height
    mtp = node.median_time_past()

    def validate(verified: object = ()) -> Callable[[], object]:
        block = Block.deserialize(setup.raw_block)  # fresh objects: no txid, check or serialization remembered

        def run() -> object:
            check_block(block, PARAMS)
            undo = connect_block(block, node.store, setup.height, PARAMS, mtp, verified)  # type: ignore[arg-type]
            assert len(undo.spent) == n_tx
            return undo

        return run

    parsed = [(VerifyingKey.from_string(p, curve=SECP256k1), s, d) for p, s, d in triples]
    undo = validate()()  # warm-up: imports, SQLite page cache, ecdsa tables; and the undo data for the writes
    raw_parse_and_verify(triples[:50])
    node_checks(triples[:50])
    load = load_average()

    print(f"\n[1] signature checks of the block's {n_tx} inputs: {reps} repetitions, interleaved", flush=True)
    checks, raw, fallback, library, verify_only = Samples(), Samples(), Samples(), Samples(), Samples()

    def on_fallback() -> None:
        with verifier("ecdsa"):
            node_checks(triples)

    fast_runs: list[tuple[Samples, Callable[[], object]]] = [
        (checks, lambda: node_checks(triples)),
        (library, lambda: library_only(triples)),
    ]
    slow_runs: list[tuple[Samples, Callable[[], object]]] = [
        (raw, lambda: raw_parse_and_verify(triples)),
        (fallback, on_fallback),
        (verify_only, lambda: raw_verify_only(parsed)),
    ]
    # The ecdsa side takes ~30x longer per repetition: it gets a third of the repetitions (at least 3), spread
    # over the run. Interleaved, in alternating order, so drift in machine speed hits every side alike.
    slow_every = max(1, reps // max(3, reps // 3))
    for i in range(reps):
        runs = fast_runs + (slow_runs if i % slow_every == 0 else [])
        for samples, fn in runs if i % 2 == 0 else reversed(runs):
            samples.add(fn)

    print(f"[2] cold validation: Node.submit_block on a fresh store, {reps} repetitions, interleaved", flush=True)
    stores = FreshStores(setup, workdir)
    decode, submit_cold, writes, cold, cold_checks = Samples(), Samples(), Samples(), Samples(), Samples()
    cold_runs: list[tuple[Samples, Callable[[], Callable[[], object]]]] = [
        (submit_cold, stores.submit),
        (writes, lambda: stores.writes(undo)),
        (cold_checks, lambda: lambda: node_checks(triples)),
        (cold, validate),
        (decode, lambda: lambda: Block.deserialize(setup.raw_block)),
    ]
    for i in range(reps):
        for samples, make in cold_runs if i % 2 == 0 else reversed(cold_runs):
            samples.add(make())
        stores.close()
    submit_cold_fallback = Samples()
    with verifier("ecdsa"):
        for _ in range(submit_reps):
            submit_cold_fallback.add(stores.submit())
            stores.close()

    print(f"    warm validation: the {n_tx} txs go through Node.submit_tx first", flush=True)
    for tx in Block.deserialize(setup.raw_block).txs[1:]:
        node.submit_tx(tx)
    assert len(node.mempool) == n_tx
    warm = Samples()
    for _ in range(reps):
        warm.add(validate(node._verified))
    if show_profile:
        profile("cold Node.submit_block", stores.submit())
        profile("cold check_block + connect_block", validate())
        profile("warm check_block + connect_block", validate(node._verified))
        stores.close()
    node.close()

    submit_warm = Samples()
    for _ in range(submit_reps):
        fresh = stores.node()
        for tx in Block.deserialize(setup.raw_block).txs[1:]:
            fresh.submit_tx(tx)
        block = Block.deserialize(setup.raw_block)
        submit_warm.add(lambda f=fresh, b=block: f.submit_block(b))
        assert fresh.height == setup.height
        assert len(fresh.mempool) == 0
        stores.close()

    return ValidationResult(
        n_tx, load, decode, checks, raw, fallback, library, verify_only, submit_cold, cold_checks, writes,
        submit_cold_fallback, cold, warm, submit_warm,
    )  # fmt: skip


def show(label: str, value: str, note: str = "") -> None:
    """One labelled figure, aligned."""
    print(f"  {label:<68} {value:>12}{note}")


def per_tx(label: str, s: Samples, n: int) -> None:
    show(label, ms(s.median), f"  {s.median / n * 1e6:8.1f} us/tx   ({s.spread()})")


def with_cpu(label: str, s: Samples) -> None:
    show(label, ms(s.median), f"  CPU {ms(s.cpu_median)}  ({s.spread()})")


def rate_line(label: str, s: Samples, n: int) -> None:
    show(
        label,
        f"{s.rate(n):,.0f}/s",
        f"  {ms(s.median):>10} wall, {ms(s.cpu_median):>10} CPU  ({s.spread()})",
    )


def report_validation(r: ValidationResult) -> None:
    n = r.n_tx
    print(f"\n  1-minute load average when these started: {r.load} (2 cores: above ~1 the figures are shared)")
    print(f"  [1] signature checks, {n} per repetition ({keys.VERIFIER} is the node's verifier)")
    rate_line(f"node verifier: our checks + {keys.VERIFIER} (signature_problem)", r.node_checks, n)
    rate_line("raw ecdsa parse+verify, ecdsa + gmpy2 (reference)", r.raw_checks, n)
    rate_line("node verifier on the ecdsa fallback (other backend)", r.fallback_checks, n)
    rate_line("libsecp256k1 alone via coincurve.PublicKey.verify (information)", r.library_only, n)
    rate_line("raw ecdsa verify only, pre-parsed keys (information)", r.verify_only, n)
    show(
        "verification speed-up = node verifier / ecdsa + gmpy2",
        f"{r.verify_speedup:.1f} x",
        f"  goal >= {GOAL_VERIFY_SPEEDUP:.0f} x    {verdict(r.verify_speedup >= GOAL_VERIFY_SPEEDUP)}"
        f"   (by CPU time {r.verify_speedup_cpu:.1f} x; load {r.load})",
    )
    print(f"\n  [2] cold validation of the {n}-tx block")
    per_tx("cold Node.submit_block (fresh store, no signature cache)", r.submit_cold, n)
    with_cpu("  its signature checks with the node verifier (reference part)", r.cold_checks)
    with_cpu("  its SQLite writes: Store.add_block + connect_block (reference part)", r.writes)
    show(
        f"cold time goal (150 ms per 1,000 txs: {ms(r.cold_goal)}), by CPU time",
        ms(r.submit_cold.cpu_median),
        f"  goal <= {ms(r.cold_goal)}   {verdict(r.cold_ok)}   (wall {ms(r.submit_cold.median)}; load {r.load})",
    )
    show(
        "overhead = cold / (signature checks + writes) - 1, by CPU time",
        f"{r.cpu_overhead * 100:.1f} %",
        f"  goal <= {GOAL_OVERHEAD * 100:.0f} %   {verdict(r.overhead_ok)}"
        f"   (wall {r.overhead * 100:.1f} %; load {r.load})",
    )
    show("decoding the block, Block.deserialize (not in the figures above)", ms(r.decode.median))
    show(
        "cold Node.submit_block on the ecdsa fallback (other backend)",
        ms(r.submit_cold_fallback.median),
        f"  {r.submit_cold_fallback.median / r.submit_cold.median:.1f} x the libsecp256k1 figure",
    )
    per_tx("cold validation (check_block + connect_block, no signature cache)", r.cold, n)
    per_tx("warm validation (check_block + connect_block, verified_txids = cache)", r.warm, n)
    show(
        "warm speed-up = cold / warm",
        f"{r.speedup:.1f} x",
        f"  goal >= {GOAL_WARM_SPEEDUP:.0f} x    {verdict(r.speedup >= GOAL_WARM_SPEEDUP)}"
        "   (set for 1 ms signature checks; see the docstring)",
    )
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
        self.node = open_at_now(path)
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
        self.node = open_at_now(self.path)
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


def _coincurve_version() -> str:
    try:
        return importlib.metadata.version("coincurve")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200-tx block, 2,000-block chain")
    parser.add_argument("--blocks", type=int, default=None, help="size of the large chain (default 50,000)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile breakdowns")
    parser.add_argument("--no-lookups", action="store_true", help="only the signature and validation parts")
    args = parser.parse_args(argv)

    n_tx = 200 if args.quick else 1_000
    small = 1_000
    large = args.blocks or (2_000 if args.quick else 50_000)
    if large <= small:
        parser.error(f"--blocks must be more than {small}")
    reps, submit_reps = (3, 1) if args.quick else (9, 3)
    lookup_reps, lookup_batches = (100, 15) if args.quick else (200, 41)  # many short batches: robust medians

    run = Run()
    print("SimpleCoin core benchmark" + (" (--quick)" if args.quick else ""))
    print(
        f"python {sys.version.split()[0]}, ecdsa {ecdsa.__version__}, coincurve {_coincurve_version()},"
        f" node verifier {keys.VERIFIER}, regtest, median of {reps} repetitions"
    )
    with tempfile.TemporaryDirectory(prefix="simplecoin-bench-") as tmp:
        workdir = Path(tmp)
        setup = setup_validation(workdir, n_tx)
        validation = bench_validation(setup, workdir, reps, submit_reps, args.profile)
        report_validation(validation)
        verify_ok = validation.verify_speedup >= GOAL_VERIFY_SPEEDUP
        cold_ok = validation.cold_ok
        overhead_ok = validation.overhead_ok
        speedup_ok = validation.speedup >= GOAL_WARM_SPEEDUP
        if not args.profile and not (cold_ok and overhead_ok):
            print("\n  a cold validation goal was missed; where the time goes:")
            stores = FreshStores(setup, workdir)
            profile("cold Node.submit_block", stores.submit())
            stores.close()
        if args.no_lookups:
            print_summary(run, validation, None, verify_ok, cold_ok, overhead_ok, speedup_ok)
            return run.finish()
        lookups = bench_lookups(workdir, small, large, lookup_reps, lookup_batches, args.profile)

    print_summary(run, validation, lookups, verify_ok, cold_ok, overhead_ok, speedup_ok)
    return run.finish()


def print_summary(
    run: Run,
    v: ValidationResult,
    lk: LookupResult | None,
    verify_ok: bool,
    cold_ok: bool,
    overhead_ok: bool,
    speedup_ok: bool,
) -> None:
    rows = [
        (
            "node verifier vs ecdsa + gmpy2",
            f"{v.node_checks.rate(v.n_tx):,.0f}/s vs {v.raw_checks.rate(v.n_tx):,.0f}/s",
            f"{v.verify_speedup:.1f} x (CPU {v.verify_speedup_cpu:.1f} x)",
            f">= {GOAL_VERIFY_SPEEDUP:.0f} x",
            run.judge("verification speed-up", verify_ok),
        ),
        (
            f"cold Node.submit_block, {v.n_tx} txs (CPU)",
            ms(v.submit_cold.cpu_median),
            f"wall {ms(v.submit_cold.median)}",
            f"<= {ms(v.cold_goal)}",
            run.judge("cold submit_block time", cold_ok),
        ),
        (
            "cold vs signature checks + writes (CPU)",
            f"{ms(v.submit_cold.cpu_median)} vs {ms(v.cold_checks.cpu_median + v.writes.cpu_median)}",
            f"overhead {v.cpu_overhead * 100:.1f} % (wall {v.overhead * 100:.1f} %)",
            f"<= {GOAL_OVERHEAD * 100:.0f} %",
            run.judge("cold overhead", overhead_ok),
        ),
        (
            "warm vs cold validation",
            f"{ms(v.warm.median)} vs {ms(v.cold.median)}",
            f"{v.speedup:.1f} x faster",
            f">= {GOAL_WARM_SPEEDUP:.0f} x",
            run.judge("warm speed-up", speedup_ok),
        ),
    ]
    if lk is not None:
        rows.append(
            (
                f"lookup {lk.at_large.blocks:,} vs {lk.at_small.blocks:,} blocks",
                f"{lk.at_large.total * 1e6:.1f} us vs {lk.at_small.total * 1e6:.1f} us",
                f"ratio {lk.ratio:.2f}",
                f"<= {GOAL_LOOKUP_RATIO}",
                run.judge("lookup ratio", lk.ratio <= GOAL_LOOKUP_RATIO),
            )
        )
    chains = "" if lk is None else f"; chains of {lk.at_small.blocks:,} and {lk.at_large.blocks:,} blocks"
    print(f"\nSUMMARY ({v.n_tx}-tx block{chains}; load average {v.load} at the validation run, {load_average()} now)")
    header = ("goal", "measured", "figure", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("  information, not goals:")
    print(
        f"    both backends, checks/s: libsecp256k1 {v.node_checks.rate(v.n_tx):,.0f},"
        f" ecdsa fallback {v.fallback_checks.rate(v.n_tx):,.0f}; raw ecdsa {v.raw_checks.rate(v.n_tx):,.0f}"
        f" parse+verify/s, {v.verify_only.rate(v.n_tx):,.0f} verify/s (pre-parsed keys)"
    )
    print(
        f"    cold Node.submit_block: libsecp256k1 {ms(v.submit_cold.median)},"
        f" ecdsa fallback {ms(v.submit_cold_fallback.median)}; warm {ms(v.submit_warm.median)}"
    )
    if lk is not None:
        print(f"    by CPU time (process_time): lookup ratio {lk.cpu_ratio:.2f}")
        print(
            f"    chain build through Node.submit_block: {lk.at_small.blocks:,} blocks in {lk.build_small:.1f} s,"
            f" then {lk.built_large:,} more in {lk.build_large:.1f} s"
            f" ({lk.build_large / max(lk.built_large, 1) * 1e3:.2f} ms/block)"
        )


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
