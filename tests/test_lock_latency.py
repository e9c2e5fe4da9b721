"""The node-lock attack against a real node: /status stays quick while clients send expensive bad transactions.

The scenario of bench/bench_lock.py (tests/framework/lockload.py), with bounds generous enough for a busy
CI machine. Before signatures were checked outside the lock, the same run measured a /status median of
137 ms and a p99 of 697 ms with libsecp256k1 (2.1 s median with python-ecdsa); after, 6.8 ms and 139 ms.
"""

from __future__ import annotations

from tests.framework import addrload
from tests.framework.lockload import measure, prepare
from tests.framework.nodes import running_node, wait_until


def test_status_stays_quick_while_bad_690_input_transactions_arrive(tmp_path):
    attack = prepare(tmp_path / "node", variants=30)
    with running_node(attack.data_dir) as node:
        loaded = measure(node.url, 4.0, attack, clients=3)
    assert sum(loaded.posts.values()) >= 3, loaded.posts  # the attack ran
    assert set(loaded.reasons) <= {"bad-txns-sig-invalid", "banned"}, loaded.reasons
    assert loaded.median <= 0.050, f"median {loaded.median * 1e3:.1f} ms"
    assert loaded.percentile(95) <= 0.500, f"p95 {loaded.percentile(95) * 1e3:.1f} ms"


def test_block_pushes_stay_quick_while_16_clients_read_addresses_on_a_12000_tx_pool(tmp_path):
    """Issue 21, item 3 (and 1): 16 clients on one IP read /address while the pool holds 12,000 txs and one address
    holds 112,001 coins. Before, each read looked up every input of the pool in SQLite under the node lock and
    the busy address was read whole under it: a block push took 2.4-3.9 s (7-14 ms idle). bench/bench_address.py
    holds the 100 ms goal; this bound is for a busy CI machine."""
    prepared = addrload.prepare(tmp_path / "node")
    with running_node(prepared.data_dir) as node:
        wait_until(lambda: node.status()["mempool"] == 12_000, timeout=300, what="the 12,000-tx pool loaded")
        loaded = addrload.measure(node.address, prepared, readers=16)
    assert len(loaded.reads) >= 16, loaded.codes  # the readers ran
    p99 = addrload.Result.percentile(loaded.pushes, 99)
    assert p99 <= 0.750, f"block push p99 {p99 * 1e3:.0f} ms"
    assert loaded.largest <= 400_000, f"an /address answer of {loaded.largest:,} bytes"  # a page, not 14 MB
