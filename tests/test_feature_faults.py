"""Faults of our own are visible and survivable (issue 21, rows 4-6).

- The disk fills while a block connects: the block was set aside until a restart (its descendants too) with a
  500 for the peer that sent it, and /status said every thread was "ok". Now the peer gets 503 (try later),
  /status has the fault under `faults`, and the node is back on the best tip once space returns.
- A stored block's bytes damaged on disk: a reorg over it answered the honest peer `400 bad-encoding` and
  banned it. Now nobody is charged and the block is fetched again.
- SIGTERM to the whole process group (systemd's default, `kill -- -PGID`) reaches the supervisor, the server
  and the mining processes, and the supervisor sends the server another: the second must not abort the
  shutdown (peers.json, mempool.dat, the WAL checkpoint and the "stopped" line are all still written).

Functional tests run real `miner.py` nodes (tests/framework/nodes.py) on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from simplecoin.node import mempool_file
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.service import NodeService
from simplecoin.web.app import create_app
from tests.framework.fakepeer import FakePeer, chain_answers
from tests.framework.nodes import REPO, running_node, wait_until
from tests.test_store_faults import damage, fill_disk, truncate

PEER = {"REMOTE_ADDR": "10.0.0.7"}  # a peer's address: loopback may be treated as the operator


def app_for(node):
    service = NodeService(node)
    peers = PeerManager(service, "http://127.0.0.1:1", progress=False)
    return service, peers, create_app(service, peers).test_client()


def push(client, block):
    return client.post("/p2p/block", json={"hex": block.serialize().hex()}, environ_base=PEER)


# -- the disk fills while a block connects ----------------------------------------------------------------------------


def test_a_full_disk_answers_try_later_shows_in_status_and_recovers(node, builder) -> None:
    # Today's code: 500 internal-error, /status has no fault, and b3 stays set aside after space returns.
    service, _, client = app_for(node)
    for block in builder.chain(["b1", "b2"]):
        assert push(client, block).status_code == 200
    b3 = builder.block("b3")
    disk = fill_disk(node, ("utxo",))
    disk.full = True

    answer = push(client, b3)
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.get_json()["reason"] == "store-unavailable"
    assert answer.headers["Retry-After"]
    fault = client.get("/status").get_json()["faults"]["chain.db"]
    assert "database or disk is full" in fault
    assert "connect a block" in fault

    disk.full = False
    service.resume()  # what the server's store-retry thread does every STORE_RETRY_SECONDS
    status = client.get("/status").get_json()
    assert status["tip"] == b3.header.hash_hex()
    assert status["faults"] == {}


def test_a_peers_json_that_cannot_be_written_shows_in_status(node, tmp_path: Path) -> None:
    service = NodeService(node)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    peers = PeerManager(service, "http://127.0.0.1:1", progress=False, path=blocked / "peers.json")
    peers.save()  # logged as before, and now in /status too
    assert "peers.json" in service.faults()["peers.json"]
    peers.path = tmp_path / "peers.json"
    peers.save()
    assert service.faults() == {}


# Runs in every Python process of the node (sitecustomize, through PYTHONPATH): while the file FAULT_ARM exists,
# the store's writes named in FAULT_WRITES may not grow the chain database (SQLite's max_page_count: a write that
# needs a new page fails with SQLITE_FULL, the error a full disk gives); removing the file frees the "disk".
FULL_DISK = """
import os, sys
sys.path.insert(0, os.environ["FAULT_REPO"])
from simplecoin.node import store

def _limited(method):
    def write(self, *args, **kwargs):
        if not os.path.exists(os.environ["FAULT_ARM"]):
            return method(self, *args, **kwargs)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages}")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._db.execute("PRAGMA max_page_count = 4294967294")
    return write

for name in os.environ["FAULT_WRITES"].split():
    setattr(store.Store, name, _limited(getattr(store.Store, name)))
"""


@pytest.mark.parametrize("writes", ["connect_block", "add_block set_status connect_block disconnect_block"])
def test_a_node_whose_disk_fills_and_frees_is_back_on_its_tip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes: str
) -> None:
    # Today's code: the mined block whose connection hit the full disk is set aside until a restart, and so is
    # every block built on it; /status has no fault and every thread says "ok".
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FULL_DISK)
    monkeypatch.setenv("PYTHONPATH", str(inject))
    monkeypatch.setenv("FAULT_REPO", str(REPO))
    monkeypatch.setenv("FAULT_WRITES", writes)
    arm = tmp_path / "disk-full"
    monkeypatch.setenv("FAULT_ARM", str(arm))
    with running_node(tmp_path / "a", mine=True, pause=0.05) as a:
        wait_until(lambda: a.status()["height"] >= 2, what="mining")
        arm.touch()
        fault = wait_until(lambda: a.status()["faults"].get("chain.db"), what="the full disk in /status")
        assert "database or disk is full" in str(fault)
        assert "chain.db" in str(fault)
        stuck = a.status()["height"]
        arm.unlink()
        wait_until(
            lambda: (s := a.status())["height"] >= stuck + 3 and not s["faults"], timeout=30, what="mining again"
        )
        assert all(state == "ok" for state in a.status()["threads"].values())
        log_text = a.run_log()
        assert "database or disk is full" in log_text
        assert "set aside until a restart" not in log_text


def test_a_mempool_dat_that_cannot_be_written_does_not_stop_the_shutdown(node, tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    loader = mempool_file.MempoolLoader(blocked / mempool_file.FILE_NAME, node.params, NodeService(node))
    loader.run()  # nothing to restore: the load is finished
    loader.stop_and_save()  # logged, not raised: the shutdown goes on to close the store
    assert "could not save the mempool" in caplog.text


# -- damaged block bytes ----------------------------------------------------------------------------------------------


def test_a_reorg_over_damaged_bytes_does_not_ban_the_honest_peer(node, builder) -> None:
    """
    genesis - b1 - b2            (active)
                \
                 b2x (damaged on our disk) - b3x   (pushed by an honest peer)
    """
    # Today's code: b3x is answered 400 bad-encoding, and the peer that sent it is banned (403 afterwards).
    _, _, client = app_for(node)
    for block in builder.chain(["b1", "b2"]):
        assert push(client, block).status_code == 200
    b2x, b3x = builder.chain(["b2x", "b3x"], parent="b1")
    assert push(client, b2x).status_code == 200
    damage(node.store, b2x.hash, truncate)

    answer = push(client, b3x)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert node.tip.hash == builder["b2"].hash  # cannot reorg without b2x's bytes
    assert push(client, b2x).get_json()["status"] == "accepted"  # not banned; its copy repairs ours
    assert node.tip.hash == b3x.hash


def test_two_sigterms_to_the_process_group_still_shut_down_cleanly(tmp_path: Path) -> None:
    # Today's code: the second SIGTERM raises SystemExit inside the shutdown's `finally`: no peers.json, no
    # mempool.dat, the WAL is left behind and there is no "server stopped" line.
    with running_node(tmp_path / "a", mine=True, pause=0.1, new_session=True) as a:
        assert a.process is not None
        wait_until(lambda: a.status()["height"] >= 2, what="mining")
        group = os.getpgid(a.process.pid)
        assert group == a.process.pid  # its own group: the signal reaches nobody else
        os.killpg(group, signal.SIGTERM)
        os.killpg(group, signal.SIGTERM)
        assert a.process.wait(timeout=30) == 0
        log_text = a.run_log()
        assert "server stopped at height" in log_text, log_text[-3000:]
        assert (a.data_dir / "peers.json").exists()
        assert (a.data_dir / "mempool.dat").exists()
        wal = a.data_dir / "chain.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed when the store closed


def test_the_sync_fetches_a_damaged_block_again_from_the_peer(node, builder) -> None:
    """
    genesis - b1 - b2                      (ours, active)
                \\
                 b2x (damaged on our disk) - b3x   (the peer's chain)
    """
    # Today's code: b3x's reorg fails with bad-encoding on every visit, and the node never reaches b3x.
    for block in builder.chain(["b1", "b2"]):
        node.submit_block(block)
    b2x, b3x = builder.chain(["b2x", "b3x"], parent="b1")
    node.submit_block(b2x)
    damage(node.store, b2x.hash, truncate)
    service = NodeService(node)
    chain = [builder["b1"], b2x, b3x]
    with FakePeer("127.0.0.1", chain_answers(chain, builder.index[b3x.hash].chain_work)) as fake:
        manager = PeerManager(service, "http://127.0.0.1:1", (fake.url,), progress=False)
        manager.start()
        try:
            wait_until(lambda: service.tip().hash == b3x.hash, what="the reorg once b2x is fetched again")
        finally:
            manager.stop()
        assert fake.count("GET", "/p2p/blocks") >= 2  # b3x, then b2x again
    assert node.damaged == {}
    assert not manager.bans.until  # nobody banned for our damage
