"""A lying node: a real node's API behind a proxy that changes chosen answers. The light wallet must notice.

The honest node (simplecoin.web.api over a regtest NodeService) holds a chain in which the wallet's first key
received a confirmed payment (block p14, among other txs). The proxy forwards every request to it and
tampers with one kind of answer; both the library (LightWallet) and the CLI (wallet.py) must refuse:
SpvError, or exit code 4 with one line on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, Response, jsonify, request

from simplecoin.core.amounts import COIN, format_coins
from simplecoin.core.hashing import hash_hex, merkle_branch
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAX_HEADERS_BINARY_RESULTS, REGTEST
from simplecoin.core.pow import bits_to_target
from simplecoin.core.primitives import BlockHeader, Transaction
from simplecoin.core.spv import SpvError
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.wallet import history as client
from simplecoin.wallet.client import LightWallet, NodeClient
from simplecoin.wallet.keyfile import WalletFile
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import BOB, ChainBuilder, miss_target
from tests.framework.nodes import REPO, serving

Tamper = Callable[[str, dict], dict]  # (path, honest JSON answer) -> the answer to give
PAID = 7 * COIN


def lying_app(honest: Flask, tampers: dict[str, Tamper], old: bool = False) -> Flask:
    """Forwards every request to `honest`; a 200 answer on a path starting with a key of `tampers` is changed.
    `old`: a node from before GET /headers had a binary form (it ignores `format` and answers JSON)."""
    liar = Flask("liar")

    @liar.route("/<path:path>", methods=["GET", "POST"])
    def forward(path: str):
        full = "/" + path
        query = {k: v for k, v in request.args.items() if not (old and k == "format")}
        answer = honest.test_client().open(
            full,
            method=request.method,
            query_string=query,
            data=request.get_data(),
            content_type=request.content_type,
        )
        binary = answer.mimetype == "application/octet-stream"  # GET /headers?format=binary: tampered as JSON
        if binary:
            data = {"headers": [answer.data[i : i + 80].hex() for i in range(0, len(answer.data), 80)]}
        else:
            data = answer.get_json()
        if answer.status_code == 200:
            for prefix, tamper in tampers.items():
                if full.startswith(prefix):
                    data = tamper(full, data)
        if binary:
            return Response(bytes.fromhex("".join(data["headers"])), mimetype=answer.mimetype)
        return jsonify(data), answer.status_code

    return liar


@dataclass
class World:
    tmp_path: Path
    wallet: WalletFile
    builder: ChainBuilder
    service: NodeService
    payment: Transaction  # pays PAID to the wallet's first key, confirmed in p14

    @property
    def txid(self) -> str:
        return hash_hex(self.payment.txid)

    def wallet_copy(self, name: str) -> Path:
        """The wallet file in a directory of its own: no header cache from an earlier run."""
        path = self.tmp_path / name / "wallet.json"
        path.parent.mkdir()
        shutil.copy(self.wallet.path, path)
        return path

    def light(self, url: str, name: str) -> LightWallet:
        return LightWallet(self.wallet_copy(name), REGTEST, NodeClient([url]), clock=lambda: NOW)

    def cli(self, url: str, name: str, args: str = "history") -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            "wallet.py",
            "--network",
            "regtest",
            "--wallet",
            str(self.wallet_copy(name)),
            "--node",
            url,
            *args.split(),
        ]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """
    genesis - m1 ... m13 - p14 - c15 - c16
                           p14: [coinbase, m2 -> Bob, m1 -> wallet (PAID) + change, m3 -> Bob]
    """
    wallet = WalletFile.create(tmp_path / "wallet" / "wallet.json", REGTEST)
    b = ChainBuilder(REGTEST)
    b.chain([f"m{i}" for i in range(1, 14)])
    subsidy = REGTEST.subsidy(1)
    payment = b.spend("m1", [(PAID, wallet.keys[0].key.pubkey_hash), (subsidy - PAID - 10_000, BOB.pubkey_hash)])
    b.block("p14", txs=[b.spend("m2"), payment, b.spend("m3")])
    b.chain(["c15", "c16"])
    service = NodeService(Node(Store(tmp_path / "chain.db", REGTEST), REGTEST, clock=lambda: NOW))
    for name in [*(f"m{i}" for i in range(1, 14)), "p14", "c15", "c16"]:
        assert service.submit_block(b[name]).status == "accepted"
    assert service.tip().hash == b["c16"].hash
    yield World(tmp_path, wallet, b, service, payment)
    service.close()


@contextlib.contextmanager
def node_url(world: World, tampers: dict[str, Tamper] | None = None, old: bool = False) -> Iterator[str]:
    honest = create_app(world.service)
    with serving(lying_app(honest, tampers or {}, old) if tampers or old else honest) as url:
        yield url


def assert_cli_detects(world: World, url: str, *fragments: str, command: str = "history") -> None:
    result = world.cli(url, "cli", command)
    assert result.returncode == 4, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wallet: untrustworthy node: ")
    assert "untrustworthy" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert hash_hex(world.payment.txid)[:16] not in result.stdout  # nothing shown as if it were true


# -- tampering helpers -----------------------------------------------------------------------------------------


def flip_hex(text: str, at: int = 0) -> str:
    return text[:at] + format(int(text[at], 16) ^ 1, "x") + text[at + 1 :]


def in_rows(edit: Callable[[dict], dict]) -> dict[str, Tamper]:
    """Tampers for the batch history answer (GET /address/{address}/txs): `edit` changes each of its rows."""

    def tamper(path: str, data: dict) -> dict:
        if not path.endswith("/txs"):
            return data
        return {**data, "txs": [edit(row) for row in data["txs"]]}

    return {"/address/": tamper}


def on_pages(edit: Callable[[str, dict], dict]) -> dict[str, Tamper]:
    """Tampers for whole batch history answers."""

    def tamper(path: str, data: dict) -> dict:
        return edit(path, data) if path.endswith("/txs") else data

    return {"/address/": tamper}


def change_headers(edit: Callable[[list[BlockHeader]], list[BlockHeader]]) -> Tamper:
    def tamper(_: str, data: dict) -> dict:
        headers = [BlockHeader.deserialize(bytes.fromhex(h)) for h in data["headers"]]
        return {**data, "headers": [h.serialize().hex() for h in edit(headers)]}

    return tamper


# -- the honest node -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("old", [False, True], ids=["binary-headers", "old-node-json-headers"])
def test_honest_node_passes_library_and_cli(world: World, old: bool):
    with node_url(world, old=old) as url:
        light = world.light(url, "lib")
        entries = light.history()
        result = world.cli(url, "cli")
    assert light.chain.tip.hash == world.builder["c16"].hash
    assert len(entries) == 1
    entry = entries[0]
    assert entry.txid == world.txid
    assert entry.direction == "received"
    assert entry.amount == PAID
    assert entry.height == 14
    assert entry.confirmations == 3
    assert entry.time == world.builder["p14"].header.time
    assert not entry.pending
    assert entry.fee is None
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    line = result.stdout.strip()
    assert world.txid[:16] in line
    assert f"+{format_coins(PAID)}" in line
    assert "received" in line
    assert "height 14, 3 conf." in line


def test_the_proxy_itself_changes_nothing(world: World):
    """The lying tests are only meaningful if forwarding alone passes."""
    with node_url(world, {"/nothing": lambda _, d: d}) as url:
        assert [e.txid for e in world.light(url, "lib").history()] == [world.txid]
        result = world.cli(url, "cli")
    assert result.returncode == 0, result.stderr
    assert world.txid[:16] in result.stdout


# -- (a) a forged merkle proof ---------------------------------------------------------------------------------


def forge_branch(element: int) -> Callable[[dict], dict]:
    def tamper(row: dict) -> dict:
        branch = list(row["branch"])
        branch[element] = flip_hex(branch[element], 10)
        return {**row, "branch": branch}

    return tamper


def change_position(row: dict) -> dict:
    return {**row, "position": row["position"] ^ 1}


def drop_branch_level(row: dict) -> dict:
    return {**row, "branch": row["branch"][:-1]}


@pytest.mark.parametrize(
    "tamper",
    [forge_branch(0), forge_branch(1), change_position, drop_branch_level],
    ids=["branch-element-0", "branch-element-1", "position", "short-branch"],
)
def test_a_forged_merkle_proof_is_detected(world: World, tamper):
    with node_url(world, in_rows(tamper)) as url:
        with pytest.raises(SpvError, match=r"is not trustworthy: the merkle proof of tx .* not in that block"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, "merkle proof", world.txid)


def test_the_single_tx_proof_endpoint_is_still_checked(world: World):
    """LightWallet.verify_confirmed (GET /merkle-proof/{txid}) stays as strict as the batch answer."""

    def tamper(_: str, data: dict) -> dict:
        return {**data, "index": data["index"] ^ 1}

    with node_url(world, {"/merkle-proof/": tamper}) as url:
        light = world.light(url, "lib")
        light.sync_headers()
        with pytest.raises(SpvError, match=r"is not trustworthy: the merkle proof of tx .* not in that block"):
            light.verify_confirmed(world.txid)


# -- (b) a tx placed in a block it is not in ------------------------------------------------------------------


def test_a_proof_pointing_at_another_block_is_detected(world: World):
    other = hash_hex(world.builder["c15"].hash)

    def tamper(row: dict) -> dict:
        return {**row, "block_hash": other, "height": 15}

    with node_url(world, in_rows(tamper)) as url:
        with pytest.raises(SpvError, match=f"not trustworthy: the merkle proof of tx .* block {other}"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, other, "not in that block")


def test_a_proof_pointing_at_a_block_without_a_verified_header_is_detected(world: World):
    unknown = world.builder.block("x14", parent="m13", txs=[world.payment])  # real block, never announced
    hidden = hash_hex(unknown.hash)

    def tamper(row: dict) -> dict:
        return {**row, "block_hash": hidden}

    with node_url(world, in_rows(tamper)) as url:
        with pytest.raises(SpvError, match="not on the best chain of verified headers"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, hidden, "not on the best chain")


# -- (c) headers without valid work ---------------------------------------------------------------------------


def test_a_header_without_valid_work_is_detected(world: World):
    bad = miss_target(world.builder["m5"].header)
    tamper = change_headers(lambda hs: [bad if h.hash() == world.builder["m5"].hash else h for h in hs])
    with node_url(world, {"/headers": tamper}) as url:
        light = world.light(url, "lib")
        with pytest.raises(SpvError, match=f"not trustworthy: header {bad.hash_hex()} at height 5 has no valid work"):
            light.sync_headers()
        assert light.chain.tip.height == 4  # everything from the bad header on was refused
        with pytest.raises(SpvError, match="no valid work"):
            world.light(url, "lib-history").history()
        assert_cli_detects(world, url, bad.hash_hex(), "no valid work")
    cache = light.headers_path
    assert not cache.exists() or bad.serialize() not in cache.read_bytes()
    with node_url(world) as honest:  # the same wallet, asking an honest node, gets the real chain
        light.client = NodeClient([honest])
        light.sync_headers()
        assert light.chain.tip.hash == world.builder["c16"].hash


# -- (d) tx bytes that do not hash to the txid ----------------------------------------------------------------


def another_tx(world: World) -> Callable[[dict], dict]:
    def tamper(row: dict) -> dict:
        return {**row, "hex": world.builder["p14"].txs[1].serialize().hex()}

    return tamper


def inflate_amount(world: World) -> Callable[[dict], dict]:
    """The same tx, but paying the wallet ten times as much."""

    def tamper(row: dict) -> dict:
        tx = Transaction.deserialize(bytes.fromhex(row["hex"]))
        outputs = tuple(dataclasses.replace(o, amount=o.amount * 10) if o.amount == PAID else o for o in tx.outputs)
        return {**row, "hex": dataclasses.replace(tx, outputs=outputs).serialize().hex()}

    return tamper


@pytest.mark.parametrize("make_tamper", [another_tx, inflate_amount], ids=["another-tx", "inflated-amount"])
def test_tx_bytes_that_do_not_hash_to_the_txid_are_detected(world: World, make_tamper):
    with node_url(world, in_rows(make_tamper(world))) as url:
        with pytest.raises(SpvError, match=f"not trustworthy: its tx {world.txid} is wrong"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, world.txid, "hash to something else")


# -- (e) headers that break the chain link --------------------------------------------------------------------


def drop_one(hs: list[BlockHeader]) -> list[BlockHeader]:
    return hs[:6] + hs[7:]


def swap_two(hs: list[BlockHeader]) -> list[BlockHeader]:
    return [*hs[:6], hs[7], hs[6], *hs[8:]]


def relink(hs: list[BlockHeader]) -> list[BlockHeader]:
    """Header 7 made to follow a parent the wallet never saw (its own work made valid again)."""
    header = dataclasses.replace(hs[6], prev_hash=bytes(range(32)))
    target = bits_to_target(header.bits)
    nonce = next(
        n for n in range(1000) if int.from_bytes(dataclasses.replace(header, nonce=n).hash(), "little") <= target
    )
    return [*hs[:6], dataclasses.replace(header, nonce=nonce), *hs[7:]]


@pytest.mark.parametrize("old", [False, True], ids=["binary", "old-node-json"])
@pytest.mark.parametrize("edit", [drop_one, swap_two, relink], ids=["dropped", "swapped", "foreign-parent"])
def test_headers_that_break_the_chain_link_are_detected(world: World, edit, old: bool):
    with node_url(world, {"/headers": change_headers(edit)}, old) as url:
        light = world.light(url, "lib")
        with pytest.raises(SpvError, match=r"not trustworthy: header .* does not link to any header the wallet has"):
            light.sync_headers()
        assert light.chain.tip.height == 6
        with pytest.raises(SpvError, match="does not link"):
            world.light(url, "lib-history").history()
        assert_cli_detects(world, url, "does not link")


@pytest.mark.parametrize(
    "body",
    [b"\0" * 81, bytes(80 * (MAX_HEADERS_BINARY_RESULTS + 1))],
    ids=["a-stray-byte", "over-the-cap"],
)
def test_a_binary_headers_answer_of_broken_or_too_many_headers_is_refused(world: World, body: bytes):
    odd = Flask("odd")

    @odd.get("/headers")
    def headers():
        return Response(body, mimetype="application/octet-stream")

    with serving(odd) as url:
        light = world.light(url, "lib")
        with pytest.raises(SpvError, match=rf"answered /headers with {len(body)} bytes, not whole headers"):
            light.sync_headers()
        assert light.chain.height == 0


def test_a_proof_into_a_stale_block_is_detected(world: World):
    """The tx really is in x14, a block with valid work, but x14 lost to p14 - c15 - c16: not a confirmation."""
    stale = world.builder.block("x14", parent="m13", txs=[world.payment])
    stale_hex = hash_hex(stale.hash)

    def add_stale_header(hs: list[BlockHeader]) -> list[BlockHeader]:
        return [*hs, stale.header] if hs else hs

    def into_stale(row: dict) -> dict:
        txids = [tx.txid for tx in stale.txs]
        branch = merkle_branch(txids, 1)
        return {**row, "block_hash": stale_hex, "height": 14, "position": 1, "branch": [hash_hex(h) for h in branch]}

    tampers = {"/headers": change_headers(add_stale_header), **in_rows(into_stale)}
    with node_url(world, tampers) as url:
        light = world.light(url, "lib")
        light.sync_headers()
        assert stale.hash in light.chain.index  # the wallet keeps the header: it has valid work
        assert light.chain.tip.hash == world.builder["c16"].hash
        with pytest.raises(SpvError, match=f"block {stale_hex} at height 14, which is not on the best chain"):
            light.history()
        assert_cli_detects(world, url, stale_hex, "not on the best chain")


# -- beyond SPV proofs: what a node says about coins and txids ------------------------------------------------


def test_an_understated_coin_amount_is_detected_before_signing(world: World):
    """Signatures do not commit to the amounts spent: a coin reported smaller than it is would turn the
    difference into fee (for the miner). The wallet checks each coin against its parent tx, fetched by txid."""
    address = world.wallet.keys[0].address

    def understate(path: str, data: dict) -> dict:
        if path.endswith("/txs"):
            return data
        utxos = [{**u, "amount": COIN} if u["amount"] == PAID else u for u in data["utxos"]]
        return {**data, "utxos": utxos, "balance": COIN}

    bob = address_from_pubkey_hash(BOB.pubkey_hash, REGTEST.address_version)
    with node_url(world, {f"/address/{address}": understate}) as url:
        light = world.light(url, "lib")
        assert [c.amount for c in light.spendable(world.wallet)] == [COIN]
        with pytest.raises(SpvError, match="is not trustworthy"):
            light.make_payment(world.wallet, bob, COIN // 2, fee_rate=2)
        path = world.wallet_copy("cli")
        command = [sys.executable, "wallet.py", "--network", "regtest", "--wallet", str(path), "--node", url]
        command += ["--yes", "send", bob, "0.5"]
        result = subprocess.run(
            command,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert result.stderr.startswith("wallet: untrustworthy node: ")
    assert len(world.service.node.mempool) == 0  # nothing was sent
    with node_url(world) as honest:  # the honest answer gives a payment the node takes
        payment = world.light(honest, "honest").make_payment(world.wallet, bob, COIN // 2, fee_rate=2)
    world.service.submit_tx(payment.tx)


@pytest.mark.parametrize("bad_txid", ["zz" * 32, "ab", "../status", "00" * 31 + "0g", "  " + "ab" * 31])
def test_a_malformed_txid_in_an_address_report_is_a_lie_not_a_crash(world: World, bad_txid: str):
    address = world.wallet.keys[0].address

    def garble(row: dict) -> dict:
        return {**row, "txid": bad_txid}

    assert address
    with node_url(world, in_rows(garble)) as url:
        with pytest.raises(SpvError, match="is not trustworthy"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, "txid")


@pytest.mark.parametrize("field", ["history", "balance", "utxos"])
def test_a_malformed_address_report_is_a_lie_not_a_crash(world: World, field: str):
    address = world.wallet.keys[0].address

    def drop(path: str, data: dict) -> dict:
        return data if path.endswith("/txs") else {k: v for k, v in data.items() if k != field}

    with node_url(world, {f"/address/{address}": drop}) as url:
        with pytest.raises(SpvError, match="malformed report"):
            world.light(url, "lib").balances()
        assert_cli_detects(world, url, "malformed report", command="balance")


@pytest.mark.parametrize("field", ["txs", "parents", "pending", "next_offset"])
def test_a_malformed_history_page_is_a_lie_not_a_crash(world: World, field: str):
    def drop(_: str, data: dict) -> dict:
        return {k: (v if k != field else "x") for k, v in data.items()}

    with node_url(world, on_pages(drop)) as url:
        with pytest.raises(SpvError, match="malformed history page"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, "malformed history page")


# -- the batch answer: rows that are not the address's, wrong heights, pages without end ---------------------


def test_a_row_that_does_not_touch_the_address_is_detected(world: World):
    """A real, proven tx of the chain (Bob's payment in p14) padded into the wallet's history."""
    other = world.builder["p14"].txs[1]
    branch = [hash_hex(h) for h in merkle_branch([t.txid for t in world.builder["p14"].txs], 1)]

    def pad(_: str, data: dict) -> dict:
        row = {**data["txs"][0], "txid": hash_hex(other.txid), "hex": other.serialize().hex(), "position": 1}
        row["branch"] = branch
        return {**data, "txs": [row]}

    with node_url(world, on_pages(pad)) as url:
        with pytest.raises(SpvError, match="does not touch"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, "does not touch")


def test_a_row_placed_at_another_height_is_detected(world: World):
    with node_url(world, in_rows(lambda row: {**row, "height": 13})) as url:
        with pytest.raises(SpvError, match="at height 13, which is not on the best chain"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, "at height 13, which is not on the best chain")


FIRST_PAGE: dict[str, list] = {}


def endless(path: str, data: dict) -> dict:
    """The first (honest, proven) page again and again, always saying there is more."""
    offset = int(parse_qs(urlsplit(request.url).query).get("offset", ["0"])[0])
    rows = FIRST_PAGE.setdefault(path, data["txs"])
    return {**data, "txs": rows, "next_offset": offset + len(rows)}


def empty_but_more(_: str, data: dict) -> dict:
    offset = int(parse_qs(urlsplit(request.url).query).get("offset", ["0"])[0])
    return {**data, "txs": [] if offset else data["txs"], "next_offset": offset + max(len(data["txs"]), 1)}


@pytest.mark.parametrize(
    ("edit", "message"),
    [(endless, "out of order or repeats"), (empty_but_more, "do not move on")],
    ids=["repeats", "empty-pages"],
)
def test_a_node_cannot_keep_the_wallet_paging(world: World, edit, message: str):
    requests_seen = []
    FIRST_PAGE.clear()

    def counting(path: str, data: dict) -> dict:
        requests_seen.append(path)
        return edit(path, data)

    with node_url(world, on_pages(counting)) as url:
        started = time.monotonic()
        with pytest.raises(SpvError, match=message):
            world.light(url, "lib").history()
        assert time.monotonic() - started < 10
        assert len(requests_seen) <= 3  # caught at the second page, not after hundreds
        assert_cli_detects(world, url, message, command="history --all")


def test_paging_is_capped_even_when_every_page_is_new(world: World, monkeypatch):
    """A node whose every page moves on (as a real, huge history would) still stops at the caps: here the
    proofs are taken as given, so the paging rules alone are under test."""
    monkeypatch.setattr(client, "MAX_HISTORY_PAGES", 50)

    class Endless:
        answered_by = "http://endless"
        pages = 0

        def headers(self, locator: list[bytes]) -> bytes:
            return b""

        def get(self, path: str, params: dict | None = None) -> dict:
            assert params is not None
            self.pages += 1
            offset, limit = params["offset"], params["limit"]
            rows = [{"n": 10**9 - offset - i} for i in range(limit)]
            return {"txs": rows, "parents": {}, "pending": [], "next_offset": offset + limit}

    def take(self, item: dict, liar: str) -> client._Row:
        return client._Row(world.payment, 0, item["n"], None)

    monkeypatch.setattr(LightWallet, "_proven_row", take)
    monkeypatch.setattr(LightWallet, "_require_touches", lambda *args: None)
    endless = Endless()
    light = LightWallet(world.wallet_copy("lib"), REGTEST, endless, clock=lambda: NOW)  # type: ignore[arg-type]
    with pytest.raises(SpvError, match=r"keeps paging the history .* \(over 200,000 rows or 50 pages\)"):
        light.history()
    assert endless.pages == 50


def test_a_pending_tx_whose_bytes_do_not_hash_is_detected(world: World):
    other = world.builder["p14"].txs[1]

    def fake_pending(_: str, data: dict) -> dict:
        return {**data, "pending": [{"txid": "ab" * 32, "fee": 1, "hex": other.serialize().hex()}]}

    with node_url(world, on_pages(fake_pending)) as url:
        with pytest.raises(SpvError, match="is wrong"):
            world.light(url, "lib").history()
        assert_cli_detects(world, url, "hash to something else")


@pytest.mark.parametrize("lie", ["empty page, next cursor", "the same page again"])
def test_a_coin_cursor_that_never_ends_is_a_lie_not_a_loop(world: World, lie: str):
    """Coins are read page by page (issue 21): a node must not keep the wallet paging forever, nor hand it a
    coin twice (it would be spent twice)."""
    address = world.wallet.keys[0].address

    def endless(path: str, data: dict) -> dict:
        if path.endswith("/txs"):
            return data
        cursor = "1:" + "ab" * 32 + ":0"
        return {**data, "utxos": [] if lie.startswith("empty") else data["utxos"], "next_utxo_cursor": cursor}

    with node_url(world, {f"/address/{address}": endless}) as url:
        with pytest.raises(SpvError, match="is not trustworthy"):
            world.light(url, "lib").spendable(world.wallet)
