"""The address attacks of issue 21, for a test and a benchmark: a victim with 112,001 coins, and a 12,000-tx pool.

`prepare` builds a regtest data directory offline: the victim's address holds `victim_coins` one-unit coins (a
dust flood, mined: dust is policy, not consensus), and `mempool.dat` holds `pool_txs` payments to 64 addresses,
which the node loads at start. `measure` pushes empty blocks to the node one by one (from 127.0.0.3) while
`readers` clients on one IP (127.0.0.2) read GET /address of the pool's addresses and of the victim, and records
how long each push took. Before pool lookups were indexed by address and store pages read outside the node lock,
a push took 2.4-3.9 s under 16 readers on such a pool (7-14 ms idle).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from simplecoin.core.hashing import hash160
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint
from simplecoin.node import mempool_file
from tests.framework.builder import MINER_KEY, funded_data_dir
from tests.framework.fakepeer import call
from tests.framework.nodes import wait_until

PER_TX = 3_400  # outputs of a fan-out tx: 28 bytes each, under the 100 kB a tx may be
PER_BLOCK = 9  # fan-out txs in a block: under 1 MB
ADDRESSES = 64  # what the pool's payments pay to
PAYMENT = 100_000  # each pool coin, above the dust threshold
VICTIM = hash160(b"victim")
READER_IP, PUSHER_IP = "127.0.0.2", "127.0.0.3"


def address(pubkey_hash: bytes) -> str:
    return address_from_pubkey_hash(pubkey_hash, REGTEST.address_version)


def payee(i: int) -> bytes:
    return hash160(b"payee %d" % i)


@dataclass
class Prepared:
    data_dir: Path
    blocks: list[Block]  # empty blocks on the tip, to push one by one
    addresses: list[str]  # read by the readers: the pool's payees and the victim


def prepare(data_dir: Path, pool_txs: int = 12_000, victim_coins: int = 112_001, pushes: int = 30) -> Prepared:
    node, b = funded_data_dir(data_dir, REGTEST)
    try:
        fan, source, left = [], b.coinbase_outpoint("m1"), REGTEST.subsidy(1)
        wanted = [(1, VICTIM)] * victim_coins + [(PAYMENT, MINER_KEY.pubkey_hash)] * pool_txs
        for i in range(0, len(wanted), PER_TX):
            outputs = wanted[i : i + PER_TX]
            left -= sum(a for a, _ in outputs) + 100_000
            fan.append(b.spend(source, [(left, MINER_KEY.pubkey_hash), *outputs], fee=100_000))
            source = OutPoint(fan[-1].txid, 0)
        for i in range(0, len(fan), PER_BLOCK):
            assert node.submit_block(b.block(f"f{i}", txs=fan[i : i + PER_BLOCK])).status == "accepted"
        coins = [
            OutPoint(tx.txid, 1 + j)
            for tx in fan
            for j, out in enumerate(tx.outputs[1:])
            if out.pubkey_hash == MINER_KEY.pubkey_hash
        ]
        pool = [b.spend(coin, [(PAYMENT - 1_000, payee(n % ADDRESSES))]) for n, coin in enumerate(coins)]
        mempool_file.save(data_dir / mempool_file.FILE_NAME, pool, REGTEST)
        blocks = b.chain([f"e{i}" for i in range(pushes)])
    finally:
        node.close()
    return Prepared(data_dir, blocks, [address(payee(i)) for i in range(ADDRESSES)] + [address(VICTIM)])


@dataclass
class Result:
    pushes: list[float] = field(default_factory=list)  # seconds per block push
    reads: list[float] = field(default_factory=list)  # seconds per GET /address answered 200
    codes: Counter = field(default_factory=Counter)  # status code -> count, of reads
    largest: int = 0  # bytes of the largest /address answer (its JSON re-encoded)

    @staticmethod
    def percentile(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def measure(target: str, prepared: Prepared, readers: int = 16) -> Result:
    """Push `prepared.blocks` while `readers` threads read addresses; `target` is the node's host:port."""
    result = Result()
    stop = threading.Event()
    lock = threading.Lock()

    def reader(n: int) -> None:
        i = n
        while not stop.is_set():
            path = "/address/" + prepared.addresses[i % len(prepared.addresses)]
            i += readers
            started = time.perf_counter()
            try:
                status, data = call(target, "GET", path, source=READER_IP)
            except OSError:
                continue
            with lock:
                result.codes[status] += 1
                if status == 200:
                    result.reads.append(time.perf_counter() - started)
                    result.largest = max(result.largest, len(str(data)))

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(result.reads) >= readers, timeout=60, what="the readers under way")
        for block in prepared.blocks:
            started = time.perf_counter()
            status, data = call(target, "POST", "/p2p/block", {"hex": block.serialize().hex()}, source=PUSHER_IP)
            result.pushes.append(time.perf_counter() - started)
            assert (status, data.get("status")) == (200, "accepted"), (status, data)
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    return result
