"""The HTTP API through Flask's test client, on a temporary regtest store.

The chain: 13 mined blocks (the `funded` fixture), then block m14 holding `paid`, a spend of m1's coinbase
to Bob. Answers are checked field by field; bad input must get a 4xx with {"error", "reason"}, the exact
reason, and leave the node alone.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from simplecoin.core.hashing import hash_from_hex, hash_hex, verify_merkle_branch
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAIN, MAX_HEADERS_BINARY_RESULTS, MAX_HEADERS_RESULTS, REGTEST
from simplecoin.core.primitives import Block, BlockHeader, Transaction
from simplecoin.node.node import Node
from simplecoin.node.p2p.manager import PeerManager
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.web import api as api_module
from simplecoin.web.app import MAX_BODY_BYTES, create_app
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, DEFAULT_FEE, MINER_KEY, ChainBuilder, resolve
from tests.framework.lockload import lock_held_by_another_thread, waiting_for_the_lock
from tests.framework.nodes import wait_until

DOCS = Path(__file__).resolve().parent.parent / "docs"
OWN_URL = "http://127.0.0.1:1"


def addr(key_or_hash, params=REGTEST) -> str:
    pubkey_hash = key_or_hash if isinstance(key_or_hash, bytes) else key_or_hash.pubkey_hash
    return address_from_pubkey_hash(pubkey_hash, params.address_version)


def display(h: bytes) -> str:
    return hash_hex(h)


class Api:
    """The app with its node, builder and the tx mined in m14."""

    def __init__(self, node: Node, builder: ChainBuilder, with_peers: bool = True) -> None:
        self.node, self.builder = node, builder
        self.service = NodeService(node)
        self.peers = PeerManager(self.service, OWN_URL, progress=False) if with_peers else None
        self.app = create_app(self.service, self.peers)
        self.client = self.app.test_client()

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.client.post(path, **kwargs)

    def state(self) -> tuple:
        return self.node.tip.hash, tuple(self.node.active), tuple(self.node.mempool.entries)


@pytest.fixture
def api(funded) -> Api:
    node, builder = funded
    paid = builder.spend("m1")
    node.submit_block(builder.block("m14", txs=[paid]))
    assert node.height == 14
    a = Api(node, builder)
    a.paid = paid
    return a


def assert_error(response, status: int, reason: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "reason"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["reason"] == reason, body
    return body


# -- /status ---------------------------------------------------------------------------------------------------


def test_status(api: Api):
    r = api.get("/status")
    assert r.status_code == 200
    data = r.get_json()
    assert data["network"] == "regtest"
    assert data["genesis"] == REGTEST.genesis_hash_hex
    assert data["height"] == 14
    assert data["tip"] == api.node.tip.header.hash_hex()
    assert data["chain_work"] == str(api.node.tip.chain_work)
    assert data["bits"] == api.node.tip.header.bits
    assert data["median_time_past"] == api.node.median_time_past()
    assert (data["mempool"], data["mempool_bytes"], data["peers"]) == (0, 0, 0)
    assert data["hashrate"] == 0


# -- /block and /blocks ----------------------------------------------------------------------------------------


def test_block_by_height_and_by_hash(api: Api):
    m14 = api.builder["m14"]
    by_height = api.get("/block/14")
    by_hash = api.get(f"/block/{m14.header.hash_hex()}")
    by_upper_hash = api.get(f"/block/{m14.header.hash_hex().upper()}")
    assert by_height.status_code == by_hash.status_code == by_upper_hash.status_code == 200
    data = by_height.get_json()
    assert data == by_hash.get_json() == by_upper_hash.get_json()
    assert data["hash"] == m14.header.hash_hex()
    assert data["prev_hash"] == api.builder["m13"].header.hash_hex()
    assert data["merkle_root"] == display(m14.header.merkle_root)
    assert (data["height"], data["active"], data["status"], data["confirmations"]) == (14, True, "valid", 1)
    assert (data["time"], data["bits"], data["nonce"]) == (m14.header.time, m14.header.bits, m14.header.nonce)
    assert data["size"] == m14.size
    assert data["chain_work"] == str(api.node.tip.chain_work)
    assert [t["txid"] for t in data["txs"]] == [display(t.txid) for t in m14.txs]
    coinbase, spend = data["txs"]
    assert coinbase["coinbase"] is True
    assert spend["coinbase"] is False
    assert coinbase["outputs"] == [{"amount": REGTEST.subsidy(14) + DEFAULT_FEE, "address": addr(MINER_KEY)}]
    assert spend["hex"] == api.paid.serialize().hex()


def test_genesis_and_older_blocks_count_confirmations(api: Api):
    data = api.get("/block/0").get_json()
    assert data["hash"] == REGTEST.genesis_hash_hex
    assert data["confirmations"] == 15
    assert data["prev_hash"] == "00" * 32
    assert api.get("/block/0000000003").get_json()["height"] == 3  # ten digits still read as a height


def test_block_off_the_active_chain(api: Api):
    side = api.builder.block("side13", parent="m12")
    api.node.submit_block(side)
    data = api.get(f"/block/{side.header.hash_hex()}").get_json()
    assert (data["active"], data["confirmations"], data["height"]) == (False, 0, 13)


@pytest.mark.parametrize("ref", ["15", "4294967295", "00" * 32])
def test_unknown_block_is_not_found(api: Api, ref: str):
    assert_error(api.get(f"/block/{ref}"), 404, "not-found")


@pytest.mark.parametrize("ref", ["xyz", "-1", "1.5", "12345678901", "²", "١", "ab" * 31, "ab" * 33, "g" * 64])
def test_bad_block_ref(api: Api, ref: str):
    assert_error(api.get(f"/block/{ref}"), 400, "bad-hash")


def test_blocks_pages_down_from_a_height(api: Api):
    data = api.get("/blocks?start=14&limit=3").get_json()
    assert data["tip"] == 14
    assert [b["height"] for b in data["blocks"]] == [14, 13, 12]
    assert data["blocks"][0]["hash"] == api.builder["m14"].header.hash_hex()
    assert data["blocks"][1]["hash"] == data["blocks"][0]["prev_hash"]
    header_fields = {"hash", "version", "prev_hash", "merkle_root", "time", "bits", "nonce"}
    assert set(data["blocks"][0]) == header_fields | {"height", "tx_count"}  # tx_count: the explorer's dashboard


def test_blocks_defaults_and_edges(api: Api):
    assert [b["height"] for b in api.get("/blocks").get_json()["blocks"]] == list(range(14, 4, -1))
    assert [b["height"] for b in api.get("/blocks?start=1&limit=100").get_json()["blocks"]] == [1, 0]
    assert [b["height"] for b in api.get("/blocks?start=1000000000&limit=1").get_json()["blocks"]] == [14]
    assert api.get("/blocks?start=0").get_json()["blocks"][0]["hash"] == REGTEST.genesis_hash_hex


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=",
        "limit=-1",
        "limit=1.0",
        "limit=+5",
        "limit=%C2%B2",  # "²": str.isdigit() says yes, int() says no
        "start=-1",
        "start=1000000001",
        "start=" + "9" * 5000,  # more digits than int() converts
        "start=%EF%BC%91",  # a full-width digit one
    ],
)
def test_blocks_bad_params(api: Api, query: str):
    assert_error(api.get(f"/blocks?{query}"), 400, "bad-param")


# -- /tx -------------------------------------------------------------------------------------------------------


def test_confirmed_tx(api: Api):
    txid = display(api.paid.txid)
    data = api.get(f"/tx/{txid}").get_json()
    assert data["txid"] == txid
    assert (data["confirmations"], data["height"], data["position"], data["fee"]) == (1, 14, 1, None)
    assert data["block_hash"] == api.builder["m14"].header.hash_hex()
    assert data["inputs"] == [
        {
            "txid": display(api.builder["m1"].txs[0].txid),
            "index": 0,
            "pubkey": MINER_KEY.pubkey.hex(),
            "signature": api.paid.inputs[0].signature.hex(),
        }
    ]
    assert data["outputs"] == [{"amount": REGTEST.subsidy(1) - DEFAULT_FEE, "address": addr(BOB)}]
    assert (data["version"], data["locktime"], data["size"], data["coinbase"]) == (1, 0, api.paid.size, False)
    assert Transaction.deserialize(bytes.fromhex(data["hex"])) == api.paid
    # one more block: one more confirmation
    api.node.submit_block(api.builder.block("m15"))
    assert api.get(f"/tx/{txid.upper()}").get_json()["confirmations"] == 2


def test_post_tx_accepted_then_rejected_as_duplicate(api: Api):
    tx = api.builder.spend("m2", fee=25_000)
    r = api.post("/tx", json={"hex": tx.serialize().hex()})
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"txid": display(tx.txid), "fee": 25_000}
    assert list(api.node.mempool.entries) == [tx.txid]
    pending = api.get(f"/tx/{display(tx.txid)}").get_json()
    assert (pending["confirmations"], pending["block_hash"], pending["height"], pending["position"]) == (
        0,
        None,
        None,
        None,
    )
    assert pending["fee"] == 25_000
    before = api.state()
    assert_error(api.post("/tx", json={"hex": tx.serialize().hex()}), 400, "txn-already-in-mempool")
    assert api.state() == before
    status = api.get("/status").get_json()
    assert (status["mempool"], status["mempool_bytes"]) == (1, tx.size)


def test_unknown_tx_is_not_found(api: Api):
    assert_error(api.get("/tx/" + "ab" * 32), 404, "not-found")


# -- /address --------------------------------------------------------------------------------------------------


def test_address_balance_history_utxos(api: Api):
    bob = api.get(f"/address/{addr(BOB)}").get_json()
    txid = display(api.paid.txid)
    amount = REGTEST.subsidy(1) - DEFAULT_FEE
    assert bob["address"] == addr(BOB)
    assert bob["balance"] == amount
    assert bob["utxos"] == [{"txid": txid, "index": 0, "amount": amount, "height": 14, "coinbase": False}]
    assert bob["history"] == [{"txid": txid, "height": 14, "confirmations": 1, "received": amount, "sent": 0}]
    assert (bob["pending"], bob["pending_received"], bob["pending_sent"]) == ([], 0, 0)
    assert (bob["offset"], bob["limit"]) == (0, 25)


def test_address_of_the_miner_pages_its_history(api: Api):
    miner = api.get(f"/address/{addr(MINER_KEY)}").get_json()
    # 14 coinbases, m1's spent by `paid`
    assert len(miner["utxos"]) == 13
    assert all(u["coinbase"] for u in miner["utxos"])
    assert sorted(u["height"] for u in miner["utxos"]) == list(range(2, 15))
    by_size = [(-u["amount"], bytes.fromhex(u["txid"])[::-1], u["index"]) for u in miner["utxos"]]
    assert by_size == sorted(by_size)  # largest first, then by txid
    assert (miner["utxo_count"], miner["next_utxo_cursor"], miner["tip_height"]) == (13, None, 14)
    assert miner["balance"] == sum(u["amount"] for u in miner["utxos"])
    assert len(miner["history"]) == 15  # 14 coinbases and the spend
    page = api.get(f"/address/{addr(MINER_KEY)}?offset=2&limit=3").get_json()
    assert page["history"] == miner["history"][2:5]
    assert (page["offset"], page["limit"]) == (2, 3)
    assert api.get(f"/address/{addr(MINER_KEY)}?offset=1000").get_json()["history"] == []


def test_address_pending(api: Api):
    tx = api.builder.spend(
        "m3", [(1_000, ALICE.pubkey_hash), (REGTEST.subsidy(3) - 1_000 - 500, BOB.pubkey_hash)], fee=0
    )
    assert api.post("/tx", json={"hex": tx.serialize().hex()}).status_code == 200
    alice = api.get(f"/address/{addr(ALICE)}").get_json()
    assert alice["pending"] == [{"txid": display(tx.txid), "fee": 500}]
    assert (alice["balance"], alice["pending_received"], alice["pending_sent"]) == (0, 1_000, 0)
    miner = api.get(f"/address/{addr(MINER_KEY)}").get_json()
    assert (miner["pending_received"], miner["pending_sent"]) == (0, REGTEST.subsidy(3))
    nobody = api.get(f"/address/{addr(bytes(20))}").get_json()
    assert (nobody["balance"], nobody["utxos"], nobody["history"], nobody["pending"]) == (0, [], [], [])


@pytest.mark.parametrize(
    "address",
    [
        "xyz",
        "0OIl" * 8,  # not Base58
        addr(BOB, MAIN),  # another network's address
        addr(BOB)[:-1] + ("1" if addr(BOB)[-1] != "1" else "2"),  # mistyped: bad checksum
        "1",
        "é" * 30,
    ],
)
def test_bad_address(api: Api, address: str):
    assert_error(api.get(f"/address/{address}"), 400, "bad-address")


def test_attack_a_dust_flood_is_refused_at_post_tx(api: Api):
    """Issue 21: 112,001 one-unit outputs to a victim's address for 0.031 coin of fees; each is dust now."""
    change = (REGTEST.subsidy(2) - 3_400 - 100_000, MINER_KEY.pubkey_hash)
    flood = api.builder.spend("m2", [change, *[(1, BOB.pubkey_hash)] * 3_400])
    body = assert_error(api.post("/tx", json={"hex": flood.serialize().hex()}), 400, "dust")
    assert "output 1 pays 1 < 513, the dust threshold" in body["error"]
    assert api.get(f"/address/{addr(BOB)}").get_json()["pending"] == []


def test_address_pages_coins_and_history_by_cursor(api: Api):
    whole = api.get(f"/address/{addr(MINER_KEY)}?limit=100").get_json()
    coins, cursor = [], None
    while True:
        query = f"?utxo_limit=4&utxo_cursor={cursor}" if cursor else "?utxo_limit=4"
        page = api.get(f"/address/{addr(MINER_KEY)}{query}").get_json()
        assert len(page["utxos"]) <= 4
        assert (page["balance"], page["utxo_count"]) == (whole["balance"], 13)  # totals on every page
        coins += page["utxos"]
        cursor = page["next_utxo_cursor"]
        if cursor is None:
            break
    assert coins == whole["utxos"]
    rows, cursor = [], None
    while True:
        query = f"?limit=6&history_cursor={cursor}" if cursor else "?limit=6"
        page = api.get(f"/address/{addr(MINER_KEY)}{query}").get_json()
        rows += page["history"]
        cursor = page["next_history_cursor"]
        if cursor is None:
            break
    assert rows == whole["history"]
    assert whole["tip"] == api.get("/status").get_json()["tip"]
    assert whole["immature"] == sum(u["amount"] for u in whole["utxos"] if 15 - u["height"] < REGTEST.coinbase_maturity)


@pytest.mark.parametrize(
    "query",
    [
        "utxo_cursor=1:2:3",
        "utxo_cursor=" + "1:" + "ab" * 32,
        "utxo_cursor=-1:" + "ab" * 32 + ":0",
        "utxo_cursor=9999999999999999999:" + "ab" * 32 + ":0",  # past SQLite's int64: refused, not a 500
        "history_cursor=99999999999:0",
        "history_cursor=1",
        "history_cursor=a:b",
        "utxo_limit=0",
        "utxo_limit=1001",
    ],
)
def test_address_bad_cursor(api: Api, query: str):
    assert_error(api.get(f"/address/{addr(BOB)}?{query}"), 400, "bad-param")


@pytest.mark.parametrize("query", ["offset=-1", "offset=x", "limit=0", "limit=101", "offset=1000000001"])
def test_address_bad_paging(api: Api, query: str):
    assert_error(api.get(f"/address/{addr(BOB)}?{query}"), 400, "bad-param")


# -- /merkle-proof ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["coinbase", "spend"])
def test_merkle_proof_verifies(api: Api, which: str):
    tx = api.builder["m14"].txs[0] if which == "coinbase" else api.paid
    data = api.get(f"/merkle-proof/{display(tx.txid)}").get_json()
    header = BlockHeader.deserialize(bytes.fromhex(data["header"]))
    assert data["block_hash"] == header.hash_hex() == api.builder["m14"].header.hash_hex()
    assert (data["height"], data["txid"]) == (14, display(tx.txid))
    branch = [hash_from_hex(h) for h in data["branch"]]
    assert verify_merkle_branch(tx.txid, branch, data["index"], header.merkle_root)
    assert not verify_merkle_branch(tx.txid, branch, data["index"] ^ 1, header.merkle_root)


def test_merkle_proof_needs_a_confirmed_tx(api: Api):
    tx = api.builder.spend("m2")
    assert api.post("/tx", json={"hex": tx.serialize().hex()}).status_code == 200
    assert_error(api.get(f"/merkle-proof/{display(tx.txid)}"), 404, "not-found")
    assert_error(api.get("/merkle-proof/nothex"), 400, "bad-hash")


# -- /headers --------------------------------------------------------------------------------------------------


def test_headers_after_a_locator(api: Api):
    b = api.builder
    locator = ",".join(b[n].header.hash_hex() for n in ("m10", "m5"))
    raw = api.get(f"/headers?locator={locator}").get_json()["headers"]
    headers = [BlockHeader.deserialize(bytes.fromhex(h)) for h in raw]
    assert [h.hash() for h in headers] == [b[f"m{i}"].hash for i in range(11, 15)]
    limited = api.get(f"/headers?locator={locator}&limit=2").get_json()["headers"]
    assert limited == raw[:2]


def test_headers_in_binary_are_the_same_headers_end_to_end(api: Api):
    b = api.builder
    locator = ",".join(b[n].header.hash_hex() for n in ("m10", "m5"))
    listed = api.get(f"/headers?locator={locator}").get_json()["headers"]
    answer = api.get(f"/headers?locator={locator}&format=binary")
    assert answer.status_code == 200
    assert answer.mimetype == "application/octet-stream"
    assert answer.data == bytes.fromhex("".join(listed))
    assert len(answer.data) == 4 * 80
    assert api.get(f"/headers?locator={locator}&format=binary&limit=2").data == answer.data[:160]
    assert api.get(f"/headers?locator={locator}&format=json").get_json()["headers"] == listed


def test_headers_skip_a_locator_hash_off_the_active_chain_and_follow_a_reorg(api: Api):
    b = api.builder
    api.node.submit_block(b.block("f14", parent="m13"))  # a side branch of equal work: m14 stays the tip
    locator = ",".join(b[n].header.hash_hex() for n in ("f14", "m12"))
    assert api.get(f"/headers?locator={locator}&format=binary").data == b"".join(
        b[n].header.serialize() for n in ("m13", "m14")
    )
    api.node.submit_block(b.block("f15", parent="f14"))  # the side branch overtakes: m14 goes off
    assert api.node.tip.hash == b["f15"].hash
    assert api.get(f"/headers?locator={locator}&format=binary").data == b["f15"].header.serialize()
    locator = ",".join(b[n].header.hash_hex() for n in ("m14", "m12"))
    assert api.get(f"/headers?locator={locator}&format=binary").data == b"".join(
        b[n].header.serialize() for n in ("m13", "f14", "f15")
    )


def test_headers_are_read_without_the_node_lock(api: Api):
    """A light wallet's first run asks for 20,000 headers at a time. At a million blocks their SQL alone took
    50 ms, all of it under the node lock, so a few clients asking again and again kept blocks from connecting.
    The headers are read on a read connection of their own (one committed state), as address pages are."""
    chain = [api.node.store.get_block(h).header.serialize() for h in api.node.active]
    answers: list = []
    with lock_held_by_another_thread(api.service):
        readers = [
            threading.Thread(target=lambda: answers.append(api.get("/headers?format=binary").data), daemon=True),
            threading.Thread(
                target=lambda: answers.append(api.get(f"/headers?locator={display(api.node.active[10])}").get_json()),
                daemon=True,
            ),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 10
        for reader in readers:
            reader.join(timeout=max(deadline - time.monotonic(), 0))
        assert not any(reader.is_alive() for reader in readers), "GET /headers waited for the node lock"
    assert b"".join(chain) in answers
    assert {"headers": [h.hex() for h in chain[11:]]} in answers


def test_headers_of_a_store_in_memory_are_read_under_the_node_lock(api: Api):
    """A store in memory has no read connection of its own: its one connection is read under the lock."""
    node = Node(Store(":memory:", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        for h in api.node.active[1:]:
            assert node.submit_block(api.node.store.get_block(h)).status == "accepted"
        service = NodeService(node)
        locator = [b"\0" * 32, api.node.active[12]]  # a hash it does not know, then m12
        with lock_held_by_another_thread(service) as release:
            answers: list = []
            reader = threading.Thread(target=lambda: answers.append(service.headers_after(locator, 5)), daemon=True)
            reader.start()
            wait_until(lambda: waiting_for_the_lock(reader), timeout=10, what="the read to wait for the lock")
            release.set()
            reader.join(timeout=10)
        assert answers == [[api.node.store.get_block(h).header.serialize() for h in api.node.active[13:]]]
    finally:
        node.close()


def test_a_read_connection_that_cannot_open_answers_try_later_not_500(api: Api, monkeypatch):
    """Ours, not the client's: a read-only connection that cannot be opened (the disk failing, no file handle
    left) is answered as a failed write is, 503 with Retry-After, never 500 "internal error"."""
    store = api.node.store
    store.close_idle_readers()
    monkeypatch.setattr(store, "_reader_uri", (store.path.parent / "gone" / "chain.db").as_uri() + "?mode=ro")
    for path in ("/headers?format=binary", f"/address/{addr(BOB)}"):
        answer = api.get(path)
        assert_error(answer, 503, "store-unavailable")
        assert answer.headers["Retry-After"].isdigit()
    monkeypatch.undo()
    assert api.get("/headers?format=binary").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "format=xml",
        "format=",
        f"limit={MAX_HEADERS_RESULTS + 1}",
        f"format=binary&limit={MAX_HEADERS_BINARY_RESULTS + 1}",
        "format=binary&limit=0",
    ],
)
def test_headers_refuse_an_unknown_format_and_a_count_over_the_cap(api: Api, query: str):
    assert_error(api.get(f"/headers?{query}"), 400, "bad-param")


def test_headers_answer_at_most_the_cap_of_their_format(api: Api, monkeypatch):
    monkeypatch.setattr(api_module, "MAX_HEADERS_RESULTS", 3)
    monkeypatch.setattr(api_module, "MAX_HEADERS_BINARY_RESULTS", 5)
    assert len(api.get("/headers").get_json()["headers"]) == 3
    assert len(api.get("/headers?format=binary").data) == 5 * 80


def test_headers_without_a_known_locator_start_at_genesis(api: Api):
    for query in ("", "?locator=", "?locator=" + "00" * 32, "?locator=" + REGTEST.genesis_hash_hex + ",,"):
        raw = api.get("/headers" + query).get_json()["headers"]
        assert len(raw) in (15, 14)
        start = 0 if len(raw) == 15 else 1
        assert BlockHeader.deserialize(bytes.fromhex(raw[0])).hash() == api.node.active[start]
    assert api.get("/headers?locator=" + api.builder["m14"].header.hash_hex()).get_json()["headers"] == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("locator=xyz", "bad-hash"),
        ("locator=" + "00" * 32 + ",1", "bad-hash"),
        ("limit=0", "bad-param"),
        ("limit=2001", "bad-param"),
    ],
)
def test_headers_bad_input(api: Api, query: str, reason: str):
    assert_error(api.get(f"/headers?{query}"), 400, reason)


# -- /peers ----------------------------------------------------------------------------------------------------


def test_peers_list_and_add(api: Api):
    assert api.get("/peers").get_json() == {"peers": []}
    r = api.post("/peers", json={"url": "http://127.0.0.1:2/"})  # the old spelling: only host:port is kept
    assert r.status_code == 200
    assert r.get_json() == {"added": "127.0.0.1:2"}
    assert api.get("/peers").get_json() == {
        "peers": [
            {
                "address": "127.0.0.1:2",
                "url": "http://127.0.0.1:2",
                "manual": True,
                "inbound": False,
                "outbound": True,
                "connected": False,
                "height": -1,
                "banned": False,
                "ban_score": 0,
                "failures": 0,
                "refused": None,
            }
        ]
    }
    remote = api.post("/peers", json={"address": "127.0.0.1:3"}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert_error(remote, 403, "local-only")  # not an open proxy: only the operator adds peers


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"url": "ftp://127.0.0.1:2"}, "bad-peer"),
        ({"url": OWN_URL}, "bad-peer"),  # ourselves
        ({"url": "http://"}, "bad-peer"),
        ({"url": "http://[::1"}, "bad-peer"),  # urlsplit raises ValueError
        ({"url": 5}, "bad-field"),
        ({}, "bad-field"),
        ([], "bad-json"),
    ],
)
def test_add_peer_refused(api: Api, body, reason: str):
    assert_error(api.post("/peers", json=body), 400, reason)
    assert api.peers.describe() == []


def test_without_a_peer_manager(funded):
    a = Api(*funded, with_peers=False)
    assert a.get("/peers").get_json() == {"peers": []}
    assert a.get("/status").get_json()["peers"] == 0
    assert_error(a.post("/peers", json={"url": "http://127.0.0.1:2"}), 400, "bad-field")
    assert a.post("/p2p/hello", json={"url": "http://127.0.0.1:2"}).status_code == 200


# -- /p2p ------------------------------------------------------------------------------------------------------


def test_hello(api: Api):
    before = int(time.time())
    r = api.post("/p2p/hello", json={"network": "main", "genesis": MAIN.genesis_hash_hex, "url": "http://127.0.0.1:3"})
    answer = r.get_json()
    assert before <= answer.pop("time") <= time.time()  # its clock, for the caller's clock check
    assert answer == {
        "network": "regtest",
        "genesis": REGTEST.genesis_hash_hex,
        "height": 14,
        "tip": api.node.tip.header.hash_hex(),
        "chain_work": str(api.node.tip.chain_work),
    }
    assert api.peers.describe() == []  # another network: not added
    hello = {"network": "regtest", "genesis": REGTEST.genesis_hash_hex, "url": "http://127.0.0.1:3"}
    assert api.post("/p2p/hello", json=hello).status_code == 200
    assert [p["url"] for p in api.peers.describe()] == ["http://127.0.0.1:3"]


def test_hello_with_an_unparseable_url(api: Api):
    hello = {"network": "regtest", "genesis": REGTEST.genesis_hash_hex, "url": "http://[::1"}
    answer = api.post("/p2p/hello", json=hello)  # answered, but the unusable URL is not kept as a peer
    assert answer.status_code == 200
    assert answer.get_json()["genesis"] == REGTEST.genesis_hash_hex
    assert api.get("/peers").get_json()["peers"] == []
    assert_error(api.post("/p2p/hello", data="[1]", content_type="application/json"), 400, "bad-json")


def test_push_block(api: Api):
    duplicate = api.post("/p2p/block", json={"hex": api.builder["m14"].serialize().hex()})
    assert duplicate.get_json() == {"status": "duplicate", "hash": api.builder["m14"].header.hash_hex()}
    m15 = api.builder.block("m15")
    m16 = api.builder.block("m16")
    orphan = api.post("/p2p/block", json={"hex": m16.serialize().hex()})
    assert orphan.get_json() == {"status": "orphan", "hash": m16.header.hash_hex()}
    accepted = api.post("/p2p/block", json={"hex": m15.serialize().hex()})
    assert accepted.get_json() == {"status": "accepted", "hash": m15.header.hash_hex()}
    assert api.node.tip.hash == m16.hash  # the orphan followed its parent


def test_invalid_block_bans_the_peer_that_sent_it(api: Api):
    def bad_root(block: Block) -> Block:
        return Block(dataclasses.replace(block.header, merkle_root=bytes(32)), block.txs)

    bad = api.builder.block("bad15", parent="m14", tweak=bad_root)
    peer = {"X-SimpleCoin-Peer": "http://127.0.0.1:4"}
    before = api.state()
    assert_error(api.post("/p2p/block", json={"hex": bad.serialize().hex()}, headers=peer), 400, "bad-txnmrklroot")
    assert api.peers.is_banned("http://127.0.0.1:4")
    good = api.builder.block("m15", parent="m14")
    assert_error(api.post("/p2p/block", json={"hex": good.serialize().hex()}, headers=peer), 403, "banned")
    assert api.state() == before


def test_a_request_cannot_get_another_host_banned(api: Api):
    def bad_root(block: Block) -> Block:
        return Block(dataclasses.replace(block.header, merkle_root=bytes(32)), block.txs)

    bad = api.builder.block("bad15", parent="m14", tweak=bad_root)
    spoofed = {"X-SimpleCoin-Peer": "http://192.0.2.7:5000"}  # a documentation address; the request is local
    assert_error(api.post("/p2p/block", json={"hex": bad.serialize().hex()}, headers=spoofed), 400, "bad-txnmrklroot")
    assert not api.peers.is_banned("http://192.0.2.7:5000")
    assert api.peers.describe() == []


def test_push_block_with_a_bad_coinbase_amount(api: Api):
    block = api.builder.block("greedy", parent="m14", coinbase_extra=1, tweak=resolve)
    before = api.state()
    assert_error(api.post("/p2p/block", json={"hex": block.serialize().hex()}), 400, "bad-cb-amount")
    assert api.state() == before


def test_raw_blocks(api: Api):
    names = ["m3", "m1", "m14"]
    hashes = ",".join(api.builder[n].header.hash_hex() for n in names)
    raw = api.get(f"/p2p/blocks?hashes={hashes}").get_json()["blocks"]
    assert [Block.deserialize(bytes.fromhex(h)) for h in raw] == [api.builder[n] for n in names]


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("", 400, "bad-param"),
        ("hashes=", 400, "bad-param"),
        ("hashes=" + ",".join([REGTEST.genesis_hash_hex] * 17), 400, "bad-param"),
        ("hashes=xyz", 400, "bad-hash"),
        ("hashes=" + "00" * 32, 404, "not-found"),
    ],
)
def test_raw_blocks_bad_input(api: Api, query: str, status: int, reason: str):
    assert_error(api.get(f"/p2p/blocks?{query}"), status, reason)


# -- bad input anywhere: 4xx, the JSON error shape, the exact reason, nothing changed ---------------------------


def deep_json(depth: int) -> str:
    return '{"hex": ' + "[" * depth + "]" * depth + "}"


BAD_REQUESTS = [
    # (method, path, request kwargs, status, reason)
    ("POST", "/tx", {"data": "{not json", "content_type": "application/json"}, 400, "bad-json"),
    ("POST", "/tx", {"data": "", "content_type": "application/json"}, 400, "bad-json"),
    ("POST", "/tx", {"json": [1, 2]}, 400, "bad-json"),
    ("POST", "/tx", {"json": "00"}, 400, "bad-json"),
    ("POST", "/tx", {"data": '{"hex": "00"}', "content_type": "text/plain"}, 400, "bad-json"),
    ("POST", "/tx", {"data": b"\xff\xfe{", "content_type": "application/json"}, 400, "bad-json"),
    ("POST", "/tx", {"data": deep_json(100_000), "content_type": "application/json"}, 400, "bad-json"),
    ("POST", "/tx", {"json": {}}, 400, "bad-field"),
    ("POST", "/tx", {"json": {"hex": 12}}, 400, "bad-field"),
    ("POST", "/tx", {"json": {"hex": None}}, 400, "bad-field"),
    ("POST", "/tx", {"json": {"hex": ["00"]}}, 400, "bad-field"),
    ("POST", "/tx", {"json": {"hex": "zz"}}, 400, "bad-hex"),
    ("POST", "/tx", {"json": {"hex": "abc"}}, 400, "bad-hex"),
    ("POST", "/tx", {"json": {"hex": "٠٠"}}, 400, "bad-hex"),
    ("POST", "/tx", {"json": {"hex": ""}}, 400, "bad-encoding"),
    ("POST", "/tx", {"json": {"hex": "00"}}, 400, "bad-encoding"),
    ("POST", "/tx", {"json": {"hex": "01000000" + "ff" * 9}}, 400, "bad-encoding"),
    (
        "POST",
        "/tx",
        {"data": '{"hex": "' + "0" * MAX_BODY_BYTES + '"}', "content_type": "application/json"},
        413,
        "body-too-large",
    ),
    ("POST", "/p2p/block", {"json": {"hex": "00" * 80}}, 400, "bad-encoding"),
    ("POST", "/p2p/block", {"json": {"hex": "xx"}}, 400, "bad-hex"),
    ("POST", "/p2p/block", {"data": "null", "content_type": "application/json"}, 400, "bad-json"),
    ("POST", "/p2p/hello", {"data": "not json", "content_type": "application/json"}, 400, "bad-json"),
    ("POST", "/peers", {"data": deep_json(50_000), "content_type": "application/json"}, 400, "bad-json"),
    ("GET", "/tx/xyz", {}, 400, "bad-hash"),
    ("GET", "/tx/" + "0" * 63, {}, 400, "bad-hash"),
    ("GET", "/tx/" + "0" * 65, {}, 400, "bad-hash"),
    ("GET", "/tx/" + "0" * 62 + "²", {}, 400, "bad-hash"),
    ("GET", "/merkle-proof/" + "z" * 64, {}, 400, "bad-hash"),
    ("GET", "/address/" + addr(BOB, MAIN), {}, 400, "bad-address"),
    ("GET", "/nope", {}, 404, "no-such-endpoint"),
    ("GET", "/index.html", {}, 404, "no-such-endpoint"),  # "/" itself is the explorer's dashboard (HTML)
    ("GET", "/tx", {}, 405, "method-not-allowed"),
    ("GET", "/status/", {}, 404, "no-such-endpoint"),
    ("GET", "/tx/a/b", {}, 404, "no-such-endpoint"),
    ("DELETE", "/status", {}, 405, "method-not-allowed"),
    ("PUT", "/tx", {"json": {"hex": "00"}}, 405, "method-not-allowed"),
    ("POST", "/status", {}, 405, "method-not-allowed"),
    ("GET", "/p2p/block", {}, 405, "method-not-allowed"),
    ("PATCH", "/peers", {}, 405, "method-not-allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "reason"),
    BAD_REQUESTS,
    ids=[f"{m} {p[:40]} {r}" for m, p, _, _, r in BAD_REQUESTS],
)
def test_bad_requests_change_nothing(api: Api, method: str, path: str, kwargs: dict, status: int, reason: str):
    before = api.state()
    assert_error(api.client.open(path, method=method, **kwargs), status, reason)
    assert api.state() == before
    assert api.peers.describe() == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda b: b.spend("m1"), "bad-txns-inputs-missingorspent"),  # spent in m14
        (lambda b: b.spend("m13"), "bad-txns-premature-spend-of-coinbase"),
        (lambda b: b.spend("m2", key=ALICE), "bad-txns-wrong-key"),
        (lambda b: b.spend("m2", [(REGTEST.subsidy(2) + 1, BOB.pubkey_hash)]), "bad-txns-in-belowout"),
        (lambda b: b.spend("m2", sign=False), "bad-txns-sig-der"),
        (lambda b: b["m14"].txs[0], "coinbase"),
    ],
)
def test_invalid_tx_gets_its_consensus_reason(api: Api, make, reason: str):
    tx = make(api.builder)
    before = api.state()
    assert_error(api.post("/tx", json={"hex": tx.serialize().hex()}), 400, reason)
    assert api.state() == before


def test_a_tx_in_a_mempool_conflict(api: Api):
    first = api.builder.spend("m2", fee=20_000)
    second = api.builder.spend("m2", fee=30_000)
    assert api.post("/tx", json={"hex": first.serialize().hex()}).status_code == 200
    before = api.state()
    assert_error(api.post("/tx", json={"hex": second.serialize().hex()}), 400, "txn-mempool-conflict")
    assert api.state() == before


# -- the documents match the app -------------------------------------------------------------------------------


def spec() -> dict:
    return yaml.safe_load((DOCS / "openapi.yaml").read_text(encoding="utf-8"))


def app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("explorer."):
            continue  # the explorer's HTML pages are not part of the JSON API (tests/test_explorer.py covers them)
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_openapi_is_valid_and_lists_every_route(api: Api):
    document = spec()
    validate_openapi(document)
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == app_routes(api.app)


def test_api_md_covers_every_route_and_reason(api: Api):
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    for method, path in app_routes(api.app):
        assert f"{method.upper()} {path}" in text, f"docs/api.md does not describe {method.upper()} {path}"
    web = Path(__file__).resolve().parent.parent / "simplecoin" / "web"
    source = (web / "api.py").read_text() + (web / "app.py").read_text()
    reasons = set(re.findall(r'ApiError\(\d+, [^\n]*"([a-z-]+)"\)', source))
    reasons |= set(re.findall(r'\d{3}: "([a-z-]+)"', source)) | {"bad-request", "not-found"}
    assert {"bad-json", "bad-hash", "bad-param", "bad-address", "banned", "bad-peer", "body-too-large"} <= reasons
    missing = {r for r in reasons if f"`{r}`" not in text}
    assert not missing, f"docs/api.md does not list reasons {sorted(missing)}"


def test_documented_examples_are_json(api: Api):
    """Every ```json block in docs/api.md parses."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 13
    for block in blocks:
        json.loads(block)
