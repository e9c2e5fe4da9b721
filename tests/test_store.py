"""The store: address index, transaction index, undo, and refusing another network's data."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager

import pytest

from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.primitives import OutPoint
from simplecoin.node import store as store_module
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import AddressQuery, Store, StoreError
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, recompute_utxos


def test_balance_and_history_follow_the_active_chain(funded):
    """
    ... m13 - p14 - p15*          p14 pays Bob 2 coins from m1, and Bob pays Alice 1 coin of it in p15
           \\
            q14 - q15 - q16       later: a heavier branch without those payments
    """
    node, b = funded
    pay_bob = b.spend("m1", [(200_000_000, BOB.pubkey_hash), (4_799_990_000, b.key.pubkey_hash)])
    pay_alice = b.spend(
        OutPoint(pay_bob.txid, 0), [(100_000_000, ALICE.pubkey_hash), (99_990_000, BOB.pubkey_hash)], key=BOB
    )
    node.submit_block(b.block("p14", parent="m13", txs=[pay_bob]))
    node.submit_block(b.block("p15", parent="p14", txs=[pay_alice]))

    assert node.store.balance(BOB.pubkey_hash) == 99_990_000
    assert node.store.balance(ALICE.pubkey_hash) == 100_000_000
    history = node.store.history(BOB.pubkey_hash)
    assert [(row.txid, row.height, row.received, row.sent) for row in history] == [
        (pay_alice.txid, 15, 99_990_000, 200_000_000),  # newest first
        (pay_bob.txid, 14, 200_000_000, 0),
    ]
    assert node.store.utxos(BOB.pubkey_hash) == {
        OutPoint(pay_alice.txid, 1): recompute_utxos(node)[OutPoint(pay_alice.txid, 1)]
    }
    assert node.store.tx_location(pay_alice.txid) == (15, 1)
    assert node.store.history(BOB.pubkey_hash, limit=1, offset=1)[0].txid == pay_bob.txid

    for name in ("q14", "q15", "q16"):
        node.submit_block(b.block(name, parent={"q14": "m13", "q15": "q14", "q16": "q15"}[name]))

    assert node.tip.hash == b["q16"].hash
    assert node.store.balance(BOB.pubkey_hash) == 0
    assert node.store.history(ALICE.pubkey_hash) == []
    assert node.store.tx_location(pay_alice.txid) is None
    assert node.store.utxos() == recompute_utxos(node)
    assert set(node.mempool.entries) == {pay_bob.txid, pay_alice.txid}


def test_spend_inside_one_block_leaves_no_trace_in_the_utxo_set(funded):
    node, b = funded
    first = b.spend("m1")
    second = b.spend(OutPoint(first.txid, 0), [(first.outputs[0].amount - 10_000, ALICE.pubkey_hash)], key=BOB)
    node.submit_block(b.block("n14", parent="m13", txs=[first, second]))
    assert node.store.get_coin(OutPoint(first.txid, 0)) is None
    assert node.store.get_coin(OutPoint(second.txid, 0)) is not None
    assert node.store.utxos() == recompute_utxos(node)
    node.submit_block(b.block("o14", parent="m13"))
    node.submit_block(b.block("o15", parent="o14"))  # reorg: n14 is disconnected
    assert node.store.get_coin(OutPoint(first.txid, 0)) is None
    assert node.store.get_coin(b.coinbase_outpoint("m1")) is not None
    assert node.store.utxos() == recompute_utxos(node)


def test_reopening_resumes_at_the_stored_tip(tmp_path, builder):
    node = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    for block in builder.chain(["b1", "b2", "b3"]):
        node.submit_block(block)
    utxos, work = node.store.utxos(), node.tip.chain_work
    node.close()
    reopened = Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert reopened.tip.hash == builder["b3"].hash
        assert reopened.store.utxos() == utxos
        assert reopened.tip.chain_work == work == 4 * 2  # genesis and 3 blocks at the easiest target
    finally:
        reopened.close()


def test_another_networks_store_is_refused(tmp_path):
    Store(tmp_path / "chain.db", REGTEST).close()
    with pytest.raises(StoreError, match="network"):
        Store(tmp_path / "chain.db", MAIN)


def test_unusable_path_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "missing-dir" / "chain.db", REGTEST)


# -- address pages (issue 21): a cursor over an address's coins and history, read outside the node lock ---------------


def _walk_coins(store: Store, pubkey_hash: bytes, limit: int) -> list[tuple[OutPoint, int]]:
    coins, cursor = [], None
    while True:
        page = store.address_snapshot(AddressQuery(pubkey_hash, history_limit=1, utxo_limit=limit, utxo_cursor=cursor))
        coins += [(outpoint, coin.amount) for outpoint, coin in page.utxos]
        cursor = page.next_utxo_cursor
        if cursor is None:
            return coins


def test_address_snapshot_pages_coins_largest_first_with_ties(funded):
    node, b = funded
    amounts = [5_000, 700, 700, 700, 9_000, 700, 600]
    pay = b.spend("m1", [(a, ALICE.pubkey_hash) for a in amounts] + [(100_000, BOB.pubkey_hash)], fee=10_000)
    node.submit_block(b.block("p14", txs=[pay]))
    expected = sorted(
        ((OutPoint(pay.txid, i), a) for i, a in enumerate(amounts)), key=lambda c: (-c[1], c[0].txid, c[0].index)
    )
    for limit in (1, 2, 3, 100):
        assert _walk_coins(node.store, ALICE.pubkey_hash, limit) == expected
    page = node.store.address_snapshot(AddressQuery(ALICE.pubkey_hash, utxo_limit=3))
    assert (page.balance, page.utxo_count, page.immature) == (sum(amounts), len(amounts), 0)
    assert (page.tip_height, page.tip_hash) == (14, b["p14"].hash)
    assert page.next_utxo_cursor == (700, pay.txid, 1)


def test_a_coin_cursor_stays_valid_across_blocks(funded):
    node, b = funded
    pay = b.spend("m1", [(1_000 * (i + 1), ALICE.pubkey_hash) for i in range(6)], fee=10_000)
    node.submit_block(b.block("p14", txs=[pay]))
    first = node.store.address_snapshot(AddressQuery(ALICE.pubkey_hash, utxo_limit=2))
    assert [c.amount for _, c in first.utxos] == [6_000, 5_000]
    # a block spends a coin of the first page and one after the cursor, and pays Alice a larger coin
    spend = b.spend([OutPoint(pay.txid, 5), OutPoint(pay.txid, 2)], [(8_000, ALICE.pubkey_hash)], key=ALICE, fee=1_000)
    node.submit_block(b.block("p15", txs=[spend]))
    rest = node.store.address_snapshot(AddressQuery(ALICE.pubkey_hash, utxo_cursor=first.next_utxo_cursor))
    assert [c.amount for _, c in rest.utxos] == [4_000, 2_000, 1_000]  # after the cursor; 3,000 was spent
    assert rest.tip_height == 15


def test_address_snapshot_counts_young_coinbases_as_immature(funded):
    node, b = funded  # 13 coinbases of the miner's, the newest not mature yet
    tip = node.height
    page = node.store.address_snapshot(AddressQuery(b.key.pubkey_hash, history_limit=100))
    young = [c for _, c in page.utxos if c.is_coinbase and tip + 1 - c.height < REGTEST.coinbase_maturity]
    assert young, "the fixture has young coinbases"
    assert page.immature == sum(c.amount for c in young)
    assert page.balance == node.store.balance(b.key.pubkey_hash)


def test_a_history_cursor_pages_newest_first(funded):
    node, b = funded
    rows = node.store.history(b.key.pubkey_hash, limit=100)
    walked, cursor = [], None
    while True:
        page = node.store.address_snapshot(AddressQuery(b.key.pubkey_hash, history_limit=4, history_cursor=cursor))
        walked += page.history
        cursor = page.next_history_cursor
        if cursor is None:
            break
    assert walked == rows
    assert len(rows) == 13


def test_address_snapshot_reads_while_the_writer_holds_a_transaction(funded):
    """The reader has its own connection: a write in progress neither blocks it nor shows half-done."""
    node, b = funded
    store = node.store
    before = store.address_snapshot(AddressQuery(b.key.pubkey_hash, history_limit=100))
    store._db.execute("BEGIN IMMEDIATE")
    try:
        store._db.execute("DELETE FROM utxo WHERE pubkey_hash = ?", (b.key.pubkey_hash,))
        during = store.address_snapshot(AddressQuery(b.key.pubkey_hash, history_limit=100))
    finally:
        store._db.rollback()
    assert during == before
    assert during.utxo_count == 13


def test_address_pages_read_the_store_outside_the_node_lock(funded):
    """GET /address and /address/<a>/txs read the store without the node lock (issue 21: a 112,001-coin address
    held it 1.9-3.3 s); the lock is taken only for the pool's part."""
    node, b = funded
    service = NodeService(node)
    held = []
    reading = node.store.reading

    def lock_is_free() -> bool:
        """Whether another thread could take the node lock now (the reader's thread would hold it otherwise)."""
        took: list[bool] = []

        def try_it() -> None:
            took.append(service.lock.acquire(blocking=False))
            if took[0]:
                service.lock.release()

        thread = threading.Thread(target=try_it)
        thread.start()
        thread.join()
        return took[0]

    @contextmanager
    def watched():
        held.append(not lock_is_free())
        with reading() as reader:
            yield reader

    node.store.reading = watched
    info = service.address(AddressQuery(b.key.pubkey_hash))
    page = service.address_page(b.key.pubkey_hash, 0, 100)
    assert held == [False, False]
    assert (info.tip_hash, page.tip_hash) == (node.tip.hash, node.tip.hash)
    assert len(page.txs) == 13


# Schema 1, as the code before the schema-2 migration wrote it (SimpleCoin 509fbc0, store.py's SCHEMA).
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS block_index (
    hash BLOB PRIMARY KEY, header BLOB NOT NULL, height INTEGER NOT NULL,
    status INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS block_data (hash BLOB PRIMARY KEY, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS undo (hash BLOB PRIMARY KEY, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS active_chain (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS utxo (
    txid BLOB NOT NULL, idx INTEGER NOT NULL, amount INTEGER NOT NULL, pubkey_hash BLOB NOT NULL,
    height INTEGER NOT NULL, coinbase INTEGER NOT NULL, PRIMARY KEY (txid, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS utxo_by_address ON utxo (pubkey_hash);
CREATE TABLE IF NOT EXISTS tx_index (
    txid BLOB PRIMARY KEY, height INTEGER NOT NULL, position INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tx_index_by_height ON tx_index (height);
CREATE TABLE IF NOT EXISTS address_history (
    pubkey_hash BLOB NOT NULL, height INTEGER NOT NULL, position INTEGER NOT NULL, txid BLOB NOT NULL,
    received INTEGER NOT NULL, sent INTEGER NOT NULL,
    PRIMARY KEY (pubkey_hash, height, position)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS address_history_by_height ON address_history (height);
"""
TABLES = ["meta", "block_index", "block_data", "undo", "active_chain", "utxo", "tx_index", "address_history"]


def table_rows(path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(path)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in TABLES}
    finally:
        db.close()


def test_a_schema_1_data_directory_is_upgraded_in_place(tmp_path, funded):
    """A data directory written with schema 1 opens: undo becomes WITHOUT ROWID, every row is kept, and the
    node resumes at the same tip with the same index.

    ... m13 - p14*
           \\
            q14           (a side branch: kept too)
    """
    node, b = funded
    node.submit_block(b.block("p14", parent="m13"))
    node.submit_block(b.block("q14", parent="m13"))
    tip = node.tip
    node.close()
    source_path = tmp_path / "old.db"
    old = sqlite3.connect(source_path)
    old.executescript(SCHEMA_1)
    current = tmp_path / "chain.db"  # the funded node's store, written with the current schema
    db = sqlite3.connect(current)
    for table in TABLES:
        rows = list(db.execute(f"SELECT * FROM {table}"))
        if rows:
            old.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    db.close()
    with old:
        old.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    old.close()
    before = table_rows(source_path)
    assert before["meta"] != table_rows(current)["meta"]  # the fixture says schema 1

    upgraded = Node(Store(source_path, REGTEST), REGTEST, clock=lambda: NOW)
    try:
        assert upgraded.tip == tip
        assert b["q14"].hash in upgraded.index
        assert upgraded.store.get_undo(tip.hash) is not None
    finally:
        upgraded.close()
    after = table_rows(source_path)
    assert after["meta"] == table_rows(current)["meta"]  # schema 2 now
    assert {t: rows for t, rows in after.items() if t != "meta"} == {
        t: rows for t, rows in before.items() if t != "meta"
    }
    db = sqlite3.connect(source_path)
    schema = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    db.close()
    assert "WITHOUT ROWID" in schema["undo"]


def test_a_newer_schema_is_refused(tmp_path):
    Store(tmp_path / "chain.db", REGTEST).close()
    db = sqlite3.connect(tmp_path / "chain.db")
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.close()
    with pytest.raises(StoreError, match="schema"):
        Store(tmp_path / "chain.db", REGTEST)


def test_an_upgrade_that_fails_half_way_leaves_the_old_schema_whole(tmp_path, monkeypatch):
    """The upgrade is one transaction: a failure (a crash) after its first statements leaves schema 1 as it was,
    and the next start upgrades it."""
    path = tmp_path / "chain.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    with db:
        meta = [("schema", "1"), ("network", REGTEST.name), ("genesis", REGTEST.genesis_hash_hex)]
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta)
    db.close()
    steps = store_module.MIGRATIONS["1"]
    monkeypatch.setitem(store_module.MIGRATIONS, "1", [*steps[:2], "SELECT no_such_function()"])
    with pytest.raises(StoreError, match="cannot upgrade"):
        Store(path, REGTEST)
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(TABLES)  # no half-made table left
    assert dict(db.execute("SELECT key, value FROM meta"))["schema"] == "1"
    db.close()
    monkeypatch.setitem(store_module.MIGRATIONS, "1", steps)
    Store(path, REGTEST).close()
