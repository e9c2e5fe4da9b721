"""The block explorer's pages through Flask's test client, on a temporary regtest store.

The chain: 13 mined blocks (the `funded` fixture), then m14 holding `paid` (m1's coinbase split into
12.34567891 coins for Bob and the rest for Alice, fee 0.0001), then m15 whose coinbase data is a crafted
`<script>`. Two spends wait in the mempool with different fee rates. Every page must render, show the
chain's values exactly (coins as exact decimals) and escape whatever came from the chain or the user.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from simplecoin.core.amounts import COIN, format_coins
from simplecoin.core.hashing import hash_hex
from simplecoin.core.keys import address_from_pubkey_hash
from simplecoin.core.params import MAIN, REGTEST
from simplecoin.core.pow import bits_to_target
from simplecoin.node.node import Node
from simplecoin.node.service import NodeService
from simplecoin.node.store import Store
from simplecoin.web import charts
from simplecoin.web import explorer as explorer_module
from simplecoin.web.app import create_app
from tests.conftest import NOW
from tests.framework.builder import ALICE, BOB, DEFAULT_FEE, MINER_KEY, ChainBuilder

PACKAGE = Path(explorer_module.__file__).resolve().parent
XSS = "<script>alert(1)</script>"
CRAFTED = '<img src=x onerror="alert(2)">&'  # in m15's coinbase data
BOB_AMOUNT = 1_234_567_891  # 12.34567891 coins
PENDING_FEES = (3_000, 50_000)


def addr(key) -> str:
    return address_from_pubkey_hash(key.pubkey_hash, REGTEST.address_version)


def display(h: bytes) -> str:
    return hash_hex(h)


class Site:
    def __init__(self, node: Node, builder: ChainBuilder) -> None:
        self.node, self.builder = node, builder
        self.service = NodeService(node)
        self.app = create_app(self.service, None)
        self.client = self.app.test_client()

    def page(self, path: str, status: int = 200) -> str:
        r = self.client.get(path)
        assert r.status_code == status, (path, r.status_code, r.get_data(as_text=True)[:500])
        assert r.mimetype == "text/html", (path, r.mimetype)
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        return r.get_data(as_text=True)

    def search(self, query: str) -> str:
        """Where a search redirects to (its Location), or "" when it answers itself."""
        r = self.client.get("/explorer/search", query_string={"q": query})
        assert r.status_code in (302, 404), r.status_code
        return r.headers.get("Location", "")


@pytest.fixture
def site(funded) -> Site:
    node, builder = funded
    paid = builder.spend(
        "m1", outputs=[(BOB_AMOUNT, BOB.pubkey_hash), (50 * COIN - BOB_AMOUNT - DEFAULT_FEE, ALICE.pubkey_hash)]
    )
    node.submit_block(builder.block("m14", txs=[paid]))
    node.submit_block(builder.block(CRAFTED))  # the block's name goes into its coinbase data
    for source, fee in zip(("m2", "m3"), PENDING_FEES, strict=True):
        node.submit_tx(builder.spend(source, fee=fee))
    assert node.height == 15
    assert len(node.mempool) == 2
    s = Site(node, builder)
    s.paid = paid
    return s


def text_of(html: str) -> str:
    """The page's text roughly as a reader sees it: tags dropped, entities for &, <, > and quotes decoded."""
    text = re.sub(r"<[^>]+>", " ", html)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&#34;", '"'), ("&#39;", "'"), ("&quot;", '"'), ("&amp;", "&")):
        text = text.replace(entity, char)
    return re.sub(r"\s+", " ", text)


# -- every page renders, with the chain's values ---------------------------------------------------------------


def test_dashboard(site: Site):
    html = site.page("/")
    text = text_of(html)
    tip = site.node.tip
    assert "regtest" in text
    assert 'data-field="height">15<' in html
    assert tip.header.hash_hex() in html
    bits = tip.header.bits
    assert f"{bits:#010x}" in text
    assert f"{bits_to_target(bits):064x}" in text
    assert 'data-field="difficulty">1.000<' in html  # regtest mines at its pow limit
    assert 'data-field="mempool">2 tx<' in html
    assert 'data-field="peers">0<' in html
    assert 'data-field="hashrate">0.0 H/s<' in html
    heights = re.findall(r'<tr data-height="(\d+)">', html)
    assert heights == [str(h) for h in range(15, 5, -1)]  # the latest ten, newest first
    for h in (15, 6):
        assert f"/explorer/block/{hash_hex(site.node.active[h])}" in html
    assert "/explorer/static/explorer.js" in html


def test_block_page(site: Site):
    m14 = site.builder["m14"]
    html = site.page(f"/explorer/block/{m14.header.hash_hex()}")
    assert html == site.page("/explorer/block/14") == site.page(f"/explorer/block/{m14.header.hash_hex().upper()}")
    text = text_of(html)
    header = m14.header
    for value in (
        header.hash_hex(),
        display(header.merkle_root),
        f"{header.bits:#010x}",
        f"{bits_to_target(header.bits):064x}",
        f"Nonce {header.nonce} ",
        f"Time 2026-11-09 00:07:00 UTC ({header.time})",
        f"Size {m14.size} bytes",
        "Confirmations 2 ",
        f"Chain work {site.node.index[m14.hash].chain_work} ",
    ):
        assert value in text, value
    assert header.time == REGTEST.genesis_time + 14 * REGTEST.target_spacing
    assert f'id="prev-block" href="/explorer/block/{site.builder["m13"].header.hash_hex()}"' in html
    assert f'id="next-block" href="/explorer/block/{site.builder[CRAFTED].header.hash_hex()}"' in html
    for tx in m14.txs:
        assert f"/explorer/tx/{display(tx.txid)}" in html
    assert f"{addr(BOB)[:14]}… {format_coins(BOB_AMOUNT)}" in text
    assert "12.34567891" in text


def test_genesis_and_tip_have_one_neighbour(site: Site):
    genesis = site.page("/explorer/block/0")
    assert 'id="prev-block"' not in genesis
    assert "genesis block" in genesis
    assert f'id="next-block" href="/explorer/block/{site.builder["m1"].header.hash_hex()}"' in genesis
    assert "SimpleCoin regtest" in text_of(genesis)  # the genesis coinbase's message
    tip = site.page("/explorer/block/15")
    assert 'id="prev-block"' in tip
    assert 'id="next-block"' not in tip
    assert "the tip" in tip


def test_transaction_page(site: Site):
    txid = display(site.paid.txid)
    html = site.page(f"/explorer/tx/{txid}")
    text = text_of(html)
    m1_coinbase = site.builder["m1"].txs[0]
    assert txid in text
    # The input: the miner's address and the exact amount of m1's coinbase it spends.
    assert re.search(rf"{addr(MINER_KEY)} spends {display(m1_coinbase.txid)[:16]}… :0 50\.00000000", text), text
    assert f"{addr(BOB)} 12.34567891" in text
    assert f"{addr(ALICE)} {format_coins(50 * COIN - BOB_AMOUNT - DEFAULT_FEE)}" in text
    assert "Fee 0.00010000 " in text
    assert f"({DEFAULT_FEE * 100 // site.paid.size // 100}." in text  # the fee rate, base units per byte
    assert "Confirmations 2 " in text
    assert f'id="tx-block" href="/explorer/block/{site.builder["m14"].header.hash_hex()}">14<' in html
    assert "Total in 50.00000000" in text
    assert "Total out 49.99990000" in text


def test_outputs_link_to_what_spent_them_and_the_page_has_the_block_time(site: Site):
    paid = display(site.paid.txid)
    m1 = site.page(f"/explorer/tx/{display(site.builder['m1'].txs[0].txid)}")
    assert re.search(rf'class="spent-by"><a class="mono" href="/explorer/tx/{paid}"', m1), m1
    # m2's coinbase is spent by a transaction still in the mempool: linked and marked pending.
    pending = next(
        e.tx
        for e in site.node.mempool.entries.values()
        if e.tx.inputs[0].prevout.txid == site.builder["m2"].txs[0].txid
    )
    m2 = text_of(site.page(f"/explorer/tx/{display(site.builder['m2'].txs[0].txid)}"))
    assert f"{display(pending.txid)[:16]}… (pending)" in m2
    text = text_of(site.page(f"/explorer/tx/{paid}"))
    assert text.count(" unspent ") == 2  # Bob's and Alice's outputs
    assert "Block time 2026-11-09 00:07:00 UTC " in text  # m14's header time
    assert "Block time none yet " in text_of(site.page(f"/explorer/tx/{display(pending.txid)}"))


def test_the_latest_blocks_count_their_transactions(site: Site):
    html = site.page("/")
    counts = dict(re.findall(r'<tr data-height="(\d+)">.*?class="num tx-count">(\d*)<', html, re.DOTALL))
    assert counts["14"] == "2"  # the coinbase and `paid`
    assert counts["13"] == "1"
    blocks = site.client.get("/blocks?start=14&limit=2").get_json()["blocks"]
    assert [(b["height"], b["tx_count"]) for b in blocks] == [(14, 2), (13, 1)]
    genesis = site.client.get("/blocks?start=0&limit=1").get_json()["blocks"]
    assert [(b["height"], b["tx_count"]) for b in genesis] == [(0, 1)]


def test_coinbase_and_pending_transactions(site: Site):
    coinbase = site.builder["m14"].txs[0]
    text = text_of(site.page(f"/explorer/tx/{display(coinbase.txid)}"))
    assert "coinbase" in text
    assert "New coins (coinbase)" in text
    assert f"{addr(MINER_KEY)} 50.00010000" in text  # the subsidy plus m14's fee, exactly
    pending = next(iter(site.node.mempool.entries.values()))
    text = text_of(site.page(f"/explorer/tx/{display(pending.tx.txid)}"))
    assert "pending" in text
    assert "Confirmations 0 " in text
    assert f"Fee {format_coins(pending.fee)} " in text
    assert "none yet: in the mempool" in text


def test_address_page_confirmed_and_pending(site: Site):
    text = text_of(site.page(f"/explorer/address/{addr(BOB)}"))
    assert addr(BOB) in text
    pending_to_bob = sum(o.amount for e in site.node.mempool.entries.values() for o in e.tx.outputs)
    assert f"Confirmed balance {format_coins(BOB_AMOUNT)} " in text
    assert f"With pending {format_coins(BOB_AMOUNT + pending_to_bob)} " in text
    assert f"Pending in / out +{format_coins(pending_to_bob)} / −0.00000000" in text
    assert f"{display(site.paid.txid)[:20]}… 14 (2 conf.) 2026-11-09 00:07:00 UTC 12.34567891 0.00000000" in text
    miner = text_of(site.page(f"/explorer/address/{addr(MINER_KEY)}"))
    # 15 coinbases of 50 (m14's plus its fee), minus the spent m1; m2 and m3 are being spent in the mempool.
    assert f"Confirmed balance {format_coins(14 * 50 * COIN + DEFAULT_FEE)} " in miner
    assert f"Pending in / out +0.00000000 / −{format_coins(100 * COIN)}" in miner


def test_address_history_pages(site: Site, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(explorer_module, "PAGE", 4)
    first = site.page(f"/explorer/address/{addr(MINER_KEY)}")
    assert len(re.findall(r"conf\.\)", first)) == 4
    assert "offset=4" in first
    assert "← newer" not in first
    last = site.page(f"/explorer/address/{addr(MINER_KEY)}?offset=12")
    assert len(re.findall(r"conf\.\)", last)) == 4  # 16 in all: 15 coinbases and the spend of m1
    assert "older →" not in last
    assert "offset=8" in last


def test_mempool_page(site: Site):
    html = site.page("/explorer/mempool")
    text = text_of(html)
    entries = sorted(site.node.mempool.entries.values(), key=lambda e: -e.fee)
    assert "2 pending transactions" in text
    positions = [html.index(display(e.tx.txid)) for e in entries]
    assert positions == sorted(positions)  # the higher fee rate first (both txs have the same size)
    for e in entries:
        rate = e.fee * 100 // e.tx.size
        assert f"{e.tx.size} {format_coins(e.fee)} {rate // 100}.{rate % 100:02d} " in text
    assert format_coins(sum(PENDING_FEES)) in text


def test_empty_mempool(site: Site):
    site.node.submit_block(site.builder.block("m16", txs=[e.tx for e in site.node.mempool.entries.values()]))
    assert "The mempool is empty" in site.page("/explorer/mempool")


# -- search ------------------------------------------------------------------------------------------------------


def test_search_lands_on_the_right_page(site: Site):
    m5 = site.builder["m5"].header.hash_hex()
    assert site.search("5") == f"/explorer/block/{m5}"
    assert site.search(f"  {m5}  ") == f"/explorer/block/{m5}"
    assert site.search(m5.upper()) == f"/explorer/block/{m5}"
    txid = display(site.paid.txid)
    assert site.search(txid) == f"/explorer/tx/{txid}"
    pending = display(next(iter(site.node.mempool.entries)))
    assert site.search(pending) == f"/explorer/tx/{pending}"
    assert site.search(addr(BOB)) == f"/explorer/address/{addr(BOB)}"
    never_used = address_from_pubkey_hash(bytes(range(20)), REGTEST.address_version)
    assert site.search(never_used) == f"/explorer/address/{never_used}"
    assert "Confirmed balance 0.00000000" in text_of(site.page(site.search(never_used)))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("99", "There is no block at height 99: the tip is at 15."),
        ("ab" * 32, "No block and no transaction has this hash."),
        ("hello", "This is not a block height, a block hash, a txid or an address."),
        (address_from_pubkey_hash(bytes(20), MAIN.address_version), "This is not a block height"),
        ("", "Type a block height, a block hash, a txid or an address."),
        ("１２", "This is not a block height"),  # full-width digits are not a height
    ],
)
def test_search_not_found_is_friendly(site: Site, query: str, message: str):
    r = site.client.get("/explorer/search", query_string={"q": query})
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    text = text_of(r.get_data(as_text=True))
    assert "Not found" in text
    assert message in text
    if query:
        assert f"You looked for: {query}" in text


# -- escaping ------------------------------------------------------------------------------------------------------


def assert_escaped(html: str, raw: str) -> None:
    assert raw not in html
    assert "<script>alert" not in html
    assert "<img" not in html


def test_search_string_is_escaped(site: Site):
    r = site.client.get("/explorer/search", query_string={"q": XSS})
    html = r.get_data(as_text=True)
    assert r.status_code == 404
    assert_escaped(html, XSS)
    assert '<code id="query" class="query">&lt;script&gt;alert(1)&lt;/script&gt;</code>' in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html  # kept in the search box, as text
    quoted = '"><svg onload=alert(3)>'
    html = site.client.get("/explorer/search", query_string={"q": quoted}).get_data(as_text=True)
    assert quoted not in html
    assert 'value="&#34;&gt;&lt;svg onload=alert(3)&gt;"' in html


def test_crafted_paths_are_escaped(site: Site):
    crafted = "<svg onload=alert(1)>"
    for page in ("address", "block", "tx"):
        html = site.page(f"/explorer/{page}/{quote(crafted, safe='')}", 404)
        assert crafted not in html
        assert "&lt;svg onload=alert(1)&gt;" in html
    html = site.page(f"/explorer/tx/{quote(XSS, safe='')}", 404)  # its "/" makes it an unknown page
    assert_escaped(html, XSS)


def test_crafted_chain_data_is_escaped(site: Site):
    crafted = site.builder[CRAFTED]
    for path in (f"/explorer/block/{crafted.header.hash_hex()}", f"/explorer/tx/{display(crafted.txs[0].txid)}"):
        html = site.page(path)
        assert_escaped(html, CRAFTED)
        assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;&amp;" in html
        assert CRAFTED in text_of(html)  # shown, as text


# -- errors: HTML for the explorer's pages, JSON for the API ---------------------------------------------------------


def test_unknown_pages_and_values_get_the_explorer_not_found_page(site: Site):
    for path in ("/explorer/nope", "/explorer/block/16", "/explorer/tx/" + "ab" * 32, "/explorer/static/nope.css"):
        assert "Not found" in site.page(path, 404)
    assert "No block at height 16 (the tip is at 15)." in text_of(site.page("/explorer/block/16", 404))


def test_api_paths_keep_json_errors(site: Site):
    for method, path, status, reason in (
        ("GET", "/nope", 404, "no-such-endpoint"),
        ("GET", "/block/99", 404, "not-found"),
        ("GET", "/tx/xyz", 400, "bad-hash"),
        ("POST", "/", 405, "method-not-allowed"),
        ("POST", "/explorer/mempool", 405, "method-not-allowed"),
    ):
        r = site.client.open(path, method=method)
        assert r.status_code == status, (path, r.status_code)
        assert r.is_json, path
        assert r.get_json()["reason"] == reason
    assert site.client.get("/status").is_json


def test_explorer_slash_redirects_to_dashboard(site: Site):
    r = site.client.get("/explorer/")
    assert (r.status_code, r.headers["Location"]) == (302, "/")


def test_static_files_are_served(site: Site):
    for name, mimetype in (("explorer.css", "text/css"), ("explorer.js", "text/javascript")):
        r = site.client.get(f"/explorer/static/{name}")
        assert r.status_code == 200
        assert r.mimetype == mimetype
        r.close()


# -- no external resources, no HTML built from data in the script ---------------------------------------------------


def explorer_files() -> list[Path]:
    files = sorted((PACKAGE / "templates").glob("*.html")) + sorted((PACKAGE / "static").glob("*"))
    assert len(files) >= 8
    return files


@pytest.mark.parametrize("path", explorer_files(), ids=lambda p: p.name)
def test_no_external_urls(path: Path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://|(src|href)=[\"']?//|url\(\s*[\"']?(https?:)?//|@import", text, re.I), path


def test_rendered_pages_load_nothing_from_elsewhere(site: Site):
    for path in ("/", "/explorer/block/1", f"/explorer/tx/{display(site.paid.txid)}", "/explorer/mempool"):
        html = site.page(path)
        for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
            assert ref.startswith(("/", "data:")), (path, ref)


def test_script_writes_text_only():
    script = (PACKAGE / "static" / "explorer.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "textContent" in script


# -- formatting ------------------------------------------------------------------------------------------------------


def test_formatting_helpers():
    assert explorer_module.format_difficulty(REGTEST.pow_limit, REGTEST.pow_limit) == "1.000"
    assert explorer_module.format_difficulty(MAIN.pow_limit // 3, MAIN.pow_limit) == "3.000"
    assert explorer_module.format_difficulty(MAIN.pow_limit * 2 // 3, MAIN.pow_limit) == "1.500"
    assert explorer_module.format_difficulty(bits_to_target(0x1D00FFFF), bits_to_target(0x1D00FFFF) << 20) == (
        "1,048,576.000"
    )
    assert explorer_module.format_fee_rate(10_000, 300) == "33.33"
    assert explorer_module.format_fee_rate(1, 3) == "0.33"
    assert explorer_module.format_hashrate(0) == "0.0 H/s"
    assert explorer_module.format_hashrate(812_345.6) == "812.3 kH/s"
    assert explorer_module.format_hashrate(2.5e9) == "2.5 GH/s"
    # Readable text as written (UTF-8 too), every other byte escaped rather than hidden behind a dot.
    assert explorer_module.coinbase_text(b"\x05\x00\x00\x00hi\x00<") == "hi\\x00<"
    assert explorer_module.coinbase_text(b"\x05\x00\x00\x00/pool/ h\xc3\xa9 \\ \xff") == "/pool/ hé \\\\ \\xff"


# -- the dashboard and a block page cost the same at any height --------------------------------------------------


class Cost:
    """What one request costs: the lines of SimpleCoin's code run and the SQL statements the store ran."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.lines = self.statements = 0

    def _trace(self, frame, event, arg):
        if event == "call":
            return self._count if str(PACKAGE.parent) in frame.f_code.co_filename else None
        return None

    def _count(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._count

    def _statement(self, sql: str) -> None:
        self.statements += 1

    def of(self, client, path: str) -> tuple[int, int]:
        self.lines = self.statements = 0
        self.node.store._db.set_trace_callback(self._statement)
        sys.settrace(self._trace)
        try:
            answer = client.get(path)
        finally:
            sys.settrace(None)
            self.node.store._db.set_trace_callback(None)
        assert answer.status_code == 200, (path, answer.status_code)
        return self.lines, self.statements


def explorer_costs(tmp_path: Path, height: int) -> dict[str, tuple[int, int]]:
    """Each page's cost on a regtest chain `height` blocks long (names of one width: coinbase texts of one length)."""
    node = Node(Store(tmp_path / f"chain{height}.db", REGTEST), REGTEST, clock=lambda: NOW)
    try:
        b = ChainBuilder(REGTEST)
        for block in b.chain([f"b{i:06d}" for i in range(1, height + 1)]):
            node.submit_block(block)
        client = create_app(NodeService(node), None).test_client()
        pages = {
            "dashboard": "/",
            "tip by height": f"/explorer/block/{height}",
            "middle by height": f"/explorer/block/{height // 2}",
            "middle by hash": f"/explorer/block/{display(node.active[height // 2])}",
            "first": "/explorer/block/1",
        }
        for path in pages.values():
            client.get(path)  # templates compiled, caches warm: what every later request costs
        cost = Cost(node)
        return {name: cost.of(client, path) for name, path in pages.items()}
    finally:
        node.close()


def test_the_dashboard_and_a_block_page_cost_the_same_at_ten_times_the_height(tmp_path, monkeypatch):
    """Nothing on these pages may scan, sum or sort the chain: the code run and the store's reads are the same
    at 30 and at 300 blocks (a walk back through the index or a query per block would show as more lines).
    The charts draw the last CHART_BLOCKS blocks, fewer on a shorter chain: drawn over 10 here, so both chains
    have all of theirs."""
    monkeypatch.setattr(charts, "CHART_BLOCKS", 10)
    monkeypatch.setattr(charts, "HASHRATE_WINDOW", 5)
    short, long = explorer_costs(tmp_path, 30), explorer_costs(tmp_path, 300)
    assert long == short
