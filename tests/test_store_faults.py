"""Faults of our store are ours: a failed write is retried, damaged bytes are fetched again, no block is
condemned and no peer is charged (issue 21, rows 4 and 6). In-process; tests/test_feature_faults.py runs the
same faults on real nodes.
"""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from simplecoin.core.chain import BlockStatus
from simplecoin.core.errors import DecodeError, ValidationError
from simplecoin.core.params import REGTEST
from simplecoin.node.lookups import Lookups
from simplecoin.node.node import Node
from simplecoin.node.store import DamagedBlock, Store, StoreWriteError
from tests.conftest import NOW
from tests.framework.builder import ChainBuilder


class FullDisk:
    """The store's connection, but statements touching `tables` fail as on a full disk while `full` is set."""

    def __init__(self, db: sqlite3.Connection, tables: tuple[str, ...]) -> None:
        self.db, self.tables, self.full = db, tables, False

    def __getattr__(self, name: str):
        return getattr(self.db, name)

    def __enter__(self):
        return self.db.__enter__()

    def __exit__(self, *exc):
        return self.db.__exit__(*exc)

    def _check(self, sql: str) -> None:
        writes = sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        if self.full and writes and any(t in sql for t in self.tables):
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, *args):
        self._check(sql)
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, *args):
        self._check(sql)
        return self.db.executemany(sql, *args)


def fill_disk(node: Node, tables: tuple[str, ...]) -> FullDisk:
    disk = FullDisk(node.store._db, tables)
    node.store._db = disk  # type: ignore[assignment]
    return disk


# -- a write that fails -----------------------------------------------------------------------------------------------


def test_a_block_that_cannot_be_connected_for_a_full_disk_is_retried_not_set_aside(
    node: Node, builder: ChainBuilder
) -> None:
    """
    genesis - b1 - b2 - b3 (disk full while connecting) - b4
    """
    # Today's code: InternalError (a 500), b3 and b4 excluded until a restart, nothing says the disk is full.
    b = builder
    for block in b.chain(["b1", "b2"]):
        node.submit_block(block)
    b3, b4 = b.chain(["b3", "b4"])
    disk = fill_disk(node, ("utxo",))  # blocks are stored, but connecting one fails
    disk.full = True

    with pytest.raises(StoreWriteError, match="database or disk is full"):
        node.submit_block(b3)
    assert node.tip.hash == b["b2"].hash
    assert b3.hash not in node.index.excluded
    assert node.index[b3.hash].status == BlockStatus.STORED
    assert "connect a block" in str(node.store.write_error)
    assert "chain.db" in str(node.store.write_error)
    with pytest.raises(StoreWriteError):
        node.submit_block(b4)
    assert not node.resume().connected  # still full: nothing changes

    disk.full = False  # space returns
    node.resume()
    assert node.tip.hash == b4.hash
    assert node.store.write_error is None
    assert not node.index.excluded


def test_orphans_waiting_for_a_block_connect_once_the_store_can_write(node: Node, builder: ChainBuilder) -> None:
    """
    genesis - b1 - b2 (disk full while connecting) - b3 (arrived first: an orphan)
    """
    b1, b2, b3 = builder.chain(["b1", "b2", "b3"])
    node.submit_block(b1)
    assert node.submit_block(b3).status == "orphan"
    disk = fill_disk(node, ("utxo",))
    disk.full = True
    with pytest.raises(StoreWriteError):
        node.submit_block(b2)
    disk.full = False
    node.resume()
    assert node.tip.hash == b3.hash


def test_an_orphan_that_cannot_be_stored_does_not_fail_its_parent(node: Node, builder: ChainBuilder, monkeypatch):
    b1, b2 = builder.chain(["b1", "b2"])
    assert node.submit_block(b2).status == "orphan"
    store_block = node.store.add_block

    def add_block(block, *args):
        if block.hash == b2.hash:
            raise StoreWriteError("cannot store a block in chain.db: database or disk is full")
        store_block(block, *args)

    monkeypatch.setattr(node.store, "add_block", add_block)
    assert node.submit_block(b1).status == "accepted"  # the parent's sender is not told about the orphan
    assert node.tip.hash == b1.hash
    assert b2.hash not in node.index  # so the sync asks for it again


def test_a_block_that_cannot_be_stored_is_not_kept(node: Node, builder: ChainBuilder) -> None:
    disk = fill_disk(node, ("block_data",))
    disk.full = True
    b1 = builder.block("b1")
    with pytest.raises(StoreWriteError, match="store a block"):
        node.submit_block(b1)
    assert b1.hash not in node.index  # so a peer's next offer (or the sync) brings it again
    disk.full = False
    assert node.submit_block(b1).status == "accepted"
    assert node.tip.hash == b1.hash
    assert node.store.write_error is None


def test_a_real_full_database_is_a_store_write_error(node: Node, builder: ChainBuilder) -> None:
    """SQLite's own SQLITE_FULL (max_page_count: what a full disk gives) is mapped, not only an injected one."""
    node.store.limit_pages(node.store.page_count())
    blocks = builder.chain([f"b{i}" for i in range(1, 40)])
    failed = None
    for block in blocks:
        try:
            node.submit_block(block)
        except StoreWriteError as e:
            failed = e
            break
    assert "database or disk is full" in str(failed)
    node.store.limit_pages(None)
    for block in blocks:
        node.submit_block(block)  # "duplicate" for those stored, the rest connect
    node.resume()
    assert node.tip.hash == blocks[-1].hash


# -- damaged bytes ----------------------------------------------------------------------------------------------------


def truncate(raw: bytes) -> bytes:
    return raw[:-3]


def flip_header(raw: bytes) -> bytes:
    return raw[:70] + bytes([raw[70] ^ 1]) + raw[71:]  # in the header's time field


def flip_tx(raw: bytes) -> bytes:
    return raw[:-6] + bytes([raw[-6] ^ 1]) + raw[-5:]  # in the coinbase's last output


DAMAGES = {"bad-encoding": truncate, "header-hash": flip_header, "merkle-root": flip_tx}


def damage(store: Store, block_hash: bytes, how) -> None:
    (raw,) = store._db.execute("SELECT raw FROM block_data WHERE hash = ?", (block_hash,)).fetchone()
    with store._db:
        store._db.execute("UPDATE block_data SET raw = ? WHERE hash = ?", (how(raw), block_hash))


@pytest.mark.parametrize("how", DAMAGES.values(), ids=DAMAGES.keys())
def test_get_block_refuses_bytes_that_are_not_the_block(node: Node, builder: ChainBuilder, how) -> None:
    b1 = builder.block("b1")
    node.submit_block(b1)
    damage(node.store, b1.hash, how)
    with pytest.raises(DamagedBlock, match="is damaged"):
        node.store.get_block(b1.hash)


@pytest.mark.parametrize("how", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_reorg_over_a_damaged_side_block_charges_nobody_and_fetches_it_again(
    node: Node, builder: ChainBuilder, how
) -> None:
    """
    genesis - b1 - b2            (active)
                \\
                 b2x (damaged) - b3x   (pushed by an honest peer)
    """
    # Today's code: submitting b3x raises DecodeError (400 bad-encoding: the peer is banned) or marks the
    # branch invalid; the node stays on b2 either way.
    b = builder
    for block in b.chain(["b1", "b2"]):
        node.submit_block(block)
    b2x, b3x = b.chain(["b2x", "b3x"], parent="b1")
    node.submit_block(b2x)
    damage(node.store, b2x.hash, how)

    try:
        node.submit_block(b3x)
    except (ValidationError, DecodeError) as e:
        pytest.fail(f"our damage was blamed on the block: {e!r}")
    assert node.tip.hash == b["b2"].hash
    assert node.index[b2x.hash].status != BlockStatus.INVALID
    assert node.index[b3x.hash].status != BlockStatus.INVALID
    assert Lookups(node).lacks("block", b2x.hash)  # so the sync asks peers for it again

    forged = dataclasses.replace(b2x, txs=[builder.block("other", parent="b1").txs[0]])
    assert forged.hash == b2x.hash  # the same header, other transactions (CVE-2012-2459's kind of twin)
    with pytest.raises(ValidationError, match="bad-txnmrklroot"):
        node.submit_block(forged)
    assert b2x.hash in node.damaged

    assert node.submit_block(b2x).status == "accepted"  # a peer sends it again
    assert node.tip.hash == b3x.hash
    assert not Lookups(node).lacks("block", b2x.hash)
    assert node.damaged == {}


def test_a_damaged_block_of_our_branch_keeps_us_there_until_it_comes_again(node: Node, builder: ChainBuilder) -> None:
    """
    genesis - b1 - b2 (active, damaged)
                \\
                 b2x - b3x
    """
    b = builder
    for block in b.chain(["b1", "b2"]):
        node.submit_block(block)
    damage(node.store, b["b2"].hash, truncate)
    b2x, b3x = b.chain(["b2x", "b3x"], parent="b1")
    node.submit_block(b2x)
    node.submit_block(b3x)  # no error: the fault is ours
    assert node.tip.hash == b["b2"].hash
    assert node.index[b3x.hash].status != BlockStatus.INVALID
    b4x = b.block("b4x", parent="b3x")
    node.submit_block(b4x)  # built on the branch set aside: no InternalError either
    assert node.tip.hash == b["b2"].hash

    assert node.submit_block(b["b2"]).status == "accepted"  # sent again: now we can leave it
    assert node.tip.hash == b4x.hash


def test_every_branch_held_back_by_a_damaged_block_comes_back_with_it(node: Node, builder: ChainBuilder) -> None:
    """
    genesis - b1 - b2 (active, damaged)
                |\
                | b2x - b3x   (first seen: the tip once b2 is repaired)
                 \
                  b2y - b3y
    """
    b = builder
    for block in b.chain(["b1", "b2"]):
        node.submit_block(block)
    damage(node.store, b["b2"].hash, truncate)
    for block in [*b.chain(["b2x", "b3x"], parent="b1"), *b.chain(["b2y", "b3y"], parent="b1")]:
        node.submit_block(block)
    assert node.tip.hash == b["b2"].hash
    node.submit_block(b["b2"])
    assert node.tip.hash == b["b3x"].hash


def test_the_node_restarts_on_a_damaged_store(tmp_path, builder: ChainBuilder) -> None:
    path = tmp_path / "chain.db"
    first = Node(Store(path, REGTEST), REGTEST, clock=lambda: NOW)
    for block in builder.chain(["b1", "b2"]):
        first.submit_block(block)
    b2x, b3x = builder.chain(["b2x", "b3x"], parent="b1")
    first.submit_block(b2x)
    first.submit_block(b3x)
    damage(first.store, b2x.hash, truncate)
    first.close()
    # b3x is stored and the active chain already went there: only a reorg reads the damaged block again
    again = Node(Store(path, REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert again.tip.hash == b3x.hash
    finally:
        again.close()
