"""Crash safety: a node process killed with SIGKILL at any moment leaves a store that reopens consistent.

A scenario of 55 regtest blocks (signed spends, spends of outputs made earlier in the same block, multi-input
and multi-output transactions, conflicting spends on two branches, a transaction mined on both branches, and
two reorganisations) is written to a file. `tests/crash_worker.py` submits it in a subprocess that the test
kills with SIGKILL, by PID, at random moments: while it submits a block, inside an SQL transaction (the worker
stops after a write statement, before the commit), or right after a commit. After every kill the test reopens
the store itself and checks it against what the blocks say, computed here without the store:

* the active chain links from genesis, block by block, and its tip is a block the store holds;
* the UTXO set is exactly the one of that tip (and the one `recompute_utxos` replays with the pure rules);
* balances, address histories and the transaction index agree with the active chain's transactions;
* opening a Node makes only the connects and disconnects needed to reach the best stored chain: none when the
  store was already there (no replay), the rest of a reorganisation when the kill interrupted one.

Set SIMPLECOIN_CRASH_SEED to replay a run's kill schedule (the timing of kills still varies). CI (CI=true) uses
CI_CRASH_SEED, so the schedule is the same in every CI run; elsewhere each run draws a new seed, to explore.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simplecoin.core.chain import BlockStatus
from simplecoin.core.coins import Coin
from simplecoin.core.hashing import hash_from_hex, hash_hex
from simplecoin.core.keys import PrivateKey
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction
from simplecoin.node.node import Node
from simplecoin.node.store import HistoryRow, Store
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, MINER_KEY, ChainBuilder, recompute_utxos

ROOT = Path(__file__).resolve().parent.parent
CAROL = PrivateKey(bytes.fromhex("44" * 32))
KEYS = (MINER_KEY, ALICE, BOB, CAROL)
KEY_OF = {k.pubkey_hash: k for k in KEYS}
FEE = 10_000
SCENARIO_SEED = 20261110  # the scenario is fixed; only the kill schedule is random
MIN_KILLS = 36
WAIT = 30.0  # seconds: the longest a worker may stay silent before the test gives up on it


# -- the scenario ------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    names: list[str]  # submission order
    hash_of: dict[str, bytes]
    by_hash: dict[bytes, Block]
    height: dict[bytes, int]
    position: dict[bytes, int]  # index in the submission order
    utxos: dict[bytes, dict[OutPoint, Coin]]  # the UTXO set with that block as the tip, from the construction
    reorgs: list[tuple[str, int, int]] = field(default_factory=list)  # (block that triggers it, blocks off, on)
    steps: list[int] = field(default_factory=list)  # per block of the file: the connects and disconnects it causes
    best_tip: bytes = b""

    @property
    def blocks(self) -> list[Block]:
        return [self.by_hash[self.hash_of[n]] for n in self.names]

    def name(self, block_hash: bytes) -> str:
        return "genesis" if block_hash == REGTEST.genesis_hash else self.names[self.position[block_hash]]

    def chain_to(self, tip: bytes) -> list[bytes]:
        """Hashes from genesis to `tip`."""
        path = [tip]
        while path[-1] != REGTEST.genesis_hash:
            path.append(self.by_hash[path[-1]].header.prev_hash)
        return path[::-1]

    def fork(self, a: bytes, b: bytes) -> bytes:
        on_a = set(self.chain_to(a))
        return next(h for h in reversed(self.chain_to(b)) if h in on_a)

    def best_of(self, stored: Iterable[bytes]) -> bytes:
        """The most-work block (all regtest blocks weigh the same: the highest), the first submitted on ties."""
        return max(stored, key=lambda h: (self.height[h], -self.position.get(h, -1)))


class ScenarioMaker:
    """Builds blocks with ChainBuilder while tracking, on its own, the UTXO set each block leaves."""

    def __init__(self) -> None:
        self.b = ChainBuilder(REGTEST)
        self.rng = random.Random(SCENARIO_SEED)
        genesis = REGTEST.genesis_block
        self.s = Scenario([], {"genesis": genesis.hash}, {genesis.hash: genesis}, {genesis.hash: 0}, {}, {})
        self.s.utxos[genesis.hash] = {}  # the genesis output is never spendable, and never stored

    def block(
        self, name: str, parent: str, n_txs: int, include: Sequence[Transaction] = (), reserve: Iterable = ()
    ) -> Block:
        height = self.b.height(parent) + 1
        state = dict(self.s.utxos[self.b[parent].hash])
        txs: list[Transaction] = []
        for tx in include:
            self._apply(state, tx, height)
            txs.append(tx)
        for _ in range(n_txs):
            tx = self._random_spend(state, height, txs, set(reserve))
            if tx is None:
                break
            self._apply(state, tx, height)
            txs.append(tx)
        pay_to = self.rng.choice(KEYS).pubkey_hash
        block = self.b.block(name, parent, txs, pay_to=pay_to)
        coinbase = block.txs[0]
        state[OutPoint(coinbase.txid, 0)] = Coin(coinbase.outputs[0].amount, pay_to, height, True)
        s = self.s
        s.position[block.hash] = len(s.names)
        s.names.append(name)
        s.hash_of[name] = block.hash
        s.by_hash[block.hash] = block
        s.height[block.hash] = height
        s.utxos[block.hash] = state
        return block

    @staticmethod
    def _apply(state: dict[OutPoint, Coin], tx: Transaction, height: int) -> None:
        for txin in tx.inputs:
            coin = state.pop(txin.prevout)
            assert not coin.is_coinbase or height - coin.height >= REGTEST.coinbase_maturity
        for i, out in enumerate(tx.outputs):
            state[OutPoint(tx.txid, i)] = Coin(out.amount, out.pubkey_hash, height, False)

    def _random_spend(
        self, state: dict[OutPoint, Coin], height: int, txs: list[Transaction], reserve: set
    ) -> Transaction | None:
        rng = self.rng
        spendable = [
            op
            for op, c in state.items()
            if op not in reserve and (not c.is_coinbase or height - c.height >= REGTEST.coinbase_maturity)
        ]
        if not spendable:
            return None
        chained = [op for op in spendable if txs and op.txid == txs[-1].txid]
        first = rng.choice(chained if chained and rng.random() < 0.6 else spendable)
        owner = state[first].pubkey_hash
        others = [op for op in spendable if state[op].pubkey_hash == owner and op != first]
        inputs = [first, *rng.sample(others, min(len(others), rng.randint(0, 2)))]
        total = sum(state[op].amount for op in inputs) - FEE
        n_out = rng.randint(1, 3)
        cuts = sorted(rng.sample(range(1, total), n_out - 1))
        amounts = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, total], strict=True)]
        outputs = [(amount, rng.choice(KEYS).pubkey_hash) for amount in amounts]
        return self.b.spend(inputs, outputs, fee=FEE, key=KEY_OF[owner])


def build_scenario() -> Scenario:
    m = ScenarioMaker()
    rng = m.rng
    parent = "genesis"
    for h in range(1, 31):  # the first chain: a1..a30; spends from a11 on, when a1's coinbase matures
        m.block(f"a{h}", parent, 0 if h <= REGTEST.coinbase_maturity else rng.randint(1, 3))
        parent = f"a{h}"
    # A side branch from a20 that overtakes at b31: a21..a30 go off, b21..b31 on. b22 mines a transaction of
    # a21 again (its inputs are kept unspent in b21); the other spends conflict with the first chain's.
    shared = m.b["a21"].txs[1]
    m.block("b21", "a20", 2, reserve=[txin.prevout for txin in shared.inputs])
    parent = "b21"
    for h in range(22, 43):
        m.block(f"b{h}", parent, rng.randint(1, 3), include=[shared] if h == 22 else ())
        parent = f"b{h}"
    # A short fork from b40 that overtakes at c43: b42, b41 off, c41..c43 on.
    parent = "b40"
    for h in range(41, 44):
        m.block(f"c{h}", parent, rng.randint(1, 3))
        parent = f"c{h}"

    s = m.s
    tip = REGTEST.genesis_hash
    for name in s.names:  # which submissions reorganise, following the most-work, first-seen rule
        new = s.hash_of[name]
        best = s.best_of([tip, new])
        fork = s.fork(tip, best)
        off, on = s.height[tip] - s.height[fork], s.height[best] - s.height[fork]
        if off:
            s.reorgs.append((name, off, on))
        s.steps.append(off + on)
        tip = best
    s.best_tip = tip
    return s


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario()


@pytest.fixture(scope="module")
def before_reorgs(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per reorganisation, a closed store holding every block submitted before the one that triggers it."""
    stores = {}
    for trigger, _, _ in scenario.reorgs:
        directory = tmp_path_factory.mktemp(f"before-{trigger}")
        cut = scenario.names.index(trigger)
        with Worker(directory / "chain.db", write_blocks(directory / "blocks.hex", scenario.blocks[:cut])) as worker:
            assert worker.finish() == 0, worker.describe()
            tip = scenario.best_of(scenario.hash_of[name] for name in scenario.names[:cut])
            assert worker.lines[-1] == f"end {scenario.height[tip]} {hash_hex(tip)}", worker.describe()
        stores[trigger] = directory / "chain.db"
    return stores


def copy_store(source: Path, directory: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", directory / f"chain.db{suffix}")
    return directory / "chain.db"


def write_blocks(path: Path, blocks: Iterable[Block]) -> Path:
    path.write_text("".join(block.serialize().hex() + "\n" for block in blocks))
    return path


def test_scenario_exercises_the_store(scenario: Scenario) -> None:
    """The blocks hold what the crash test needs to cover, and nothing a node would reject."""
    assert len(scenario.names) == 55
    assert scenario.reorgs == [("b31", 10, 11), ("c43", 2, 3)]
    side = {"b21", "b22", "b23", "b24", "b25", "b26", "b27", "b28", "b29", "b30", "c41", "c42"}
    assert scenario.steps == [21 if n == "b31" else 5 if n == "c43" else 0 if n in side else 1 for n in scenario.names]
    assert scenario.name(scenario.best_tip) == "c43"
    in_block_chains = multi_in_out = 0
    spenders: dict[OutPoint, set[bytes]] = defaultdict(set)
    mined_in: dict[bytes, list[str]] = defaultdict(list)
    for name, block in zip(scenario.names, scenario.blocks, strict=True):
        earlier: set[bytes] = set()
        for tx in block.txs[1:]:
            mined_in[tx.txid].append(name)
            in_block_chains += any(txin.prevout.txid in earlier for txin in tx.inputs)
            multi_in_out += len(tx.inputs) > 1 and len(tx.outputs) > 1
            for txin in tx.inputs:
                spenders[txin.prevout].add(tx.txid)
            earlier.add(tx.txid)
    assert in_block_chains >= 5
    assert multi_in_out >= 5
    assert sum(len(s) > 1 for s in spenders.values()) >= 3, "branches should spend the same coins differently"
    assert [names for names in mined_in.values() if len(names) > 1] == [["a21", "b22"]]
    assert {c.pubkey_hash for c in scenario.utxos[scenario.best_tip].values()} == {k.pubkey_hash for k in KEYS}
    # Every block is valid: a node fed the whole file in-process ends on the expected tip and UTXO set.
    node = Node(Store(":memory:", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        for block in scenario.blocks:
            assert node.submit_block(block).status == "accepted"
        assert node.tip.hash == scenario.best_tip
        assert node.store.utxos() == scenario.utxos[scenario.best_tip]
    finally:
        node.close()


# -- the worker process ------------------------------------------------------------------------------------------


class Worker:
    """`tests/crash_worker.py` in a subprocess, its output lines read by a thread so waits can time out."""

    def __init__(self, db: Path, blocks: Path, *options: str) -> None:
        self.stderr_path = db.parent / "worker.stderr"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.crash_worker", str(db), str(blocks), *options],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.killed = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a kill may cut the last line short: it does not count
                self._queue.put(line[:-1])
        self._queue.put(None)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill (if still running) and reap. Always safe to call."""
        try:
            if self.proc.poll() is None:
                self.kill()
            self.proc.wait(timeout=WAIT)
        finally:
            if self.proc.stdin:
                self.proc.stdin.close()
            self._reader.join(timeout=WAIT)
            if self.proc.stdout:
                self.proc.stdout.close()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.killed = True

    def next_line(self) -> str | None:
        """The worker's next output line (None once its output has ended), waiting at most WAIT seconds."""
        try:
            line = self._queue.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"the worker printed nothing for {WAIT}s\n{self.describe()}") from None
        if line is None:
            self._queue.put(None)  # stays at the end
            return None
        self.lines.append(line)
        return line

    def wait_for(self, *words: str) -> str | None:
        """The next output line whose first words are `words`; None if the worker's output ended first."""
        while (line := self.next_line()) is not None:
            if line.split()[: len(words)] == list(words):
                return line
        return None

    def finish(self) -> int:
        """Read to the end of the output and reap; the exit status (negative: killed by that signal)."""
        while self.next_line() is not None:
            pass
        return self.proc.wait(timeout=WAIT)

    def describe(self) -> str:
        stderr = self.stderr_path.read_text()[-3000:] if self.stderr_path.exists() else ""
        return f"worker output (last lines): {self.lines[-8:]}\nworker stderr: {stderr}"


# -- what a reopened store must look like ------------------------------------------------------------------------


def expected_history(scenario: Scenario, active: list[bytes]) -> dict[bytes, list[HistoryRow]]:
    """Per address, the active chain's transactions paying or spending it, newest first, from the blocks."""
    outputs = {}
    rows: dict[bytes, list[HistoryRow]] = defaultdict(list)
    for height, block_hash in enumerate(active[1:], start=1):
        for position, tx in enumerate(scenario.by_hash[block_hash].txs):
            moved: dict[bytes, list[int]] = defaultdict(lambda: [0, 0])
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    spent = outputs[txin.prevout]
                    moved[spent.pubkey_hash][1] += spent.amount
            for i, out in enumerate(tx.outputs):
                outputs[OutPoint(tx.txid, i)] = out
                moved[out.pubkey_hash][0] += out.amount
            for pkh, (received, sent) in moved.items():
                rows[pkh].append(HistoryRow(tx.txid, height, position, received, sent))
    return {pkh: sorted(r, key=lambda row: (row.height, row.position), reverse=True) for pkh, r in rows.items()}


def spent_coins(scenario: Scenario, block_hash: bytes) -> tuple[Coin, ...]:
    """The coins a block spends, in input order: what its undo data must hold."""
    block = scenario.by_hash[block_hash]
    state = dict(scenario.utxos[block.header.prev_hash])
    spent = []
    for tx in block.txs[1:]:
        spent += [state.pop(txin.prevout) for txin in tx.inputs]
        for i, out in enumerate(tx.outputs):
            state[OutPoint(tx.txid, i)] = Coin(out.amount, out.pubkey_hash, scenario.height[block_hash], False)
    return tuple(spent)


def diff(got: dict[OutPoint, Coin], want: dict[OutPoint, Coin]) -> str:
    def show(outpoints: list[OutPoint]) -> str:
        return f"{len(outpoints)} {[f'{hash_hex(o.txid)[:16]}:{o.index}' for o in outpoints[:3]]}"

    missing = [o for o in want if o not in got]
    extra = [o for o in got if o not in want]
    changed = [o for o in want if o in got and got[o] != want[o]]
    return f"missing {show(missing)}, extra {show(extra)}, changed {show(changed)}"


def check_store(store: Store, active: list[bytes], scenario: Scenario, ctx: str) -> None:
    """The store's chain, UTXO set and address and transaction indexes against the scenario's blocks."""
    names = [scenario.name(h) if h in scenario.height else h.hex() for h in active]
    assert active[0] == REGTEST.genesis_hash, f"{ctx}: the active chain does not start at genesis: {names[:3]}"
    for height, block_hash in enumerate(active[1:], start=1):
        block = scenario.by_hash.get(block_hash)
        assert block is not None, f"{ctx}: unknown block at height {height} of the active chain"
        assert scenario.height[block_hash] == height, f"{ctx}: {names[height]} at height {height}: {names}"
        assert block.header.prev_hash == active[height - 1], f"{ctx}: the active chain breaks at {height}: {names}"
        stored = store.get_block(block_hash)
        assert stored is not None, f"{ctx}: no data for active block {names[height]}"
        assert stored.serialize() == block.serialize(), f"{ctx}: the data of {names[height]} differs"

    tip = active[-1]
    want = scenario.utxos[tip]
    got = store.utxos()
    assert got == want, f"{ctx}: the UTXO set is not {names[-1]}'s: {diff(got, want)}"
    for key in KEYS:
        pkh = key.pubkey_hash
        mine = {op: coin for op, coin in want.items() if coin.pubkey_hash == pkh}
        assert store.utxos(pkh) == mine, f"{ctx}: the UTXOs of {pkh.hex()} differ: {diff(store.utxos(pkh), mine)}"
        assert store.balance(pkh) == sum(c.amount for c in mine.values()), f"{ctx}: balance of {pkh.hex()}"

    history = expected_history(scenario, active)
    for key in KEYS:
        pkh = key.pubkey_hash
        got_rows = store.history(pkh, limit=100_000)
        assert got_rows == history.get(pkh, []), f"{ctx}: history of {pkh.hex()} at tip {names[-1]} differs"

    for height, block_hash in enumerate(active[1:], start=1):
        try:
            undo = store.get_undo(block_hash).spent
        except TypeError:  # no row
            raise AssertionError(f"{ctx}: no undo data for active block {names[height]}") from None
        assert undo == spent_coins(scenario, block_hash), f"{ctx}: the undo data of {names[height]} differs"

    on_chain = {}
    for height, block_hash in enumerate(active[1:], start=1):
        for position, tx in enumerate(scenario.by_hash[block_hash].txs):
            on_chain[tx.txid] = (height, position)
    for block in scenario.blocks:
        for tx in block.txs:
            assert store.tx_location(tx.txid) == on_chain.get(tx.txid), (
                f"{ctx}: tx {hash_hex(tx.txid)} of {scenario.name(block.hash)}: index says"
                f" {store.tx_location(tx.txid)}, the active chain {on_chain.get(tx.txid)}"
            )


@dataclass
class Reopen:
    raw_tip: str  # where the kill left the active chain
    disconnects: int  # what opening a Node then did (or, with open_node=False, has to do)
    connects: int
    stored: frozenset[int] = field(default=frozenset(), compare=False)  # positions in the file of the stored blocks


def reopen_and_check(db: Path, scenario: Scenario, ctx: str, *, replay: bool = True, open_node: bool = True) -> Reopen:
    """Check the store as the kill left it, then open a Node on it and check again.

    `replay=False` skips `recompute_utxos` (it verifies every signature again) when the same store was just
    checked with it; the UTXO set is still compared with the one the scenario expects at the tip.
    `open_node=False` checks the store as it is and leaves any unfinished work to the next Node."""
    store = Store(db, REGTEST)
    try:
        stored = list(store.load_index())
        stored_hashes = [e.header.hash() for e in stored]
        status = {h: e.status for h, e in zip(stored_hashes, stored, strict=True)}
        raw_active = store.active_chain()
        raw_ctx = f"{ctx}, as the kill left it"
        unknown = [h.hex() for h in stored_hashes if h not in scenario.height]
        assert not unknown, f"{raw_ctx}: the store indexes blocks it was never given: {unknown}"
        assert all(store.get_block(h) is not None for h in stored_hashes), f"{raw_ctx}: an indexed block has no data"
        assert BlockStatus.INVALID not in status.values(), f"{raw_ctx}: a valid block is marked invalid"
        assert all(status[h] == BlockStatus.VALID for h in raw_active), f"{raw_ctx}: an active block is not VALID"
        by_seq = [h for _, h in sorted(zip((e.seq for e in stored), stored_hashes, strict=True))]
        assert by_seq == sorted(stored_hashes, key=lambda h: scenario.position.get(h, -1)), (
            f"{raw_ctx}: arrival order (which breaks ties between equal-work tips) was not kept"
        )
        check_store(store, raw_active, scenario, raw_ctx)

        # What reaching the best stored chain takes; a Node must do exactly that, replaying nothing connected.
        raw_tip = raw_active[-1]
        best = scenario.best_of(stored_hashes)
        fork = scenario.fork(raw_tip, best)
        todo = Reopen(
            scenario.name(raw_tip),
            scenario.height[raw_tip] - scenario.height[fork],
            scenario.height[best] - scenario.height[fork],
            frozenset(scenario.position[h] for h in stored_hashes if h in scenario.position),
        )
        if not open_node:
            store.close()
            return todo
        calls: Counter[str] = Counter()

        def counted(kind: str, method: Any) -> Any:
            def wrapper(*args: Any) -> Any:
                calls[kind] += 1
                return method(*args)

            return wrapper

        store.connect_block = counted("connect", store.connect_block)  # type: ignore[method-assign]
        store.disconnect_block = counted("disconnect", store.disconnect_block)  # type: ignore[method-assign]
        node = Node(store, REGTEST, clock=lambda: NOW)
    except BaseException:
        store.close()
        raise
    try:
        node_ctx = f"{ctx}, after reopening (store tip was {todo.raw_tip})"
        assert (calls["disconnect"], calls["connect"]) == (todo.disconnects, todo.connects), (
            f"{node_ctx}: opening the node made {dict(calls)} store calls to reach {scenario.name(best)},"
            f" not {todo.disconnects} disconnects and {todo.connects} connects"
        )
        assert node.active == scenario.chain_to(best), f"{node_ctx}: the node is not on {scenario.name(best)}"
        assert store.active_chain() == node.active, f"{node_ctx}: the stored active chain is not the node's"
        if replay:
            assert node.store.utxos() == recompute_utxos(node), f"{node_ctx}: the UTXO set is not the replayed one"
        check_store(store, node.active, scenario, node_ctx)
    finally:
        node.close()
    return todo


# -- the tests ---------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Where a worker run is killed: `delay` s after it begins submitting block `block` ("timed"), or where it
    pauses ("sql": inside its `at`-th write statement, "event": after its `at`-th connect or disconnect) while it
    submits block `block` (-1: while its Node opens and finishes what the last kill interrupted).

    `hold`: the worker stops before it begins that block, whatever happens. A timed kill's delay is a random
    moment, and the worker may get several blocks further in it; the hold keeps such a kill short of a
    reorganisation that the schedule means to interrupt with a forced kill of its own."""

    kind: str
    block: int
    at: int = 0
    delay: float = 0.0
    hold: int | None = None

    def options(self) -> list[str]:
        hold = [] if self.hold is None else ["--hold-before", str(self.hold)]
        if self.kind == "timed":
            return hold
        return [f"--pause-{self.kind}", str(self.at), "--in-block", str(self.block), *hold]


def choose_plan(
    rng: random.Random, scenario: Scenario, progress: int, stored: frozenset[int], pending: tuple[int, int] | None
) -> Plan:
    """Random, except that a kill always interrupts each reorganisation of a round, and recovery when pending.

    `progress`: blocks of the file finished; `stored`: positions of the blocks the store holds; `pending`:
    (disconnects, connects) the last kill left for the next worker's Node() to finish. Every step of a connect
    or disconnect writes at least 5 statements (a connect 7), adding a block 2, so the pauses chosen are reached.
    Every other kill is held short of the next reorganisation the round has not stored yet, so the forced kill
    finds it still to do."""
    to_come = [
        (number, scenario.position[scenario.hash_of[name]], off, on)
        for number, (name, off, on) in enumerate(scenario.reorgs)
        if scenario.position[scenario.hash_of[name]] not in stored
    ]
    next_trigger = to_come[0][1] if to_come else None
    if pending:
        steps = sum(pending)
        if rng.random() < 0.3:
            return Plan("event", -1, at=rng.randint(1, steps), hold=next_trigger)
        return Plan("sql", -1, at=rng.randint(1, 5 * steps), hold=next_trigger)
    if to_come and progress >= to_come[0][1] - 3:
        number, trigger, off, on = to_come[0]
        if number == 0:  # inside one of the disconnects: the store is left on the losing branch
            return Plan("sql", trigger, at=rng.randint(3, 2 + 5 * off))
        return Plan("sql", trigger, at=rng.randint(1, 2 + 5 * (off + on)))
    # Random kills stop short of the trigger, so the forced one above happens.
    last = len(scenario.names) - 1 if next_trigger is None else next_trigger - 1
    kind = rng.choice(["timed", "timed", "sql", "event"])
    if kind == "timed":  # from the start of block `block` on, while it and the ones after it are being submitted
        delay = rng.choice([0.0, rng.uniform(0, 0.0005), rng.uniform(0, 0.002), rng.uniform(0, 0.005)])
        return Plan("timed", min(progress + rng.randint(0, 3), last - 1), delay=delay, hold=next_trigger)
    block = min(progress + rng.randint(1, 3), last)  # after `progress`: not stored yet, so it writes
    steps = scenario.steps[block]  # a block off the best chain is only stored: 2 statements, no event
    if kind == "event" and steps:
        return Plan("event", block, at=rng.randint(1, steps), hold=next_trigger)
    return Plan("sql", block, at=rng.randint(1, 2 + 7 * steps), hold=next_trigger)  # steps <= 1: any statement


# The kill schedule CI replays. Timing still varies between runs: before the hold, a timed kill's delay could let
# the worker run past a reorganisation, which the round then never saw interrupted (CI failed so with seed 1).
CI_CRASH_SEED = "1"


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path, scenario: Scenario) -> None:
    chosen = os.environ.get("SIMPLECOIN_CRASH_SEED") or (CI_CRASH_SEED if os.environ.get("CI") else None)
    seed = int(chosen) if chosen is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    blocks = write_blocks(tmp_path / "blocks.hex", scenario.blocks)
    want_end = f"end {scenario.height[scenario.best_tip]} {hash_hex(scenario.best_tip)}"
    kills = rounds = runs = 0
    seen: Counter[str] = Counter()
    round_dir = tmp_path / "round0"
    round_dir.mkdir()
    progress = 0  # blocks of the file the workers of this round have finished submitting
    stored: frozenset[int] = frozenset()
    pending: tuple[int, int] | None = None
    while kills < MIN_KILLS or rounds == 0:
        runs += 1
        assert runs <= 4 * MIN_KILLS, f"seed={seed}: {runs} runs without {MIN_KILLS} kills and a finished round"
        plan = choose_plan(rng, scenario, progress, stored, pending)
        ctx = f"seed={seed} (rerun with SIMPLECOIN_CRASH_SEED={seed}), round {rounds}, run {runs}, {plan}"
        db = round_dir / "chain.db"
        with Worker(db, blocks, *plan.options()) as worker:
            if plan.kind == "timed":
                if worker.wait_for("begin", str(plan.block)) is not None:
                    if plan.delay:
                        time.sleep(plan.delay)  # not synchronisation: it moves the kill to a random moment
                    worker.kill()
            else:
                paused = worker.wait_for("paused")
                if paused is not None:
                    assert paused.split()[1] == plan.kind, f"{ctx}: the worker reached its hold first: {paused}"
                    if plan.kind == "sql":
                        assert paused.endswith("in_transaction=True"), f"{ctx}: {paused}"
                        seen["inside an SQL transaction"] += 1
                    else:
                        seen["right after a commit"] += 1
                    worker.kill()
            status = worker.finish()
            output = list(worker.lines)
            if worker.killed:
                assert status == -signal.SIGKILL, f"{ctx}: exit status {status}\n{worker.describe()}"
                kills += 1
            else:
                assert status == 0, f"{ctx}: the worker failed with status {status}\n{worker.describe()}"
                assert output[-1] == want_end, f"{ctx}: the worker ended elsewhere\n{worker.describe()}"
        ctx += f", worker's last lines {output[-2:]}"
        opened = [line.split() for line in output if line.startswith("open ")]
        if opened:  # "open <height> <tip> <connects> <disconnects>": only what the last check left undone
            want = pending or (0, 0)
            assert opened[0][3:] == [str(want[1]), str(want[0])], f"{ctx}: Node() did {opened[0][3:]}, not {want}"
        else:
            assert worker.killed, f"{ctx}: the worker never opened the store"
            assert plan.block == -1, f"{ctx}: the worker was killed before its Node() was open"
            seen["while recovering"] += 1
        done = [line.split() for line in output if line.startswith("done ")]
        bad = [" ".join(words) for words in done if words[2] not in ("accepted", "duplicate")]
        assert not bad, f"{ctx}: blocks not accepted: {bad}"
        progress = max([progress, *(int(words[1]) + 1 for words in done)])

        # Half the time the check leaves the store as it is, for the next worker's Node() to finish (or be killed).
        leave = worker.killed and rng.random() < 0.5
        result = reopen_and_check(db, scenario, ctx, open_node=not leave)
        stored = result.stored
        pending = (result.disconnects, result.connects) if leave and (result.disconnects or result.connects) else None
        if result.disconnects or result.connects:
            seen["reopened short of the best chain"] += 1
        if result.disconnects:
            seen["reopened in the middle of a reorg"] += 1
        if not worker.killed:
            rounds += 1
            round_dir = tmp_path / f"round{rounds}"
            round_dir.mkdir()
            progress, stored, pending = 0, frozenset(), None

    # The schedule makes sure of these; the rest is random.
    assert seen["inside an SQL transaction"] >= rounds, f"seed={seed}: {seen}"
    assert seen["reopened in the middle of a reorg"] >= rounds, f"seed={seed}: {seen}"
    print(f"seed={seed}: {kills} kills in {runs} runs, {rounds} rounds completed; {dict(seen)}")


def test_every_random_kill_is_held_short_of_the_next_reorganisation(scenario: Scenario) -> None:
    """The forced kill inside each reorganisation happens only if no earlier kill lets the worker reach it."""
    triggers = [scenario.position[scenario.hash_of[name]] for name, _, _ in scenario.reorgs]
    rng = random.Random(0)
    forced = held = 0
    for _ in range(2000):
        reached = rng.randint(0, len(triggers))  # how many of the round's reorganisations the store holds
        stored = frozenset(range(triggers[reached - 1] + 1)) if reached else frozenset()
        to_come = triggers[reached] if reached < len(triggers) else None
        progress = rng.randint(len(stored), len(scenario.names) if to_come is None else to_come)
        pending = rng.choice([None, (0, 1), (2, 3)])
        plan = choose_plan(rng, scenario, progress, stored, pending)
        if to_come is None:
            assert plan.hold is None, plan
        elif plan.block == to_come and plan.hold is None:
            forced += 1
            assert not pending, plan
            assert progress >= to_come - 3, plan
            assert plan.kind == "sql", plan
        else:
            held += 1
            assert plan.hold == to_come, plan
            assert plan.block < to_come, plan
    assert forced > 0
    assert held > 0


def test_a_held_worker_stops_before_the_block(tmp_path: Path, scenario: Scenario) -> None:
    trigger = scenario.position[scenario.hash_of[scenario.reorgs[0][0]]]
    blocks = write_blocks(tmp_path / "blocks.hex", scenario.blocks)
    with Worker(tmp_path / "chain.db", blocks, "--hold-before", str(trigger)) as worker:
        assert worker.wait_for("paused") == f"paused before {trigger}", worker.describe()
        worker.kill()
        assert worker.finish() == -signal.SIGKILL
    assert worker.lines[-2] == f"done {trigger - 1} accepted", worker.describe()
    assert f"begin {trigger}" not in worker.lines
    assert reopen_and_check(tmp_path / "chain.db", scenario, "held") == Reopen("a30", 0, 0)


def test_reopening_a_finished_store_replays_nothing(tmp_path: Path, scenario: Scenario) -> None:
    db = tmp_path / "chain.db"
    with Worker(db, write_blocks(tmp_path / "blocks.hex", scenario.blocks)) as worker:
        assert worker.finish() == 0, worker.describe()
    for attempt in range(2):
        result = reopen_and_check(db, scenario, f"reopen {attempt}", replay=attempt == 0)
        assert result == Reopen("c43", 0, 0)


# (reorg trigger, how the worker stops, where the store is left, what Node() must then do: disconnects, connects)
MID_REORG = [
    pytest.param("b31", ["--pause-event", "1"], "a29", 9, 11, id="b31-after-first-disconnect"),
    pytest.param("b31", ["--pause-event", "10"], "a20", 0, 11, id="b31-at-the-fork"),
    pytest.param("b31", ["--pause-event", "15"], "b25", 0, 6, id="b31-halfway-up-the-new-branch"),
    pytest.param("b31", ["--pause-event", "20"], "b30", 0, 1, id="b31-one-block-short"),
    pytest.param("c43", ["--pause-event", "2"], "b40", 0, 3, id="c43-at-the-fork"),
    pytest.param("c43", ["--pause-event", "3"], "c41", 0, 2, id="c43-one-block-on"),
]


@pytest.mark.parametrize(("trigger", "options", "left_at", "disconnects", "connects"), MID_REORG)
def test_a_reorg_killed_halfway_is_completed_on_reopen(
    tmp_path: Path,
    scenario: Scenario,
    before_reorgs: dict[str, Path],
    trigger: str,
    options: list[str],
    left_at: str,
    disconnects: int,
    connects: int,
) -> None:
    db = copy_store(before_reorgs[trigger], tmp_path)
    cut = scenario.names.index(trigger)
    with Worker(db, write_blocks(tmp_path / "trigger.hex", scenario.blocks[cut : cut + 1]), *options) as worker:
        assert worker.wait_for("paused") is not None, worker.describe()
        worker.kill()
        assert worker.finish() == -signal.SIGKILL, worker.describe()
    result = reopen_and_check(db, scenario, f"killed in the reorg to {trigger} with {options}")
    assert result == Reopen(left_at, disconnects, connects)
    # Node() finished the reorg and stored it: the next opening has nothing left to do.
    assert reopen_and_check(db, scenario, "second reopen", replay=False) == Reopen(trigger, 0, 0)


# add_block writes 2 statements, a disconnect 5, a connect 7: b31 adds, takes 10 blocks off and puts 11 on.
# Every statement of the addition, of the first two disconnects, the last one and the first connect; two more.
@pytest.mark.parametrize("statement", [*range(1, 13), *range(48, 60), 100, 129])
def test_a_reorg_killed_inside_a_transaction_leaves_no_trace_of_it(
    tmp_path: Path, scenario: Scenario, before_reorgs: dict[str, Path], statement: int
) -> None:
    """Killed after a write statement of the first reorg, before its commit: the store keeps the state after the
    last committed step (adding b31, or a connect or disconnect), and reopening completes the reorg."""
    db = copy_store(before_reorgs["b31"], tmp_path)
    cut = scenario.names.index("b31")
    trigger = write_blocks(tmp_path / "trigger.hex", scenario.blocks[cut : cut + 1])
    with Worker(db, trigger, "--pause-sql", str(statement)) as worker:
        paused = worker.wait_for("paused")
        assert paused is not None, worker.describe()
        assert paused.endswith("in_transaction=True"), paused
        worker.kill()
        assert worker.finish() == -signal.SIGKILL, worker.describe()
        steps = [line.split() for line in worker.lines if line.startswith(("stored ", "connected ", "disconnected "))]
    # Where the committed steps left the chain, from the worker's report of them.
    active = scenario.chain_to(scenario.hash_of["a30"])
    b31_stored = False
    for kind, _, shown in steps:
        block_hash = hash_from_hex(shown)
        if kind == "stored":
            b31_stored = block_hash == scenario.hash_of["b31"]
        elif kind == "disconnected":
            assert active.pop() == block_hash
        else:
            active.append(block_hash)
    assert b31_stored == (statement > 2)
    ctx = f"killed at {paused} after {len(steps)} committed steps"
    result = reopen_and_check(db, scenario, ctx, replay=statement in (1, 52, 129))
    assert result.raw_tip == scenario.name(active[-1]), ctx
    assert reopen_and_check(db, scenario, "second reopen", replay=False) == Reopen("b31" if b31_stored else "a30", 0, 0)
