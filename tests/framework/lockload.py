"""The lock attack of the hostile-input issue, for a test and a benchmark: expensive bad transactions vs /status.

A transaction of 690 inputs (just under the 100 kB limit) whose last signature is bad makes a node check
every signature before it can refuse it. Variants differ only in that bad signature, so each has its own
txid and none is refused from the node's memory of recent rejects. While `clients` threads post such
variants, one reader polls GET /status and records how long each answer took.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import OutPoint, Transaction
from simplecoin.node.metrics import TimedLock
from simplecoin.node.service import NodeService
from tests.framework.builder import MINER_KEY, funded_data_dir

INPUTS = 690
COIN_AMOUNT = 100_000
TIMEOUT = 30.0


@contextlib.contextmanager
def lock_held_by_another_thread(service: NodeService) -> Iterator[threading.Event]:
    """The node lock held by another thread (a block being connected, say) until the event is set or the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with service.lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join(timeout=10)


def waiting_for_the_lock(thread: threading.Thread) -> bool:
    """Whether `thread` is blocked waiting for a TimedLock (its innermost Python frame is the waiting one)."""
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code is TimedLock._wait.__code__


@dataclass
class Attack:
    """A prepared data directory and the variants of the bad transaction that spends its coins."""

    data_dir: Path
    variants: list[bytes]  # serialized transactions, each with another bad last signature


def prepare(data_dir: Path, variants: int = 60) -> Attack:
    """A regtest chain in `data_dir` whose 690 coins belong to MINER_KEY, and bad spends of all of them."""
    node, b = funded_data_dir(data_dir, REGTEST)
    try:
        split = b.spend("m1", [(COIN_AMOUNT, MINER_KEY.pubkey_hash)] * INPUTS, fee=100_000)
        node.submit_block(b.block("s1", txs=[split]))
        assert node.height == 14, "the chain was not built"
    finally:
        node.close()
    coins = [OutPoint(split.txid, i) for i in range(INPUTS)]
    good = b.spend(coins, [(INPUTS * COIN_AMOUNT - 200_000, MINER_KEY.pubkey_hash)])
    return Attack(data_dir, [_bad_last(good, donor).serialize() for donor in range(variants)])


def _bad_last(tx: Transaction, donor: int) -> Transaction:
    """`tx` whose last input carries input `donor`'s signature: strict DER, low S, the wrong digest."""
    inputs = list(tx.inputs)
    inputs[-1] = dataclasses.replace(inputs[-1], signature=inputs[donor].signature)
    return dataclasses.replace(tx, inputs=tuple(inputs))


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds per GET /status
    posts: Counter = field(default_factory=Counter)  # status code -> count of attack posts
    reasons: Counter = field(default_factory=Counter)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)


def measure(url: str, seconds: float, attack: Attack | None, clients: int = 3) -> Result:
    """Poll GET /status for `seconds`, with `clients` attackers posting variants meanwhile (none if no attack)."""
    result = Result()
    stop = threading.Event()
    lock = threading.Lock()

    def attacker(n: int) -> None:
        session = requests.Session()
        i = n
        while not stop.is_set():
            raw = attack.variants[i % len(attack.variants)]
            i += clients
            try:
                response = session.post(url + "/tx", json={"hex": raw.hex()}, timeout=TIMEOUT)
            except requests.RequestException:
                continue
            with lock:
                result.posts[response.status_code] += 1
                result.reasons[response.json().get("reason", "")] += 1

    threads = [threading.Thread(target=attacker, args=(n,), daemon=True) for n in range(clients if attack else 0)]
    for thread in threads:
        thread.start()
    session = requests.Session()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(url + "/status", timeout=TIMEOUT)
            result.latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            time.sleep(0.01)  # a monitor's pace, not a load test
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT + 5)
    return result
