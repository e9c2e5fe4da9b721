"""Floods of blocks against real nodes: side branches that add no work, and orphans, cost neither disk nor memory.

The attacker of the issue: 40 siblings of block 1 (35 MB) were each answered "accepted", stored (+38 MB) and
relayed to every peer (+38 MB there too); 100 orphan blocks raised the server's memory from 110 to 252 MB.
Each block here is well-formed and solved (regtest work), and carries validly signed transactions that spend
nothing that exists: free to make, and only a block's parent chain could tell.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from simplecoin.core.mining import make_block, solve
from simplecoin.core.params import REGTEST
from simplecoin.core.primitives import Block, OutPoint, Transaction, TxIn, TxOut
from simplecoin.node.orphans import MAX_ORPHAN_BYTES_PER_SOURCE
from tests.framework.builder import BOB, MINER_KEY, sign_all
from tests.framework.nodes import NodeProcess, child_pids, running_node, wait_until

TX_BYTES = 99_000  # just under the 100 kB transaction limit


def junk_tx(seed: bytes) -> Transaction:
    outputs = (TxOut(1, BOB.pubkey_hash),) * ((TX_BYTES - 200) // 29)
    outpoint = OutPoint(hashlib.sha256(seed).digest(), 0)
    return sign_all(Transaction(1, (TxIn(outpoint, MINER_KEY.pubkey, b""),), outputs), MINER_KEY, REGTEST)


def heavy_block(parent: bytes, height: int, time: int, name: bytes, txs: int) -> Block:
    block = make_block(
        parent,
        height,
        REGTEST.pow_limit_bits,
        time,
        MINER_KEY.pubkey_hash,
        REGTEST,
        txs=[junk_tx(name + b"/%d" % i) for i in range(txs)],
        extra=name,
    )
    solved = solve(block)
    assert solved is not None
    return solved


def push(node: NodeProcess, block: Block) -> dict:
    response = node.post("/p2p/block", json={"hex": block.serialize().hex()})
    assert response.status_code == 200, response.text
    return response.json()


def disk_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("chain.db*"))


def server_rss(node: NodeProcess) -> int:
    """Resident bytes of the node's server process (its largest child)."""
    sizes = []
    for pid in child_pids(node.process.pid):
        try:
            fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
        except (OSError, IndexError):
            continue
        sizes.append(int(fields[0]) * 1024)
    assert sizes, "no server process found"
    return max(sizes)


def test_side_branches_without_more_work_are_not_stored_or_relayed(tmp_path):
    with running_node(tmp_path / "a", mine=True, pause=0.3) as a:
        wait_until(lambda: a.status()["height"] >= 3, timeout=60, what="node A at height 3")
        with running_node(tmp_path / "b", peers=(a.url,)) as b:
            wait_until(lambda: b.status()["height"] >= 3, timeout=60, what="node B synced")
            genesis = REGTEST.genesis_hash
            before = disk_bytes(a.data_dir)
            siblings = [heavy_block(genesis, 1, REGTEST.genesis_time + 31, b"sibling %d" % n, 3) for n in range(12)]
            answers = [push(a, block)["status"] for block in siblings]

            assert answers == ["not-stored"] * len(siblings)
            assert disk_bytes(a.data_dir) - before < 1_000_000  # 3.5 MB of blocks were sent
            for block in siblings:
                assert a.get(f"/block/{block.header.hash_hex()}").status_code == 404
            # B is still in step with A, and got none of them: a block A relays would have reached it by now.
            wait_until(lambda: b.status()["tip"] == a.status()["tip"], timeout=30, what="B follows A")
            for block in siblings:
                assert b.get(f"/block/{block.header.hash_hex()}").status_code == 404


def test_orphan_floods_stay_within_their_bytes(tmp_path):
    with running_node(tmp_path / "a") as a:
        rss_before = server_rss(a)
        sent = 0
        for n in range(60):
            parent = hashlib.sha256(b"nobody's parent %d" % n).digest()
            block = heavy_block(parent, 5, REGTEST.genesis_time + 600, b"orphan %d" % n, 6)
            assert push(a, block)["status"] == "orphan"
            sent += block.size
        status = a.status()

        assert sent > 30_000_000
        assert 0 < status["orphan_bytes"] <= MAX_ORPHAN_BYTES_PER_SOURCE  # all from one (anonymous) sender
        assert server_rss(a) - rss_before < 60_000_000  # 35 MB of orphans were sent
        assert status["orphans"] >= 1  # the newest are kept: a parent that arrives now would connect them
