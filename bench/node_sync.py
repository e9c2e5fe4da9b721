"""Part 3 of bench_node.py (`--only 3`): initial sync, libsecp256k1 against the ecdsa fallback.

Initial sync. A regtest chain (2,000 blocks holding 5,000 signed transactions spending mature coinbases
and the outputs of earlier transactions) is built with tests.framework.builder.ChainBuilder and stored into node
A's data directory with `Node.submit_block` (an in-process replay with every check, timed, with the time
inside `signature_problem` summed by a thin wrapper). Then real non-mining nodes run: A on that data,
B empty with `--peer A`; the time until B's tip is A's is measured, and B's server CPU time. To see
what share of a sync is signature checking, the same sync is run a second time in this process (a
`NodeService` and `PeerManager` on a fresh store, syncing from A over HTTP) with the time inside
`simplecoin.core.validation.signature_problem` summed the same way. That in-process sync is run once on
each signature backend (`keys.use_verifier`: libsecp256k1, then the ecdsa fallback, a fresh store each).
Goal: libsecp256k1 >= 3x the ecdsa fallback's blocks per second, both from this run.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common import (
    cores_used,
    cpu_seconds,
    node_processes,
    open_node,
    open_service,
    show_load,
)  # first: it puts the repository on sys.path

import simplecoin.core.validation
from simplecoin.core import keys
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction
from simplecoin.node.p2p.manager import PeerManager
from tests.framework.builder import MINER_KEY, ChainBuilder
from tests.framework.nodes import NodeProcess, free_port, running_node, wait_until

if TYPE_CHECKING:
    from bench_node import Settings

GOAL_SYNC_SPEEDUP = 3.0  # in-process sync, libsecp256k1 vs the ecdsa fallback, blocks per second
SYNC_FEE = 1_000


class FastBuilder(ChainBuilder):
    """ChainBuilder with its transactions in a dict: it looks spent outputs up by scanning every block."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.txs: dict[bytes, Transaction] = {}

    def block(self, name: str, *args, **kwargs) -> Block:
        block = super().block(name, *args, **kwargs)
        for tx in block.txs:
            self.txs[tx.txid] = tx
        return block

    def _find_tx(self, txid: bytes) -> Transaction | None:
        return self.txs.get(txid) or self.loose.get(txid)


def build_chain(blocks: int, txs: int) -> tuple[list[Block], int]:
    """A regtest chain of `blocks` blocks after genesis holding `txs` signed transactions (all by MINER_KEY).

    From the first block with a mature coinbase on, every block spends the coinbase that just matured
    (into two outputs) and, oldest first, outputs of earlier transactions, so that the transactions are
    spread evenly over the blocks. Returns (blocks, transactions in them).
    """
    b = FastBuilder(REGTEST)
    maturity = REGTEST.coinbase_maturity
    pkh = MINER_KEY.pubkey_hash
    spendable: list[tuple[OutPoint, int]] = []  # confirmed outputs of earlier transactions, oldest first
    first_spending = maturity + 1
    spending_blocks = blocks - first_spending + 1
    made = 0
    chain: list[Block] = []
    for height in range(1, blocks + 1):
        block_txs: list[Transaction] = []
        if height >= first_spending:
            i = height - first_spending
            quota = (i + 1) * txs // spending_blocks - made  # catches up on what an earlier block could not
            sources: list[tuple[OutPoint, int]] = []
            if quota:
                coinbase = chain[height - maturity - 1].txs[0]
                sources.append((OutPoint(coinbase.txid, 0), coinbase.outputs[0].amount))
            while len(sources) < quota and spendable:
                sources.append(spendable.pop(0))
            new_outputs = []
            for prevout, amount in sources:
                value = amount - SYNC_FEE
                outputs = [(value // 2, pkh), (value - value // 2, pkh)] if value >= 4 * SYNC_FEE else [(value, pkh)]
                tx = b.spend(prevout, outputs)
                block_txs.append(tx)
                new_outputs += [(OutPoint(tx.txid, n), amount) for n, (amount, _) in enumerate(outputs)]
            spendable += [o for o in new_outputs if o[1] > SYNC_FEE]
            made += len(block_txs)
        chain.append(b.block(f"s{height}", txs=block_txs))
    return chain, made


class SignatureTimer:
    """Sums the time spent in simplecoin.core.validation.signature_problem (the python-ecdsa checks) while active."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        original = simplecoin.core.validation.signature_problem

        def timed(*args):
            started = time.perf_counter()
            try:
                return original(*args)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        simplecoin.core.validation.signature_problem = timed
        try:
            yield
        finally:
            simplecoin.core.validation.signature_problem = original


@dataclass(frozen=True)
class SyncResult:
    blocks: int
    txs: int
    build_seconds: float
    replay_seconds: float  # in-process Node.submit_block of the whole chain
    replay_signatures: float  # of which inside signature_problem
    signature_checks: int
    wall_seconds: float  # launching B -> B's tip is A's
    up_seconds: float  # launching B -> B answers /status
    progress_seconds: float  # first block seen on B -> done
    progress_blocks: int
    b_cpu: float | None  # B's server process, CPU seconds over the whole run
    a_cpu: float | None  # A's server process, CPU seconds during B's sync
    inproc_seconds: float  # the same sync in this process, libsecp256k1
    inproc_signatures: float
    fallback_seconds: float  # and on the ecdsa fallback
    fallback_signatures: float

    @property
    def speedup(self) -> float:
        return self.fallback_seconds / self.inproc_seconds


def inprocess_sync(a_url: str, tip: bytes, path: Path, backend: str) -> tuple[float, float]:
    """Sync a fresh store from node A in this process on signature backend `backend`: (seconds, in signatures)."""
    timer = SignatureTimer()
    keys.use_verifier(backend)
    service = open_service(path, REGTEST)
    peers = PeerManager(service, f"http://127.0.0.1:{free_port()}", (a_url,), progress=False)
    try:
        started = time.perf_counter()
        with timer.active():
            peers.start()
            wait_until(
                lambda: service.tip().hash == tip, timeout=1_800, interval=0.01, what=f"the in-process sync ({backend})"
            )
        seconds = time.perf_counter() - started
    finally:
        peers.stop()
        service.close()
        keys.use_verifier(None)
    return seconds, timer.seconds


def bench_sync(settings: Settings) -> SyncResult:
    with tempfile.TemporaryDirectory(prefix="bench_node_sync_") as tmp:
        workdir = Path(tmp)
        show_load("building the chain")
        started = time.perf_counter()
        chain, txs = build_chain(settings.blocks, settings.txs)
        build_seconds = time.perf_counter() - started
        print(f"   built {len(chain):,} regtest blocks holding {txs:,} signed transactions in {build_seconds:.1f} s")

        show_load("the in-process replay")
        (workdir / "a").mkdir()
        timer = SignatureTimer()
        node = open_node(workdir / "a" / "chain.db", REGTEST)
        try:
            started = time.perf_counter()
            with timer.active():
                for block in chain:
                    outcome = node.submit_block(block)
                    if outcome.status != "accepted":
                        raise RuntimeError(f"block {block.header.hash_hex()} was not accepted: {outcome}")
            replay_seconds = time.perf_counter() - started
            if node.tip.hash != chain[-1].hash:
                raise RuntimeError("the replayed chain is not the tip")
        finally:
            node.close()
        replay_signatures, checks = timer.seconds, timer.calls
        print(
            f"   in-process replay (Node.submit_block, every check): {replay_seconds:.1f} s, "
            f"{len(chain) / replay_seconds:,.0f} blocks/s; {checks:,} signature checks took "
            f"{replay_signatures:.1f} s = {replay_signatures / replay_seconds:.0%} of it"
        )

        with running_node(workdir / "a") as a:
            a_status = a.status()
            if a_status["tip"] != chain[-1].header.hash_hex():
                raise RuntimeError("node A does not have the chain")
            a_servers, _ = node_processes(a)
            show_load("node B's sync")
            b = NodeProcess(workdir / "b", free_port(), [], workdir / "b.log")
            b.args = [
                "--network", "regtest", "--data-dir", str(b.data_dir), "--host", "127.0.0.1", "--port",
                str(b.port), "--log-level", "info", "--no-mine", "--peer", a.url,
            ]  # fmt: skip
            b.data_dir.mkdir()
            a_cpu_before = {pid: cpu_seconds(pid) for pid in a_servers}
            launched = time.perf_counter()
            try:
                b.start()  # returns once B answers /status
                up = time.perf_counter() - launched
                b_servers, _ = node_processes(b)
                first_seen: tuple[float, int] | None = None
                deadline = time.perf_counter() + 1_800
                while True:
                    status = b.status()
                    now = time.perf_counter()
                    if first_seen is None and status["height"] > 0:
                        first_seen = (now, status["height"])
                    if status["tip"] == a_status["tip"]:
                        break
                    if now > deadline:
                        raise RuntimeError(f"B did not sync within 30 minutes:\n{b.log()[-3000:]}")
                    time.sleep(0.02)
                wall = now - launched
                a_cpu = cores_used(a_servers, a_cpu_before, 1.0)  # CPU seconds (cores x 1 s)
                b_cpu = sum(c for pid in b_servers if (c := cpu_seconds(pid)) is not None) if b_servers else None
            finally:
                b.stop()
            assert first_seen is not None
            progress_seconds = now - first_seen[0]
            progress_blocks = len(chain) - first_seen[1]
            print(f"   node B: launch -> answering /status: {up:.1f} s")
            print(
                f"   node B sync from node A: launch -> same tip as A: {wall:.1f} s, "
                f"{len(chain) / wall:,.0f} blocks/s, {txs / wall:,.0f} tx/s"
            )
            print(
                f"   node B sync rate while blocks arrived: {progress_blocks:,} blocks in {progress_seconds:.1f} s, "
                f"{progress_blocks / max(progress_seconds, 1e-9):,.0f} blocks/s"
            )
            b_text = "not measurable" if b_cpu is None else f"{b_cpu:.1f} s"
            a_text = "not measurable" if a_cpu is None else f"{a_cpu:.1f} s"
            print(
                f"   CPU time: node B's server process (start-up included): {b_text}; node A's server process: {a_text}"
            )

            inproc: dict[str, tuple[float, float]] = {}
            for backend in ("libsecp256k1", "ecdsa"):
                show_load(f"the in-process sync on {backend}")
                inproc[backend] = inprocess_sync(a.url, chain[-1].hash, workdir / f"c-{backend}.db", backend)
                seconds, signatures = inproc[backend]
                print(
                    f"   same sync in-process (NodeService + PeerManager from node A), {backend}: {seconds:.1f} s, "
                    f"{len(chain) / seconds:,.0f} blocks/s; signature checks {signatures:.1f} s = "
                    f"{signatures / seconds:.0%}"
                )
            inproc_seconds, inproc_signatures = inproc["libsecp256k1"]
            fallback_seconds, fallback_signatures = inproc["ecdsa"]
            print(
                f"   share of the in-process sync spent verifying signatures (signature_problem): "
                f"{inproc_signatures:.1f} s = {inproc_signatures / inproc_seconds:.0%} on libsecp256k1, "
                f"{fallback_signatures / fallback_seconds:.0%} on the ecdsa fallback"
            )
    return SyncResult(
        len(chain), txs, build_seconds, replay_seconds, replay_signatures, checks, wall, up, progress_seconds,
        progress_blocks, b_cpu, a_cpu, inproc_seconds, inproc_signatures, fallback_seconds, fallback_signatures,
    )  # fmt: skip
