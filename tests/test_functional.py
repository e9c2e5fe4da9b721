"""Functional tests: real `miner.py` processes (a supervisor, a server process, mining processes) on 127.0.0.1.

Every node runs regtest on a free port with a temporary data directory; mining nodes use one mining process
and a mining pause so the chain grows at a few blocks a second. Nothing waits with sleep: every wait is a
`wait_until` poll with a generous timeout. Processes are stopped and killed by PID only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from simplecoin.core.keys import address_from_pubkey_hash, pubkey_hash_from_address
from simplecoin.core.mining import solve
from simplecoin.core.params import REGTEST
from simplecoin.node.node import Node
from simplecoin.node.store import Store
from simplecoin.wallet import hd
from simplecoin.wallet.keyfile import HD_VERSION, WalletFile
from tests.framework.builder import MINER_KEY, ChainBuilder, recompute_utxos
from tests.framework.client import (
    confirmed,
    get_json,
    mature_coinbases,
    metrics,
    reward_key,
    spend,
    submit,
    tx_info,
)
from tests.framework.fakepeer import FakePeer, chain_answers
from tests.framework.nodes import NodeProcess, child_pids, free_port, running_node, wait_until

MATURITY = REGTEST.coinbase_maturity


# -- helpers ----------------------------------------------------------------------------------------------------------


def same_tip(*nodes: NodeProcess) -> dict | None:
    """The common status if every node reports the same tip (and chain work), else None."""
    statuses = [n.status() for n in nodes]
    keys = {(s["tip"], s["height"], s["chain_work"]) for s in statuses}
    return statuses[0] if len(keys) == 1 else None


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def all_gone(pids: list[int]) -> bool:
    return not any(alive(pid) for pid in pids)


@contextlib.contextmanager
def no_orphans(pids: list[int]) -> Iterator[None]:
    """On the way out (a failed test too), SIGKILL whichever of `pids` is still alive: by PID, never by name."""
    try:
        yield
    finally:
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def server_pid(node: NodeProcess) -> int:
    match = wait_until(
        lambda: re.search(r"node started: server pid (\d+)", node.log()), timeout=30, what="the supervisor's start line"
    )
    return int(match.group(1))  # type: ignore[union-attr]


def mining_pids(node: NodeProcess) -> list[int]:
    """The supervisor's mining processes: spawned children other than the server (and its resource tracker)."""
    assert node.process is not None
    server = server_pid(node)
    found = []
    for pid in child_pids(node.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "spawn_main" in cmdline and pid != server and pid not in child_pids(server):
            found.append(pid)
    return found


def check_store(data_dir: Path, min_height: int) -> int:
    """Open a copy of the node's store (the node's own files stay untouched); check it; return its height."""
    copy = data_dir.parent / f"{data_dir.name}-inspect"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    for path in data_dir.glob("chain.db*"):
        shutil.copy2(path, copy / path.name)
    node = Node(Store(copy / "chain.db", REGTEST), REGTEST)
    try:
        assert node.height >= min_height, f"store at height {node.height}, below {min_height}"
        assert node.store.active_chain() == node.active
        for height, block_hash in enumerate(node.active):
            assert node.index[block_hash].height == height
            assert node.store.get_block(block_hash) is not None
        assert node.store.utxos() == recompute_utxos(node), "the stored UTXO set is not the replayed one"
        return node.height
    finally:
        node.close()
        shutil.rmtree(copy, ignore_errors=True)


# -- 1. a line of three nodes ---------------------------------------------------------------------------------------


def test_line_of_three_nodes_converges_and_confirms_a_tx(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(running_node(tmp_path / "a", mine=True, pause=0.3))
        b = stack.enter_context(running_node(tmp_path / "b", peers=(a.url,)))
        c = stack.enter_context(running_node(tmp_path / "c", peers=(b.url,)))

        wait_until(lambda: a.status()["height"] >= MATURITY + 1, timeout=60, what="A to mine a mature coinbase")
        wait_until(lambda: same_tip(a, b, c), timeout=60, what="A, B and C to reach the same tip")
        assert c.status()["height"] > 0

        key, address = reward_key(a)
        coins = wait_until(lambda: mature_coinbases(a, address), timeout=30, what="a mature coinbase of A")
        tx = spend(coins[0], key)
        txid = submit(a, tx)

        found = {
            n.url: wait_until(lambda n=n: confirmed(n, txid), timeout=60, what=f"tx confirmed on {n.url}")
            for n in (a, b, c)
        }
        blocks = {info["block_hash"] for info in found.values()}
        assert len(blocks) == 1, f"the tx is in different blocks: {found}"
        assert all(info["hex"] == tx.serialize().hex() for info in found.values())

        status = wait_until(lambda: same_tip(a, b, c), timeout=60, what="A, B and C to converge after the tx")
        assert status["height"] >= found[a.url]["height"]
        (block_hash,) = blocks
        for n in (a, b, c):
            assert confirmed(n, txid)["block_hash"] == block_hash
        # C was only told about B; whatever it learned by peer exchange, B is one of its connected peers.
        assert any(p["url"] == b.url and p["connected"] for p in get_json(c, "/peers")["peers"])
        assert any(p["url"] == a.url and p["connected"] for p in get_json(b, "/peers")["peers"])


# -- 2. partition and heal ------------------------------------------------------------------------------------------


def test_partition_heals_onto_the_most_work_chain_and_the_losing_tx_is_mined_again(tmp_path: Path) -> None:
    a_dir, c_dir = tmp_path / "a", tmp_path / "c"
    # Before the partition: A mines, C syncs A's chain, so both hold A's early coinbases.
    with running_node(a_dir, mine=True, pause=0.2) as a, running_node(c_dir, peers=(a.url,)) as c:
        wait_until(lambda: c.status()["height"] >= MATURITY + 3, timeout=60, what="C to sync A's first blocks")
    wallet_key = WalletFile.load(a_dir / "wallet.json", REGTEST).keys[0]
    key, address = wallet_key.key, wallet_key.address

    # The partition: restarted without peers (peers are not remembered), both sides mine; A much faster.
    with running_node(a_dir, mine=True, pause=0.2) as a, running_node(c_dir, mine=True, pause=1.5) as c:
        assert get_json(a, "/peers")["peers"] == []
        assert get_json(c, "/peers")["peers"] == []
        base = c.status()["height"]
        assert a.status()["height"] >= base
        shared = [u for u in mature_coinbases(c, address) if u["height"] <= 2]
        assert [u["height"] for u in shared] == [1, 2], "C should hold A's first two coinbases"

        tx_a = submit(a, spend(shared[0], key))  # the winning side's tx
        tx_c = submit(c, spend(shared[1], key))  # the losing side's tx: its coin exists on both sides
        mined_a = wait_until(lambda: confirmed(a, tx_a), timeout=60, what="A to mine its tx")
        mined_c = wait_until(lambda: confirmed(c, tx_c), timeout=60, what="C to mine its tx")
        assert tx_info(a, tx_c) is None, "the sides are not partitioned"
        assert tx_info(c, tx_a) is None, "the sides are not partitioned"
        wait_until(lambda: a.status()["height"] >= c.status()["height"] + 5, timeout=60, what="A to pull clearly ahead")
        losing_block = mined_c["block_hash"]
        first_after_split_on_c = get_json(c, f"/block/{base + 1}")["hash"]

        # Heal: tell C about A; C handshakes (A learns C from the hello) and syncs the most-work chain.
        response = c.post("/peers", json={"url": a.url})
        assert response.status_code == 200, response.text
        wait_until(lambda: same_tip(a, c), timeout=60, what="A and C to agree on a tip after the heal")
        resurrected = tx_info(c, tx_c)  # back in C's mempool, or already mined again: never simply gone
        assert resurrected is not None, "the losing side's tx vanished in the reorg"
        assert resurrected["block_hash"] != losing_block
        assert get_json(c, f"/block/{base + 1}")["hash"] == get_json(a, f"/block/{base + 1}")["hash"]
        assert get_json(c, f"/block/{base + 1}")["hash"] != first_after_split_on_c, "C's side should have lost"
        assert get_json(c, f"/block/{losing_block}")["active"] is False
        assert metrics(c)[("simplecoin_reorgs_total", ())] >= 1  # what an operator's alert on reorgs reads

        # The losing side's tx went back to a mempool and is mined again, on the winning chain, for both.
        again = {
            n.url: wait_until(
                lambda n=n: (info := confirmed(n, tx_c)) and info["block_hash"] != losing_block and info,
                timeout=60,
                what=f"the losing side's tx mined again, seen by {n.url}",
            )
            for n in (a, c)
        }
        assert again[a.url]["block_hash"] == again[c.url]["block_hash"]
        assert get_json(a, f"/block/{again[a.url]['block_hash']}")["active"] is True
        for n in (a, c):  # the winning side's tx stayed where it was
            assert confirmed(n, tx_a)["block_hash"] == mined_a["block_hash"]
        assert wait_until(lambda: same_tip(a, c), timeout=60, what="A and C to agree on the final tip")


# -- 3. kill -9 -----------------------------------------------------------------------------------------------------


def last_mined(node: NodeProcess) -> int:
    """The height of the last block the node's log says it mined (reading the log takes no lock in the node)."""
    heights = re.findall(r"mined block (\d+) ", node.log())
    return int(heights[-1]) if heights else -1


def test_kill9_mining_node_restarts_at_its_stored_height_with_a_consistent_store(tmp_path: Path) -> None:
    """Killed twice while mining without a pause: blocks are written back to back, so a kill likely lands in a write."""
    data_dir = tmp_path / "a"
    stored = 0
    for round_ in (1, 2):
        with running_node(data_dir, mine=True, pause=0) as a:
            assert a.process is not None
            starts = re.findall(r"serving the API on \S+ \(network regtest, height (\d+)\)", a.log())
            assert len(starts) == round_
            assert int(starts[-1]) == stored, "the node did not resume at its stored height"
            assert a.status()["height"] >= stored
            seen = wait_until(
                lambda a=a, low=stored + 20: (h := a.status()["height"]) >= low and h,
                timeout=60,
                what="blocks before the kill",
            )
            # Kill at a moment unrelated to the API (a status request waits for the node's lock, i.e. for a
            # block to finish): when the log shows a few more blocks mined.
            wait_until(lambda a=a, low=seen + 5: last_mined(a) >= low, timeout=60, what="more blocks in the log")
            children = child_pids(a.process.pid)
            assert len(children) >= 2
            logged = last_mined(a)  # logged after the block was committed
            with no_orphans(children):
                a.kill9()
                assert a.process.returncode == -signal.SIGKILL
                wait_until(lambda pids=children: all_gone(pids), timeout=30, what=f"{children} to be gone")
        # What the restart will find: at least every block the API showed or the log announced before the kill.
        stored = check_store(data_dir, max(seen, logged))

    with running_node(data_dir, mine=True, pause=0.2) as a:
        assert a.status()["height"] >= stored
        wait_until(lambda: a.status()["height"] >= stored + 3, timeout=60, what="mining to resume after the restart")
        assert a.stop() == 0
    check_store(data_dir, stored + 3)


# -- 4. a peer serving an invalid block -----------------------------------------------------------------------------


def test_peer_serving_an_invalid_block_is_rejected_and_banned(tmp_path: Path) -> None:
    bad = ChainBuilder(REGTEST).block("bad", coinbase_extra=1)  # its coinbase overpays by one unit
    with (
        FakePeer("127.0.0.1", chain_answers([bad], chain_work=2**200)) as fake,
        running_node(tmp_path / "n", peers=(fake.url,)) as node,
    ):

        def fake_banned() -> dict | None:
            listed = [p for p in get_json(node, "/peers")["peers"] if p["url"] == fake.url]
            return listed[0] if listed and listed[0]["banned"] else None

        banned = wait_until(fake_banned, timeout=60, what="the fake peer to be banned")
        assert banned["connected"] is False
        assert banned["ban_score"] >= 100
        assert fake.count("GET", "/p2p/blocks") >= 1, fake.requests
        ban_lines = [line for line in node.log().splitlines() if "banned peer" in line and fake.url in line]
        assert ban_lines, node.log()
        assert "bad-cb-amount" in ban_lines[0], ban_lines[0]
        assert bad.header.hash_hex() in ban_lines[0]
        status = node.status()
        assert status["height"] == 0
        assert status["tip"] == REGTEST.genesis_hash_hex
        stored = get_json(node, f"/block/{bad.header.hash_hex()}")
        assert stored["status"] == "invalid"
        assert stored["active"] is False
        # A banned peer's block pushes are refused too.
        pushed = node.post("/p2p/block", json={"hex": bad.serialize().hex()}, headers={"X-SimpleCoin-Peer": fake.url})
        assert pushed.status_code == 403
        assert pushed.json()["reason"] == "banned"


# -- 5. a killed mining process -------------------------------------------------------------------------------------


def test_supervisor_notices_a_killed_mining_process_and_stops_everything(tmp_path: Path) -> None:
    with running_node(tmp_path / "a", mine=True, pause=0.2) as a:
        assert a.process is not None
        wait_until(lambda: a.status()["height"] >= 2, timeout=60, what="mining to start")
        children = child_pids(a.process.pid)
        miners = mining_pids(a)
        assert len(miners) == 1, f"expected one mining process among {children}"
        with no_orphans(children):
            os.kill(miners[0], signal.SIGKILL)
            assert a.process.wait(timeout=30) == 1  # by itself: nobody signalled the supervisor
            log = a.log()
            assert f"miner-0 process (pid {miners[0]}) died" in log, log
            assert re.search(r"server stopped at height \d+", log), log
            wait_until(lambda: all_gone(children), timeout=30, what=f"{children} to be gone")


# -- 6. Ctrl-C and SIGTERM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["sigint-supervisor", "sigint-process-group", "sigterm-supervisor"],
)
def test_signal_stops_every_process_cleanly(tmp_path: Path, signum: signal.Signals, to_group: bool) -> None:
    data_dir = tmp_path / "a"
    with running_node(data_dir, mine=True, pause=0.2, new_session=True) as a:
        assert a.process is not None
        pid = a.process.pid
        wait_until(lambda: a.status()["height"] >= 3, timeout=60, what="a few blocks")
        children = child_pids(pid)
        assert len(children) >= 2
        assert len(mining_pids(a)) == 1
        with no_orphans(children):
            if to_group:
                assert os.getpgid(pid) == pid != os.getpgid(0), "the node must lead its own process group"
                os.killpg(pid, signum)  # what a terminal's Ctrl-C does: every process of the group
            else:
                os.kill(pid, signum)
            assert a.process.wait(timeout=30) == 0
            wait_until(lambda: all_gone(children), timeout=30, what=f"{children} to be gone")

    log = a.log()
    stopped = re.findall(r"server stopped at height (\d+)", log)
    assert len(stopped) == 1, log
    for trouble in ("Traceback", "died", "killing it"):
        assert trouble not in log, log
    assert check_store(data_dir, int(stopped[0])) == int(stopped[0])


# -- 8. zero-config start -------------------------------------------------------------------------------------------


def test_zero_config_start_creates_a_wallet_and_mines_to_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    port = free_port()
    node = NodeProcess(
        data_dir,
        port,
        ["--network", "regtest", "--data-dir", str(data_dir), "--port", str(port)],
        tmp_path / "node.log",
    )
    wallet_path = data_dir / "wallet.json"
    try:
        node.start()
        assert wallet_path.exists()
        assert stat.S_IMODE(wallet_path.stat().st_mode) == 0o600
        _, address = reward_key(node)
        pubkey_hash_from_address(address, REGTEST.address_version)
        lines = [line for line in node.log().splitlines() if str(wallet_path) in line]
        assert lines, node.log()
        assert address in lines[0], lines[0]
        # A wallet with a backup: its 12 recovery words shown once at creation, and they give its address.
        assert json.loads(wallet_path.read_text())["version"] == HD_VERSION
        words = node.log().split("they are shown only this once):\n\n    ")[1].split("\n")[0]
        first = hd.derive_key(hd.account_key(hd.seed_from_phrase(words)), hd.RECEIVE, 0)
        assert address == address_from_pubkey_hash(first.pubkey_hash, REGTEST.address_version)

        wait_until(lambda: node.status()["height"] >= 3, timeout=60, what="a few blocks")
        info = get_json(node, f"/address/{address}")
        assert info["balance"] > 0
        assert info["balance"] == sum(u["amount"] for u in info["utxos"])
        assert len(info["utxos"]) >= 3
        assert all(u["coinbase"] for u in info["utxos"])
        for height in (1, 2, 3):
            coinbase = get_json(node, f"/block/{height}")["txs"][0]
            assert [o["address"] for o in coinbase["outputs"]] == [address]
        assert node.stop() == 0
    finally:
        node.stop()


# -- 9. kill -9 during an initial sync ------------------------------------------------------------------------------


def test_kill9_during_an_initial_sync_leaves_a_consistent_store_and_the_sync_resumes(tmp_path: Path) -> None:
    """B syncs 3,000 blocks from A in batches (several kept in flight, each batch submitted under one lock) and is
    killed half-way: its store is at a block boundary, and after a restart it syncs the rest."""
    chain_blocks = 3_000
    now = [float(REGTEST.genesis_time)]
    (tmp_path / "a").mkdir()
    builder = Node(Store(tmp_path / "a" / "chain.db", REGTEST), REGTEST, clock=lambda: now[0])
    try:
        while builder.height < chain_blocks:
            now[0] += 1
            block = solve(builder.block_template(MINER_KEY.pubkey_hash))
            assert block is not None
            builder.submit_block(block)
    finally:
        builder.close()
    with running_node(tmp_path / "a") as a:
        tip = a.status()["tip"]
        b_dir = tmp_path / "b"
        with running_node(b_dir, peers=(a.url,), host="127.0.0.2") as b:
            assert b.process is not None
            seen = wait_until(lambda: (h := b.status()["height"]) >= 500 and h, timeout=120, what="the sync to start")
            children = child_pids(b.process.pid)
            with no_orphans(children):
                b.kill9()
                wait_until(lambda: all_gone(children), timeout=30, what=f"{children} to be gone")
        stored = check_store(b_dir, int(seen))
        assert stored < chain_blocks, "the kill came after the sync: the test proved nothing"
        with running_node(b_dir, peers=(a.url,), host="127.0.0.2") as b:
            wait_until(lambda: b.status()["tip"] == tip, timeout=120, what="the sync to resume")
        check_store(b_dir, chain_blocks)
