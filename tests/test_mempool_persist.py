"""The mempool survives a restart (Bitcoin: mempool.dat): the file format, strict reading, and real nodes.

Before this change a pending payment was lost when the node stopped: nothing was saved.
"""

from __future__ import annotations

import logging

import pytest

from simplecoin.core.hashing import hash_hex, sha256d
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node import mempool_file
from simplecoin.node.service import NodeService
from tests.framework.builder import BOB, ChainBuilder
from tests.framework.nodes import running_node, wait_until

# -- the file -----------------------------------------------------------------------------------------------------


def pending_chain(funded):
    """Node, and a parent and child pending in its pool."""
    node, b = funded
    parent = b.spend("m1")
    child = b.spend(OutPoint(parent.txid, 0), key=BOB)
    for tx in (parent, child):
        node.submit_tx(tx)
    return node, [parent, child]


def test_round_trip_through_normal_acceptance(funded, tmp_path, caplog):
    node, txs = pending_chain(funded)
    path = tmp_path / mempool_file.FILE_NAME
    mempool_file.dump(path, [e.tx for e in node.mempool.in_dependency_order()], REGTEST)
    assert not (tmp_path / (mempool_file.FILE_NAME + ".tmp")).exists()  # renamed into place
    assert mempool_file.read(path, REGTEST) == txs  # parents first
    # Reload into a pool that lost them: both come back through Node.submit_tx.
    for tx in reversed(txs):
        node.mempool.remove_with_descendants(tx.txid)
    with caplog.at_level(logging.DEBUG, logger="simplecoin.node.mempool_file"):
        assert mempool_file.load(path, REGTEST, node.submit_tx) == 2
    assert set(node.mempool.entries) == {tx.txid for tx in txs}


def test_invalid_saved_transactions_are_dropped_with_a_debug_line(funded, tmp_path, caplog):
    node, b = funded
    good = b.spend("m2")
    never_funded = b.spend(OutPoint(bytes(range(32)), 0), [(1_000, BOB.pubkey_hash)])
    path = tmp_path / mempool_file.FILE_NAME
    mempool_file.save(path, [never_funded, good], REGTEST)
    with caplog.at_level(logging.DEBUG, logger="simplecoin.node.mempool_file"):
        assert mempool_file.load(path, REGTEST, node.submit_tx) == 1
    assert set(node.mempool.entries) == {good.txid}
    dropped = [r for r in caplog.records if r.levelno == logging.DEBUG and "dropped saved tx" in r.getMessage()]
    assert len(dropped) == 1
    assert hash_hex(never_funded.txid) in dropped[0].getMessage()
    assert "bad-txns-inputs-missingorspent" in dropped[0].getMessage()


def corruptions(data: bytes) -> dict[str, bytes]:
    return {
        "truncated": data[:-1],
        "cut in half": data[: len(data) // 2],
        "a flipped byte": data[:60] + bytes([data[60] ^ 1]) + data[61:],
        "bad magic": b"X" + data[1:],
        "empty": b"",
        "garbage": bytes(range(256)) * 4,
    }


@pytest.mark.parametrize("kind", list(corruptions(b"x" * 100)))
def test_a_corrupt_file_is_one_warning_and_an_empty_pool(funded, tmp_path, caplog, kind):
    _, txs = pending_chain(funded)
    data = mempool_file.encode(txs, REGTEST)
    path = tmp_path / mempool_file.FILE_NAME
    path.write_bytes(corruptions(data)[kind])
    with caplog.at_level(logging.DEBUG, logger="simplecoin.node.mempool_file"):
        assert mempool_file.read(path, REGTEST) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "ignoring the saved mempool" in warnings[0].getMessage()


def test_a_file_of_another_network_or_version_is_refused(tmp_path):
    b = ChainBuilder(REGTEST)
    b.block("m1")
    tx = b.spend("m1")
    with pytest.raises(mempool_file.MempoolFileError, match="genesis"):
        mempool_file.decode(mempool_file.encode([tx], REGTEST), MAIN)
    data = mempool_file.encode([tx], REGTEST)
    body = data[:8] + (2).to_bytes(4, "little") + data[12:-32]
    with pytest.raises(mempool_file.MempoolFileError, match="version 2"):
        mempool_file.decode(body + sha256d(body), REGTEST)


def test_an_oversized_file_is_refused_unread(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(mempool_file, "MAX_FILE_BYTES", 1_000)
    path = tmp_path / mempool_file.FILE_NAME
    path.write_bytes(bytes(1_001))
    assert mempool_file.read(path, REGTEST) == []
    assert "1001 bytes > 1000" in caplog.text


def test_a_missing_file_is_no_warning(tmp_path, caplog):
    assert mempool_file.read(tmp_path / mempool_file.FILE_NAME, REGTEST) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_loader_restores_in_the_background_and_saves_at_shutdown(funded, tmp_path):
    node, txs = pending_chain(funded)
    path = tmp_path / mempool_file.FILE_NAME
    mempool_file.dump(path, [e.tx for e in node.mempool.in_dependency_order()], REGTEST)
    node.mempool.remove_with_descendants(txs[0].txid)
    loader = mempool_file.MempoolLoader(path, REGTEST, NodeService(node))
    loader.start()
    loader.join(timeout=30)
    assert loader.finished.is_set()
    assert set(node.mempool.entries) == {tx.txid for tx in txs}
    node.mempool.remove_with_descendants(txs[1].txid)  # the child was mined, say
    loader.stop_and_save()
    assert mempool_file.read(path, REGTEST) == txs[:1]


def test_a_shutdown_before_the_load_finished_keeps_the_saved_file(funded, tmp_path, caplog):
    node, txs = pending_chain(funded)
    path = tmp_path / mempool_file.FILE_NAME
    mempool_file.dump(path, [e.tx for e in node.mempool.in_dependency_order()], REGTEST)
    saved = path.read_bytes()
    node.mempool.remove_with_descendants(txs[0].txid)
    loader = mempool_file.MempoolLoader(path, REGTEST, NodeService(node))
    loader.stopping.set()  # the node is told to stop before the loader got through
    loader.start()
    loader.stop_and_save()
    assert not loader.finished.is_set()
    assert path.read_bytes() == saved  # not overwritten by the (empty) part loaded so far
    assert "not fully loaded" in caplog.text


# -- real nodes ---------------------------------------------------------------------------------------------------


def fund(node, b: ChainBuilder, blocks: int = 11) -> None:
    """Push `blocks` regtest blocks built here to `node` (m1's coinbase matures at 11)."""
    for block in b.chain([f"m{i}" for i in range(1, blocks + 1)]):
        response = node.post("/p2p/block", json={"hex": block.serialize().hex()})
        assert response.status_code == 200, response.text
    wait_until(lambda: node.status()["height"] == blocks, what="the node to take the blocks")


def pending(node, txid: bytes) -> bool:
    response = node.get(f"/tx/{hash_hex(txid)}")
    return response.status_code == 200 and response.json()["confirmations"] == 0


def test_a_pending_payment_survives_a_restart(tmp_path):
    data_dir = tmp_path / "n"
    b = ChainBuilder(REGTEST)
    with running_node(data_dir) as node:
        fund(node, b)
        tx = b.spend("m1")
        response = node.post("/tx", json={"hex": tx.serialize().hex()})
        assert response.status_code == 200, response.text
        assert pending(node, tx.txid)
    assert node.process is not None
    assert node.process.returncode == 0
    assert (data_dir / mempool_file.FILE_NAME).exists()
    assert "saved 1 mempool transactions" in node.log()
    with running_node(data_dir) as again:
        wait_until(lambda: pending(again, tx.txid), what="the saved payment to be pending again")
        assert again.status()["mempool"] == 1
        assert "restored 1 of 1 saved mempool transactions" in again.run_log()


def test_a_corrupt_mempool_file_is_ignored_with_a_warning(tmp_path):
    data_dir = tmp_path / "n"
    data_dir.mkdir()
    (data_dir / mempool_file.FILE_NAME).write_bytes(mempool_file.MAGIC + b"\x01\x00\x00\x00 truncated")
    with running_node(data_dir) as node:
        assert node.status()["mempool"] == 0
        log = node.run_log()
        assert log.count("WARNING") == 1, log
        assert "ignoring the saved mempool" in log
        b = ChainBuilder(REGTEST)
        fund(node, b)  # and the node works
